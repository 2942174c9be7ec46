//! A forwarder's target legs as the capture sees them: each outbound connection is
//! registered here as it starts (before its connect() sends the SYN) and let go when its
//! socket closes, and every change rebuilds the kernel filter (filter.rs) and attaches it to
//! the capture socket again, so the capture follows whichever address a connect falls
//! through to, and targets known only per pair (`--socks5`, `--proxy`). The reader
//! (handle.rs) asks [`Legs::which`] whether a packet is on one of them.
//!
//! Two clocks, kept apart: the kernel filter keeps a closed leg for [`LINGER`] after close()
//! by the engine's clock (its last FIN and ACK come after close()), while the reader's match
//! keeps it until the reader itself has handled a packet the kernel stamped later than that
//! (or has found the line quiet past it), so a reader that falls behind still finds the leg
//! of every packet queued for it. A leg that never got a local address sent nothing that
//! can be told and is let go at once.
//!
//! Bounded: the filter holds at most [`MAX_LEGS`] legs, and no more than the kernel's
//! socket option memory (net.core.optmem_max, charged for the old and the new program at
//! once while they are swapped) takes; past either it takes every packet to or from the
//! legs' remote ports (or, past that too, every packet of the transport), the user-space
//! match stays exact, and this is said once. Which sockets to register is the forwarding
//! engine's; the socket calls are `crate::sys`'s.

use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use super::filter::{self, Match};
use crate::error;
use crate::narrate;
use crate::sys;

/// How long a closed leg's packets are still taken: its FIN, the peer's FIN and the last
/// ACK follow close() by about a round trip.
pub const LINGER: Duration = Duration::from_secs(2);
/// The most legs the filter tells apart by their ports; more than this at once (live or
/// lingering) and it widens.
pub const MAX_LEGS: usize = 256;
/// A closed leg the reader has still not let go this long after its close is dropped
/// anyway: only a wall clock set back keeps one so long (the reader lets go by packet
/// stamps), and the list must stay bounded.
const FORGOTTEN: Duration = Duration::from_mins(10);
/// What the kernel charges per classic instruction, about: it converts the program to eBPF
/// (a jump and a return become three or four instructions of 8 bytes) and charges the
/// converted size against optmem_max.
const CHARGED_PER_INSN: usize = 16;
/// The kernel's own part of a charged program (struct bpf_prog and sk_filter), about.
const CHARGED_HEAD: usize = 256;

/// One target leg.
#[derive(Debug, Clone, Copy)]
struct Entry {
    id: u64,
    remote: SocketAddr,
    /// Known once connect() has bound the socket (getsockname).
    local: Option<SocketAddr>,
    /// When its socket closed: by the monotonic clock, for the filter, and by the wall
    /// clock, which the kernel stamps packets with, for the reader.
    closed: Option<(Instant, SystemTime)>,
}

impl Entry {
    /// Still in the kernel filter at `now` (the engine's clock).
    fn filtered(&self, now: Instant) -> bool {
        self.closed
            .is_none_or(|(c, _)| now.saturating_duration_since(c) < LINGER)
    }
}

/// How far the filter is widened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Width {
    /// Each leg by its two ports.
    Exact,
    /// The legs' remote ports.
    Ports,
    /// Every packet of the transport.
    All,
}

#[derive(Debug)]
struct State {
    proto: u8,
    snap: u32,
    /// `lo`'s index, for the filter to drop the copy of each packet going out on it.
    lo: u32,
    /// The server's own ports (taken either way).
    ports: Vec<u16>,
    entries: Vec<Entry>,
    /// The earliest wall-clock time past which the reader may let a closed leg go.
    retire_at: Option<SystemTime>,
    next: u64,
    /// The most instructions a program may have for the kernel to take it: from
    /// optmem_max, and lowered when an attach is refused for memory (ENOMEM).
    budget: usize,
    /// net.core.optmem_max as read at the start (0: unknown), to say why the filter widened.
    optmem: usize,
    /// The match attached now, so an unchanged one is not attached again.
    attached: Option<Match>,
    /// The widening was said (once per session).
    told: bool,
    /// A failure to attach was said (once per session).
    failed: bool,
}

struct Inner {
    sock: OwnedFd,
    state: Mutex<State>,
}

/// The registry, shared by the capture's reader and the engine that opens the legs.
#[derive(Clone)]
pub struct Legs {
    inner: Arc<Inner>,
}

/// A leg while it lives: dropping it marks the leg closed (its packets are still taken for
/// [`LINGER`]).
#[must_use = "the leg is captured while its guard lives"]
pub struct Leg {
    legs: Legs,
    id: u64,
}

/// Which leg a packet is on, as [`Legs::which`] finds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Found {
    /// Sent by this end.
    pub outgoing: bool,
    /// The leg's own ends: this end's address (as the packet shows it) and the target's.
    pub local: SocketAddr,
    pub remote: SocketAddr,
}

/// The instructions a program may have within `optmem` bytes of socket option memory: the
/// old program and the new one are both charged while the kernel swaps them, so half each.
fn budget_for(optmem: usize) -> usize {
    if optmem == 0 {
        return filter::MAX_INSNS;
    }
    (optmem / 2)
        .saturating_sub(CHARGED_HEAD)
        .checked_div(CHARGED_PER_INSN)
        .unwrap_or(0)
        .min(filter::MAX_INSNS)
}

/// net.core.optmem_max (0 when it cannot be read).
fn optmem_max() -> usize {
    std::fs::read_to_string("/proc/sys/net/core/optmem_max")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

impl Legs {
    /// The registry over the capture socket `sock` for `proto`, with the server's own
    /// `ports`; attaches the first filter (those ports only).
    pub fn new(
        sock: OwnedFd,
        proto: u8,
        ports: Vec<u16>,
        snap: u32,
        lo: u32,
    ) -> std::io::Result<Legs> {
        let optmem = optmem_max();
        let legs = Legs {
            inner: Arc::new(Inner {
                sock,
                state: Mutex::new(State {
                    proto,
                    snap,
                    lo,
                    ports,
                    entries: Vec::new(),
                    retire_at: None,
                    next: 0,
                    budget: budget_for(optmem),
                    optmem,
                    attached: None,
                    told: false,
                    failed: false,
                }),
            }),
        };
        let mut st = legs.lock();
        legs.attach(&mut st, Instant::now())?;
        drop(st);
        Ok(legs)
    }

    pub fn fd(&self) -> std::os::fd::RawFd {
        self.inner.sock.as_raw_fd()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere while holding the lock leaves a list that is still whole.
        self.inner
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Registers a leg to `remote`, before its connect(): from now on its packets pass the
    /// kernel filter (by the remote port, until [`Leg::bound`] says the local one).
    pub fn open(&self, remote: SocketAddr) -> Leg {
        let mut st = self.lock();
        let id = st.next;
        st.next += 1;
        st.entries.push(Entry {
            id,
            remote,
            local: None,
            closed: None,
        });
        self.settle(&mut st, Instant::now());
        Leg {
            legs: self.clone(),
            id,
        }
    }

    /// A leg registered once its socket is connected, both ends known (UDP, whose connect()
    /// sends nothing).
    pub fn connected(&self, local: SocketAddr, remote: SocketAddr) -> Leg {
        let leg = self.open(remote);
        leg.bound(local);
        leg
    }

    /// The reader found the line quiet: every packet the kernel stamped before `read_to`
    /// has been handled, so closed legs past their linger by then are let go, and the
    /// filter drops the ones past it by the engine's clock.
    pub fn tidy(&self, read_to: SystemTime) {
        let mut st = self.lock();
        retire(&mut st, read_to);
        self.settle(&mut st, Instant::now());
    }

    /// Whether a packet from `src` to `dst`, stamped `stamp` by the kernel, is on a leg
    /// (lingering ones included). A closed leg is let go once a packet stamped after its
    /// linger comes: the ones stamped before, however late they are read, find it.
    pub fn which(&self, src: SocketAddr, dst: SocketAddr, stamp: SystemTime) -> Option<Found> {
        let mut st = self.lock();
        retire(&mut st, stamp);
        st.entries.iter().find_map(|e| {
            let is_remote = |a: SocketAddr| same(a, e.remote);
            let is_local = |a: SocketAddr| e.local.is_none_or(|l| same_local(a, l));
            if is_remote(dst) && is_local(src) {
                Some(Found {
                    outgoing: true,
                    local: src,
                    remote: dst,
                })
            } else if is_remote(src) && is_local(dst) {
                Some(Found {
                    outgoing: false,
                    local: dst,
                    remote: src,
                })
            } else {
                None
            }
        })
    }

    /// Attaches the filter for the legs still in it at `now`, if it changed, and says a
    /// failure once.
    fn settle(&self, st: &mut State, now: Instant) {
        // Only a wall clock set far back keeps a closed leg this long (see FORGOTTEN).
        st.entries.retain(|e| {
            e.closed
                .is_none_or(|(c, _)| now.saturating_duration_since(c) < FORGOTTEN)
        });
        if let Err(e) = self.attach(st, now)
            && !st.failed
        {
            st.failed = true;
            narrate::emit(format_args!(
                "wire: the kernel would not take the capture filter again ({}); target \
                 connections opened from now on may not be captured",
                error::plain_named(&e)
            ));
        }
    }

    /// Attaches the narrowest match the kernel takes: on ENOMEM (the socket's option memory,
    /// optmem_max, is spent) the budget is lowered and a wider, shorter match tried.
    fn attach(&self, st: &mut State, now: Instant) -> std::io::Result<()> {
        loop {
            let (what, width) = wanted(st, now);
            if st.attached.as_ref() == Some(&what) {
                return Ok(());
            }
            if width > Width::Exact && !st.told {
                st.told = true;
                tell_widened(st, now, width);
            }
            let prog = filter::program(st.proto, &what, st.snap);
            match sys::attach_filter(self.fd(), &prog) {
                Ok(()) => {
                    st.attached = Some(what);
                    return Ok(());
                }
                Err(e) if e.raw_os_error() == Some(libc::ENOMEM) && width < Width::All => {
                    // optmem_max may have been lowered since the start: read it again for
                    // the budget and the sentence.
                    st.optmem = optmem_max();
                    st.budget = st
                        .budget
                        .min(budget_for(st.optmem))
                        .min(prog.len().saturating_sub(1));
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// Says once why the filter takes more than the legs.
fn tell_widened(st: &State, now: Instant, width: Width) {
    let legs = st.entries.iter().filter(|e| e.filtered(now)).count();
    let passes = if width == Width::All {
        "every packet of the transport"
    } else {
        "every packet to or from the targets' ports"
    };
    let why = if legs > MAX_LEGS {
        format!("are more than the capture filter tells apart ({MAX_LEGS})")
    } else if st.optmem > 0 {
        format!(
            "need a capture filter longer than the kernel's socket option memory holds \
             (net.core.optmem_max is {} bytes)",
            st.optmem
        )
    } else {
        "need a capture filter longer than the kernel takes".to_string()
    };
    narrate::emit(format_args!(
        "wire: {legs} target connections at once {why}; the kernel now passes {passes} and \
         sockkit picks this forwarder's out (more to read: more may be dropped)"
    ));
}

/// Lets go the closed legs whose linger ended before `read_to` (the reader's clock: the
/// kernel's stamp of the last packet handled, or the time the line was found quiet).
fn retire(st: &mut State, read_to: SystemTime) {
    if st.retire_at.is_none_or(|at| read_to <= at) {
        return;
    }
    st.entries
        .retain(|e| e.closed.is_none_or(|(_, w)| w + LINGER >= read_to));
    st.retire_at = st
        .entries
        .iter()
        .filter_map(|e| e.closed.map(|(_, w)| w + LINGER))
        .min();
}

/// The match for the server's ports and the legs still in the filter at `now`, and how far
/// it is widened: each leg by its two ports (or its remote port while the local one is
/// unknown); past [`MAX_LEGS`] or the memory budget, the remote ports alone; past that too,
/// everything.
fn wanted(st: &State, now: Instant) -> (Match, Width) {
    let live: Vec<&Entry> = st.entries.iter().filter(|e| e.filtered(now)).collect();
    let build = |wide: bool| {
        let mut ports = st.ports.clone();
        let mut pairs = Vec::new();
        for e in &live {
            match e.local {
                Some(l) if !wide => pairs.push((l.port(), e.remote.port())),
                _ => ports.push(e.remote.port()),
            }
        }
        ports.sort_unstable();
        ports.dedup();
        pairs.sort_unstable();
        pairs.dedup();
        Match {
            ports,
            pairs,
            all: false,
            lo: st.lo,
        }
    };
    let limit = st.budget.min(filter::MAX_INSNS);
    if live.len() <= MAX_LEGS {
        let exact = build(false);
        if exact.insns() <= limit {
            return (exact, Width::Exact);
        }
    }
    let ports = build(true);
    if ports.insns() <= limit && ports.ports.len() <= MAX_LEGS {
        return (ports, Width::Ports);
    }
    (
        Match {
            all: true,
            lo: st.lo,
            ..Match::default()
        },
        Width::All,
    )
}

impl Leg {
    /// The leg's socket is bound (connect() chose its local address): from now on only
    /// this connection's packets are taken for it.
    pub fn bound(&self, local: SocketAddr) {
        let mut st = self.legs.lock();
        if let Some(e) = st.entries.iter_mut().find(|e| e.id == self.id) {
            e.local = Some(local);
        }
        self.legs.settle(&mut st, Instant::now());
    }
}

impl Drop for Leg {
    fn drop(&mut self) {
        let mut st = self.legs.lock();
        let now = Instant::now();
        let wall = SystemTime::now();
        if let Some(i) = st.entries.iter().position(|e| e.id == self.id) {
            if st.entries[i].local.is_none() {
                // Never bound: its connect() sent nothing (it failed at once), and kept it
                // would claim every local port's packets to that remote.
                st.entries.swap_remove(i);
            } else {
                st.entries[i].closed = Some((now, wall));
                let at = wall + LINGER;
                st.retire_at = Some(st.retire_at.map_or(at, |r| r.min(at)));
            }
        }
        self.legs.settle(&mut st, now);
    }
}

/// The same address, `::ffff:a.b.c.d` being a.b.c.d.
fn same(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() == b.port() && a.ip().to_canonical() == b.ip().to_canonical()
}

/// A leg's local address as the packet shows it: the same port, and the same address unless
/// the socket was bound to none in particular.
fn same_local(a: SocketAddr, local: SocketAddr) -> bool {
    a.port() == local.port()
        && (local.ip().is_unspecified() || a.ip().to_canonical() == local.ip().to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(entries: Vec<Entry>) -> State {
        State {
            proto: 6,
            snap: filter::HEADERS,
            lo: 1,
            ports: vec![7000],
            entries,
            retire_at: None,
            next: 0,
            budget: filter::MAX_INSNS,
            optmem: 0,
            attached: None,
            told: false,
            failed: false,
        }
    }

    fn entry(id: u64, local: Option<u16>, remote: u16) -> Entry {
        Entry {
            id,
            remote: SocketAddr::from(([127, 0, 0, 1], remote)),
            local: local.map(|p| SocketAddr::from(([127, 0, 0, 1], p))),
            closed: None,
        }
    }

    fn at(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn the_filter_names_each_leg_by_its_ports_and_widens_past_the_bound() {
        let now = Instant::now();
        let st = state(vec![entry(0, Some(41000), 9000), entry(1, None, 9001)]);
        assert_eq!(
            wanted(&st, now),
            (
                Match {
                    ports: vec![7000, 9001],
                    pairs: vec![(41000, 9000)],
                    all: false,
                    lo: 1,
                },
                Width::Exact
            )
        );
        // Past the bound the legs' remote ports stand for them.
        let many = (0..=MAX_LEGS as u64)
            .map(|i| entry(i, Some(40000 + i as u16), 9000))
            .collect();
        let (wide, width) = wanted(&state(many), now);
        assert_eq!((wide.ports, wide.pairs.len()), (vec![7000, 9000], 0));
        assert_eq!(width, Width::Ports);
        // And past it with as many remote ports, everything.
        let spread = (0..=MAX_LEGS as u64)
            .map(|i| entry(i, Some(40000), 10000 + i as u16))
            .collect();
        assert_eq!(wanted(&state(spread), now).1, Width::All);
    }

    #[test]
    fn the_filter_widens_before_it_outgrows_the_socket_option_memory() {
        let now = Instant::now();
        // 20480 bytes (older kernels' default): 100 legs fit, 200 do not.
        let budget = budget_for(20480);
        let legs = |n: u64| {
            let mut st = state(
                (0..n)
                    .map(|i| entry(i, Some(40000 + i as u16), 9000))
                    .collect(),
            );
            st.budget = budget;
            st
        };
        let (exact, width) = wanted(&legs(100), now);
        assert_eq!((width, exact.pairs.len()), (Width::Exact, 100));
        assert!(exact.insns() <= budget);
        let (wide, width) = wanted(&legs(200), now);
        assert_eq!((width, &wide.ports), (Width::Ports, &vec![7000, 9000]));
        // A budget lowered below even that (an attach refused with ENOMEM): everything.
        let mut tight = legs(200);
        tight.budget = wide.insns() - 1;
        assert_eq!(wanted(&tight, now).1, Width::All);
        assert_eq!(budget_for(0), filter::MAX_INSNS);
    }

    #[test]
    fn a_closed_leg_leaves_the_filter_by_the_engines_clock_and_the_match_by_the_packets() {
        let now = Instant::now();
        let wall = SystemTime::now();
        let mut closed = entry(0, Some(41000), 9000);
        closed.closed = Some((now, wall));
        let mut st = state(vec![closed, entry(1, Some(41001), 9000)]);
        st.retire_at = Some(wall + LINGER);
        // Past its linger by the engine's clock it is out of the filter...
        let later = now + LINGER + Duration::from_millis(1);
        assert_eq!(wanted(&st, later).0.pairs, vec![(41001, 9000)]);
        // ...but a reader still handling packets stamped before then keeps it.
        retire(&mut st, wall + LINGER - Duration::from_millis(1));
        assert_eq!(st.entries.len(), 2);
        retire(&mut st, wall + LINGER + Duration::from_millis(1));
        assert_eq!(st.entries.len(), 1);
        assert_eq!(st.entries[0].id, 1);
        assert_eq!(st.retire_at, None);
    }

    /// A registry over a UDP socket: SO_ATTACH_FILTER takes any socket, and no privilege.
    fn registry() -> Legs {
        let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        Legs::new(OwnedFd::from(sock), 6, vec![7000], filter::HEADERS, 0).unwrap()
    }

    #[test]
    fn a_reader_behind_still_finds_the_leg_of_a_packet_sent_before_it_closed() {
        let legs = registry();
        let leg = legs.open(at(9000));
        leg.bound(at(41000));
        let sent = SystemTime::now();
        drop(leg);
        // Long after the close by the wall clock, a packet stamped before it is matched...
        let found = legs.which(at(41000), at(9000), sent).unwrap();
        assert!(found.outgoing);
        legs.tidy(sent);
        assert!(legs.which(at(9000), at(41000), sent).is_some());
        // ...and one stamped past the linger lets the leg go.
        let past = sent + LINGER + Duration::from_secs(1);
        assert!(legs.which(at(41000), at(9000), past).is_none());
        assert!(legs.which(at(41000), at(9000), sent).is_none());
    }

    #[test]
    fn a_leg_that_never_got_a_local_address_claims_nothing_once_closed() {
        let legs = registry();
        let leg = legs.open(at(9000));
        let now = SystemTime::now();
        // While it connects, its remote port stands for it.
        assert!(legs.which(at(45000), at(9000), now).is_some());
        drop(leg);
        assert!(legs.which(at(45000), at(9000), now).is_none());
        assert!(legs.lock().entries.is_empty());
    }
}
