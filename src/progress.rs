//! `--progress`: one live line on stderr for long work, redrawn by a thread of its own four
//! times a second: a relay session's bytes each way and current rates (with a regular file on
//! stdin, the percent sent and the time left), or a port check's ports done of the total. The
//! thread only reads counters the work keeps anyway (the relay's, published for the signal
//! thread in interrupt.rs; the check's), so the data path pays nothing for it: no clock, lock
//! or call per chunk. Drawing and erasing the line is narrate.rs's, which erases it before
//! anything else is said, so a summary line is never drawn over. When the line is wanted (a
//! terminal, -v, the flags) is cmd's to decide.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::interrupt;
use crate::narrate;

/// How often the line is redrawn: often enough to look live, rarely enough to cost nothing.
pub const TICK: Duration = Duration::from_millis(250);
/// Past this much time left at the current rate, the line says "stalled" instead.
const STALLED: Duration = Duration::from_hours(24);

/// The thread drawing the live line; dropping it stops the thread and erases the line.
pub struct Ticker {
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Ticker {
    /// Redraws `line()` every `TICK` until dropped; a `None` from it draws nothing (yet).
    fn start(mut line: impl FnMut() -> Option<String> + Send + 'static) -> Ticker {
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = thread::Builder::new()
            .name("progress".into())
            .spawn(move || {
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(TICK) {
                    if let Some(l) = line() {
                        narrate::live_line(&l);
                    }
                }
            })
            .ok();
        Ticker {
            stop: Some(stop),
            thread,
        }
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        narrate::clear_live_line();
    }
}

/// One direction's current rate: bytes since the last tick over the time since, smoothed a
/// little so the figure does not jump with each tick.
#[derive(Default)]
struct Rate {
    last: u64,
    per_sec: f64,
}

impl Rate {
    fn update(&mut self, now: u64, dt: f64) -> f64 {
        let fresh = now.saturating_sub(self.last) as f64 / dt.max(1e-3);
        self.last = now;
        self.per_sec = if self.per_sec == 0.0 {
            fresh
        } else {
            0.5 * self.per_sec + 0.5 * fresh
        };
        self.per_sec
    }
}

/// `2s left` for `left` bytes at `rate` bytes a second. A rate decaying through a stall gives
/// times no Duration holds (and none worth showing): past a day, or at no rate, `stalled`.
fn time_left(left: u64, rate: f64) -> String {
    match Duration::try_from_secs_f64(left as f64 / rate) {
        Ok(d) if rate > 0.0 && d <= STALLED => format!("{} left", narrate::short(d)),
        _ => "stalled".to_string(),
    }
}

/// A rate as the line shows it: `12.5 MiB/s`.
fn per_sec(r: f64) -> String {
    // A float-to-int `as` saturates (never wraps); the rate is positive and shown rounded.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let n = r as u64;
    format!("{}/s", narrate::bytes(n))
}

/// The live line of a relay session, whichever is live (with `listen -k`, each client's in
/// turn): `sent 1.20 MiB (45%, 10.2 MiB/s, 2s left) | received 512 B (0 B/s)`. `total`: the
/// size of the regular file on stdin, for the percent and the time left.
pub fn transfer(total: Option<u64>) -> Ticker {
    let mut up = Rate::default();
    let mut down = Rate::default();
    let mut tick = Instant::now();
    let mut session: Option<Instant> = None;
    Ticker::start(move || {
        let live = interrupt::live()?;
        // A new session (listen -k): its counters start again from zero.
        if session != Some(live.started()) {
            session = Some(live.started());
            up = Rate::default();
            down = Rate::default();
        }
        let now = Instant::now();
        let dt = now.duration_since(tick).as_secs_f64();
        tick = now;
        let sent = live.sent.load(Ordering::Relaxed);
        let received = live.received.load(Ordering::Relaxed);
        let (r_up, r_down) = (up.update(sent, dt), down.update(received, dt));
        let done = match total.filter(|&t| t > 0) {
            Some(t) => {
                let pct = (sent as f64 * 100.0 / t as f64).min(100.0);
                let left = t.saturating_sub(sent);
                let eta = if left == 0 {
                    "done".to_string()
                } else {
                    time_left(left, r_up)
                };
                format!(
                    "{pct:.0}% of {}, {}, {eta}",
                    narrate::bytes(t),
                    per_sec(r_up)
                )
            }
            None => per_sec(r_up),
        };
        Some(format!(
            "sent {} ({done}) | received {} ({})",
            narrate::bytes(sent),
            narrate::bytes(received),
            per_sec(r_down)
        ))
    })
}

/// The live line of a port check: `checked 1200 of 65535 ports (2 open)`.
pub fn ports(checked: Arc<AtomicU64>, open: Arc<AtomicU64>, total: usize) -> Ticker {
    Ticker::start(move || {
        Some(format!(
            "checked {} of {total} ports ({} open)",
            checked.load(Ordering::Relaxed),
            open.load(Ordering::Relaxed)
        ))
    })
}

/// The size of stdin when it is a regular file (`< file`): what a transfer's percent is of.
pub fn stdin_size() -> Option<u64> {
    let meta = crate::sys::stdio_file(0).metadata().ok()?;
    meta.is_file().then_some(meta.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_left_says_stalled_for_a_rate_decayed_to_almost_nothing() {
        assert_eq!(time_left(1000, 500.0), "2.00s left");
        // 300 MB at a rate halved every tick for a minute: seconds beyond any Duration.
        assert_eq!(time_left(300_000_000, 1e-300), "stalled");
        assert_eq!(time_left(300_000_000, 1.0), "stalled");
        assert_eq!(time_left(1, 0.0), "stalled");
        assert_eq!(time_left(1, f64::NAN), "stalled");
    }
}
