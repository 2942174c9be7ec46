//! The forwarding server: the engine's acceptor, lanes and limits, with loops of its own whose
//! connections are pairs (`pair.rs`) instead of a client and a `Service`. For each admitted
//! client a loop opens the outbound connection itself (non-blocking, inside the loop: every
//! address of the target in turn, each bounded by the connect timeout), then moves both
//! directions as events come. A target that refuses or times out has its client reset at once
//! and the reason said; a pair ends when both FINs are passed on, or is reset on both sides
//! when either fails. With `--socks5` a pair first speaks SOCKS5 with its client (`socks.rs`),
//! and the target it names passes --allow/--deny before the connect. The -v line per pair, the
//! totals at the end. What the options mean on the command line is cmd's (`cmd/forward.rs`).

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
use super::lookup::{Lookup, Names};
use super::pair::{Broken, Pair, PipePool, Side, Turn};
use super::peer::{Peer, plain_addr};
use super::report::counted;
use super::slots::Slots;
use super::socks::{self, Auth, Handshake, Progress};
use super::stop::Stop;
use super::stream::{Listen, Stream};
use super::summary;
use super::via::{Via, Went};
use crate::addr::{Family, UnixAddr};
use crate::capture::Legs;
use crate::narrate;
use crate::relay::wire::Dump;
use crate::socket::{self, Proxy, unix};
use crate::sockopt::{Plan, SockKind, Stage};
use crate::tls::stage::{Accept, Originate};

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
    /// `--socks5`: wherever each client asks, by SOCKS5 (with `--proxy-auth`, only for a
    /// client that gives the username and password), names resolved in `family`.
    Socks5 {
        auth: Option<Auth>,
        family: Family,
    },
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
    /// `--proxy`: each outbound connection goes to this proxy, which is asked for the target.
    pub proxy: Option<Proxy>,
    /// `--tls`: TLS with each client (terminated here).
    pub tls: Option<Accept>,
    /// `--to-tls`: TLS to the target (originated here, verified).
    pub to_tls: Option<Originate>,
    /// `--wire`/`--pcap`/`--trace`: the capture, told of each target leg as it opens, so it
    /// follows whichever address (or proxy) the leg goes to.
    pub legs: Option<Legs>,
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
    if fwd.tls.is_some() || fwd.to_tls.is_some() {
        narrate::info(format_args!(
            "moving bytes through rustls and a {} buffer per direction (TLS is encrypted and \
             decrypted here, so no splice)",
            narrate::bytes(super::pair::COPY_BUF as u64)
        ));
    } else if fwd.dump.is_some() {
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
    // With --proxy the outbound connections all go to the proxy: its name is the one looked up.
    let lookup = match (&fwd.proxy, &fwd.dest) {
        (Some(proxy), _) => {
            let (host, port) = (&proxy.url.host, proxy.url.port);
            let first = crate::addr::resolve(host, port, Family::Any)?;
            Some(Lookup::start(host, port, Family::Any, first))
        }
        (None, Dest::Ip { host, port, family }) => Some(Lookup::start(
            host,
            *port,
            *family,
            crate::addr::resolve(host, *port, *family)?,
        )),
        (None, Dest::Unix(_) | Dest::Socks5 { .. }) => None,
    };
    // What the proxy is asked for, when HOST is fixed: worked out once, so a name the proxy
    // wants resolved here (`--proxy-dns local`, socks4://) is never looked up in a loop.
    let via_target = match (&fwd.proxy, &fwd.dest) {
        (Some(proxy), Dest::Ip { host, port, family }) => {
            Some(socket::destination(proxy, host, *port, *family)?)
        }
        _ => None,
    };
    let started = Instant::now();
    let shared = Shared {
        lanes: &lanes,
        limits: &limits,
        plan,
        fwd,
        here: &here,
        lookup: lookup.as_deref(),
        via_target: via_target.as_ref(),
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
                .spawn_scoped(scope, move || {
                    let _stop = shared.lanes.stop_all_if_this_panics();
                    Loop::new(i + 1, poll, shared, None).run()
                });
            match handle {
                Ok(h) => handles.push(h),
                Err(e) => {
                    lanes.stop_all();
                    return vec![Err(anyhow!("starting an event-loop thread: {e}"))];
                }
            }
        }
        let mut all = vec![{
            let _stop = lanes.stop_all_if_this_panics();
            Loop::new(0, poll0, shared, Some(acceptor)).run()
        }];
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
    if narrate::json() {
        let o = summary::refusals(summary::totals_head(sum.pairs), &seen)
            .num("failed", sum.failed)
            .num("reset", sum.reset)
            .num("truncated", sum.truncated)
            .num("up", sum.up)
            .num("down", sum.down)
            .num("undelivered", sum.undelivered);
        narrate::json_line(&summary::totals_tail(o, started.elapsed(), seen.stopped_by));
    } else if narrate::verbose() || sum.undelivered > 0 {
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
    /// With `--proxy` and a fixed HOST: what each connection asks the proxy for.
    via_target: Option<&'a crate::proxy::Dest>,
}

/// What one loop did, for the totals line.
#[derive(Debug, Default)]
struct Totals {
    pairs: u64,
    /// Clients whose target could not be reached.
    failed: u64,
    /// Pairs ended by a reset (from either side, or by us).
    reset: u64,
    /// Pairs where a TLS side ended without close_notify (passed on as a bare FIN).
    truncated: u64,
    up: u64,
    down: u64,
    undelivered: u64,
}

impl Totals {
    fn add(&mut self, o: &Totals) {
        self.pairs += o.pairs;
        self.failed += o.failed;
        self.reset += o.reset;
        self.truncated += o.truncated;
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
    /// `--socks5` clients' target names, looked up off the loop (started at the first name).
    names: Option<Names>,
}

/// The token of the lookup thread's answers.
const NAMES: Token = Token(usize::MAX - 3);

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
            names: None,
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
            let timeout = super::acceptor::wait(
                self.accept.as_ref(),
                !self.again.is_empty(),
                self.next_sweep,
                now,
            );
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
                    NAMES => self.names_answered(now),
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
        let fwd = self.shared.fwd;
        // TLS bytes are encrypted and decrypted on the way: they must pass through us.
        let copy = fwd.dump.is_some() || fwd.tls.is_some() || fwd.to_tls.is_some();
        if let Some(tls) = &fwd.tls {
            stream = match tls.wrap(stream, &peer.to_string()) {
                Ok(s) => Stream::Tls(Box::new(s)),
                Err(why) => {
                    narrate::emit(format_args!("client {peer}: {why}"));
                    self.shared.lanes.left(self.id);
                    self.pairs.release(slot);
                    return;
                }
            };
        }
        let mut pair = Pair::new(stream, peer, copy, now);
        let first = match &self.shared.fwd.dest {
            Dest::Ip { port, .. } => match self.shared.lookup.map(Lookup::current) {
                Some(Ok(addrs)) => {
                    // Through a proxy the addresses are the proxy's, and the target is what
                    // it is asked for.
                    if let Some(dest) = self.shared.via_target {
                        pair.via_dest = Some((dest.clone(), *port));
                    }
                    pair.next_addrs = addrs;
                    pair.next_addrs.reverse();
                    Ok(())
                }
                Some(Err(why)) => Err(why),
                None => Err("no lookup for the target".to_string()),
            },
            Dest::Unix(path) => self.connect_unix(&mut pair, path, slot),
            Dest::Socks5 { .. } => {
                pair.socks = Some(Handshake::default());
                // The handshake, like a connect, has -w to finish in.
                pair.deadline = Some(now + self.shared.fwd.connect_timeout);
                Ok(())
            }
        };
        self.pairs.fill(slot, pair);
        match first {
            Err(why) => self.fail(slot, &why),
            Ok(()) if matches!(self.shared.fwd.dest, Dest::Socks5 { .. }) => {
                self.socks_turn(slot, now);
            }
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
                pair.leg = None;
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
            // Registered before connect() sends the SYN, so the capture has it.
            let leg = fwd.legs.as_ref().map(|l| l.open(addr));
            match start_connect(addr, &fwd.out_plan) {
                Ok(mut s) => {
                    if let (Some(leg), Stream::Tcp(t)) = (&leg, &s)
                        && let Ok(local) = t.local_addr()
                    {
                        leg.bound(local);
                    }
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
                    pair.leg = leg;
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
            if side == Side::Target && pair.via.is_some() {
                self.via_turn(slot, now);
            } else if side == Side::Target {
                self.connect_result(slot, now);
            } else if pair.socks.as_ref().is_some_and(|h| !h.connecting()) {
                self.socks_turn(slot, now);
            }
            // The client's bytes wait in its socket until the target is there.
            return;
        }
        self.drive(slot, now);
    }

    /// `--socks5`: the handshake as far as the client's bytes go; once it names a target, the
    /// rules (`--allow`/`--deny` apply to the target too), then the connect.
    fn socks_turn(&mut self, slot: usize, now: Instant) {
        let Dest::Socks5 { auth, family } = &self.shared.fwd.dest else {
            return;
        };
        let Some(pair) = self.pairs.get_mut(slot) else {
            return;
        };
        let Some(hs) = pair.socks.as_mut() else {
            return;
        };
        let (dest, port) = match hs.turn(&pair.client, auth.as_ref(), &pair.peer) {
            Progress::Wait => return,
            Progress::Over(why) => return self.socks_over(slot, &why),
            Progress::Connect(dest, port) => (dest, port),
        };
        let host = match &dest {
            crate::proxy::Dest::Name(n) => n.clone(),
            crate::proxy::Dest::Ip(ip) => ip.to_string(),
        };
        let rules = !(self.shared.limits.allow.is_empty() && self.shared.limits.deny.is_empty());
        let via = self.shared.fwd.proxy.is_some();
        let here = self
            .shared
            .fwd
            .proxy
            .as_ref()
            .is_some_and(socket::resolves_here);
        pair.asked = Some((dest.to_string(), host.clone(), port));
        if matches!(dest, crate::proxy::Dest::Name(_)) && (!via || rules || here) {
            // getaddrinfo may take seconds: asked of the lookup thread, answered by NAMES.
            let family = *family;
            let token = self.pairs.token(slot);
            return self.ask_name(slot, token, &host, port, family);
        }
        // An address needs no lookup, and through --proxy without rules a name is the
        // proxy's to look up.
        let addrs = if via && !rules && !here {
            Ok(Vec::new())
        } else {
            crate::addr::resolve(&host, port, *family).map_err(|e| format!("{e:#}"))
        };
        self.socks_target(slot, addrs, now);
    }

    /// Hands `host` to the loop's lookup thread (started at the first name).
    fn ask_name(&mut self, slot: usize, token: Token, host: &str, port: u16, family: Family) {
        if self.names.is_none() {
            match Names::start(self.poll.registry(), NAMES) {
                Ok(n) => self.names = Some(n),
                Err(e) => return self.fail(slot, &format!("starting the lookup thread: {e}")),
            }
        }
        if !self
            .names
            .as_ref()
            .is_some_and(|n| n.ask(token, host, port, family))
        {
            self.fail(slot, "the lookup thread has gone");
        }
    }

    /// The lookup thread's answers, each to its pair if the pair is still there.
    fn names_answered(&mut self, now: Instant) {
        let answers = self.names.as_ref().map(Names::answered).unwrap_or_default();
        for (token, addrs) in answers {
            if let Some(slot) = self.pairs.slot_of(token) {
                self.socks_target(slot, addrs, now);
            }
        }
    }

    /// The requested target's addresses are known (or not): the rules, then the connect,
    /// directly or through `--proxy`.
    fn socks_target(&mut self, slot: usize, addrs: Result<Vec<SocketAddr>, String>, now: Instant) {
        let Dest::Socks5 { family, .. } = &self.shared.fwd.dest else {
            return;
        };
        let family = *family;
        let Some((dest, host, port)) = self.pairs.get_mut(slot).and_then(|p| p.asked.take()) else {
            return;
        };
        if let Some(proxy) = &self.shared.fwd.proxy {
            return self.socks_via(slot, proxy, &host, port, family, addrs, now);
        }
        let addrs = match addrs {
            Ok(a) => a,
            Err(why) => {
                if let Some(hs) = self.pairs.get_mut(slot).and_then(|p| p.socks.as_mut()) {
                    hs.fail_code = 4;
                }
                return self.fail(slot, &why);
            }
        };
        if let Some((a, why)) = addrs
            .iter()
            .find_map(|a| self.shared.limits.refuses(a.ip()).map(|w| (a, w)))
        {
            if let Some(hs) = self.pairs.get_mut(slot).and_then(|p| p.socks.as_mut()) {
                hs.fail_code = 2;
            }
            return self.fail(
                slot,
                &format!("the target {dest}:{port} ({}) {why}", a.ip()),
            );
        }
        if let Some(pair) = self.pairs.get_mut(slot) {
            pair.target_addr = format!("{dest}:{port}");
            pair.next_addrs = addrs;
            pair.next_addrs.reverse();
        }
        self.next_attempt(slot, now, Vec::new());
    }

    /// `--socks5 --proxy`: the client's target is asked of the proxy. --allow/--deny still
    /// apply to it: a name is resolved here for them when there are rules.
    #[allow(clippy::too_many_arguments)]
    fn socks_via(
        &mut self,
        slot: usize,
        proxy: &Proxy,
        host: &str,
        port: u16,
        family: Family,
        resolved: Result<Vec<SocketAddr>, String>,
        now: Instant,
    ) {
        let limits = self.shared.limits;
        // A name the proxy wants resolved here was looked up off the loop already: hand
        // destination() the address, which needs no lookup.
        let looked_up = match (&resolved, socket::resolves_here(proxy)) {
            (Ok(addrs), true) => addrs.first().map(|a| a.ip().to_string()),
            _ => None,
        };
        if socket::resolves_here(proxy)
            && let Err(why) = &resolved
        {
            return self.fail(slot, why);
        }
        let host = looked_up.as_deref().unwrap_or(host);
        if !(limits.allow.is_empty() && limits.deny.is_empty()) {
            let refused = match resolved {
                Ok(addrs) => addrs
                    .iter()
                    .find_map(|a| limits.refuses(a.ip()).map(|w| format!("({}) {w}", a.ip()))),
                Err(e) => Some(format!("cannot be checked against --allow/--deny: {e}")),
            };
            if let Some(why) = refused {
                if let Some(hs) = self.pairs.get_mut(slot).and_then(|p| p.socks.as_mut()) {
                    hs.fail_code = 2;
                }
                return self.fail(slot, &format!("the target {host}:{port} {why}"));
            }
        }
        let Some(pair) = self.pairs.get_mut(slot) else {
            return;
        };
        let addrs = self.shared.lookup.map(Lookup::current);
        let ready = socket::destination(proxy, host, port, family)
            .map_err(|e| format!("{e:#}"))
            .and_then(|dest| {
                pair.target_addr = format!("{dest}:{port}");
                pair.via_dest = Some((dest, port));
                let mut a = addrs.unwrap_or_else(|| Err("no lookup for the proxy".into()))?;
                a.reverse();
                pair.next_addrs = a;
                Ok(())
            });
        match ready {
            Ok(()) => self.next_attempt(slot, now, Vec::new()),
            Err(why) => self.fail(slot, &why),
        }
    }

    /// A SOCKS5 client that did not get as far as a target: closed (the answer, where SOCKS5
    /// has one, is already written), the reason said with -v.
    fn socks_over(&mut self, slot: usize, why: &str) {
        let Some(pair) = self.pairs.remove(slot) else {
            return;
        };
        let (up, down) = pair.delivered(false);
        self.json_pair(&pair, (up, down, 0), why);
        narrate::info(format_args!("{}: {why}; closed", pair.peer));
        self.totals.failed += 1;
        self.shared.lanes.left(self.id);
        pair.close(false);
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
        // `--proxy`: this is the proxy; the handshake comes before the relay, within -w.
        if let (Some(proxy), Some((dest, port))) = (&fwd.proxy, pair.via_dest.take()) {
            match Via::start(&proxy.url, dest, port, s) {
                Ok(v) => {
                    pair.via = Some(v);
                    pair.deadline = Some(now + fwd.connect_timeout);
                    return self.via_turn(slot, now);
                }
                Err(why) => return self.fail(slot, &format!("proxy {}: {why}", proxy.url)),
            }
        }
        self.established(slot, now);
    }

    /// `--proxy`: the handshake as far as the proxy's bytes go.
    fn via_turn(&mut self, slot: usize, now: Instant) {
        let Some(pair) = self.pairs.get_mut(slot) else {
            return;
        };
        let (Some(via), Some(s)) = (pair.via.as_mut(), pair.target.as_ref()) else {
            return;
        };
        match via.turn(s) {
            Went::Wait => {}
            Went::Reached => {
                pair.via = None;
                self.established(slot, now);
            }
            Went::Failed(why) => self.fail(slot, &why),
        }
    }

    /// The way to the target is open (connected, and through the proxy if there is one):
    /// a SOCKS5 client is told so, and the relay starts.
    fn established(&mut self, slot: usize, now: Instant) {
        let fwd = self.shared.fwd;
        let Some(pair) = self.pairs.get_mut(slot) else {
            return;
        };
        let Some(s) = &pair.target else {
            return;
        };
        if pair.socks.is_some() {
            let bound = SockRef::from(s)
                .local_addr()
                .ok()
                .and_then(|a| a.as_socket());
            if let Err(why) = socks::answer(&pair.client, 0, bound, &pair.peer) {
                return self.end(slot, End::Reset(why));
            }
        }
        pair.up_and_running = true;
        pair.sample_target();
        pair.deadline = None;
        pair.last = now;
        if fwd.show_opts {
            show_opts(s, fwd, &pair.target_addr);
        }
        // The client's handshake clock starts now: it could not go on while the target was
        // being reached.
        if let Some(t) = pair.client.tls() {
            t.start_clock();
        }
        if let Some(to) = &fwd.to_tls
            && let Some(plain) = pair.target.take()
        {
            let who = format!("{} -> target", pair.peer);
            match to.wrap(plain, &who) {
                Ok(s) => pair.target = Some(Stream::Tls(Box::new(s))),
                Err((plain, why)) => {
                    pair.target = Some(plain);
                    return self.fail(slot, &why);
                }
            }
        }
        self.drive(slot, now);
    }

    fn connect_failed(&mut self, slot: usize, addr: SocketAddr, e: &io::Error, now: Instant) {
        let why = crate::error::connect_failure(addr, e);
        if let Some(hs) = self.pairs.get_mut(slot).and_then(|p| p.socks.as_mut()) {
            hs.fail_code = socks::code_for(e);
        }
        if let Some(pair) = self.pairs.get_mut(slot)
            && let Some(mut s) = pair.target.take()
        {
            let _ = self.poll.registry().deregister(&mut s);
            s.close();
            pair.leg = None;
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
        self.totals.failed += 1;
        self.shared.lanes.left(self.id);
        let (up, down) = pair.delivered(false);
        self.json_pair(&pair, (up, down, 0), &format!("target unreachable: {why}"));
        // A SOCKS5 client is told why in its reply, so it is closed, not reset.
        if let Some(hs) = pair.socks.as_ref().filter(|h| h.connecting()) {
            let _ = socks::answer(&pair.client, hs.fail_code, None, &pair.peer);
            narrate::emit(format_args!(
                "{}: target unreachable, SOCKS5 reply {} ({}): {why}",
                pair.peer,
                hs.fail_code,
                crate::proxy::socks5::reply_name(hs.fail_code)
            ));
            return pair.close(false);
        }
        narrate::emit(format_args!(
            "{}: target unreachable, client reset: {why}",
            pair.peer
        ));
        pair.close(true);
    }

    /// Moves a pair along; ends it when both directions are done or either side failed.
    fn drive(&mut self, slot: usize, now: Instant) {
        let dump = self.shared.fwd.dump.as_ref();
        let Some(pair) = self.pairs.get_mut(slot) else {
            return;
        };
        let pumped = pair.pump(dump, &mut self.pipes, now);
        pair.tell_tls();
        match pumped {
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
                let why = if e.kind() == io::ErrorKind::InvalidData {
                    // TLS refused (plain text, a bad certificate): its sentence, always said.
                    let why = format!("{who}: {e}");
                    narrate::emit(format_args!("dropped {}: {why}", pair.peer));
                    why
                } else {
                    format!("{who}: {}", crate::error::plain(&e))
                };
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
                && pair.target.is_none()
                && pair.socks.as_ref().is_some_and(|h| !h.connecting())
            {
                let took = narrate::short(self.shared.fwd.connect_timeout);
                self.socks_over(
                    slot,
                    &format!("the SOCKS5 handshake did not finish in {took} (-w)"),
                );
            } else if let Some(d) = pair.deadline
                && now >= d
                && pair.via.is_some()
            {
                let took = narrate::short(self.shared.fwd.connect_timeout);
                self.fail(
                    slot,
                    &format!("the proxy's handshake did not finish in {took} (-w)"),
                );
            } else if let Some(d) = pair.deadline
                && now >= d
            {
                let addr = pair
                    .target_addr
                    .parse()
                    .unwrap_or_else(|_| SocketAddr::new(std::net::Ipv4Addr::UNSPECIFIED.into(), 0));
                let e = io::Error::from_raw_os_error(libc::ETIMEDOUT);
                self.connect_failed(slot, addr, &e, now);
            } else if let Some(why) = pair.tls_overdue(now) {
                narrate::emit(format_args!("dropped {}: {why}", pair.peer));
                self.end(slot, End::Reset(why));
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
        let broke = matches!(how, End::Reset(_));
        let lost = pair.undelivered(broke);
        let (up, down) = pair.delivered(broke);
        self.totals.up += up;
        self.totals.down += down;
        self.totals.undelivered += lost;
        // Always said, as the server engine says it: what that side sent may be cut short,
        // and the other side was given a bare FIN, not close_notify, to show it.
        let cut = [
            (pair.up.truncated, "client", up, "target"),
            (pair.down.truncated, "target", down, "client"),
        ];
        let mut truncated = false;
        for (_, side, n, other) in cut.into_iter().filter(|c| c.0) {
            truncated = true;
            narrate::emit(format_args!(
                "{} ({side} side): TLS: EOF without close_notify after {}: possible truncation \
                 (passed on to the {other} as a bare FIN)",
                pair.peer,
                narrate::bytes(n)
            ));
        }
        if truncated {
            self.totals.truncated += 1;
        }
        let (reset, how) = match how {
            End::Done => (false, "both sides done".to_string()),
            End::Closed(why) => (false, why),
            End::Reset(why) => (true, format!("reset: {why}")),
        };
        if reset {
            self.totals.reset += 1;
        }
        self.json_pair(&pair, (up, down, lost), &how);
        if !narrate::json() && (narrate::verbose() || lost > 0) {
            narrate::emit(format_args!(
                "pair {} -> {} | {} -> {}: {} to the target, {} back, {} undelivered, {} ({how})",
                pair.peer,
                self.client_local(&pair.client),
                target_local(pair.target.as_ref()),
                pair.target_addr,
                narrate::bytes(up),
                narrate::bytes(down),
                narrate::bytes(lost),
                narrate::short(pair.age(Instant::now())),
            ));
        }
        pair.close(reset);
    }

    /// `--json`: the pair's object as it ends (bytes delivered each way, and `lost`: bytes
    /// read but never delivered).
    fn json_pair(&self, pair: &Pair, (up, down, lost): (u64, u64, u64), reason: &str) {
        if !narrate::json() {
            return;
        }
        let local = self.client_local(&pair.client);
        let o = summary::pair(&summary::Pair {
            proto: if matches!(pair.peer, Peer::Ip(_)) {
                "tcp"
            } else {
                "unix"
            },
            peer: &pair.peer,
            local: &local,
            target: &pair.target_addr,
            up,
            down,
            elapsed: pair.age(Instant::now()),
            reason,
        });
        let tls = |s: Option<&Stream>| {
            s.and_then(Stream::tls)
                .map_or_else(|| "null".to_string(), crate::tls::TlsStream::json)
        };
        let o = o
            .num("undelivered", lost)
            .raw("client_tls", tls(Some(&pair.client)))
            .raw("target_tls", tls(pair.target.as_ref()));
        narrate::json_line(&o.text());
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
        Some(Stream::Tls(t)) => target_local(Some(t.get_ref())),
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
        Stream::Unix(_) | Stream::Tls(_) => unix::target(),
    };
    let title = format!("outbound fd {} ({shown})", s.as_raw_fd());
    eprint!("{}", fwd.out_plan.show(&SockRef::from(s), target, &title));
}

/// The line at the end: pairs, failures, bytes each way, what was lost.
fn say_totals(sum: &Totals, seen: &Seen, started: Instant) {
    let refused = seen.refused_denied + seen.refused_full;
    narrate::emit(format_args!(
        "stopped{}: forwarded {} ({} refused: {} by --allow/--deny, {} at --max-conns; {} with \
         the target unreachable; {} reset{}; at most {} at once), {} to targets, {} back, {} \
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
        match sum.truncated {
            0 => String::new(),
            n => format!(", {n} with a TLS truncation"),
        },
        seen.peak,
        narrate::bytes(sum.up),
        narrate::bytes(sum.down),
        narrate::bytes(sum.undelivered),
        narrate::short(started.elapsed()),
    ));
}
