//! What the event loops share: one lane per loop (an inbox of clients handed to it, the waker
//! that tells it so, how many clients it has), the count of clients over all loops that
//! `--max-conns` is checked against, and the flag that stops them all. The acceptor decides
//! who goes where; each loop empties its own inbox. The only locks in the server are here,
//! off the data path.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use anyhow::{Context, Result};
use mio::{Poll, Token, Waker};

use super::peer::Peer;
use super::stream::Stream;

/// The token a loop's waker raises.
pub const WAKER: Token = Token(usize::MAX - 2);

pub struct Lanes {
    lanes: Vec<Lane>,
    /// Clients connected now, over all loops (for `--max-conns`).
    open: AtomicUsize,
    stopping: AtomicBool,
}

/// See `Lanes::stop_all_if_this_panics`.
pub struct StopOnPanic<'a>(&'a Lanes);

impl Drop for StopOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.stop_all();
        }
    }
}

struct Lane {
    inbox: Mutex<Vec<(Stream, Peer)>>,
    waker: Waker,
    /// Clients this loop serves (including those still in its inbox).
    load: AtomicUsize,
}

impl Lanes {
    /// A lane for each loop, its waker registered with that loop's poll.
    pub fn new(polls: &[Poll]) -> Result<Lanes> {
        let mut lanes = Vec::with_capacity(polls.len());
        for poll in polls {
            lanes.push(Lane {
                inbox: Mutex::new(Vec::new()),
                waker: Waker::new(poll.registry(), WAKER).context("creating the loop's waker")?,
                load: AtomicUsize::new(0),
            });
        }
        Ok(Lanes {
            lanes,
            open: AtomicUsize::new(0),
            stopping: AtomicBool::new(false),
        })
    }

    /// Tells every loop to stop.
    pub fn stop_all(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        for lane in &self.lanes {
            let _ = lane.waker.wake();
        }
    }

    /// Held by each event loop while it runs: if that loop panics, the others are told to
    /// stop as it unwinds, so the server ends (with the panic as its error) rather than going
    /// on deaf, handing clients to a loop that is gone and waiting on it at SIGTERM.
    pub fn stop_all_if_this_panics(&self) -> StopOnPanic<'_> {
        StopOnPanic(self)
    }

    pub fn stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    /// Clients connected now, over all loops.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::SeqCst)
    }

    /// Counts an admitted client in and gives it to the loop with the fewest (`me` on a tie:
    /// no hand-over needed). Returns that loop and how many are connected now.
    pub fn assign(&self, me: usize) -> (usize, usize) {
        let open = self.open.fetch_add(1, Ordering::SeqCst) + 1;
        let mut best = me;
        let mut best_load = self.lanes[me].load.load(Ordering::Relaxed);
        for (i, lane) in self.lanes.iter().enumerate() {
            let load = lane.load.load(Ordering::Relaxed);
            if load < best_load {
                best = i;
                best_load = load;
            }
        }
        self.lanes[best].load.fetch_add(1, Ordering::SeqCst);
        (best, open)
    }

    /// Puts a client in another loop's inbox and wakes that loop.
    pub fn hand(&self, lane: usize, stream: Stream, peer: Peer) {
        let l = &self.lanes[lane];
        l.inbox
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push((stream, peer));
        if let Err(e) = l.waker.wake() {
            crate::narrate::emit(format_args!("waking event loop {lane}: {e}"));
        }
    }

    /// The clients handed to loop `me` since it last looked.
    pub fn take_inbox(&self, me: usize) -> Vec<(Stream, Peer)> {
        std::mem::take(
            &mut *self.lanes[me]
                .inbox
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }

    /// A client of loop `me` is gone (closed, or never taken on): its counts given back.
    pub fn left(&self, me: usize) {
        self.open.fetch_sub(1, Ordering::SeqCst);
        self.lanes[me].load.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_loop_that_panics_stops_the_others_and_one_that_returns_does_not() {
        let polls = [Poll::new().unwrap(), Poll::new().unwrap()];
        let lanes = Lanes::new(&polls).unwrap();
        std::thread::scope(|scope| {
            let quiet = scope.spawn(|| {
                let _g = lanes.stop_all_if_this_panics();
            });
            assert!(quiet.join().is_ok());
            assert!(
                !lanes.stopping(),
                "a loop that ended normally stopped the others"
            );
            let broken = scope.spawn(|| {
                let _g = lanes.stop_all_if_this_panics();
                panic!("a bug in one loop");
            });
            assert!(broken.join().is_err());
        });
        assert!(lanes.stopping(), "the other loops were not told to stop");
    }
}
