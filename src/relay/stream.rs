//! The byte-stream session (TCP, Unix stream, and TLS over either) between stdio and a link
//! (link.rs: a plain socket, or tls/session.rs's TLS link): stdin to the link, the link to
//! stdout, binary-safe and unbuffered, with the ending rules of DESIGN.md (half-close on
//! stdin EOF, peer EOF, `--quit-after`, idle timeout, a closed stdout; ending.rs decides the
//! deadlines). Sockets are made elsewhere; which system call moves the bytes (sendfile,
//! splice, read/write) is zerocopy.rs's choice, and what the wire stages do to them is
//! wire.rs's. What a link adds (TLS's close_notify, truncation) is the link's.
//!
//! Two threads: the caller's thread moves socket -> stdout and decides when the session ends;
//! one stdin thread for the whole process moves stdin -> socket. The stdin thread outlives a
//! session so that `listen -k` hands what is typed between clients to the next one, and never
//! to a socket that has gone.

use std::io::{self, IsTerminal, Read, Write};
use std::net::Shutdown;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow};
use socket2::Socket;

use super::ending::{Due, End, Ending};
use super::link::{self, Link};
use super::wire::{Framing, Wire};
use super::zerocopy::{self, DownError, Got, Step, UpError};
use crate::error;
use crate::interrupt;
use crate::narrate;
use crate::socket;

/// What a session moved.
#[derive(Debug, Clone, Copy)]
pub struct Totals {
    pub sent: u64,
    pub received: u64,
    pub elapsed: Duration,
    pub end: End,
}

/// How often a narrated session looks at the TCP state while only the kernel can move it.
const KERNEL_LOOK: Duration = Duration::from_millis(50);

/// Runs byte-stream sessions over sockets handed to it, one at a time.
pub struct ByteRelay {
    opts: Ending,
    /// `--crlf` and the hex dump: the relay then sees (and copies) every byte.
    wire: Wire,
    stdin: Option<Sender<Job>>,
    stdin_is_tty: bool,
}

/// When a byte last moved either way, shared by both threads for `--idle-timeout`: a
/// timestamp, so the deadline counts from the byte and not from when it was noticed.
struct Activity {
    base: Instant,
    nanos: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Activity {
            base: Instant::now(),
            nanos: AtomicU64::new(0),
        }
    }

    /// A byte moved now.
    fn touch(&self) {
        let n = u64::try_from(self.base.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.nanos.fetch_max(n, Ordering::Relaxed);
    }

    fn last(&self) -> Instant {
        self.base + Duration::from_nanos(self.nanos.load(Ordering::Relaxed))
    }
}

/// One session's share of the stdin thread's work.
struct Job {
    link: Box<dyn Link>,
    no_shutdown: bool,
    cancelled: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
    /// Set before shutdown(SHUT_WR): from then on CLOSE can be an orderly end.
    shut: Arc<AtomicBool>,
    activity: Arc<Activity>,
    events: Sender<Up>,
    wake: UnixStream,
}

/// What the stdin thread tells the session.
enum Up {
    /// stdin is at EOF and the socket's write side is shut (unless --no-shutdown).
    Eof,
    /// shutdown(SHUT_WR) found the connection gone: the peer reset it, so bytes sent after
    /// its close were thrown away. The session says how many.
    Reset,
    Failed(anyhow::Error),
}

impl ByteRelay {
    /// A relay ending as `opts` says, with the wire stages `wire` on the way.
    pub fn new(opts: Ending, wire: Wire) -> Self {
        ByteRelay {
            opts,
            wire,
            stdin: None,
            stdin_is_tty: io::stdin().is_terminal(),
        }
    }

    /// Relays between stdio and `link` until the session ends; the socket is left to the
    /// caller to close.
    pub fn session(&mut self, link: &dyn Link) -> Result<Totals> {
        let sock = link.socket();
        let started = Instant::now();
        let (wake_rx, wake_tx) = UnixStream::pair()?;
        let (events_tx, events) = mpsc::channel();
        let cancelled = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicU64::new(0));
        let live = interrupt::Live::new(sent.clone());
        interrupt::publish(&live);
        let shut = Arc::new(AtomicBool::new(false));
        let activity = Arc::new(Activity::new());
        let uplink = !self.opts.recv_only;
        if uplink {
            let dup = link.for_stdin()?;
            let job = Job {
                link: dup,
                no_shutdown: self.opts.no_shutdown,
                cancelled: cancelled.clone(),
                sent: sent.clone(),
                shut: shut.clone(),
                activity: activity.clone(),
                events: events_tx,
                wake: wake_tx.try_clone()?,
            };
            self.stdin_thread(link.zero_copy()).send(job).ok();
        }
        let mut down = Downlink {
            link,
            opts: &self.opts,
            stdin_is_tty: self.stdin_is_tty,
            uplink,
            events,
            wake: wake_rx,
            activity: &activity,
            sent: &sent,
            received_live: &live.received,
            shut: &shut,
            wire: &self.wire,
            received: 0,
            stdin_eof_at: None,
            peer_eof: None,
        };
        let result = down.run();
        interrupt::retire();
        cancelled.store(true, Ordering::SeqCst);
        link.finish(result.is_ok());
        let received = down.received;
        // The stdin thread may still hold a dup of the socket while it waits on stdin; shut
        // the connection so the peer sees it end now, not at the next keystroke.
        if uplink && !down.uplink_done() {
            socket::shutdown(sock, Shutdown::Both).ok();
        }
        let end = result?;
        Ok(Totals {
            sent: sent.load(Ordering::SeqCst),
            received,
            elapsed: started.elapsed(),
            end,
        })
    }

    /// The stdin thread, made at the first session over a link that is `zero_copy` or not
    /// (a process relays over one kind: plain sockets, or TLS).
    fn stdin_thread(&mut self, zero_copy: bool) -> &Sender<Job> {
        let wire = self.wire.clone();
        self.stdin.get_or_insert_with(|| {
            let (tx, rx) = mpsc::channel::<Job>();
            thread::Builder::new()
                .name("stdin".into())
                .spawn(move || stdin_loop(rx, wire, zero_copy))
                .expect("spawning the stdin thread");
            tx
        })
    }
}

/// The stdin thread: moves stdin to the current session's socket (zerocopy.rs picks how). A
/// chunk read while no session is live waits for the next one.
fn stdin_loop(jobs: Receiver<Job>, wire: Wire, zero_copy: bool) {
    let mut uplink = zerocopy::Uplink::for_stdin(wire.outbound(Framing::Stream), zero_copy);
    // A terminal's EOF (Ctrl-D) is not the end of the terminal: it ends what the person sends
    // to this peer, and the next one (`listen -k`) reads the terminal afresh. A pipe's or a
    // file's EOF is the end of the data, for every session after it too.
    let terminal = io::stdin().is_terminal();
    let mut at_eof = false;
    for job in jobs {
        uplink.restart();
        if terminal {
            at_eof = false;
        }
        let mut moved = |n: usize| {
            job.sent.fetch_add(n as u64, Ordering::Relaxed);
            job.activity.touch();
        };
        let outcome = loop {
            if job.cancelled.load(Ordering::SeqCst) {
                break None;
            }
            if at_eof {
                break Some(finish_stdin(&job));
            }
            match uplink.step(job.link.as_ref(), &job.cancelled, &mut moved) {
                Ok(Step::Moved) => {}
                Ok(Step::Eof) => at_eof = true,
                Ok(Step::Held) => break None, // keep the chunk for the next session
                Err(UpError::Stdin(e)) => {
                    break Some(Up::Failed(anyhow!("reading stdin: {}", error::plain(&e))));
                }
                Err(UpError::Send {
                    err,
                    lost,
                    from_file,
                }) => break Some(Up::Failed(undelivered(&err, lost, from_file))),
            }
        };
        // The dup goes before the session hears of the outcome, so the session's close() of
        // the socket is the last one and what it narrates (FIN, RST, TIME_WAIT) is true.
        uplink.session_done();
        job.link.release();
        if let Some(up) = outcome {
            job.events.send(up).ok();
            (&job.wake).write_all(b"!").ok();
        }
    }
}

/// stdin is done: half-close so the peer reads EOF, unless told to keep the side open.
fn finish_stdin(job: &Job) -> Up {
    if job.no_shutdown {
        return Up::Eof;
    }
    job.shut.store(true, Ordering::SeqCst);
    if let Err(e) = job.link.shut_write() {
        if e.kind() == io::ErrorKind::NotConnected {
            return Up::Reset;
        }
        if let Some(text) = link::said(&e) {
            return Up::Failed(anyhow!("{text}"));
        }
        return Up::Failed(anyhow!("shutdown(SHUT_WR): {}", error::plain(&e)));
    }
    Up::Eof
}

/// The error for bytes that did not reach the peer: read from stdin and not sent, or (a file
/// sent by sendfile) still in the file.
fn undelivered(e: &io::Error, lost: u64, from_file: bool) -> anyhow::Error {
    if let Some(text) = link::said(e) {
        return anyhow!("{text}");
    }
    let what = if from_file {
        "left in the stdin file"
    } else {
        "read from stdin"
    };
    match e.raw_os_error() {
        // The kernel says which: a RST to an established connection is ECONNRESET (the peer
        // aborted, or closed with unread data); one after the peer's FIN is EPIPE (it closed,
        // then answered what we sent after with a reset).
        Some(libc::ECONNRESET) => {
            anyhow!("the peer reset the connection: {lost} bytes {what} were not delivered")
        }
        Some(libc::EPIPE) => {
            anyhow!("the peer closed the connection: {lost} bytes {what} were not delivered")
        }
        _ => anyhow!(
            "sending to the peer: {} ({lost} bytes {what} were not delivered)",
            error::plain(e)
        ),
    }
}

/// The session's own thread: socket -> stdout, and the decision when it ends.
struct Downlink<'a> {
    link: &'a dyn Link,
    opts: &'a Ending,
    stdin_is_tty: bool,
    uplink: bool,
    events: Receiver<Up>,
    wake: UnixStream,
    activity: &'a Activity,
    sent: &'a AtomicU64,
    /// `received`, for the signal thread (interrupt.rs).
    received_live: &'a AtomicU64,
    shut: &'a AtomicBool,
    wire: &'a Wire,
    received: u64,
    /// When the stdin thread reported EOF (and the half-close).
    stdin_eof_at: Option<Instant>,
    /// Bytes sent when the peer's EOF arrived: what it sends back after, it may not read.
    peer_eof: Option<u64>,
}

impl Downlink<'_> {
    /// True once the stdin thread is finished with this session's socket.
    fn uplink_done(&self) -> bool {
        !self.uplink || self.stdin_eof_at.is_some()
    }

    fn run(&mut self) -> Result<End> {
        let stages = self.wire.inbound(Framing::Stream);
        let mut sink =
            zerocopy::Sink::for_stdout(self.opts.send_only, stages, self.link.zero_copy());
        let sock = self.link.socket();
        loop {
            while let Ok(up) = self.events.try_recv() {
                match up {
                    Up::Eof => self.stdin_eof_at = Some(Instant::now()),
                    Up::Reset => return Err(self.reset_error()),
                    Up::Failed(e) => return Err(e),
                }
            }
            if self.peer_eof.is_some()
                && self
                    .opts
                    .peer_eof_ends_now(self.uplink_done(), self.stdin_is_tty)
            {
                return Ok(End::Closed);
            }
            let last_moved = self.activity.last();
            let mut timeout = match self
                .opts
                .due(Instant::now(), self.stdin_eof_at, last_moved)?
            {
                Due::Ended(end) => return Ok(end),
                Due::Wait(t) => t,
            };
            // At -vv, while our FIN is out and the peer's has not come, look at the state now
            // and then: the ACK of our FIN (FIN_WAIT1 -> FIN_WAIT2) wakes no poll, and the
            // learner should see it when it happens.
            let fin_out = self.stdin_eof_at.is_some() && !self.opts.no_shutdown;
            let watching = narrate::narrating() && fin_out && self.peer_eof.is_none();
            if watching {
                timeout = Some(timeout.map_or(KERNEL_LOOK, |t| t.min(KERNEL_LOOK)));
            }
            // After the peer's EOF there is nothing to read. A reset the peer answers our later
            // bytes with reaches the stdin thread, whose next write or shutdown reports it with
            // the exact count (Up::Failed / Up::Reset): one reporter, no race between two.
            let watch = self.peer_eof.is_none().then(|| sock.as_raw_fd());
            // Bytes the link holds already (TLS: decrypted) wake no poll: look, don't wait.
            let held = watch.is_some() && self.link.buffered();
            if held {
                timeout = Some(Duration::ZERO);
            }
            let mut ready = socket::poll_readable(&[watch, Some(self.wake.as_raw_fd())], timeout)?;
            ready[0] |= held;
            if watching {
                socket::look(sock, "seen while waiting for the peer's FIN");
            }
            if ready[1] {
                let mut drain = [0u8; 64];
                let _drained = (&self.wake).read(&mut drain);
            }
            if !ready[0] {
                continue;
            }
            let n = match sink.step(self.link) {
                Ok(Got::Data(n)) => n,
                Ok(Got::Nothing) => continue,
                Ok(Got::Eof) if self.reset_under_eof() => return Err(self.reset_while_sending()),
                Ok(Got::Eof) => {
                    let (note, sentence) = self.link.peer_end();
                    socket::look(sock, note);
                    narrate::info(format_args!(
                        "{sentence} (EOF after {} bytes)",
                        self.received
                    ));
                    self.peer_eof = Some(self.sent.load(Ordering::SeqCst));
                    if self.stdin_is_tty && !self.opts.peer_eof_ends_terminal && !self.uplink_done()
                    {
                        // The person at the terminal has to act: say so, -v or not.
                        narrate::emit(format_args!(
                            "the client has finished sending (EOF); what you type still goes \
                             to it, and Ctrl-D ends the session"
                        ));
                    }
                    continue;
                }
                Err(DownError::Recv(e)) => {
                    if let Some(text) = link::said(&e) {
                        return Err(anyhow!("{text}"));
                    }
                    return Err(anyhow!(
                        "receiving from the peer: {} (after {} bytes)",
                        error::plain(&e),
                        self.received
                    ));
                }
                Err(DownError::Stdout { err, received }) => {
                    self.received += received as u64;
                    if error::is_broken_pipe(&err) {
                        return Ok(End::StdoutClosed);
                    }
                    return Err(anyhow!("writing to stdout: {}", error::plain(&err)));
                }
            };
            self.received += n as u64;
            self.received_live.fetch_add(n as u64, Ordering::Relaxed);
            self.activity.touch();
        }
    }

    /// recv() returned 0, but the connection is in CLOSE and we sent no FIN: no orderly close
    /// gets there, a RST did. The stdin thread's send took the ECONNRESET (one error, one
    /// taker) and the kernel then reads as at EOF. (With our FIN sent, CLOSE is also where an
    /// orderly close ends, so that case stays an EOF.)
    fn reset_under_eof(&self) -> bool {
        !self.shut.load(Ordering::SeqCst)
            && socket::tcp_state(self.link.socket().as_raw_fd()) == Some("CLOSE")
    }

    /// The error for a reset found under an EOF: the stdin thread's, which counts the bytes
    /// lost, when it comes soon (its send failed, so it is on its way); else the count here.
    fn reset_while_sending(&self) -> anyhow::Error {
        let deadline = Instant::now() + Duration::from_secs(1);
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.events.recv_timeout(left) {
                Ok(Up::Failed(e)) => return e,
                Ok(Up::Eof | Up::Reset) => {}
                Err(_) => break,
            }
        }
        anyhow!(
            "the peer reset the connection (after {} bytes received, {} sent)",
            self.received,
            self.sent.load(Ordering::SeqCst)
        )
    }

    /// The peer reset the connection: what we sent after its close was thrown away.
    fn reset_error(&self) -> anyhow::Error {
        let sent = self.sent.load(Ordering::SeqCst);
        match self.peer_eof {
            Some(at_eof) if sent > at_eof => anyhow!(
                "the peer closed the connection: {} bytes sent after its close were not delivered (it answered them with a reset)",
                sent - at_eof
            ),
            Some(_) => anyhow!(
                "the peer closed the connection and reset it: bytes sent as it closed may not have been delivered"
            ),
            None => anyhow!(
                "the peer reset the connection: some of the {sent} bytes sent may not have been delivered"
            ),
        }
    }
}

/// `512 B`, or `64.00 MiB (67108864 B)` where the unit rounds.
fn exact(n: u64) -> String {
    if n < 1024 {
        narrate::bytes(n)
    } else {
        format!("{} ({n} B)", narrate::bytes(n))
    }
}

/// The `-v` end-of-session lines: bytes each way, duration, rate, and TCP_INFO on Linux.
/// `plaintext`: the session ran over TLS, and the counts are of what TLS carried, not of
/// what crossed the wire.
pub fn report(sock: &Socket, t: &Totals, plaintext: bool) {
    if !narrate::verbose() {
        return;
    }
    let of = if plaintext { " of plaintext" } else { "" };
    narrate::info(format_args!(
        "closed: sent {}, received {}{of} in {} ({} up, {} down)",
        exact(t.sent),
        exact(t.received),
        narrate::short(t.elapsed),
        narrate::rate(t.sent, t.elapsed),
        narrate::rate(t.received, t.elapsed),
    ));
    if let Some(info) = socket::tcp_info_summary(sock) {
        narrate::info(format_args!("{info}"));
    }
}
