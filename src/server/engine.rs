//! The stream server put together (TCP, or Unix stream with `-U`): the listening socket for
//! the acceptor, one event loop per thread (`worker.rs`; one loop for a fan-out service, so
//! every client is within reach of every other), the lanes between them, and at the end the
//! totals line. Runs until SIGINT or SIGTERM. What a loop does is in `worker.rs`, what a
//! connection does in `conn.rs`, how clients come in in `acceptor.rs`.

use std::time::Instant;

use anyhow::{Context, Result, anyhow};
use mio::Poll;
use socket2::Socket;

use super::acceptor::{Acceptor, Seen, raise_fd_limit};
use super::lanes::Lanes;
use super::limits::Limits;
use super::report::counted;
use super::service::Service;
use super::stop::Stop;
use super::stream::Listen;
use super::summary::{self, Served};
use super::worker::{Setup, Totals, Worker};
use crate::narrate;
use crate::socket::{self, Listener};
use crate::sockopt::Plan;
use crate::tls::stage::Accept;

/// Runs a TCP server until SIGINT or SIGTERM: accepts on `listener`, serves each client with
/// `service` within `limits`, then stops accepting, closes every client and (with `-v`)
/// prints totals.
pub fn serve<S: Service>(
    listener: Listener,
    plan: &Plan,
    limits: Limits,
    service: S,
    tls: Option<&Accept>,
) -> Result<()> {
    serve_on(listener.socket, false, plan, limits, service, tls)
}

/// `serve` for a listening Unix stream socket (`-U PATH`): the same loops, the same limits
/// but `--allow`/`--deny`, which filter IP addresses a Unix client does not have.
pub fn serve_unix<S: Service>(
    listener: Socket,
    plan: &Plan,
    limits: Limits,
    service: S,
    tls: Option<&Accept>,
) -> Result<()> {
    serve_on(listener, true, plan, limits, service, tls)
}

fn serve_on<S: Service>(
    listener: Socket,
    unix: bool,
    plan: &Plan,
    limits: Limits,
    service: S,
    tls: Option<&Accept>,
) -> Result<()> {
    raise_fd_limit(limits.max_conns);
    let stop = Stop::install()?;
    let fd = socket::fd(&listener);
    let listener =
        Listen::new(listener, unix).context("making the listening socket non-blocking")?;
    // Fan-out services reach every client from one loop (no cross-thread hand-off of bytes).
    let threads = if S::FAN_OUT {
        1
    } else {
        limits.threads.clamp(1, limits.max_conns.max(1))
    };
    let polls = (0..threads)
        .map(|_| Poll::new().context("creating the event loop (epoll_create)"))
        .collect::<Result<Vec<_>>>()?;
    let lanes = Lanes::new(&polls)?;
    if threads > 1 {
        narrate::info(format_args!(
            "serving with {threads} event-loop threads (--threads)"
        ));
    }
    let started = Instant::now();
    let setup = Setup {
        lanes: &lanes,
        service: &service,
        plan,
        limits: &limits,
        tls,
    };
    let acceptor = Acceptor::new(listener, fd, stop);
    let (first, rest) = run_loops(polls, setup, acceptor);
    let (mut sum, seen) = first?;
    let seen = seen.unwrap_or_default();
    for t in rest {
        sum.add(&t?.0);
    }
    if narrate::json() {
        let served = Served {
            served: sum.served,
            sent: sum.bytes_out,
            received: sum.bytes_in,
            uptime: started.elapsed(),
        };
        narrate::json_line(&summary::totals(&served, &seen));
    } else if narrate::verbose() {
        say_totals(&sum, &seen, started);
    }
    Ok(())
}

type Outcome = Result<(Totals, Option<Seen>)>;

/// Runs loop 0 (with the acceptor) on this thread and the others on threads of their own;
/// whatever ends the first ends them all. Each loop's outcome, the first apart.
fn run_loops<S: Service>(
    polls: Vec<Poll>,
    setup: Setup<'_, S>,
    acceptor: Acceptor,
) -> (Outcome, Vec<Outcome>) {
    std::thread::scope(|scope| {
        let mut polls = polls.into_iter();
        let Some(poll0) = polls.next() else {
            return (Err(anyhow!("no event loop to run")), vec![]);
        };
        let mut handles = Vec::new();
        for (i, poll) in polls.enumerate() {
            // Built inside its thread: a session need not be Send, it never leaves its loop.
            let handle = std::thread::Builder::new()
                .name(format!("sockkit-loop-{}", i + 1))
                .spawn_scoped(scope, move || {
                    let _stop = setup.lanes.stop_all_if_this_panics();
                    Worker::new(i + 1, poll, setup, None).run()
                });
            match handle {
                Ok(h) => handles.push(h),
                Err(e) => {
                    setup.lanes.stop_all();
                    return (Err(anyhow!("starting an event-loop thread: {e}")), vec![]);
                }
            }
        }
        let first = {
            let _stop = setup.lanes.stop_all_if_this_panics();
            Worker::new(0, poll0, setup, Some(acceptor)).run()
        };
        setup.lanes.stop_all();
        let rest = handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow!("an event-loop thread panicked")))
            })
            .collect();
        (first, rest)
    })
}

/// The `-v` line at the end: clients served and refused, the most at once, bytes, uptime.
fn say_totals(sum: &Totals, seen: &Seen, started: Instant) {
    let refused = seen.refused_denied + seen.refused_full;
    narrate::emit(format_args!(
        "stopped{}: served {} ({} refused: {} by --allow/--deny, {} at --max-conns; \
         at most {} at once), {} in, {} out, up {}{}",
        seen.stopped_by
            .map(|s| format!(" on {s}"))
            .unwrap_or_default(),
        counted(sum.served, "client"),
        refused,
        seen.refused_denied,
        seen.refused_full,
        seen.peak,
        narrate::bytes(sum.bytes_in),
        narrate::bytes(sum.bytes_out),
        narrate::short(started.elapsed()),
        if sum.truncated > 0 {
            format!(
                "; {} ended without TLS close_notify",
                counted(sum.truncated, "client")
            )
        } else {
            String::new()
        },
    ));
}

#[cfg(test)]
mod tests {
    //! The engine's handling of a service's decisions (`Next::Close`, `Next::Drop`), which the
    //! echo service never makes: a small line service run in-process, stopped by SIGTERM.

    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::{SocketAddr, TcpStream};
    use std::sync::mpsc;
    use std::time::Duration;

    use super::*;
    use crate::addr::BindTarget;
    use crate::server::limits::DEFAULT_MAX_OWED;
    use crate::server::service::Next;

    /// Answers `ok` to each line, says `bye` and closes on `bye`, drops the client on `bad`.
    struct Lines;

    impl Service for Lines {
        type Session = Vec<u8>;

        fn open(&self, _peer: SocketAddr, out: &mut Vec<u8>) -> Vec<u8> {
            out.extend_from_slice(b"hello\n");
            Vec::new()
        }

        fn input(&self, line: &mut Vec<u8>, data: &[u8], out: &mut Vec<u8>) -> Next {
            for &b in data {
                if b != b'\n' {
                    line.push(b);
                    continue;
                }
                let said = std::mem::take(line);
                match said.as_slice() {
                    b"bye" => {
                        out.extend_from_slice(b"bye\n");
                        return Next::Close;
                    }
                    b"bad" => return Next::Drop("said bad".to_string()),
                    _ => out.extend_from_slice(b"ok\n"),
                }
            }
            Next::Continue
        }
    }

    fn client(addr: SocketAddr) -> (TcpStream, BufReader<TcpStream>) {
        let s = TcpStream::connect_timeout(&addr, Duration::from_secs(10)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let r = BufReader::new(s.try_clone().unwrap());
        (s, r)
    }

    fn line(r: &mut BufReader<TcpStream>) -> String {
        let mut l = String::new();
        r.read_line(&mut l).unwrap();
        l
    }

    #[test]
    fn greeting_close_and_drop_then_sigterm_stops() {
        let bind = BindTarget::Addr {
            addr: "127.0.0.1:0".parse().unwrap(),
            v6only: false,
        };
        let plan = Plan::default();
        let listener = socket::listen(bind, &plan).unwrap();
        let addr = listener.local;
        let limits = Limits {
            max_conns: 10,
            idle_timeout: None,
            allow: vec![],
            deny: vec![],
            max_owed: DEFAULT_MAX_OWED,
            threads: 2,
        };
        let (done_tx, done_rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = done_tx
                .send(serve(listener, &plan, limits, Lines, None).map_err(|e| e.to_string()));
        });

        // Greeting first, then an answer per line.
        let (mut s, mut r) = client(addr);
        assert_eq!(line(&mut r), "hello\n");
        s.write_all(b"one\ntwo\n").unwrap();
        assert_eq!(line(&mut r), "ok\n");
        assert_eq!(line(&mut r), "ok\n");
        // Close: the last words arrive, then EOF (our side is shut), though we keep ours open.
        s.write_all(b"bye\n").unwrap();
        assert_eq!(line(&mut r), "bye\n");
        assert_eq!(line(&mut r), "", "EOF after the goodbye");
        // Input after the goodbye is discarded, not answered, and does not break anything.
        let _ = s.write_all(b"anyone?\n");
        drop((s, r));

        // Drop: the connection ends at once, without an answer.
        let (mut s, mut r) = client(addr);
        assert_eq!(line(&mut r), "hello\n");
        s.write_all(b"bad\n").unwrap();
        let mut rest = Vec::new();
        let _ = r.read_to_end(&mut rest);
        assert!(rest.is_empty(), "no answer after a drop: {rest:?}");

        // SIGTERM reaches the handler the engine installed and stops it cleanly.
        crate::sys::raise(libc::SIGTERM).unwrap();
        let result = done_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("serve() returned after SIGTERM");
        assert_eq!(result, Ok(()));
    }
}
