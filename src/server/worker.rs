//! One event loop (one thread): mio over epoll, edge-triggered. It takes on the clients handed
//! to it, and for each event moves that connection along: send what is owed, read, ask the
//! `Service`, send the answer (`drive`). Connections keep their own rules (`conn.rs`); the
//! first loop also runs the acceptor (`acceptor.rs`); a fan-out service's deliveries go
//! through `fanout.rs`. A periodic sweep (not per event) applies the clocks. Sockets are
//! owned by one loop alone: no locks on the data path.

use std::io;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use mio::{Events, Interest, Poll, Token};
use socket2::SockRef;

use super::acceptor::{Acceptor, Arrival, LISTENER, SIGNAL, Seen};
use super::conn::{AtCap, Conn, Input, LINGER, Overdue};
use super::fanout::{FAN_OUT_STALL, Failure, FanOut};
use super::lanes::{Lanes, WAKER};
use super::limits::Limits;
use super::peer::Peer;
use super::service::{Event, Farewell, Next, Service};
use super::slots::Slots;
use super::stream::Stream;
use super::turned::TurnedAway;
use crate::narrate;
use crate::socket;
use crate::sockopt::{Plan, SockKind, Stage};
use crate::tls::stage::Accept;

/// One read() asks for at most this much; it is also the loop's only read buffer.
const READ_BUF: usize = 64 * 1024;
/// Reads one client may do per turn before the others get theirs (fairness under load).
const READS_PER_TURN: usize = 8;

/// What every loop of one server works with.
pub struct Setup<'a, S> {
    pub lanes: &'a Lanes,
    pub service: &'a S,
    pub plan: &'a Plan,
    pub limits: &'a Limits,
    /// `--tls`: each client's stream is TLS, its handshake bounded.
    pub tls: Option<&'a Accept>,
}

impl<S> Clone for Setup<'_, S> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<S> Copy for Setup<'_, S> {}

/// What one loop did, for the totals line.
#[derive(Debug, Default, Clone)]
pub struct Totals {
    pub served: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// TLS clients whose EOF came without close_notify.
    pub truncated: u64,
}

impl Totals {
    pub fn add(&mut self, o: &Totals) {
        self.served += o.served;
        self.bytes_in += o.bytes_in;
        self.bytes_out += o.bytes_out;
        self.truncated += o.truncated;
    }
}

pub struct Worker<'a, S: Service> {
    /// This loop's lane.
    id: usize,
    poll: Poll,
    setup: Setup<'a, S>,
    conns: Slots<Conn<S::Session>>,
    /// How many of `conns` are owed `max_owed` or more.
    at_cap: AtCap,
    /// Clients that still had input when their turn ended (edge-triggered: no event will come).
    again: Vec<Token>,
    rbuf: Vec<u8>,
    out: Vec<u8>,
    totals: Totals,
    accept: Option<Acceptor>,
    sweep_every: Duration,
    next_sweep: Instant,
    fan: FanOut,
    /// Clients turned away at the door, told why and lingering until they close.
    turned: TurnedAway,
}

impl<'a, S: Service> Worker<'a, S> {
    /// Loop `id` on `poll`; the first one is given the `accept`or.
    pub fn new(id: usize, poll: Poll, setup: Setup<'a, S>, accept: Option<Acceptor>) -> Self {
        // Check often enough that an idle client goes within about a tenth of its timeout.
        let sweep_every = setup
            .limits
            .idle_timeout
            .map_or(Duration::from_secs(1), |t| t / 10)
            .clamp(Duration::from_millis(10), Duration::from_secs(1));
        Worker {
            id,
            poll,
            setup,
            conns: Slots::new(),
            at_cap: AtCap::new(setup.limits.max_owed),
            again: Vec::new(),
            rbuf: vec![0; READ_BUF],
            out: Vec::with_capacity(READ_BUF),
            totals: Totals::default(),
            accept,
            sweep_every,
            next_sweep: Instant::now() + sweep_every,
            fan: FanOut::default(),
            turned: TurnedAway::default(),
        }
    }

    /// Runs until the server stops. Returns this loop's totals, and from the first loop what
    /// the acceptor saw.
    pub fn run(mut self) -> Result<(Totals, Option<Seen>)> {
        let result = self.run_loop();
        if result.is_err() {
            // A loop that cannot wait for events can serve no one: stop the whole server
            // rather than let the acceptor hand clients to a loop that is gone.
            self.setup.lanes.stop_all();
        }
        // No new client while the others are told goodbye.
        let seen = self.accept.take().map(|a| a.close(self.poll.registry()));
        self.close_all();
        result?;
        Ok((self.totals, seen))
    }

    fn run_loop(&mut self) -> Result<()> {
        if let Some(a) = self.accept.as_mut() {
            a.register(self.poll.registry())?;
        }
        let mut events = Events::with_capacity(1024);
        loop {
            let timeout = self.timeout(Instant::now());
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
                        stop |= self.setup.lanes.stopping();
                    }
                    t => {
                        if let Some(i) = self.turned.place_of(t) {
                            self.turned.readable(i);
                            continue;
                        }
                        let Some(slot) = self.conns.slot_of(t) else {
                            continue;
                        };
                        if let Some(c) = self.conns.get_mut(slot) {
                            c.woken(ev.is_readable(), ev.is_read_closed() || ev.is_error());
                        }
                        self.drive(slot, now);
                    }
                }
            }
            if stop {
                return Ok(());
            }
            for t in std::mem::take(&mut self.again) {
                if let Some(slot) = self.conns.slot_of(t) {
                    self.drive(slot, now);
                }
            }
            if self.accept.as_ref().is_some_and(|a| a.due(now)) {
                self.accept_all(now);
            }
            if now >= self.next_sweep {
                self.sweep(now);
            }
            if self.fan.check_at().is_some_and(|t| now >= t) {
                self.drop_stalled(now);
            }
            self.fan.release(&self.at_cap, &mut self.again);
        }
    }

    /// How long epoll_wait may sleep: not past the next idle sweep or the end of an accept
    /// pause, and not at all while some client still has input waiting.
    fn timeout(&self, now: Instant) -> Duration {
        let until = self
            .fan
            .check_at()
            .map_or(self.next_sweep, |t| t.min(self.next_sweep));
        super::acceptor::wait(self.accept.as_ref(), !self.again.is_empty(), until, now)
    }

    /// A wake-up on the signal pipe: true when it was SIGINT or SIGTERM.
    fn signalled(&mut self) -> bool {
        let Some(sig) = self.accept.as_mut().and_then(Acceptor::signalled) else {
            return false;
        };
        narrate::info(format_args!(
            "{sig}: stopping (no new clients; closing {} open)",
            self.setup.lanes.open()
        ));
        true
    }

    fn accept_all(&mut self, now: Instant) {
        let Some(mut a) = self.accept.take() else {
            return;
        };
        let Setup { lanes, limits, .. } = self.setup;
        a.accept_all(lanes, limits, self.id, now, |arrival| match arrival {
            Arrival::Admitted(stream, peer) => self.open_conn(stream, peer, now),
            Arrival::Full(stream, max) => {
                self.out.clear();
                // A TLS client could not read a plain line: it is closed without one.
                if self.setup.tls.is_none() {
                    self.setup
                        .service
                        .farewell(&Farewell::Full(max), &mut self.out);
                }
                self.turned
                    .add(self.poll.registry(), stream, &self.out, now);
            }
        });
        self.accept = Some(a);
    }

    fn take_inbox(&mut self, now: Instant) {
        for (stream, peer) in self.setup.lanes.take_inbox(self.id) {
            if self.setup.lanes.stopping() {
                self.forget(stream);
            } else {
                self.open_conn(stream, peer, now);
            }
        }
    }

    /// A client that never became a connection here: give back its counts and close it.
    fn forget(&mut self, stream: Stream) {
        self.setup.lanes.left(self.id);
        stream.close();
    }

    /// Takes on an admitted client: its socket options, its slot, its registration, the
    /// service's greeting.
    fn open_conn(&mut self, mut stream: Stream, peer: Peer, now: Instant) {
        let target = match &peer {
            Peer::Ip(a) => socket::target(a, SockKind::Tcp),
            Peer::Unix(_) => crate::socket::unix::target(),
        };
        if let Err(e) = self
            .setup
            .plan
            .apply(&SockRef::from(&stream), target, Stage::Connected)
        {
            narrate::emit(format_args!("client {peer}: {e:#}"));
            return self.forget(stream);
        }
        if let Some(tls) = self.setup.tls {
            stream = match tls.wrap(stream, &peer.to_string()) {
                Ok(s) => Stream::Tls(Box::new(s)),
                Err(why) => {
                    narrate::emit(format_args!("client {peer}: {why}"));
                    return self.setup.lanes.left(self.id);
                }
            };
        }
        let (slot, t) = self.conns.vacant();
        if let Err(e) =
            self.poll
                .registry()
                .register(&mut stream, t, Interest::READABLE | Interest::WRITABLE)
        {
            narrate::emit(format_args!("client {peer}: registering with epoll: {e}"));
            self.conns.release(slot);
            return self.forget(stream);
        }
        self.out.clear();
        let session = self.setup.service.open(peer.sock_addr(), &mut self.out);
        self.totals.served += 1;
        if narrate::verbose() {
            // Both ends, as `listen` says them; the local one is looked up only when shown.
            narrate::emit(format_args!(
                "accepted {peer}{} (fd {}; {} connected)",
                stream.local_shown(),
                stream.as_raw_fd(),
                self.setup.lanes.open()
            ));
        }
        let mut conn = Conn::new(stream, peer, session, now);
        let greeted = conn.send(&self.out, now, &mut self.at_cap);
        self.conns.fill(slot, conn);
        if let Err(e) = greeted {
            return self.close(slot, crate::error::client_io_failure("write", &e));
        }
        self.share(slot, Event::Joined, now);
    }

    /// Moves one client along as far as it can go now: send what it is owed, read what it
    /// sent (unless it is owed its cap already: backpressure), answer, repeat.
    fn drive(&mut self, slot: usize, now: Instant) {
        let service = self.setup.service;
        let mut reads = 0;
        loop {
            let Some(c) = self.conns.get_mut(slot) else {
                return;
            };
            match c.pump(&mut self.at_cap, now) {
                Ok(true) => {}
                Ok(false) => return,
                Err(why) => return self.close(slot, why),
            }
            if S::FAN_OUT && self.at_cap.any() && !c.is_closing() {
                // Its bytes would go to a client that cannot take them: wait for that one.
                return self.fan.hold(self.conns.token(slot), now);
            }
            if reads == READS_PER_TURN {
                return self.again.push(self.conns.token(slot));
            }
            reads += 1;
            match c.read(&mut self.rbuf, self.at_cap.cap(), now) {
                Input::Nothing => {}
                Input::Drained => return,
                Input::Failed(e) if e.kind() == io::ErrorKind::InvalidData => {
                    // TLS refused (plain text, a bad certificate...): always said, as a drop.
                    let why = e.to_string();
                    say_dropped(&c.peer, &why);
                    return self.close(slot, why);
                }
                Input::Failed(e) => {
                    return self.close(slot, crate::error::client_io_failure("read", &e));
                }
                Input::Eof => {
                    self.out.clear();
                    let next = service.eof(&mut c.session, &mut self.out);
                    if let Err(e) = c.send(&self.out, now, &mut self.at_cap) {
                        return self.close(slot, crate::error::client_io_failure("write", &e));
                    }
                    self.share(slot, Event::Eof, now);
                    if let Next::Drop(why) = next
                        && let Some(c) = self.conns.get_mut(slot)
                    {
                        say_dropped(&c.peer, &why);
                        c.begin_closing(Some(why), now);
                    }
                    // Continue or Close alike: the client can send no more, so once what it
                    // is owed is out, the connection is done.
                }
                Input::Data(n) => {
                    self.out.clear();
                    let next = service.input(&mut c.session, &self.rbuf[..n], &mut self.out);
                    let sent = c.send(&self.out, now, &mut self.at_cap);
                    if self.out.capacity() > 4 * READ_BUF {
                        self.out = Vec::with_capacity(READ_BUF);
                    }
                    if let Err(e) = sent {
                        return self.close(slot, crate::error::client_io_failure("write", &e));
                    }
                    if let Some(why) = c.follow(next, now) {
                        // Its word to the client is queued; the lingering close sends it.
                        say_dropped(&c.peer, &why);
                    }
                    if S::FAN_OUT {
                        let data = Event::Data(&self.rbuf[..n]);
                        self.fan.tell(service, &mut c.session, data);
                        self.broadcast(Some(slot), now);
                    }
                }
            }
        }
    }

    /// Fan-out: tells the service what client `slot` did and delivers what it wrote for the
    /// others. A no-op for services without `FAN_OUT`.
    fn share(&mut self, slot: usize, event: Event, now: Instant) {
        if !S::FAN_OUT {
            return;
        }
        if let Some(c) = self.conns.get_mut(slot) {
            self.fan.tell(self.setup.service, &mut c.session, event);
            self.broadcast(Some(slot), now);
        }
    }

    /// Delivers what the service wrote for the others (see `fanout.rs`), closing the clients
    /// a delivery fails for.
    fn broadcast(&mut self, from: Option<usize>, now: Instant) {
        if !self.fan.post(from) {
            return;
        }
        while let Some(failed) = self.fan.deliver(&mut self.conns, &mut self.at_cap, now) {
            for (slot, failure) in failed {
                match failure {
                    Failure::Io(e) => {
                        self.close(slot, crate::error::client_io_failure("write", &e));
                    }
                    Failure::NotReading(why) => self.drop_client(slot, why),
                }
            }
        }
    }

    /// The engine ends a client for breaking a rule (not reading, as a fan-out recipient):
    /// always said, and closed at once, since nothing sent to it would be read.
    fn drop_client(&mut self, slot: usize, why: String) {
        if let Some(c) = self.conns.get(slot) {
            say_dropped(&c.peer, &why);
        }
        self.close(slot, why);
    }

    /// Ends a client for `farewell`: the service's line for it, then the lingering close
    /// (`Conn::begin_closing`), driven from here on like any connection.
    fn part(&mut self, slot: usize, farewell: &Farewell, why: String, now: Instant) {
        let Some(c) = self.conns.get_mut(slot) else {
            return;
        };
        if c.is_closing() {
            return;
        }
        self.out.clear();
        self.setup.service.farewell(farewell, &mut self.out);
        if let Err(e) = c.send(&self.out, now, &mut self.at_cap) {
            return self.close(slot, crate::error::client_io_failure("write", &e));
        }
        c.begin_closing(Some(why), now);
        self.drive(slot, now);
    }

    /// Fan-out, while senders are held, at the deadline `fan` set: every recipient owed its
    /// cap that has taken nothing for `FAN_OUT_STALL` is dropped (always said), so the others
    /// go on at once, not at the next sweep.
    fn drop_stalled(&mut self, now: Instant) {
        let cap = self.at_cap.cap();
        for slot in 0..self.conns.end() {
            if let Some(why) = self
                .conns
                .get(slot)
                .and_then(|c| c.not_reading(now, cap, FAN_OUT_STALL))
            {
                self.drop_client(slot, why);
            }
        }
        self.fan.checked(now, self.at_cap.any());
    }

    /// The clocks, once per `sweep_every`: clients idle past `--idle-timeout` are told and
    /// closed lingering; those lingering past their time are closed.
    fn sweep(&mut self, now: Instant) {
        let idle = self.setup.limits.idle_timeout;
        for slot in 0..self.conns.end() {
            let Some(c) = self.conns.get(slot) else {
                continue;
            };
            match c.overdue(now, idle) {
                Some(Overdue::Now(why)) => self.close(slot, why),
                Some(Overdue::Dropped(why)) => self.drop_client(slot, why),
                Some(Overdue::Idle(limit, why)) => {
                    self.part(slot, &Farewell::Idle(limit), why, now);
                }
                None => {}
            }
        }
        self.turned.sweep(Some(now));
        self.next_sweep = now + self.sweep_every;
    }

    /// Ends a client: the others told (fan-out), its counts given back, its close.
    fn close(&mut self, slot: usize, why: String) {
        let Some(mut c) = self.conns.remove(slot) else {
            return;
        };
        // At stop nobody is told: everyone is leaving.
        if S::FAN_OUT && !self.fan.quiet {
            self.fan
                .tell(self.setup.service, &mut c.session, Event::Left(&why));
            self.broadcast(None, Instant::now());
        }
        self.setup.lanes.left(self.id);
        let (bytes_in, bytes_out, truncated) = c.close(&why, &mut self.at_cap);
        self.totals.bytes_in += bytes_in;
        self.totals.bytes_out += bytes_out;
        self.totals.truncated += u64::from(truncated);
    }

    /// At stop: each client is told (where the protocol has lines) and closed lingering, as
    /// any client is ended: what it is owed goes out, then our FIN, then its input is drained
    /// until it closes. The whole stop waits at most `LINGER` for them; whoever is left then
    /// is closed as it is.
    fn close_all(&mut self) {
        let now = Instant::now();
        self.fan.quiet = true;
        for (stream, _) in self.setup.lanes.take_inbox(self.id) {
            self.forget(stream);
        }
        for slot in 0..self.conns.end() {
            self.part(
                slot,
                &Farewell::Stopping,
                "server stopping".to_string(),
                now,
            );
        }
        let deadline = now + LINGER;
        let mut events = Events::with_capacity(256);
        while self.conns.occupied() > 0 {
            let now = Instant::now();
            let Some(left) = deadline
                .checked_duration_since(now)
                .filter(|d| !d.is_zero())
            else {
                break;
            };
            if self.poll.poll(&mut events, Some(left)).is_err() {
                break;
            }
            let now = Instant::now();
            for ev in &events {
                let Some(slot) = self.conns.slot_of(ev.token()) else {
                    continue;
                };
                if let Some(c) = self.conns.get_mut(slot) {
                    c.woken(ev.is_readable(), ev.is_read_closed() || ev.is_error());
                }
                self.drive(slot, now);
            }
            for t in std::mem::take(&mut self.again) {
                if let Some(slot) = self.conns.slot_of(t) {
                    self.drive(slot, now);
                }
            }
        }
        for slot in 0..self.conns.end() {
            if let Some(c) = self.conns.get_mut(slot) {
                let _ = c.flush(now, &mut self.at_cap);
                self.close(slot, "server stopping; did not close in time".to_string());
            }
        }
        self.turned.sweep(None);
    }
}

/// A client ended for breaking a rule: always said, `-v` or not (at `-v` its `closed` line
/// follows when the lingering close is over).
fn say_dropped(peer: &Peer, why: &str) {
    narrate::emit(format_args!("dropped {peer}: {why}"));
}
