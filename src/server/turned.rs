//! Clients turned away at the door (`--max-conns` reached). Each is told why in one line
//! (where the protocol has lines; the service words it), our side is shut, and its input is
//! read and discarded until it closes, for at most `LINGER`: closing a socket with input
//! unread sends a reset, and a reset can destroy the line before the client reads it. They
//! are not clients (no session, no place under `--max-conns`), so at most `MAX_TURNED` linger
//! at once; past that one is closed after reading what it sent so far. The acceptor decides
//! who is turned away; the loop (`worker.rs`) hands them here and passes on their events.

use std::io::{Read, Write};
use std::net::Shutdown;
use std::time::Instant;

use mio::{Interest, Registry, Token};
use socket2::SockRef;

use super::conn::LINGER;
use super::stream::Stream;
use crate::socket;

/// Turned-away clients lingering at once, at most.
pub const MAX_TURNED: usize = 64;

/// The tag bit of their tokens: above every connection's (`slots.rs` keeps bit 62 clear) and
/// below the loop's own tokens, which the loop checks first.
const TAG: usize = 1 << 62;

/// Reads of discarded input per event, so one client cannot hold the loop.
const READS_PER_EVENT: usize = 16;

#[derive(Default)]
pub struct TurnedAway {
    waiting: Vec<Option<(Stream, Instant)>>,
}

impl TurnedAway {
    /// The place a token names, if it is one of ours.
    pub fn place_of(&self, t: Token) -> Option<usize> {
        (t.0 & TAG != 0)
            .then_some(t.0 & !TAG)
            .filter(|&i| i < self.waiting.len())
    }

    /// Sends `line`, shuts our side, and keeps the client until it closes or `LINGER` is up.
    pub fn add(&mut self, reg: &Registry, mut stream: Stream, line: &[u8], now: Instant) {
        // A new socket's send buffer is empty: a line this short goes whole or not at all.
        let _ = (&stream).write(line);
        let _ = socket::shutdown(&SockRef::from(&stream), Shutdown::Write);
        let free = self.waiting.iter().position(Option::is_none);
        let place = match free {
            Some(i) => i,
            None if self.waiting.len() < MAX_TURNED => {
                self.waiting.push(None);
                self.waiting.len() - 1
            }
            None => return finish(stream),
        };
        if reg
            .register(&mut stream, Token(TAG | place), Interest::READABLE)
            .is_err()
        {
            return finish(stream);
        }
        self.waiting[place] = Some((stream, now));
    }

    /// An event for place `i`: discard what the client sent; close it at its EOF or error.
    pub fn readable(&mut self, i: usize) {
        let Some((stream, _)) = self.waiting.get(i).and_then(Option::as_ref) else {
            return;
        };
        let mut buf = [0u8; 4096];
        let mut done = false;
        for _ in 0..READS_PER_EVENT {
            match (&*stream).read(&mut buf) {
                Ok(0) => done = true,
                Ok(_) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => done = true,
            }
            break;
        }
        // Still sending after this turn's reads: the sweep ends it when its time is up.
        if !done {
            return;
        }
        if let Some((stream, _)) = self.waiting[i].take() {
            stream.close();
        }
    }

    /// Closes the ones whose `LINGER` is up (or all, at stop: `now` = `None`).
    pub fn sweep(&mut self, now: Option<Instant>) {
        for place in &mut self.waiting {
            let due = match (place.as_ref(), now) {
                (Some(_), None) => true,
                (Some((_, since)), Some(now)) => now.saturating_duration_since(*since) >= LINGER,
                (None, _) => false,
            };
            if due && let Some((stream, _)) = place.take() {
                stream.close();
            }
        }
    }
}

/// No room to linger: read what the client has sent so far (so closing does not reset the
/// connection for it), then close.
fn finish(stream: Stream) {
    let mut buf = [0u8; 4096];
    for _ in 0..READS_PER_EVENT {
        if !matches!((&stream).read(&mut buf), Ok(n) if n > 0) {
            break;
        }
    }
    stream.close();
}
