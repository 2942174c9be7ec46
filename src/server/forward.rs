//! The forwarding server: the engine's acceptor, lanes and limits, with loops of its own whose
//! connections are pairs (`pair.rs`) instead of a client and a `Service`. For each admitted
//! client a loop opens the outbound connection itself (non-blocking, inside the loop: every
//! address of the target in turn, each bounded by the connect timeout), then moves both
//! directions as events come. A target that refuses or times out has its client reset at once
//! and the reason said; a pair ends when both FINs are passed on, or is reset on both sides
//! when either fails. The -v line per pair, the totals at the end. What the options mean on the
//! command line is cmd's (`cmd/forward.rs`).

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use mio::{Events, Interest, Poll, Token};
use socket2::{SockAddr, SockRef, Socket, Type};

use super::acceptor::{Acceptor, Arrival, LISTENER, SIGNAL, Seen, raise_fd_limit};
use super::lanes::{Lanes, WAKER};
use super::limits::Limits;
use super::lookup::Lookup;
use super::pair::{Broken, Pair, PipePool, Side, Turn};
use super::peer::{Peer, plain_addr};
use super::report::counted;
use super::slots::Slots;
use super::stop::Stop;
use super::stream::{Listen, Stream};
use crate::addr::{Family, UnixAddr};
use crate::narrate;
use crate::relay::wire::Dump;
use crate::socket::{self, unix};
use crate::sockopt::{Plan, SockKind, Stage};

/// Where each client is forwarded to.
#[derive(Debug, Clone)]
pub enum Dest {
    /// HOST PORT, looked up again as clients come (the addresses may change while we run),
    /// off the event loops (`lookup.rs`).
    Ip {
        host: String,
        port: u16,
        family: Family,
    },
    Unix(UnixAddr),
}

/// What `forward` does besides the engine's limits.
pub struct Forward {
    pub dest: Dest,
    /// Each connect attempt gives up after this long.
    pub connect_timeout: Duration,
    /// The options for the outbound sockets (`--to-opt`).
    pub out_plan: Plan,
    /// `--show-opts`: each outbound socket's options as it connects.
    pub show_opts: bool,
    pub dump: Option<Dump>,
}

/// The token bit that says "the pair's target socket" (the client's has it clear).
const TARGET_BIT: usize = 1 << 31;

/// Runs the forwarder on a listening socket (`unix`: a Unix stream one) until SIGINT or
/// SIGTERM, then closes every pair and (with -v) prints the totals.
pub fn serve_forward(
    listener: Socket,
    unix: bool,
    plan: &Plan,
    limits: Limits,
    fwd: &Forward,
) -> Result<()> {
    raise_fd_limit(limits.max_conns);
    let stop = Stop::install()?;
    let fd = socket::fd(&listener);
    // Our end of each client's connection, for a Unix listener (a TCP one asks each socket).
    let here = listener
        .local_addr()
        .map_or_else(|_| "?".to_string(), |a| unix::show(&a));
    let listener =
        Listen::new(listener, unix).context("making the listening socket non-blocking")?;
    let threads = limits.threads.clamp(1, limits.max_conns.max(1));
    let polls = (0..threads)
        .map(|_| Poll::new().context("creating the event loop (epoll_create)"))
        .collect::<Result<Vec<_>>>()?;
    let lanes = Lanes::new(&polls)?;
    if fwd.dump.is_some() {
        narrate::info(format_args!(
            "moving bytes with read(2)/write(2) through a {} buffer per direction (-x must see them)",
            narrate::bytes(super::pair::COPY_BUF as u64)
        ));
    } else {
        narrate::info(format_args!(
            "moving bytes with splice(2), socket -> pipe -> socket, no copy through user space"
        ));
    }
    // HOST looked up off the loops from here on; the first answer is the one that checks it
    // before the loops start.
    let lookup = match &fwd.dest {
        Dest::Ip { host, port, family } => Some(Lookup::start(
            host,
            *port,
            *family,
            crate::addr::resolve(host, *port, *family)?,
        )),
        Dest::Unix(_) => None,
    };
    let started = Instant::now();
    let shared = Shared {
        lanes: &lanes,
        limits: &limits,
        plan,
        fwd,
        here: &here,
        lookup: lookup.as_deref(),
    };
    let acceptor = Acceptor::new(listener, fd, stop);
    let outcomes = std::thread::scope(|scope| {
        let mut polls = polls.into_iter();
        let Some(poll0) = polls.next() else {
            return vec![Err(anyhow!("no event loop to run"))];
        };
        let mut handles = Vec::new();
        for (i, poll) in polls.enumerate() {
            let handle = std::thread::Builder::new()
                .name(format!("sockkit-fwd-{}", i + 1))
                .spawn_scoped(scope, move || Loop::new(i + 1, poll, shared, None).run());
            match handle {
                Ok(h) => handles.push(h),
                Err(e) => {
                    lanes.stop_all();
                    return vec![Err(anyhow!("starting an event-loop thread: {e}"))];
                }
            }
        }
        let mut all = vec![Loop::new(0, poll0, shared, Some(acceptor)).run()];
        lanes.stop_all();
        for h in handles {
            all.push(
                h.join()
                    .unwrap_or_else(|_| Err(anyhow!("an event-loop thread panicked"))),
            );
        }
        all
    });
    let mut sum = Totals::default();
    let mut seen = Seen::default();
    for o in outcomes {
        let (t, s) = o?;
        sum.add(&t);
        if let Some(s) = s {
            seen = s;
        }
    }
    if narrate::verbose() || sum.undelivered > 0 {
        say_totals(&sum, &seen, started);
    }
    Ok(())
}

/// What every loop of one forwarder works with.
#[derive(Clone, Copy)]
struct Shared<'a> {
    lanes: &'a Lanes,
    limits: &'a Limits,
    plan: &'a Plan,
    fwd: &'a Forward,
    /// The listening Unix socket's name.
    here: &'a str,
    /// HOST's addresses (`None` for a Unix target).
    lookup: Option<&'a Lookup>,
}

/// What one loop did, for the totals line.
#[derive(Debug, Default)]
struct Totals {
    pairs: u64,
    /// Clients whose target could not be reached.
    failed: u64,
    /// Pairs ended by a reset (from either side, or by us).
    reset: u64,
    up: u64,
    down: u64,
    undelivered: u64,
}

impl Totals {
    fn add(&mut self, o: &Totals) {
        self.pairs += o.pairs;
        self.failed += o.failed;
        self.reset += o.reset;
        self.up += o.up;
        self.down += o.down;
        self.undelivered += o.undelivered;
    }
}

/// How a pair ended.
enum End {
    /// Both directions finished (FIN each way).
    Done,
    /// Closed without a reset: idle, or the server stopping.
    Closed(String),
    /// Reset on both sides, for this reason.
    Reset(String),
}

struct Loop<'a> {
    id: usize,
    poll: Poll,
    shared: Shared<'a>,
    pairs: Slots<Pair>,
    /// Pairs whose turn ended with more to move (edge-triggered: no event will come).
    again: Vec<Token>,
    totals: Totals,
    accept: Option<Acceptor>,
    sweep_every: Duration,
    next_sweep: Instant,
    pipes: PipePool,
}

impl<'a> Loop<'a> {
    fn new(id: usize, poll: Poll, shared: Shared<'a>, accept: Option<Acceptor>) -> Self {
        // Often enough that an idle pair or a slow connect goes within a tenth of its time.
        let shortest = shared
            .limits
            .idle_timeout
            .map_or(shared.fwd.connect_timeout, |t| {
                t.min(shared.fwd.connect_timeout)
            });
        let sweep_every = (shortest / 10).clamp(Duration::from_millis(10), Duration::from_secs(1));
        Loop {
            id,
            poll,
            shared,
            pairs: Slots::new(),
            again: Vec::new(),
            totals: Totals::default(),
            accept,
            sweep_every,
            next_sweep: Instant::now() + sweep_every,
            pipes: PipePool::default(),
        }
    }

    fn run(mut self) -> Result<(Totals, Option<Seen>)> {
        let result = self.run_loop();
        if result.is_err() {
            self.shared.lanes.stop_all();
        }
        self.close_all();
        result?;
        let seen = self.accept.take().map(|a| a.close(self.poll.registry()));
        Ok((self.totals, seen))
    }

    fn run_loop(&mut self) -> Result<()> {
        if let Some(a) = self.accept.as_mut() {
            a.register(self.poll.registry())?;
        }
        let mut events = Events::with_capacity(1024);
        loop {
            let now = Instant::now();
            let timeout =
                if self.again.is_empty() && !self.accept.as_ref().is_some_and(Acceptor::behind) {
                    let mut until = self.next_sweep;
                    if let Some(t) = self.accept.as_ref().and_then(Acceptor::paused_until) {
                        until = until.min(t);
                    }
                    until.saturating_duration_since(now)
                } else {
                    Duration::ZERO
                };
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e).context("waiting for events (epoll_wait)");
            }
            let now = Instant::now();
            let mut stop = false;
            for ev in &events {
                match ev.token() {
                    LISTENER => self.accept_all(now),
                    SIGNAL => stop |= self.signalled(),
                    WAKER => {
                        self.take_inbox(now);
                        stop |= self.shared.lanes.stopping();
                    }
                    t => {
                        let side = if t.0 & TARGET_BIT == 0 {
                            Side::Client
                        } else {
                            Side::Target
                        };
                        if let Some(slot) = self.pairs.slot_of(Token(t.0 & !TARGET_BIT)) {
                            self.event(slot, side, now);
                        }
                    }
                }
            }
            if stop {
                return Ok(());
            }
            for t in std::mem::take(&mut self.again) {
                if let Some(slot) = self.pairs.slot_of(t) {
                    self.drive(slot, now);
                }
            }
            if self.accept.as_ref().is_some_and(|a| a.due(now)) {
                self.accept_all(now);
            }
            if now >= self.next_sweep {
                self.sweep(now);
            }
        }
    }

    fn signalled(&mut self) -> bool {
        let Some(sig) = self.accept.as_mut().and_then(Acceptor::signalled) else {
            return false;
        };
        narrate::info(format_args!(
            "{sig}: stopping (no new clients; closing {} pairs)",
            self.shared.lanes.open()
        ));
        true
    }

    fn accept_all(&mut self, now: Instant) {
        let Some(mut a) = self.accept.take() else {
            return;
        };
        let Shared { lanes, limits, .. } = self.shared;
        a.accept_all(lanes, limits, self.id, now, |arrival| match arrival {
            Arrival::Admitted(stream, peer) => self.open(stream, peer, now),
            // A relay has no words of its own for the client: closed, as before.
            Arrival::Full(stream, _) => stream.close(),
        });
        self.accept = Some(a);
    }

    fn take_inbox(&mut self, now: Instant) {
        for (stream, peer) in self.shared.lanes.take_inbox(self.id) {
            if self.shared.lanes.stopping() {
                self.shared.lanes.left(self.id);
                stream.close();
            } else {
                self.open(stream, peer, now);
            }
        }
    }

    /// Takes on an admitted client: its options, its slot, then the connect to the target.
    fn open(&mut self, mut stream: Stream, peer: Peer, now: Instant) {
        let target = match &peer {
            Peer::Ip(a) => socket::target(a, SockKind::Tcp),
            Peer::Unix(_) => unix::target(),
        };
        if let Err(e) = self
            .shared
            .plan
            .apply(&SockRef::from(&stream), target, Stage::Connected)
        {
            narrate::emit(format_args!("client {peer}: {e:#}"));
            self.shared.lanes.left(self.id);
            return stream.close();
        }
        let (slot, t) = self.pairs.vacant();
        if let Err(e) =
            self.poll
                .registry()
                .register(&mut stream, t, Interest::READABLE | Interest::WRITABLE)
        {
            narrate::emit(format_args!("client {peer}: registering with epoll: {e}"));
            self.pairs.release(slot);
            self.shared.lanes.left(self.id);
            return stream.close();
        }
        self.totals.pairs += 1;
        if narrate::narrating() {
            narrate::emit(format_args!(
                "accepted {peer} on {} (fd {})",
                self.client_local(&stream),
                stream.as_raw_fd()
            ));
        }
        let copy = self.shared.fwd.dump.is_some();
        let mut pair = Pair::new(stream, peer, copy, now);
        let first = match &self.shared.fwd.dest {
            Dest::Ip { .. } => match self.shared.lookup.map(Lookup::current) {
                Some(Ok(addrs)) => {
                    pair.next_addrs = addrs;
                    pair.next_addrs.reverse();
                    Ok(())
                }
                Some(Err(why)) => Err(why),
                None => Err("no lookup for the target".to_string()),
            },
            Dest::Unix(path) => self.connect_unix(&mut pair, path, slot),
        };
        self.pairs.fill(slot, pair);
        match first {
            Err(why) => self.fail(slot, &why),
            Ok(()) if matches!(self.shared.fwd.dest, Dest::Ip { .. }) => {
                self.next_attempt(slot, now, Vec::new());
            }
            Ok(()) => self.drive(slot, now),
        }
    }

    /// The Unix target: connect() on a Unix socket does not wait for an accept (it succeeds
    /// or fails at once), so it is made here, then made non-blocking.
    fn connect_unix(&self, pair: &mut Pair, path: &UnixAddr, slot: usize) -> Result<(), String> {
        let fwd = self.shared.fwd;
        let sock = unix::connect(path, Type::STREAM, Some(fwd.connect_timeout), &fwd.out_plan)
            .map_err(|e| format!("{e:#}"))?;
        if let Err(e) = sock.set_nonblocking(true) {
            socket::close(sock);
            return Err(format!("making the target socket non-blocking: {e}"));
        }
        let mut s = Stream::Unix(mio::net::UnixStream::from_std(
            std::os::unix::net::UnixStream::from(OwnedFd::from(sock)),
        ));
        let t = Token(self.pairs.token(slot).0 | TARGET_BIT);
        if let Err(e) =
            self.poll
                .registry()
                .register(&mut s, t, Interest::READABLE | Interest::WRITABLE)
        {
            s.close();
            return Err(format!("registering with epoll: {e}"));
        }
        pair.target_addr = path.to_string();
        pair.up_and_running = true;
        if fwd.show_opts {
            show_opts(&s, fwd, &pair.target_addr);
        }
        pair.target = Some(s);
        Ok(())
    }

    /// Starts a connect to the next address of the target, non-blocking; when none is left,
    /// the client is reset with every reason (`failures`) said.
    fn next_attempt(&mut self, slot: usize, now: Instant, mut failures: Vec<String>) {
        let fwd = self.shared.fwd;
        let t = Token(self.pairs.token(slot).0 | TARGET_BIT);
        loop {
            let Some(pair) = self.pairs.get_mut(slot) else {
                return;
            };
            let Some(addr) = pair.next_addrs.pop() else {
                let why = match failures.as_slice() {
                    [one] => one.clone(),
                    many => format!(
                        "could not connect to any of {} addresses: {}",
                        many.len(),
                        many.join("; ")
                    ),
                };
                return self.fail(slot, &why);
            };
            match start_connect(addr, &fwd.out_plan) {
                Ok(mut s) => {
                    if let Err(e) = self.poll.registry().register(
                        &mut s,
                        t,
                        Interest::READABLE | Interest::WRITABLE,
                    ) {
                        s.close();
                        failures.push(format!("{addr}: registering with epoll: {e}"));
                        continue;
                    }
                    pair.target = Some(s);
                    pair.target_addr = addr.to_string();
                    pair.deadline = Some(now + fwd.connect_timeout);
                    return;
                }
                Err(e) => failures.push(crate::error::connect_failure(addr, &e)),
            }
        }
    }

    /// Something happened on one socket of a pair.
    fn event(&mut self, slot: usize, side: Side, now: Instant) {
        let Some(pair) = self.pairs.get_mut(slot) else {
            return;
        };
        if !pair.up_and_running {
            if side == Side::Target {
                self.connect_result(slot, now);
            }
            // The client's bytes wait in its socket until the target is there.
            return;
        }
        self.drive(slot, now);
    }

    /// The outbound connect finished, one way or the other (or the event was spurious).
    fn connect_result(&mut self, slot: usize, now: Instant) {
        let fwd = self.shared.fwd;
        let Some(pair) = self.pairs.get_mut(slot) else {
            return;
        };
        let Some(s) = &pair.target else {
            return;
        };
        let sock = SockRef::from(s);
        let err = match sock.take_error() {
            Ok(Some(e)) | Err(e) => Some(e),
            Ok(None) => None,
        };
        let addr: SocketAddr = pair
            .target_addr
            .parse()
            .unwrap_or_else(|_| SocketAddr::new(std::net::Ipv4Addr::UNSPECIFIED.into(), 0));
        if err.is_none() {
            match sock.peer_addr() {
                Ok(_) => {}
                // Not connected yet: the event was not the connect's.
                Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => return,
                Err(e) => return self.connect_failed(slot, addr, &e, now),
            }
        }
        if let Some(e) = err {
            return self.connect_failed(slot, addr, &e, now);
        }
        if narrate::narrating() {
            narrate::call(
                format_args!(
                    "connect(fd {}, {addr}) completed{}",
                    s.as_raw_fd(),
                    socket::tcp_state(s.as_raw_fd())
                        .map(|st| format!(" -> {st}"))
                        .unwrap_or_default()
                ),
                now.saturating_duration_since(pair.opened),
            );
        }
        let target = socket::target(&addr, SockKind::Tcp);
        if let Err(e) = fwd.out_plan.apply(&sock, target, Stage::Connected) {
            return self.fail(slot, &format!("{e:#}"));
        }
        pair.up_and_running = true;
        pair.deadline = None;
        pair.last = now;
        if fwd.show_opts {
            show_opts(s, fwd, &pair.target_addr);
        }
        self.drive(slot, now);
    }

    fn connect_failed(&mut self, slot: usize, addr: SocketAddr, e: &io::Error, now: Instant) {
        let why = crate::error::connect_failure(addr, e);
        if let Some(pair) = self.pairs.get_mut(slot)
            && let Some(mut s) = pair.target.take()
        {
            let _ = self.poll.registry().deregister(&mut s);
            s.close();
        }
        // Said now when another address is tried; the last one is said with the reset.
        if self
            .pairs
            .get(slot)
            .is_some_and(|p| !p.next_addrs.is_empty())
        {
            narrate::info(format_args!("{why}; trying the next address"));
        }
        self.next_attempt(slot, now, vec![why]);
    }

    /// The target could not be reached: the client is reset at once (so it does not wait for
    /// bytes that will never come), and the reason is always said.
    fn fail(&mut self, slot: usize, why: &str) {
        let Some(pair) = self.pairs.remove(slot) else {
            return;
        };
        narrate::emit(format_args!(
            "{}: target unreachable, client reset: {why}",
            pair.peer
        ));
        self.totals.failed += 1;
        self.shared.lanes.left(self.id);
        pair.close(true);
    }

    /// Moves a pair along; ends it when both directions are done or either side failed.
    fn drive(&mut self, slot: usize, now: Instant) {
        let dump = self.shared.fwd.dump.as_ref();
        let Some(pair) = self.pairs.get_mut(slot) else {
            return;
        };
        match pair.pump(dump, &mut self.pipes, now) {
            Ok(Turn::More) => self.again.push(self.pairs.token(slot)),
            Ok(Turn::Waiting) if pair.done() => self.end(slot, End::Done),
            Ok(Turn::Waiting) => {}
            Err((side, broken)) => {
                let (who, e) = match (side, broken) {
                    (Side::Client, Broken::Read(e)) | (Side::Target, Broken::Write(e)) => {
                        ("the client", e)
                    }
                    (Side::Target, Broken::Read(e)) | (Side::Client, Broken::Write(e)) => {
                        ("the target", e)
                    }
                };
                let why = format!("{who}: {}", crate::error::plain(&e));
                self.end(slot, End::Reset(why));
            }
        }
    }

    /// The clocks: a connect attempt past its time moves on to the next address; a pair idle
    /// past --idle-timeout is closed.
    fn sweep(&mut self, now: Instant) {
        let idle = self.shared.limits.idle_timeout;
        for slot in 0..self.pairs.end() {
            let Some(pair) = self.pairs.get(slot) else {
                continue;
            };
            if let Some(d) = pair.deadline
                && now >= d
            {
                let addr = pair
                    .target_addr
                    .parse()
                    .unwrap_or_else(|_| SocketAddr::new(std::net::Ipv4Addr::UNSPECIFIED.into(), 0));
                let e = io::Error::from_raw_os_error(libc::ETIMEDOUT);
                self.connect_failed(slot, addr, &e, now);
            } else if let Some(limit) = idle
                && pair.up_and_running
                && now.saturating_duration_since(pair.last) >= limit
            {
                let why = format!(
                    "idle for {} (--idle-timeout)",
                    narrate::short(now.saturating_duration_since(pair.last))
                );
                self.end(slot, End::Closed(why));
            }
        }
        self.next_sweep = now + self.sweep_every;
    }

    /// Ends a pair: both sockets closed (reset, if it broke), its line said, its counts added.
    fn end(&mut self, slot: usize, how: End) {
        let Some(pair) = self.pairs.remove(slot) else {
            return;
        };
        self.shared.lanes.left(self.id);
        let lost = pair.undelivered();
        self.totals.up += pair.up.delivered;
        self.totals.down += pair.down.delivered;
        self.totals.undelivered += lost;
        let (reset, how) = match how {
            End::Done => (false, "both sides done".to_string()),
            End::Closed(why) => (false, why),
            End::Reset(why) => (true, format!("reset: {why}")),
        };
        if reset {
            self.totals.reset += 1;
        }
        if narrate::verbose() || lost > 0 {
            narrate::emit(format_args!(
                "pair {} -> {} | {} -> {}: {} to the target, {} back, {} undelivered, {} ({how})",
                pair.peer,
                self.client_local(&pair.client),
                target_local(pair.target.as_ref()),
                pair.target_addr,
                narrate::bytes(pair.up.delivered),
                narrate::bytes(pair.down.delivered),
                narrate::bytes(lost),
                narrate::short(pair.age(Instant::now())),
            ));
        }
        pair.close(reset);
    }

    /// Our end of a client's connection, as shown: looked up only for a line that shows it.
    fn client_local(&self, client: &Stream) -> String {
        match client.local_shown() {
            s if s.is_empty() => self.shared.here.to_string(),
            s => s.trim_start_matches(" on ").to_string(),
        }
    }

    /// At stop: one last move for each pair, then every pair closed.
    fn close_all(&mut self) {
        let now = Instant::now();
        for (stream, _) in self.shared.lanes.take_inbox(self.id) {
            self.shared.lanes.left(self.id);
            stream.close();
        }
        let dump = self.shared.fwd.dump.as_ref();
        for slot in 0..self.pairs.end() {
            if let Some(pair) = self.pairs.get_mut(slot) {
                let _ = pair.pump(dump, &mut self.pipes, now);
                self.end(slot, End::Closed("server stopping".to_string()));
            }
        }
    }
}

/// Our end of the connection to the target, as shown (`?` when there is none).
fn target_local(target: Option<&Stream>) -> String {
    match target {
        Some(Stream::Tcp(t)) => t
            .local_addr()
            .map_or_else(|_| "?".to_string(), |a| plain_addr(a).to_string()),
        Some(Stream::Unix(_)) => "(unnamed)".to_string(),
        None => "?".to_string(),
    }
}

/// socket, the `--to-opt` options, connect() without waiting: the connection is under way
/// (EINPROGRESS) or, on loopback, sometimes made at once.
fn start_connect(addr: SocketAddr, plan: &Plan) -> io::Result<Stream> {
    let sock = socket::tcp_socket(socket2::Domain::for_address(addr))?;
    let target = socket::target(&addr, SockKind::Tcp);
    if let Err(e) = plan.apply(&sock, target, Stage::Early) {
        socket::close(sock);
        return Err(io::Error::other(format!("{e:#}")));
    }
    sock.set_nonblocking(true)?;
    let fd = sock.as_raw_fd();
    let result = narrate::traced(
        || match sock.connect(&SockAddr::from(addr)) {
            Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => Ok(()),
            other => other,
        },
        |r| {
            let res = match r {
                Ok(()) => "= -1 EINPROGRESS (Operation now in progress)".to_string(),
                Err(e) => narrate::errno_text(e),
            };
            format!("connect(fd {fd}, {addr}) {res}")
        },
    );
    if let Err(e) = result {
        socket::close(sock);
        return Err(e);
    }
    Ok(Stream::Tcp(mio::net::TcpStream::from_std(
        std::net::TcpStream::from(sock),
    )))
}

/// `--show-opts` for an outbound socket, once connected.
fn show_opts(s: &Stream, fwd: &Forward, shown: &str) {
    let target = match s {
        Stream::Tcp(t) => t
            .peer_addr()
            .map_or(unix::target(), |a| socket::target(&a, SockKind::Tcp)),
        Stream::Unix(_) => unix::target(),
    };
    let title = format!("outbound fd {} ({shown})", s.as_raw_fd());
    eprint!("{}", fwd.out_plan.show(&SockRef::from(s), target, &title));
}

/// The line at the end: pairs, failures, bytes each way, what was lost.
fn say_totals(sum: &Totals, seen: &Seen, started: Instant) {
    let refused = seen.refused_denied + seen.refused_full;
    narrate::emit(format_args!(
        "stopped{}: forwarded {} ({} refused: {} by --allow/--deny, {} at --max-conns; {} with \
         the target unreachable; {} reset; at most {} at once), {} to targets, {} back, {} \
         undelivered, up {}",
        seen.stopped_by
            .map(|s| format!(" on {s}"))
            .unwrap_or_default(),
        counted(sum.pairs, "client"),
        refused,
        seen.refused_denied,
        seen.refused_full,
        sum.failed,
        sum.reset,
        seen.peak,
        narrate::bytes(sum.up),
        narrate::bytes(sum.down),
        narrate::bytes(sum.undelivered),
        narrate::short(started.elapsed()),
    ));
}
