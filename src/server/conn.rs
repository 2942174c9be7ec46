//! One client connection as the engine keeps it: the socket, the service's session, the bytes
//! still owed to the client, counters and clocks. Kept small on purpose: an idle connection
//! holds no buffer at all (the owed bytes are allocated only while some are waiting), so ten
//! thousand idle clients cost a few hundred bytes each. The event loop lives in `engine.rs`.

use std::io::{self, Write};
use std::time::Instant;

use super::peer::Peer;
use super::stream::Stream;

/// Where a connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Reading and answering.
    Open,
    /// The service said goodbye: send what is owed, shut our side, discard input until the
    /// client closes (a lingering close, so our last words are not lost to a reset).
    Closing { shut: bool },
    /// The client sent EOF: send what is owed, then close.
    PeerDone,
}

pub struct Conn<S> {
    pub sock: Stream,
    pub peer: Peer,
    pub session: S,
    /// Bytes the service produced that the kernel has not taken yet, from `sent` on.
    owed: Vec<u8>,
    sent: usize,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub opened: Instant,
    pub last_active: Instant,
    /// When the kernel last took bytes for this client: a fan-out recipient that is owed much
    /// and has taken nothing for a while is not reading.
    pub last_drained: Instant,
    /// The kernel may hold unread input (epoll is edge-triggered: no new event will say so).
    pub readable: bool,
    /// The client closed or reset its side: read until read() says so, never assume drained.
    pub hangup: bool,
    pub phase: Phase,
    /// The service, not the client, ended the session (for the `closed` line).
    pub said_bye: bool,
}

/// Above this capacity a drained output buffer is given back, so a connection that once had
/// a burst to send does not keep the memory while idle.
const KEEP_CAPACITY: usize = 4096;

impl<S> Conn<S> {
    pub fn new(sock: Stream, peer: Peer, session: S, now: Instant) -> Self {
        Conn {
            sock,
            peer,
            session,
            owed: Vec::new(),
            sent: 0,
            bytes_in: 0,
            bytes_out: 0,
            opened: now,
            last_active: now,
            last_drained: now,
            // Registration reports input already waiting, so nothing is assumed here.
            readable: false,
            hangup: false,
            phase: Phase::Open,
            said_bye: false,
        }
    }

    /// How many bytes the client is owed.
    pub fn owed(&self) -> usize {
        self.owed.len() - self.sent
    }

    /// Sends `data`: straight to the kernel when nothing is queued before it, and what the
    /// kernel does not take is kept, in order, for the next writable event.
    pub fn send(&mut self, data: &[u8], now: Instant) -> io::Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        if self.owed() > 0 {
            if self.sent > 0 {
                self.owed.drain(..self.sent);
                self.sent = 0;
            }
            self.owed.extend_from_slice(data);
            return self.flush(now);
        }
        let n = self.write_some(data, now)?;
        if n < data.len() {
            self.owed.clear();
            self.sent = 0;
            self.owed.extend_from_slice(&data[n..]);
        }
        Ok(())
    }

    /// Writes as much of what is owed as the kernel takes now.
    pub fn flush(&mut self, now: Instant) -> io::Result<()> {
        if self.owed() == 0 {
            return Ok(());
        }
        let owed = std::mem::take(&mut self.owed);
        let result = self.write_some(&owed[self.sent..], now);
        self.owed = owed;
        let n = result?;
        self.sent += n;
        if self.sent == self.owed.len() {
            self.owed.clear();
            self.sent = 0;
            if self.owed.capacity() > KEEP_CAPACITY {
                self.owed = Vec::new();
            }
        }
        Ok(())
    }

    /// write() until the data is gone or the kernel's buffer is full (EAGAIN); how much went.
    fn write_some(&mut self, data: &[u8], now: Instant) -> io::Result<usize> {
        let mut done = 0;
        while done < data.len() {
            match (&self.sock).write(&data[done..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
        if done > 0 {
            self.bytes_out += done as u64;
            self.last_active = now;
            self.last_drained = now;
        }
        Ok(done)
    }
}
