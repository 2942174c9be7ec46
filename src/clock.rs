//! The session's one clock: every narrated call, captured segment and trace event is timed
//! from the same start (CLOCK_MONOTONIC, through `Instant`), so they line up. A leaf: it
//! knows nothing of who reads it.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

static START: OnceLock<Instant> = OnceLock::new();

/// Starts the clock (the first call wins; later calls are no-ops).
pub fn start() {
    START.get_or_init(Instant::now);
}

/// Time since the session started.
pub fn since_start() -> Duration {
    START.get_or_init(Instant::now).elapsed()
}
