//! The TCP event loop: non-blocking sockets on mio (epoll, edge-triggered), one loop per
//! thread. The first loop owns the listening socket and the signal pipe: it accepts, applies
//! `--allow`/`--deny` and `--max-conns`, and hands each client to the least busy loop, which
//! then owns it alone (no locks on the data path). Each loop reads, asks the `Service` for the
//! answer, writes, and enforces backpressure, half-close and the idle timeout. What a client
//! costs is bounded by `Limits`; the per-connection state lives in `conn.rs`.

use std::io::{self, Read};
use std::net::Shutdown;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use mio::{Events, Interest, Poll, Token, Waker};
use socket2::{SockRef, Socket};

use super::conn::{Conn, Phase};
use super::limits::Limits;
use super::peer::{Peer, plain_addr};
use super::report::{counted, io_reason};
use super::service::{Event, Next, Service};
use super::stop::Stop;
use super::stream::{Listen, Stream};
use crate::narrate;
use crate::socket::{self, Listener};
use crate::sockopt::{Plan, SockKind, Stage};

const LISTENER: Token = Token(usize::MAX);
const SIGNAL: Token = Token(usize::MAX - 1);
const WAKER: Token = Token(usize::MAX - 2);

/// One read() asks for at most this much; it is also the loop's only read buffer.
const READ_BUF: usize = 64 * 1024;
/// Reads one client may do per turn before the others get theirs (fairness under load).
const READS_PER_TURN: usize = 8;
/// Clients accepted per turn, so a burst of connections does not stall the clients served.
const ACCEPTS_PER_TURN: usize = 128;
/// How long accept() rests after running out of descriptors or memory (EMFILE and friends),
/// so the loop neither dies nor spins while the pending client waits in the backlog.
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);
/// How long a client may take to close after the service said goodbye.
const LINGER: Duration = Duration::from_secs(2);
/// Fan-out: how long a client owed `max_owed` or more (holding every sender back) may take
/// nothing before it is dropped as not reading. The others wait at most about this long.
const FAN_OUT_STALL: Duration = Duration::from_secs(2);
/// At most this many refusal lines per second; the rest are counted.
const LOG_BURST: u32 = 5;

/// Runs a TCP server until SIGINT or SIGTERM: accepts on `listener`, serves each client with
/// `service` within `limits`, then stops accepting, closes every client and (with `-v`)
/// prints totals.
pub fn serve<S: Service>(
    listener: Listener,
    plan: &Plan,
    limits: Limits,
    service: S,
) -> Result<()> {
    serve_on(listener.socket, false, plan, limits, service)
}

/// `serve` for a listening Unix stream socket (`-U PATH`): the same loops, the same limits
/// but `--allow`/`--deny`, which filter IP addresses a Unix client does not have.
pub fn serve_unix<S: Service>(
    listener: Socket,
    plan: &Plan,
    limits: Limits,
    service: S,
) -> Result<()> {
    serve_on(listener, true, plan, limits, service)
}

fn serve_on<S: Service>(
    listener: Socket,
    unix: bool,
    plan: &Plan,
    limits: Limits,
    service: S,
) -> Result<()> {
    raise_fd_limit(limits.max_conns);
    let stop = Stop::install()?;
    listener
        .set_nonblocking(true)
        .context("making the listening socket non-blocking")?;
    let fd = socket::fd(&listener);
    let listener = if unix {
        Listen::Unix(mio::net::UnixListener::from_std(
            std::os::unix::net::UnixListener::from(OwnedFd::from(listener)),
        ))
    } else {
        Listen::Tcp(mio::net::TcpListener::from_std(
            std::net::TcpListener::from(listener),
        ))
    };
    // Fan-out services reach every client from one loop (no cross-thread hand-off of bytes).
    let threads = if S::FAN_OUT {
        1
    } else {
        limits.threads.clamp(1, limits.max_conns.max(1))
    };
    let mut polls = Vec::with_capacity(threads);
    let mut lanes = Vec::with_capacity(threads);
    for _ in 0..threads {
        let poll = Poll::new().context("creating the event loop (epoll_create)")?;
        lanes.push(Lane {
            inbox: Mutex::new(Vec::new()),
            waker: Waker::new(poll.registry(), WAKER).context("creating the loop's waker")?,
            load: AtomicUsize::new(0),
        });
        polls.push(poll);
    }
    let shared = Shared {
        lanes,
        open: AtomicUsize::new(0),
        stopping: AtomicBool::new(false),
    };
    if threads > 1 {
        narrate::info(format_args!(
            "serving with {threads} event-loop threads (--threads)"
        ));
    }
    let started = Instant::now();
    let acceptor = Acceptor {
        listener,
        fd,
        stop,
        paused_until: None,
        more: false,
        starved_since: None,
        log: RateLog::default(),
        peak: 0,
        stopped_by: None,
    };
    let (first, totals) = std::thread::scope(|scope| {
        let mut polls = polls.into_iter();
        let Some(poll0) = polls.next() else {
            return (Err(anyhow!("no event loop to run")), vec![]);
        };
        let mut handles = Vec::new();
        for (i, poll) in polls.enumerate() {
            let (shared, service, limits) = (&shared, &service, &limits);
            // Built inside its thread: a session need not be Send, it never leaves its loop.
            let handle = std::thread::Builder::new()
                .name(format!("sockkit-loop-{}", i + 1))
                .spawn_scoped(scope, move || {
                    Worker::new(i + 1, poll, shared, service, plan, limits, None).run()
                });
            match handle {
                Ok(h) => handles.push(h),
                Err(e) => {
                    shared.stop_all();
                    return (Err(anyhow!("starting an event-loop thread: {e}")), vec![]);
                }
            }
        }
        let worker0 = Worker::new(0, poll0, &shared, &service, plan, &limits, Some(acceptor));
        let first = worker0.run();
        // Whatever ended the first loop ends them all.
        shared.stop_all();
        let rest: Vec<Result<(Totals, Option<Seen>)>> = handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow!("an event-loop thread panicked")))
            })
            .collect();
        (first, rest)
    });
    let (mut sum, seen) = first?;
    let seen = seen.unwrap_or(Seen {
        peak: 0,
        stopped_by: None,
    });
    for t in totals {
        sum.add(&t?.0);
    }
    if narrate::verbose() {
        let refused = sum.refused_denied + sum.refused_full;
        narrate::emit(format_args!(
            "stopped{}: served {} ({} refused: {} by --allow/--deny, {} at --max-conns; \
             at most {} at once), {} in, {} out, up {}",
            seen.stopped_by
                .map(|s| format!(" on {s}"))
                .unwrap_or_default(),
            counted(sum.served, "client"),
            refused,
            sum.refused_denied,
            sum.refused_full,
            seen.peak,
            narrate::bytes(sum.bytes_in),
            narrate::bytes(sum.bytes_out),
            narrate::short(started.elapsed()),
        ));
    }
    Ok(())
}

/// What the loops share: each one's inbox of handed-over clients, and the counts the acceptor
/// balances and limits with.
struct Shared {
    lanes: Vec<Lane>,
    /// Clients connected now, over all loops (for `--max-conns`).
    open: AtomicUsize,
    stopping: AtomicBool,
}

impl Shared {
    fn stop_all(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        for lane in &self.lanes {
            let _ = lane.waker.wake();
        }
    }
}

struct Lane {
    inbox: Mutex<Vec<(Stream, Peer)>>,
    waker: Waker,
    /// Clients this loop serves (including those still in its inbox).
    load: AtomicUsize,
}

/// The first loop's extra duties: the listening socket and the signal pipe.
struct Acceptor {
    listener: Listen,
    fd: RawFd,
    stop: Stop,
    paused_until: Option<Instant>,
    /// The last turn ended before accept() said EAGAIN: clients may still be queued.
    more: bool,
    /// accept() has been failing (EMFILE and the like) since then.
    starved_since: Option<Instant>,
    log: RateLog,
    peak: usize,
    stopped_by: Option<&'static str>,
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

/// What the acceptor tells the totals line.
struct Seen {
    peak: usize,
    stopped_by: Option<&'static str>,
}

#[derive(Debug, Default, Clone)]
struct Totals {
    served: u64,
    refused_denied: u64,
    refused_full: u64,
    bytes_in: u64,
    bytes_out: u64,
}

impl Totals {
    fn add(&mut self, o: &Totals) {
        self.served += o.served;
        self.refused_denied += o.refused_denied;
        self.refused_full += o.refused_full;
        self.bytes_in += o.bytes_in;
        self.bytes_out += o.bytes_out;
    }
}

/// A connection's token: its slot in the low 32 bits, the slot's generation above, so an event
/// still queued for a client closed earlier in the same batch never reaches its successor.
fn token(slot: usize, generation: u32) -> Token {
    Token(((generation as usize) << 32) | slot)
}

struct Worker<'a, S: Service> {
    id: usize,
    poll: Poll,
    shared: &'a Shared,
    service: &'a S,
    plan: &'a Plan,
    limits: &'a Limits,
    conns: Vec<Option<Conn<S::Session>>>,
    generations: Vec<u32>,
    free: Vec<usize>,
    /// Clients that still had input when their turn ended (edge-triggered: no event will come).
    again: Vec<Token>,
    rbuf: Vec<u8>,
    out: Vec<u8>,
    totals: Totals,
    accept: Option<Acceptor>,
    sweep_every: Duration,
    next_sweep: Instant,
    /// Fan-out: what `share` wrote for the other clients, and deliveries still to make (a
    /// delivery can end a client whose `Left` then queues one more; a queue, not recursion).
    others: Vec<u8>,
    fanout: std::collections::VecDeque<(Option<usize>, Vec<u8>)>,
    fanning: bool,
    /// Fan-out: clients not read from while some client is owed `max_owed` (backpressure).
    held: Vec<Token>,
    /// Set at stop: clients closed then are not announced to the others.
    quiet_close: bool,
}

impl<'a, S: Service> Worker<'a, S> {
    fn new(
        id: usize,
        poll: Poll,
        shared: &'a Shared,
        service: &'a S,
        plan: &'a Plan,
        limits: &'a Limits,
        accept: Option<Acceptor>,
    ) -> Self {
        // Check often enough that an idle client goes within about a tenth of its timeout.
        let sweep_every = limits
            .idle_timeout
            .map_or(Duration::from_secs(1), |t| t / 10)
            .clamp(Duration::from_millis(10), Duration::from_secs(1));
        Worker {
            id,
            poll,
            shared,
            service,
            plan,
            limits,
            conns: Vec::new(),
            generations: Vec::new(),
            free: Vec::new(),
            again: Vec::new(),
            rbuf: vec![0; READ_BUF],
            out: Vec::with_capacity(READ_BUF),
            totals: Totals::default(),
            accept,
            sweep_every,
            next_sweep: Instant::now() + sweep_every,
            others: Vec::new(),
            fanout: std::collections::VecDeque::new(),
            fanning: false,
            held: Vec::new(),
            quiet_close: false,
        }
    }

    /// The loop. Returns this loop's totals, and from the first loop what the acceptor saw.
    fn run(mut self) -> Result<(Totals, Option<Seen>)> {
        let result = self.run_loop();
        if result.is_err() {
            // A loop that cannot wait for events can serve no one: stop the whole server
            // rather than let the acceptor hand clients to a loop that is gone.
            self.shared.stop_all();
        }
        self.close_all();
        result?;
        let seen = self.accept.take().map(|mut a| {
            let _ = self.poll.registry().deregister(&mut a.listener);
            socket::close(Socket::from(OwnedFd::from(a.listener)));
            Seen {
                peak: a.peak,
                stopped_by: a.stopped_by,
            }
        });
        Ok((self.totals, seen))
    }

    fn run_loop(&mut self) -> Result<()> {
        if let Some(a) = self.accept.as_mut() {
            let reg = self.poll.registry();
            reg.register(&mut a.listener, LISTENER, Interest::READABLE)
                .context("registering the listening socket with epoll")?;
            reg.register(&mut a.stop.pipe, SIGNAL, Interest::READABLE)
                .context("registering the signal pipe with epoll")?;
        }
        let mut events = Events::with_capacity(1024);
        loop {
            let timeout = self.timeout(Instant::now());
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e).context("waiting for events (epoll_wait)");
            }
            let now = Instant::now();
            let mut stop = false;
            for ev in events.iter() {
                match ev.token() {
                    LISTENER => self.accept_all(now),
                    SIGNAL => {
                        if let Some(a) = self.accept.as_mut()
                            && let Some(sig) = a.stop.take()
                        {
                            a.stopped_by = Some(sig);
                            narrate::info(format_args!(
                                "{sig}: stopping (no new clients; closing {} open)",
                                self.shared.open.load(Ordering::Relaxed)
                            ));
                            stop = true;
                        }
                    }
                    WAKER => {
                        self.take_inbox(now);
                        if self.shared.stopping.load(Ordering::SeqCst) {
                            stop = true;
                        }
                    }
                    t => self.conn_event(t, ev, now),
                }
            }
            if stop {
                return Ok(());
            }
            if !self.again.is_empty() {
                let again = std::mem::take(&mut self.again);
                for t in again {
                    if let Some(slot) = self.slot_of(t) {
                        self.drive(slot, now);
                    }
                }
            }
            if let Some(a) = &self.accept
                && (a.more || a.paused_until.is_some_and(|t| now >= t))
            {
                self.accept_all(now);
            }
            if now >= self.next_sweep {
                self.sweep(now);
            }
            if !self.held.is_empty() && !self.fan_out_full() {
                self.again.append(&mut self.held);
            }
        }
    }

    /// Fan-out backpressure: some client is owed `max_owed` or more, so no sender is read.
    fn fan_out_full(&self) -> bool {
        S::FAN_OUT
            && self
                .conns
                .iter()
                .flatten()
                .any(|c| c.owed() >= self.limits.max_owed)
    }

    /// How long epoll_wait may sleep: not past the next idle sweep or the end of an accept
    /// pause, and not at all while some client still has input waiting.
    fn timeout(&self, now: Instant) -> Option<Duration> {
        if !self.again.is_empty() || self.accept.as_ref().is_some_and(|a| a.more) {
            return Some(Duration::ZERO);
        }
        let mut until = self.next_sweep;
        if let Some(t) = self.accept.as_ref().and_then(|a| a.paused_until) {
            until = until.min(t);
        }
        Some(until.saturating_duration_since(now))
    }

    fn slot_of(&self, t: Token) -> Option<usize> {
        let slot = t.0 & 0xFFFF_FFFF;
        let generation = (t.0 >> 32) as u32;
        (self.generations.get(slot) == Some(&generation) && self.conns[slot].is_some())
            .then_some(slot)
    }

    fn conn_event(&mut self, t: Token, ev: &mio::event::Event, now: Instant) {
        let Some(slot) = self.slot_of(t) else { return };
        let Some(c) = self.conns[slot].as_mut() else {
            return;
        };
        if ev.is_read_closed() || ev.is_error() {
            c.hangup = true;
            c.readable = true;
        }
        if ev.is_readable() {
            c.readable = true;
        }
        self.drive(slot, now);
    }

    /// Accepts every waiting client (edge-triggered: until EAGAIN), refusing the ones the
    /// limits keep out, and hands the rest to the least busy loop.
    fn accept_all(&mut self, now: Instant) {
        let Some(mut a) = self.accept.take() else {
            return;
        };
        if a.paused_until.is_some_and(|t| now < t) {
            self.accept = Some(a);
            return;
        }
        a.paused_until = None;
        // Until accept() says EAGAIN, more clients may be queued (no new event will say so).
        a.more = true;
        for _ in 0..ACCEPTS_PER_TURN {
            let t0 = narrate::narrating().then(Instant::now);
            let result = a.listener.accept();
            if let Some(t0) = t0 {
                match &result {
                    Ok((s, from)) => narrate::call(
                        format_args!(
                            "accept(fd {}) = fd {} from {from}{}",
                            a.fd,
                            s.as_raw_fd(),
                            state_suffix(s.as_raw_fd())
                        ),
                        t0.elapsed(),
                    ),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => narrate::call(
                        format_args!("accept(fd {}) {}", a.fd, narrate::errno_text(e)),
                        t0.elapsed(),
                    ),
                }
            }
            match result {
                Ok((stream, peer)) => {
                    if let Some(since) = a.starved_since.take() {
                        narrate::emit(format_args!(
                            "accept() works again after {} ({} connected)",
                            narrate::short(now.saturating_duration_since(since)),
                            self.shared.open.load(Ordering::Relaxed)
                        ));
                    }
                    if let Peer::Ip(ip) = &peer
                        && let Some(why) = self.limits.refuses(ip.ip())
                    {
                        self.totals.refused_denied += 1;
                        a.log.say(now, format_args!("refused {peer}: {why}"));
                        close_stream(stream);
                        continue;
                    }
                    let open = self.shared.open.load(Ordering::SeqCst);
                    if open >= self.limits.max_conns {
                        self.totals.refused_full += 1;
                        a.log.say(
                            now,
                            format_args!(
                                "refused {peer}: --max-conns {} reached ({open} connected)",
                                self.limits.max_conns
                            ),
                        );
                        close_stream(stream);
                        continue;
                    }
                    let open = self.shared.open.fetch_add(1, Ordering::SeqCst) + 1;
                    a.peak = a.peak.max(open);
                    let lane = self.least_busy();
                    self.shared.lanes[lane].load.fetch_add(1, Ordering::SeqCst);
                    if lane == self.id {
                        self.open_conn(stream, peer, now);
                    } else {
                        let l = &self.shared.lanes[lane];
                        l.inbox
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .push((stream, peer));
                        if let Err(e) = l.waker.wake() {
                            narrate::emit(format_args!("waking event loop {lane}: {e}"));
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    a.more = false;
                    break;
                }
                // The client gave up before we got to it, or a signal, or a firewall: not ours.
                Err(e)
                    if matches!(
                        e.raw_os_error(),
                        Some(libc::ECONNABORTED | libc::EINTR | libc::EPROTO | libc::EPERM)
                    ) =>
                {
                    continue;
                }
                // EMFILE, ENFILE, ENOBUFS, ENOMEM: out of something that closing clients gives
                // back. Rest instead of retrying at once (which would spin: the client is still
                // queued) and instead of dying (the clients we have still deserve service).
                Err(e) => {
                    a.paused_until = Some(now + ACCEPT_PAUSE);
                    a.more = false;
                    // Said once when it starts and once when it ends, not every retry.
                    if a.starved_since.is_none() {
                        a.starved_since = Some(now);
                        let hint = if matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE))
                        {
                            " (raise `ulimit -n` or lower --max-conns)"
                        } else {
                            ""
                        };
                        narrate::emit(format_args!(
                            "accept() failed: {} ({}); retrying every {} while serving {}{hint}",
                            crate::error::plain(&e),
                            e.raw_os_error().map_or("?", narrate::errno_name),
                            narrate::short(ACCEPT_PAUSE),
                            counted(self.shared.open.load(Ordering::Relaxed) as u64, "client")
                        ));
                    }
                    break;
                }
            }
        }
        self.accept = Some(a);
    }

    /// The loop with the fewest clients; this one on a tie (no hand-over needed).
    fn least_busy(&self) -> usize {
        let lanes = &self.shared.lanes;
        let mut best = self.id;
        let mut best_load = lanes[self.id].load.load(Ordering::Relaxed);
        for (i, lane) in lanes.iter().enumerate() {
            let load = lane.load.load(Ordering::Relaxed);
            if load < best_load {
                best = i;
                best_load = load;
            }
        }
        best
    }

    fn take_inbox(&mut self, now: Instant) {
        let incoming = std::mem::take(
            &mut *self.shared.lanes[self.id]
                .inbox
                .lock()
                .unwrap_or_else(|p| p.into_inner()),
        );
        for (stream, peer) in incoming {
            if self.shared.stopping.load(Ordering::SeqCst) {
                self.forget(stream);
            } else {
                self.open_conn(stream, peer, now);
            }
        }
    }

    /// A client that never became a connection here: give back its counts and close it.
    fn forget(&mut self, stream: Stream) {
        self.shared.open.fetch_sub(1, Ordering::SeqCst);
        self.shared.lanes[self.id]
            .load
            .fetch_sub(1, Ordering::SeqCst);
        close_stream(stream);
    }

    /// Takes on an admitted client: its socket options, its slot, its registration, the
    /// service's greeting.
    fn open_conn(&mut self, mut stream: Stream, peer: Peer, now: Instant) {
        let target = match &peer {
            Peer::Ip(a) => socket::target(a, SockKind::Tcp),
            Peer::Unix(_) => crate::socket::unix::target(),
        };
        if let Err(e) = self
            .plan
            .apply(&SockRef::from(&stream), target, Stage::Connected)
        {
            narrate::emit(format_args!("client {peer}: {e:#}"));
            return self.forget(stream);
        }
        let slot = match self.free.pop() {
            Some(s) => s,
            None => {
                self.conns.push(None);
                self.generations.push(0);
                self.conns.len() - 1
            }
        };
        let t = token(slot, self.generations[slot]);
        if let Err(e) =
            self.poll
                .registry()
                .register(&mut stream, t, Interest::READABLE | Interest::WRITABLE)
        {
            narrate::emit(format_args!("client {peer}: registering with epoll: {e}"));
            self.free.push(slot);
            return self.forget(stream);
        }
        let fd = stream.as_raw_fd();
        self.out.clear();
        let session = self.service.open(peer.sock_addr(), &mut self.out);
        self.totals.served += 1;
        let mut conn = Conn::new(stream, peer, session, now);
        if narrate::verbose() {
            // Both ends, as `listen` says them; the local one is looked up only when shown.
            let local = match &conn.sock {
                Stream::Tcp(s) => s
                    .local_addr()
                    .map(|a| format!(" on {}", plain_addr(a)))
                    .unwrap_or_default(),
                Stream::Unix(_) => String::new(),
            };
            narrate::emit(format_args!(
                "accepted {}{local} (fd {fd}; {} connected)",
                conn.peer,
                self.shared.open.load(Ordering::Relaxed)
            ));
        }
        let greeted = conn.send(&self.out, now);
        self.conns[slot] = Some(conn);
        if let Err(e) = greeted {
            return self.close(slot, io_reason("write", &e));
        }
        self.share(slot, Event::Joined, now);
    }

    /// Fan-out: tells the service what client `slot` did and delivers what it wrote for the
    /// others. A no-op for services without `FAN_OUT`.
    fn share(&mut self, slot: usize, event: Event, now: Instant) {
        if !S::FAN_OUT {
            return;
        }
        let Some(c) = self.conns[slot].as_mut() else {
            return;
        };
        self.others.clear();
        self.service.share(&mut c.session, event, &mut self.others);
        self.broadcast(Some(slot), now);
    }

    /// Sends `self.others` to every client but `from`. What a client cannot take yet waits in
    /// its owed bytes; `fan_out_full` then holds the senders back (backpressure, as TCP does),
    /// and `sweep` drops a client that takes nothing for `FAN_OUT_STALL` (not reading).
    fn broadcast(&mut self, from: Option<usize>, now: Instant) {
        if self.others.is_empty() {
            return;
        }
        self.fanout
            .push_back((from, std::mem::take(&mut self.others)));
        if self.fanning {
            return;
        }
        self.fanning = true;
        while let Some((from, data)) = self.fanout.pop_front() {
            for slot in 0..self.conns.len() {
                let Some(c) = self.conns[slot].as_mut() else {
                    continue;
                };
                if Some(slot) == from || matches!(c.phase, Phase::Closing { .. }) {
                    continue;
                }
                if c.owed() == 0 {
                    // Nothing was waiting: the stall clock starts with this delivery.
                    c.last_drained = now;
                }
                if let Err(e) = c.send(&data, now) {
                    self.close(slot, io_reason("write", &e));
                }
            }
        }
        self.fanning = false;
    }

    /// Moves one client along as far as it can go now: send what it is owed, read what it
    /// sent (unless it is owed `max_owed` already: backpressure), answer, repeat.
    fn drive(&mut self, slot: usize, now: Instant) {
        let cap = self.limits.max_owed;
        let mut reads = 0;
        loop {
            // Fan-out backpressure, looked at before this client is borrowed.
            let full = self.fan_out_full();
            let Some(c) = self.conns[slot].as_mut() else {
                return;
            };
            if let Err(e) = c.flush(now) {
                return self.close(slot, io_reason("write", &e));
            }
            if c.owed() == 0 {
                match c.phase {
                    Phase::PeerDone => {
                        let why = if c.said_bye {
                            "the service ended the session"
                        } else {
                            "client finished, nothing left owed"
                        };
                        return self.close(slot, why.to_string());
                    }
                    Phase::Closing { shut: false } => {
                        // Our goodbye is all out: FIN, then wait for theirs.
                        let _ = socket::shutdown(&SockRef::from(&c.sock), Shutdown::Write);
                        c.phase = Phase::Closing { shut: true };
                    }
                    _ => {}
                }
            }
            if !c.readable || c.phase == Phase::PeerDone || c.owed() >= cap {
                return;
            }
            if full {
                // Its bytes would go to a client that cannot take them: wait for that one.
                self.held.push(token(slot, self.generations[slot]));
                return;
            }
            if reads == READS_PER_TURN {
                self.again.push(token(slot, self.generations[slot]));
                return;
            }
            reads += 1;
            let want = (cap - c.owed()).min(self.rbuf.len());
            match (&c.sock).read(&mut self.rbuf[..want]) {
                Ok(0) => {
                    c.readable = false;
                    let closing = matches!(c.phase, Phase::Closing { .. });
                    c.phase = Phase::PeerDone;
                    if closing {
                        continue;
                    }
                    self.out.clear();
                    let next = self.service.eof(&mut c.session, &mut self.out);
                    if let Err(e) = c.send(&self.out, now) {
                        return self.close(slot, io_reason("write", &e));
                    }
                    self.share(slot, Event::Eof, now);
                    if let Next::Drop(why) = next {
                        return self.drop_client(slot, why);
                    }
                    // Continue or Close alike: the client can send no more, so once what it
                    // is owed is out, the connection is done.
                }
                Ok(n) => {
                    c.bytes_in += n as u64;
                    c.last_active = now;
                    // A short read emptied the kernel's queue: more input will raise a new
                    // event. Not so after a hang-up, whose EOF would raise none.
                    if n < want && !c.hangup {
                        c.readable = false;
                    }
                    if matches!(c.phase, Phase::Closing { .. }) {
                        continue;
                    }
                    self.out.clear();
                    let next = self
                        .service
                        .input(&mut c.session, &self.rbuf[..n], &mut self.out);
                    let sent = c.send(&self.out, now);
                    if self.out.capacity() > 4 * READ_BUF {
                        self.out = Vec::with_capacity(READ_BUF);
                    }
                    if let Err(e) = sent {
                        return self.close(slot, io_reason("write", &e));
                    }
                    match next {
                        Next::Continue => {}
                        Next::Close => {
                            c.phase = Phase::Closing { shut: false };
                            c.said_bye = true;
                        }
                        Next::Drop(why) => return self.drop_client(slot, why),
                    }
                    if S::FAN_OUT {
                        self.others.clear();
                        self.service.share(
                            &mut c.session,
                            Event::Data(&self.rbuf[..n]),
                            &mut self.others,
                        );
                        self.broadcast(Some(slot), now);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    c.readable = false;
                    return;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return self.close(slot, io_reason("read", &e)),
            }
        }
    }

    /// The service ended a client for breaking a rule: always said, `-v` or not.
    fn drop_client(&mut self, slot: usize, why: String) {
        if !narrate::verbose()
            && let Some(c) = &self.conns[slot]
        {
            narrate::emit(format_args!("dropped {}: {why}", c.peer));
        }
        self.close(slot, why);
    }

    /// Closes clients idle past `--idle-timeout`, and lingering ones past `LINGER`.
    fn sweep(&mut self, now: Instant) {
        for slot in 0..self.conns.len() {
            let Some(c) = &self.conns[slot] else { continue };
            let quiet = now.saturating_duration_since(c.last_active);
            let stalled = now.saturating_duration_since(c.last_drained);
            if S::FAN_OUT && c.owed() >= self.limits.max_owed && stalled >= FAN_OUT_STALL {
                // It holds every sender back and takes nothing: a rule broken, always said.
                let why = format!(
                    "not reading: {} waiting to be sent to it, none taken for {}",
                    narrate::bytes(c.owed() as u64),
                    narrate::short(stalled)
                );
                self.drop_client(slot, why);
                continue;
            }
            let why = match (c.phase, self.limits.idle_timeout) {
                (Phase::Closing { shut: true }, _) if quiet >= LINGER => format!(
                    "did not close within {} of our goodbye",
                    narrate::short(LINGER)
                ),
                (_, Some(limit)) if quiet >= limit => format!(
                    "idle for {} (--idle-timeout {})",
                    narrate::short(quiet),
                    humantime::format_duration(limit)
                ),
                _ => continue,
            };
            self.close(slot, why);
        }
        self.next_sweep = now + self.sweep_every;
    }

    /// Ends a client: its `-v` line, its counts given back, close() narrated.
    fn close(&mut self, slot: usize, why: String) {
        let Some(mut c) = self.conns[slot].take() else {
            return;
        };
        // At stop nobody is told: everyone is leaving.
        if S::FAN_OUT && !self.quiet_close {
            self.others.clear();
            self.service
                .share(&mut c.session, Event::Left(&why), &mut self.others);
            self.broadcast(None, Instant::now());
        }
        self.generations[slot] = (self.generations[slot] + 1) & 0x7FFF_FFFF;
        self.free.push(slot);
        self.shared.open.fetch_sub(1, Ordering::SeqCst);
        self.shared.lanes[self.id]
            .load
            .fetch_sub(1, Ordering::SeqCst);
        self.totals.bytes_in += c.bytes_in;
        self.totals.bytes_out += c.bytes_out;
        narrate::info(format_args!(
            "closed {}: {why}; {} in, {} out, {}",
            c.peer,
            narrate::bytes(c.bytes_in),
            narrate::bytes(c.bytes_out),
            narrate::short(c.opened.elapsed())
        ));
        let sock = Socket::from(OwnedFd::from(c.sock));
        if narrate::narrating()
            && let Some(info) = socket::tcp_info_summary(&sock)
        {
            narrate::emit(format_args!("{} {info}", c.peer));
        }
        // Closing the descriptor also takes it out of epoll: no deregister call needed.
        socket::close(sock);
    }

    /// At stop: one last try to send what each client is owed, then close them all.
    fn close_all(&mut self) {
        let now = Instant::now();
        self.quiet_close = true;
        let incoming = std::mem::take(
            &mut *self.shared.lanes[self.id]
                .inbox
                .lock()
                .unwrap_or_else(|p| p.into_inner()),
        );
        for (stream, _) in incoming {
            self.forget(stream);
        }
        for slot in 0..self.conns.len() {
            if let Some(c) = self.conns[slot].as_mut() {
                let _ = c.flush(now);
                self.close(slot, "server stopping".to_string());
            }
        }
    }
}

/// Closes a socket the engine never served (refused), narrated like any close.
fn close_stream(stream: Stream) {
    socket::close(Socket::from(OwnedFd::from(stream)));
}

/// ` -> ESTABLISHED`, for accept() narration.
fn state_suffix(fd: RawFd) -> String {
    socket::tcp_state(fd)
        .map(|s| format!(" -> {s}"))
        .unwrap_or_default()
}

/// Servers hold a descriptor per client: raise the soft RLIMIT_NOFILE to the hard limit, and
/// say when `--max-conns` still exceeds it (accept will then pause on EMFILE, not fail).
fn raise_fd_limit(max_conns: usize) {
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

#[cfg(test)]
mod tests {
    //! The engine's handling of a service's decisions (`Next::Close`, `Next::Drop`), which the
    //! echo service never makes: a small line service run in-process, stopped by SIGTERM.

    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::{SocketAddr, TcpStream};
    use std::sync::mpsc;

    use super::*;
    use crate::addr::BindTarget;

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
            max_owed: crate::server::DEFAULT_MAX_OWED,
            threads: 2,
        };
        let (done_tx, done_rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = done_tx.send(serve(listener, &plan, limits, Lines).map_err(|e| e.to_string()));
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
