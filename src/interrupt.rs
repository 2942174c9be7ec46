//! What SIGINT, SIGTERM or SIGHUP does to a command until a server's event loop takes them
//! over (`server/stop.rs` calls `hand_over`), and for all of `connect` and `listen`: the
//! signal may come in any phase (resolving, connecting, waiting for a client, mid-session),
//! so one thread waits for it instead of every loop. It says the live relay session's totals
//! under `-v`, runs the registered cleanup (the `-U` socket file), and ends the process by
//! that signal (see `error::end_by_signal`). Relay sessions publish their counters here. A
//! leaf beside `narrate` and `error`, so the relay and the server engine both use it without
//! either reaching into the other.

use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use anyhow::{Context, Result};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};

use crate::error;
use crate::json::{self, Object};
use crate::narrate;
use crate::sys;

/// The counters of the session in progress, as the signal thread reads them.
#[derive(Debug)]
pub struct Live {
    pub sent: Arc<AtomicU64>,
    pub received: Arc<AtomicU64>,
    /// A datagram session's datagrams each way and those cut to sockkit's buffer (zero on a
    /// byte stream), for `--json`'s object of an interrupted session.
    pub datagrams_sent: AtomicU64,
    pub datagrams_received: AtomicU64,
    pub truncated: AtomicU64,
    started: Instant,
}

impl Live {
    /// Byte counters for a session starting now; `sent` may be one the session keeps.
    pub fn new(sent: Arc<AtomicU64>) -> Arc<Live> {
        Arc::new(Live {
            sent,
            received: Arc::new(AtomicU64::new(0)),
            datagrams_sent: AtomicU64::new(0),
            datagrams_received: AtomicU64::new(0),
            truncated: AtomicU64::new(0),
            started: Instant::now(),
        })
    }

    /// When the session began: tells one session from the next.
    pub fn started(&self) -> Instant {
        self.started
    }
}

/// The session in progress, if one is live (for `--progress`'s line, a few times a second).
pub fn live() -> Option<Arc<Live>> {
    LIVE.lock().unwrap_or_else(PoisonError::into_inner).clone()
}

/// The session the signal thread reports, if one is live.
static LIVE: Mutex<Option<Arc<Live>>> = Mutex::new(None);

/// How a datagram session's socket tells the kernel's drop count (the relay's to read).
pub type Drops = Box<dyn Fn() -> Option<u64> + Send>;

/// `--json`: the live session's object's first fields (`kind` to `local`, relay/summary.rs's),
/// its peer (JSON text), and for a datagram session how to read the kernel's drop count; set
/// by the relay while the session runs.
struct Named {
    head: Object,
    peer: String,
    drops: Option<Drops>,
}
static NAMED: Mutex<Option<Named>> = Mutex::new(None);

/// `--json` with `listen -k`: the sessions so far, for the totals object a stop signal
/// prints (`None`: no totals wanted).
struct Served {
    sessions: u64,
    sent: u64,
    received: u64,
}
static SERVED: Mutex<Option<Served>> = Mutex::new(None);

/// The live session's first JSON fields (`head`) and `peer`; `drops` reads the kernel's
/// drop count when it carries datagrams.
pub fn name_session(head: Object, peer: String, drops: Option<Drops>) {
    *NAMED.lock().unwrap_or_else(PoisonError::into_inner) = Some(Named { head, peer, drops });
}

/// `listen -u`: the live session's peer is now `peer` (JSON text), the one heard from last.
pub fn peer_changed(peer: String) {
    if let Some(n) = NAMED
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .as_mut()
    {
        n.peer = peer;
    }
}

/// `listen -k --json`: a stop signal ends with a totals object over every session.
pub fn keep_totals() {
    *SERVED.lock().unwrap_or_else(PoisonError::into_inner) = Some(Served {
        sessions: 0,
        sent: 0,
        received: 0,
    });
}

/// A session has ended and reported itself: its bytes go into the totals (if kept).
pub fn session_ended(sent: u64, received: u64) {
    if let Some(s) = SERVED
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .as_mut()
    {
        s.sessions += 1;
        s.sent += sent;
        s.received += received;
    }
}

/// The cleanup to run before the process ends by a signal.
type Cleanup = Box<dyn FnOnce() + Send>;
static CLEANUP: Mutex<Option<Cleanup>> = Mutex::new(None);

/// A session starts: the signal thread reports `live` until `retire`.
pub fn publish(live: &Arc<Live>) {
    *LIVE.lock().unwrap_or_else(PoisonError::into_inner) = Some(Arc::clone(live));
}

/// The session has ended (and reported itself): nothing live to report.
pub fn retire() {
    *LIVE.lock().unwrap_or_else(PoisonError::into_inner) = None;
    *NAMED.lock().unwrap_or_else(PoisonError::into_inner) = None;
}

/// Runs `cleanup` (once) if a stop signal ends the process from the signal thread.
pub fn on_stop(cleanup: impl FnOnce() + Send + 'static) {
    *CLEANUP.lock().unwrap_or_else(PoisonError::into_inner) = Some(Box::new(cleanup));
}

/// Set once a server's event loop stops on the signals by itself (gracefully): the signal
/// thread passes each one to it instead of ending the process.
type Graceful = Box<dyn Fn(i32) + Send>;
static GRACEFUL: Mutex<Option<Graceful>> = Mutex::new(None);

/// A server's event loop takes the stop signals over: from now on `stop(sig)` is called for
/// each (it wakes the loop) instead of the process ending here. One lock orders this against
/// a signal being handled, so no signal is lost or handled twice.
pub fn hand_over(stop: impl Fn(i32) + Send + 'static) {
    *GRACEFUL.lock().unwrap_or_else(PoisonError::into_inner) = Some(Box::new(stop));
}

/// Starts (once per process) the thread that waits for SIGINT, SIGTERM and SIGHUP. Call
/// before anything exists that a signal would have to clean up.
pub fn install() -> Result<()> {
    static INSTALLED: Mutex<bool> = Mutex::new(false);
    let mut installed = INSTALLED.lock().unwrap_or_else(PoisonError::into_inner);
    if *installed {
        return Ok(());
    }
    // The self-pipe trick with the pipe moved out of the way (fd 100 up): each signal sets
    // its flag and writes a byte; the thread below reads the byte and takes the flags.
    let (rx, tx) = UnixStream::pair().context("creating the signal pipe")?;
    // Where the descriptor limit is below 100, the numbers stay as they are.
    let high = |s: UnixStream| match s.try_clone().map(OwnedFd::from) {
        Ok(dup) => sys::renumber(dup, 100).map_or(s, UnixStream::from),
        Err(_) => s,
    };
    let (mut rx, tx) = (high(rx), high(tx));
    tx.set_nonblocking(true)
        .context("making the signal pipe non-blocking")?;
    let flags: Vec<(i32, Arc<AtomicBool>)> = [SIGINT, SIGTERM, SIGHUP]
        .into_iter()
        .map(|sig| (sig, Arc::new(AtomicBool::new(false))))
        .collect();
    for (sig, flag) in &flags {
        signal_hook::flag::register(*sig, Arc::clone(flag))
            .context("installing a signal handler")?;
        // One write end for all three (two descriptors in all, as few as a server at its
        // descriptor limit can spare); the thread below keeps it open.
        sys::wake_on_signal(*sig, tx.as_raw_fd()).context("installing a signal handler")?;
    }
    std::thread::Builder::new()
        .name("stop-on-signal".into())
        .spawn(move || {
            let _write_end = tx;
            let mut byte = [0u8; 16];
            while rx.read(&mut byte).is_ok_and(|n| n > 0) {
                for (sig, flag) in &flags {
                    if flag.swap(false, Ordering::SeqCst) {
                        deliver(*sig);
                    }
                }
            }
        })
        .context("starting the signal thread")?;
    *installed = true;
    Ok(())
}

/// A stop signal came: to the server's loop if it has taken them over, else `stop`.
fn deliver(sig: i32) {
    let graceful = GRACEFUL.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(stop) = graceful.as_ref() {
        stop(sig);
    } else {
        drop(graceful);
        stop(sig);
    }
}

/// A stop signal came: say what moved, clean up, end by the signal.
fn stop(sig: i32) {
    let name = match sig {
        SIGINT => "SIGINT",
        SIGHUP => "SIGHUP",
        _ => "SIGTERM",
    };
    let live = LIVE.lock().unwrap_or_else(PoisonError::into_inner).clone();
    // The process ends here: a live `--progress` line must not be left for the prompt.
    narrate::clear_live_line();
    if narrate::json() {
        json_at_stop(live.as_deref(), name);
    } else {
        say_at_stop(live.as_deref(), name);
    }
    let cleanup = CLEANUP
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take();
    if let Some(cleanup) = cleanup {
        cleanup();
    }
    error::note_stop_signal(sig);
    if let Some(status) = error::end_by_signal() {
        std::process::exit(i32::from(status));
    }
}

/// `--json` at a stop signal: the session cut short as one object (its `end` is "signal";
/// its TCP_INFO, the main thread's to read, is null), then with `listen -k` the totals.
fn json_at_stop(live: Option<&Live>, signal: &str) {
    let named = NAMED.lock().unwrap_or_else(PoisonError::into_inner).take();
    if let (Some(l), Some(n)) = (live, named) {
        let (sent, received) = (
            l.sent.load(Ordering::SeqCst),
            l.received.load(Ordering::SeqCst),
        );
        let secs = l.started.elapsed().as_secs_f64();
        let mut o = n
            .head
            .raw("peer", n.peer)
            .num("sent", sent)
            .num("received", received)
            .real("duration", secs)
            .real("rate_up", json::rate(sent, secs))
            .real("rate_down", json::rate(received, secs))
            .str("end", "signal")
            .raw("tcp_info", "null");
        if let Some(drops) = n.drops {
            o = o
                .num("datagrams_sent", l.datagrams_sent.load(Ordering::SeqCst))
                .num(
                    "datagrams_received",
                    l.datagrams_received.load(Ordering::SeqCst),
                )
                .num("truncated", l.truncated.load(Ordering::SeqCst))
                .num("dropped", drops().unwrap_or(0));
        }
        narrate::json_line(&o.text());
        session_ended(sent, received);
    }
    let served = SERVED.lock().unwrap_or_else(PoisonError::into_inner).take();
    if let Some(s) = served {
        let o = Object::default()
            .str("kind", "totals")
            .num("served", s.sessions)
            .num("sent", s.sent)
            .num("received", s.received)
            .real("duration", crate::clock::since_start().as_secs_f64())
            .str("stopped_by", signal);
        narrate::json_line(&o.text());
    }
}

/// `-v` at a stop signal: what the session cut short had moved.
fn say_at_stop(live: Option<&Live>, name: &str) {
    match live {
        Some(l) => narrate::info(format_args!(
            "stopped on {name}: sent {}, received {} in {} (the session did not finish)",
            narrate::bytes(l.sent.load(Ordering::SeqCst)),
            narrate::bytes(l.received.load(Ordering::SeqCst)),
            narrate::short(l.started.elapsed()),
        )),
        None => narrate::info(format_args!("stopped on {name}: no session had started")),
    }
}
