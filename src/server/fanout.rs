//! The broker's fan-out (services with `FAN_OUT`): what a client does is told to the service
//! (`share`), and what the service writes for the others is delivered to every other client's
//! connection. Deliveries are queued, not nested: a delivery that fails ends a client, whose
//! `Left` is one more message. Backpressure: while any client is owed its cap (`AtCap`, O(1))
//! no sender is read; the senders wait here (`held`) and go back to the loop when it clears.
//! A recipient that holds them and takes nothing for `FAN_OUT_STALL` is not reading: it is
//! dropped at that deadline (`check_at`, which the loop waits for precisely), or at once when
//! a delivery finds it so. The loop (`worker.rs`) closes the clients a delivery failed for;
//! this file closes nothing.

use std::collections::VecDeque;
use std::io;
use std::time::{Duration, Instant};

use mio::Token;

use super::conn::{AtCap, Conn};
use super::service::{Event, Service};
use super::slots::Slots;

/// How long a client owed its cap (holding every sender back) may take nothing before it is
/// dropped as not reading: the others wait at most about this long (a quarter more, the
/// check's step), once per such client. Senders are held rather than slow readers dropped
/// at the cap, because a reader that is merely behind a fast sender for a moment (a bulk
/// transfer) reaches the cap too; telling the two apart takes watching, and this is how long.
pub const FAN_OUT_STALL: Duration = Duration::from_millis(500);

/// A message's buffer is kept for the next one up to this size, so chat traffic does not
/// allocate per line, and one burst does not keep its memory.
const KEEP_CAPACITY: usize = 64 * 1024;

#[derive(Default)]
pub struct FanOut {
    /// What `share` wrote for the other clients.
    others: Vec<u8>,
    /// Messages still to deliver, each with the slot it came from (`None`: a client gone).
    queue: VecDeque<(Option<usize>, Vec<u8>)>,
    /// A delivery is under way: a message posted now joins the queue it is working through.
    busy: bool,
    /// Clients not read from while some client is owed its cap.
    held: Vec<Token>,
    /// Set at stop: clients closed then are not announced to the others.
    pub quiet: bool,
    /// While senders are held: when to look for a recipient that is not reading.
    check_at: Option<Instant>,
}

/// Why a delivery ends a client.
pub enum Failure {
    Io(io::Error),
    /// Owed its cap and taking nothing for `FAN_OUT_STALL`: this reason.
    NotReading(String),
}

impl FanOut {
    /// Tells the service what a client did; what it writes for the others waits for `post`.
    pub fn tell<S: Service>(&mut self, service: &S, session: &mut S::Session, event: Event) {
        self.others.clear();
        service.share(session, event, &mut self.others);
    }

    /// Queues what `tell` got for delivery to every client but `from`. True when the caller
    /// should now `deliver` (false: nothing to send, or a delivery under way will take it).
    pub fn post(&mut self, from: Option<usize>) -> bool {
        if self.others.is_empty() {
            return false;
        }
        self.queue
            .push_back((from, std::mem::take(&mut self.others)));
        !std::mem::replace(&mut self.busy, true)
    }

    /// Delivers the next queued message to every client but its sender and those closing.
    /// What a client cannot take yet waits in what it is owed. Returns the clients whose
    /// write failed (the caller closes them, which may queue more), or `None` when the queue
    /// is done.
    pub fn deliver<T>(
        &mut self,
        conns: &mut Slots<Conn<T>>,
        at_cap: &mut AtCap,
        now: Instant,
    ) -> Option<Vec<(usize, Failure)>> {
        let Some((from, mut data)) = self.queue.pop_front() else {
            self.busy = false;
            return None;
        };
        let mut failed = Vec::new();
        for slot in 0..conns.end() {
            let Some(c) = conns.get_mut(slot) else {
                continue;
            };
            if Some(slot) == from || c.is_closing() {
                continue;
            }
            match c.pass_on(&data, now, at_cap) {
                Err(e) => failed.push((slot, Failure::Io(e))),
                Ok(()) => {
                    if let Some(why) = c.not_reading(now, at_cap.cap(), FAN_OUT_STALL) {
                        failed.push((slot, Failure::NotReading(why)));
                    }
                }
            }
        }
        if self.others.capacity() == 0 && data.capacity() <= KEEP_CAPACITY {
            data.clear();
            self.others = data;
        }
        Some(failed)
    }

    /// A sender waits: some client is owed its cap. The first hold arms the check for a
    /// recipient that is not reading.
    pub fn hold(&mut self, t: Token, now: Instant) {
        self.held.push(t);
        self.check_at.get_or_insert(now + FAN_OUT_STALL);
    }

    /// When the loop must look for a recipient that is not reading (for its wait).
    pub fn check_at(&self) -> Option<Instant> {
        self.check_at
    }

    /// After a look at `now`: while someone is still owed its cap, look again a quarter of
    /// `FAN_OUT_STALL` later.
    pub fn checked(&mut self, now: Instant, still: bool) {
        self.check_at = still.then(|| now + FAN_OUT_STALL / 4);
    }

    /// Once no client is owed its cap, the held senders go back to be driven.
    pub fn release(&mut self, at_cap: &AtCap, again: &mut Vec<Token>) {
        if !at_cap.any() {
            self.check_at = None;
            if !self.held.is_empty() {
                again.append(&mut self.held);
            }
        }
    }
}
