//! The way in: the listening socket and the signal pipe, owned by the first event loop. It
//! accepts (edge-triggered: until EAGAIN, a bounded number per turn), refuses the clients
//! `--allow`/`--deny` and `--max-conns` keep out (with rate-limited lines), rests when the
//! process runs out of descriptors (EMFILE) instead of spinning or dying, and gives each
//! admitted client to the least busy loop through `lanes.rs`. Serving a client is the loops'.

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use mio::{Interest, Registry, Token};
use socket2::SockRef;

use super::lanes::Lanes;
use super::limits::Limits;
use super::peer::Peer;
use super::report::counted;
use super::stop::Stop;
use super::stream::{Listen, Stream};
use crate::narrate;
use crate::socket;

pub const LISTENER: Token = Token(usize::MAX);
pub const SIGNAL: Token = Token(usize::MAX - 1);

/// Clients accepted per turn, so a burst of connections does not stall the clients served.
const ACCEPTS_PER_TURN: usize = 128;
/// How long accept() rests after running out of descriptors or memory (EMFILE and friends),
/// so the loop neither dies nor spins while the pending client waits in the backlog.
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);
/// At most this many refusal lines per second; the rest are counted.
const LOG_BURST: u32 = 5;

/// A client the acceptor gives the loop.
pub enum Arrival {
    /// Admitted: serve it.
    Admitted(Stream, Peer),
    /// Turned away: this many (`--max-conns`) are served already. Tell it, then close.
    Full(Stream, usize),
}

/// Whether a client may come in.
enum Admission {
    In,
    /// `--deny`/`--allow`: closed without a word (a stranger is told nothing).
    Denied,
    /// `--max-conns` reached: told so.
    Full,
}

pub struct Acceptor {
    listener: Listen,
    fd: RawFd,
    stop: Stop,
    paused_until: Option<Instant>,
    /// The last turn ended before accept() said EAGAIN: clients may still be queued.
    more: bool,
    /// accept() has been failing (EMFILE and the like) since then, and has not yet caught
    /// up with the backlog.
    starved_since: Option<Instant>,
    log: RateLog,
    seen: Seen,
}

/// What the acceptor tells the totals line.
#[derive(Debug, Default)]
pub struct Seen {
    /// The most clients connected at once.
    pub peak: usize,
    pub stopped_by: Option<&'static str>,
    pub refused_denied: u64,
    pub refused_full: u64,
}

/// How long a loop may sleep in epoll_wait: not at all while it has work left over (`busy`)
/// or the acceptor is behind, else until `until` (the loop's own next deadline) or the end of
/// an accept pause, whichever comes first. Every loop that may hold the acceptor asks this.
pub fn wait(accept: Option<&Acceptor>, busy: bool, mut until: Instant, now: Instant) -> Duration {
    if busy || accept.is_some_and(Acceptor::behind) {
        return Duration::ZERO;
    }
    if let Some(t) = accept.and_then(Acceptor::paused_until) {
        until = until.min(t);
    }
    until.saturating_duration_since(now)
}

impl Acceptor {
    pub fn new(listener: Listen, fd: RawFd, stop: Stop) -> Acceptor {
        Acceptor {
            listener,
            fd,
            stop,
            paused_until: None,
            more: false,
            starved_since: None,
            log: RateLog::default(),
            seen: Seen::default(),
        }
    }

    /// Puts the listening socket and the signal pipe in the loop's epoll set.
    pub fn register(&mut self, reg: &Registry) -> Result<()> {
        reg.register(&mut self.listener, LISTENER, Interest::READABLE)
            .context("registering the listening socket with epoll")?;
        reg.register(&mut self.stop.pipe, SIGNAL, Interest::READABLE)
            .context("registering the signal pipe with epoll")
    }

    /// After a wake-up on the signal pipe: the signal that asks the server to stop, if one came.
    pub fn signalled(&mut self) -> Option<&'static str> {
        let sig = self.stop.take()?;
        self.seen.stopped_by = Some(sig);
        Some(sig)
    }

    /// Clients may be waiting that no event will announce (the last turn stopped short).
    pub fn behind(&self) -> bool {
        self.more
    }

    /// When a rest after EMFILE ends.
    pub fn paused_until(&self) -> Option<Instant> {
        self.paused_until
    }

    /// Worth calling `accept_all` without an event: clients left over, or a rest is over.
    pub fn due(&self, now: Instant) -> bool {
        self.more || self.paused_until.is_some_and(|t| now >= t)
    }

    /// Accepts every waiting client (edge-triggered: until EAGAIN), refusing the ones the
    /// limits keep out, and hands the rest out by `lanes`: to another loop's inbox, or to
    /// `here` when loop `me` (this one) is the least busy. A client turned away because the
    /// server is full goes to `here` too, to be told so (`Arrival::Full`); one `--deny` or
    /// `--allow` keeps out is closed without a word.
    pub fn accept_all(
        &mut self,
        lanes: &Lanes,
        limits: &Limits,
        me: usize,
        now: Instant,
        mut here: impl FnMut(Arrival),
    ) {
        if self.paused_until.is_some_and(|t| now < t) {
            return;
        }
        self.paused_until = None;
        // Until accept() says EAGAIN, more clients may be queued (no new event will say so).
        self.more = true;
        for _ in 0..ACCEPTS_PER_TURN {
            match self.accept() {
                Ok((stream, peer)) => {
                    match self.admits(&peer, lanes, limits, now) {
                        Admission::In => {}
                        Admission::Denied => {
                            stream.close();
                            continue;
                        }
                        Admission::Full => {
                            here(Arrival::Full(stream, limits.max_conns));
                            continue;
                        }
                    }
                    let (lane, open) = lanes.assign(me);
                    self.seen.peak = self.seen.peak.max(open);
                    if lane == me {
                        here(Arrival::Admitted(stream, peer));
                    } else {
                        lanes.hand(lane, stream, peer);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.more = false;
                    // Caught up: only now is a shortage over. A success before this may
                    // have taken the last free descriptor again (other loops close their
                    // clients at their own pace), which is the same shortage, not a new one.
                    if let Some(since) = self.starved_since.take() {
                        narrate::emit(format_args!(
                            "accept() works again after {} ({} connected)",
                            narrate::short(now.saturating_duration_since(since)),
                            lanes.open()
                        ));
                    }
                    break;
                }
                // The client gave up before we got to it, or a signal, or a firewall: not ours.
                Err(e)
                    if matches!(
                        e.raw_os_error(),
                        Some(libc::ECONNABORTED | libc::EINTR | libc::EPROTO | libc::EPERM)
                    ) => {}
                Err(e) => {
                    self.rest(&e, lanes, now);
                    break;
                }
            }
        }
    }

    /// accept(), narrated at -vv with the new socket's TCP state. mio's accept is accept4 with
    /// SOCK_NONBLOCK: the event loop never blocks on a client.
    fn accept(&self) -> io::Result<(Stream, Peer)> {
        let t0 = narrate::narrating().then(Instant::now);
        let result = self.listener.accept();
        if let Some(t0) = t0 {
            match &result {
                Ok((s, from)) => {
                    if let Peer::Ip(addr) = from {
                        // For the look-up of what remains after this client's close().
                        socket::remember_end(s.as_raw_fd(), *addr, false);
                    }
                    narrate::call(
                        format_args!(
                            "accept4(fd {}, ..., SOCK_CLOEXEC|SOCK_NONBLOCK) = fd {} from {from}{}",
                            self.fd,
                            s.as_raw_fd(),
                            socket::state_suffix(&SockRef::from(s))
                        ),
                        t0.elapsed(),
                    );
                    socket::explain_accept(self.fd, s.as_raw_fd());
                }
                // The EAGAIN that ends each round of accepts is only worth a line at -vvv.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && !narrate::every_call() => {}
                Err(e) => narrate::call(
                    format_args!(
                        "accept4(fd {}, ..., SOCK_CLOEXEC|SOCK_NONBLOCK) {}",
                        self.fd,
                        narrate::errno_text(e)
                    ),
                    t0.elapsed(),
                ),
            }
        }
        result
    }

    /// `--allow`/`--deny`, then `--max-conns`: whether `peer` may come in (said when not).
    fn admits(&mut self, peer: &Peer, lanes: &Lanes, limits: &Limits, now: Instant) -> Admission {
        if let Peer::Ip(ip) = peer
            && let Some(why) = limits.refuses(ip.ip())
        {
            self.seen.refused_denied += 1;
            self.log.say(now, format_args!("refused {peer}: {why}"));
            return Admission::Denied;
        }
        let open = lanes.open();
        if open >= limits.max_conns {
            self.seen.refused_full += 1;
            self.log.say(
                now,
                format_args!(
                    "refused {peer}: --max-conns {} reached ({open} connected)",
                    limits.max_conns
                ),
            );
            return Admission::Full;
        }
        Admission::In
    }

    /// EMFILE, ENFILE, ENOBUFS, ENOMEM: out of something that closing clients gives back.
    /// Rest instead of retrying at once (which would spin: the client is still queued) and
    /// instead of dying (the clients we have still deserve service).
    fn rest(&mut self, e: &io::Error, lanes: &Lanes, now: Instant) {
        self.paused_until = Some(now + ACCEPT_PAUSE);
        self.more = false;
        // Said once when it starts and once when it ends, not every retry.
        if self.starved_since.is_some() {
            return;
        }
        self.starved_since = Some(now);
        let hint = if crate::error::is_out_of_fds(e) {
            " (raise `ulimit -n` or lower --max-conns)"
        } else {
            ""
        };
        narrate::emit(format_args!(
            "accept() failed: {} ({}); retrying every {} while serving {}{hint}",
            crate::error::plain(e),
            e.raw_os_error().map_or("?", narrate::errno_name),
            narrate::short(ACCEPT_PAUSE),
            counted(lanes.open() as u64, "client")
        ));
    }

    /// Stops accepting: the listening socket leaves epoll and is closed. What was seen, for
    /// the totals line.
    pub fn close(mut self, reg: &Registry) -> Seen {
        let _ = reg.deregister(&mut self.listener);
        self.listener.close();
        self.seen
    }
}

/// Lines about refused clients, at most `LOG_BURST` a second, so a flood of them cannot
/// flood stderr; what was held back is counted in the next line.
#[derive(Default)]
struct RateLog {
    window: Option<Instant>,
    shown: u32,
    held: u64,
}

impl RateLog {
    fn say(&mut self, now: Instant, line: std::fmt::Arguments) {
        if self
            .window
            .is_none_or(|w| now.duration_since(w) >= Duration::from_secs(1))
        {
            self.window = Some(now);
            self.shown = 0;
        }
        if self.shown >= LOG_BURST {
            self.held += 1;
            return;
        }
        self.shown += 1;
        if self.held > 0 {
            narrate::emit(format_args!(
                "{line} (and {} similar lines not shown)",
                std::mem::take(&mut self.held)
            ));
        } else {
            narrate::emit(line);
        }
    }
}

/// Servers hold a descriptor per client: raise the soft RLIMIT_NOFILE to the hard limit, and
/// say when `--max-conns` still exceeds it (accept will then pause on EMFILE, not fail).
pub fn raise_fd_limit(max_conns: usize) {
    let Ok((mut soft, hard)) = crate::sys::nofile_limit() else {
        return;
    };
    if soft < hard && crate::sys::set_nofile_limit(hard, hard).is_ok() {
        narrate::info(format_args!(
            "raised the open-file limit (RLIMIT_NOFILE) from {soft} to {hard}: one descriptor per client"
        ));
        soft = hard;
    }
    let needed = max_conns as u64 + 16;
    if soft < needed {
        narrate::info(format_args!(
            "--max-conns {max_conns} is more than the open-file limit ({soft}) allows; past that, \
             accepting pauses until clients leave"
        ));
    }
}
