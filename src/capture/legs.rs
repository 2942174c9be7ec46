//! A forwarder's target legs as the capture sees them: each outbound connection is
//! registered here as it starts (before its connect() sends the SYN) and let go when its
//! socket closes, and every change rebuilds the kernel filter (filter.rs) and attaches it to
//! the capture socket again, so the capture follows whichever address a connect falls
//! through to, and targets known only per pair (`--socks5`, `--proxy`). The reader
//! (handle.rs) asks [`Legs::which`] whether a packet is on one of them.
//!
//! Bounded: a closed leg stays in the filter for [`LINGER`] (its last FIN and ACK come after
//! close()), and the filter holds at most [`MAX_LEGS`] legs; past that it takes every packet
//! to or from the legs' remote ports (or, past that too, every packet of the transport), the
//! user-space match stays exact, and this is said once. Which sockets to register is the
//! forwarding engine's; the socket calls are `crate::sys`'s.

use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::filter::{self, Match};
use crate::narrate;
use crate::sys;

/// How long a closed leg's packets are still taken: its FIN, the peer's FIN and the last
/// ACK follow close() by about a round trip.
pub const LINGER: Duration = Duration::from_secs(2);
/// The most legs the filter tells apart by their ports; more than this at once (live or
/// lingering) and it widens.
pub const MAX_LEGS: usize = 256;

/// One target leg.
#[derive(Debug, Clone, Copy)]
struct Entry {
    id: u64,
    remote: SocketAddr,
    /// Known once connect() has bound the socket (getsockname).
    local: Option<SocketAddr>,
    closed: Option<Instant>,
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
    next: u64,
    /// The match attached now, so an unchanged one is not attached again.
    attached: Option<Match>,
    /// The widening was said (once per session).
    told: bool,
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
        let legs = Legs {
            inner: Arc::new(Inner {
                sock,
                state: Mutex::new(State {
                    proto,
                    snap,
                    lo,
                    ports,
                    entries: Vec::new(),
                    next: 0,
                    attached: None,
                    told: false,
                }),
            }),
        };
        let mut st = legs.lock();
        legs.attach(&mut st)?;
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

    /// Lets lingering legs go (the reader calls this when the line is quiet).
    pub fn tidy(&self) {
        let mut st = self.lock();
        self.settle(&mut st, Instant::now());
    }

    /// Whether a packet from `src` to `dst` is on a leg (lingering ones included).
    pub fn which(&self, src: SocketAddr, dst: SocketAddr) -> Option<Found> {
        let st = self.lock();
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

    /// Drops legs closed longer than [`LINGER`] ago, then attaches the filter for what is
    /// left if it changed.
    fn settle(&self, st: &mut State, now: Instant) {
        st.entries
            .retain(|e| e.closed.is_none_or(|c| now.duration_since(c) < LINGER));
        if let Err(e) = self.attach(st) {
            narrate::emit(format_args!(
                "wire: attaching the capture filter again: {}; target legs opened from now on \
                 may not be captured",
                narrate::errno_text(&e)
            ));
        }
    }

    fn attach(&self, st: &mut State) -> std::io::Result<()> {
        let what = wanted(st);
        if st.attached.as_ref() == Some(&what) {
            return Ok(());
        }
        if (what.all || st.entries.len() > MAX_LEGS) && !st.told {
            {
                st.told = true;
                narrate::emit(format_args!(
                    "wire: {} target connections at once are more than the capture filter \
                     tells apart ({MAX_LEGS}); the kernel now passes {} and sockkit picks this \
                     forwarder's out (more to read: more may be dropped)",
                    st.entries.len(),
                    if what.all {
                        "every packet of the transport"
                    } else {
                        "every packet to or from the targets' ports"
                    }
                ));
            }
        }
        let prog = filter::program(st.proto, &what, st.snap);
        sys::attach_filter(self.fd(), &prog)?;
        st.attached = Some(what);
        Ok(())
    }
}

/// The match for the server's ports and the legs: each leg by its two ports (or its remote
/// port while the local one is unknown); past [`MAX_LEGS`], the remote ports alone; past
/// that too, everything.
fn wanted(st: &State) -> Match {
    let mut ports = st.ports.clone();
    let mut pairs = Vec::new();
    let wide = st.entries.len() > MAX_LEGS;
    for e in &st.entries {
        match e.local {
            Some(l) if !wide => pairs.push((l.port(), e.remote.port())),
            _ => ports.push(e.remote.port()),
        }
    }
    ports.sort_unstable();
    ports.dedup();
    pairs.sort_unstable();
    pairs.dedup();
    let what = Match {
        ports,
        pairs,
        all: false,
        lo: st.lo,
    };
    if what.insns() > filter::MAX_INSNS || what.ports.len() > MAX_LEGS {
        return Match {
            all: true,
            lo: st.lo,
            ..Match::default()
        };
    }
    what
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
        if let Some(e) = st.entries.iter_mut().find(|e| e.id == self.id) {
            e.closed = Some(now);
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
            next: 0,
            attached: None,
            told: false,
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

    #[test]
    fn the_filter_names_each_leg_by_its_ports_and_widens_past_the_bound() {
        let st = state(vec![entry(0, Some(41000), 9000), entry(1, None, 9001)]);
        assert_eq!(
            wanted(&st),
            Match {
                ports: vec![7000, 9001],
                pairs: vec![(41000, 9000)],
                all: false,
                lo: 1,
            }
        );
        // Past the bound the legs' remote ports stand for them.
        let many = (0..=MAX_LEGS as u64)
            .map(|i| entry(i, Some(40000 + i as u16), 9000))
            .collect();
        let wide = wanted(&state(many));
        assert_eq!((wide.ports, wide.pairs.len()), (vec![7000, 9000], 0));
        // And past it with as many remote ports, everything.
        let spread = (0..=MAX_LEGS as u64)
            .map(|i| entry(i, Some(40000), 10000 + i as u16))
            .collect();
        assert!(wanted(&state(spread)).all);
    }
}
