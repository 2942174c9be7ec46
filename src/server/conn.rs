//! One client connection and the rules of its life, as methods: reading (with backpressure:
//! no read while the client is owed its cap), sending what the service wrote (what the kernel
//! will not take yet is kept, in order), half-close (the client's EOF: send what is owed, then
//! close), the lingering close after the service's goodbye (shut our side, discard input until
//! the client closes), the idle and linger clocks, and the close itself. The event loop
//! (`worker.rs`) decides when to call these and talks to the service; this file never does.
//!
//! Kept small on purpose: an idle connection holds no buffer at all (the owed bytes are
//! allocated only while some are waiting), so ten thousand idle clients cost a few hundred
//! bytes each.

use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant};

use socket2::SockRef;

use super::peer::Peer;
use super::service::Next;
use super::stream::Stream;
use super::summary;
use crate::capture::sample;
use crate::narrate::{self, Flow, Key};
use crate::socket;

/// How long a client may take to close after the server said goodbye (its lingering close),
/// and how long a stopping server waits for all of them.
pub const LINGER: Duration = Duration::from_secs(2);

/// Above this capacity a drained output buffer is given back, so a connection that once had
/// a burst to send does not keep the memory while idle.
const KEEP_CAPACITY: usize = 4096;

/// Where a connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Reading and answering.
    Open,
    /// The service said goodbye: send what is owed, shut our side, discard input until the
    /// client closes (a lingering close, so our last words are not lost to a reset).
    Closing { shut: bool },
    /// The client sent EOF: send what is owed, then close.
    PeerDone,
}

/// How many of a loop's connections are owed their cap (`Limits::max_owed`) or more. Each
/// connection reports its own crossings of the line as it sends and flushes, so "is anyone
/// full?" (the fan-out's backpressure) is one comparison, not a scan of every client.
pub struct AtCap {
    cap: usize,
    count: usize,
}

impl AtCap {
    /// A cap of 0 would stop every connection being read, ever; 1 is the least that works.
    pub fn new(cap: usize) -> AtCap {
        AtCap {
            cap: cap.max(1),
            count: 0,
        }
    }

    pub fn cap(&self) -> usize {
        self.cap
    }

    /// Some connection is owed its cap or more.
    pub fn any(&self) -> bool {
        self.count > 0
    }

    /// Records where a connection now stands against the cap (`full`: where it stood).
    fn note(&mut self, full: &mut bool, owed: usize) {
        let now = owed >= self.cap;
        if now != *full {
            *full = now;
            if now {
                self.count += 1;
            } else {
                self.count -= 1;
            }
        }
    }
}

/// What the clock says about a connection (`Conn::overdue`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Overdue {
    /// Close it now, for this reason: its time to close is up.
    Now(String),
    /// Silent past this `--idle-timeout`: tell it why, then close it lingering.
    Idle(Duration, String),
    /// It broke a rule of the engine's (a TLS handshake past its bound): say so, close now.
    Dropped(String),
}

/// What one read() brought.
pub enum Input {
    /// These many bytes at the front of the buffer, for the service.
    Data(usize),
    /// The client shut its sending side: for the service's `eof`.
    Eof,
    /// Nothing for the service (input discarded while closing, or a signal): try again.
    Nothing,
    /// The kernel has no more for now (EAGAIN): wait for the next event.
    Drained,
    Failed(io::Error),
}

pub struct Conn<S> {
    sock: Stream,
    pub peer: Peer,
    pub session: S,
    /// Bytes the service produced that the kernel has not taken yet, from `sent` on.
    owed: Vec<u8>,
    sent: usize,
    bytes_in: u64,
    bytes_out: u64,
    opened: Instant,
    last_active: Instant,
    /// When the kernel last took bytes for this client: a fan-out recipient that is owed much
    /// and has taken nothing for a while is not reading.
    last_drained: Instant,
    /// The kernel may hold unread input (epoll is edge-triggered: no new event will say so).
    readable: bool,
    /// The client closed or reset its side: read until read() says so, never assume drained.
    hangup: bool,
    phase: Phase,
    /// The service, not the client, ended the session (for the `closed` line).
    said_bye: bool,
    /// Why the server is ending it, for the `closed` line once the lingering close is over.
    ending: Option<String>,
    /// When the lingering close began: it lasts at most `LINGER`, however the client behaves.
    closing_since: Option<Instant>,
    /// Owed its cap or more, as last told to `AtCap`.
    full: bool,
    /// This client's read/write calls, narrated at -vv (`None` otherwise). Boxed: a pointer
    /// where the whole Flow would add ~100 bytes to every idle client when narration is off.
    flow: Option<Box<Flow>>,
}

/// Which way a data call on a client's socket went.
#[derive(Clone, Copy)]
enum Dir {
    Recv,
    Send,
}

/// Tells `flow` of one call moving `len` bytes on `fd`. std's socket read and write (under
/// mio's) are recvfrom(2) with no flags and sendto(2) with MSG_NOSIGNAL, as strace shows them.
fn data_call(flow: &mut Flow, dir: Dir, fd: RawFd, len: usize, r: &io::Result<usize>) {
    let name = match dir {
        Dir::Recv => "recvfrom",
        Dir::Send => "sendto",
    };
    let key = Key {
        name,
        from: fd,
        to: None,
    };
    let r = match r {
        Ok(n) => Ok(*n),
        Err(e) => Err(e
            .raw_os_error()
            .map_or_else(|| io::Error::from(e.kind()), io::Error::from_raw_os_error)),
    };
    let full = || match dir {
        Dir::Recv => format!("recvfrom(fd {fd}, buf, {len}, 0, NULL, NULL)"),
        Dir::Send => format!("sendto(fd {fd}, buf, {len}, MSG_NOSIGNAL, NULL, 0)"),
    };
    flow.call(key, full, &r);
}

impl<S> Conn<S> {
    pub fn new(sock: Stream, peer: Peer, session: S, now: Instant) -> Self {
        let flow = Flow::for_client(&peer).map(Box::new);
        if sock.is_tcp() {
            sample::begin(sock.as_raw_fd(), || {
                Some(sample::Who::Client(peer.to_string()))
            });
        }
        Conn {
            flow,
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
            ending: None,
            closing_since: None,
            full: false,
        }
    }

    /// An epoll event for this connection: input may be waiting, or the client hung up (whose
    /// EOF or error a read must still collect).
    pub fn woken(&mut self, readable: bool, hung_up: bool) {
        if hung_up {
            self.hangup = true;
            self.readable = true;
        }
        if readable {
            self.readable = true;
        }
    }

    /// How many bytes the client is owed.
    pub fn owed(&self) -> usize {
        self.owed.len() - self.sent
    }

    /// The service has said goodbye or is waiting for the client to take it: input is read
    /// only to be discarded, and other clients' bytes are not passed on.
    pub fn is_closing(&self) -> bool {
        matches!(self.phase, Phase::Closing { .. })
    }

    /// Sends what is owed and, once it is all out, takes the step the phase was waiting for:
    /// after the client's EOF the connection is done (`Err`, the reason); after our goodbye,
    /// our side is shut (FIN) and we wait for theirs. `Ok(true)`: it may be read now (input
    /// may be waiting, and it is owed less than its cap: the backpressure rule).
    pub fn pump(&mut self, at_cap: &mut AtCap, now: Instant) -> Result<bool, String> {
        if let Err(e) = self.sock.send_held().and_then(|()| self.flush(now, at_cap)) {
            return Err(crate::error::client_io_failure("write", &e));
        }
        // Over TLS, "all sent" includes the ciphertext rustls still holds.
        if self.owed() == 0 && !self.sock.holds_output() {
            match self.phase {
                Phase::PeerDone => {
                    let why = if self.said_bye {
                        "the service ended the session"
                    } else {
                        "client finished, nothing left owed"
                    };
                    return Err(self.ending.take().unwrap_or_else(|| why.to_string()));
                }
                Phase::Closing { shut: false } => {
                    self.sock.shutdown_write();
                    self.phase = Phase::Closing { shut: true };
                }
                _ => {}
            }
        }
        Ok(self.readable && self.phase != Phase::PeerDone && self.owed() < at_cap.cap())
    }

    /// One read(), of no more than would take the client to `cap` owed if answered byte for
    /// byte, into `buf`. An EOF moves the connection to its half-closed phase.
    pub fn read(&mut self, buf: &mut [u8], cap: usize, now: Instant) -> Input {
        let want = cap.saturating_sub(self.owed()).min(buf.len());
        let got = (&self.sock).read(&mut buf[..want]);
        // Over TLS the calls on the socket are rustls's, and -vv tells its records instead.
        if let Some(flow) = self.flow.as_mut().filter(|_| self.sock.tls().is_none()) {
            data_call(flow, Dir::Recv, self.sock.as_raw_fd(), want, &got);
        }
        if let Some(lines) = self.sock.tls().and_then(crate::tls::TlsStream::news) {
            for line in lines {
                narrate::info(format_args!("{}: {line}", self.peer));
            }
        }
        match got {
            Ok(0) => {
                self.readable = false;
                socket::look(
                    &SockRef::from(&self.sock),
                    "read returned 0: the client's FIN",
                );
                let closing = self.is_closing();
                self.phase = Phase::PeerDone;
                // After our goodbye their EOF is all we waited for: nothing to tell.
                if closing { Input::Nothing } else { Input::Eof }
            }
            Ok(n) => {
                self.bytes_in += n as u64;
                self.last_active = now;
                // A short read emptied the kernel's queue: more input will raise a new
                // event. Not so after a hang-up, whose EOF would raise none, nor over TLS: a
                // close_notify that came with the data waits inside rustls, and the kernel
                // has nothing left to raise an event with.
                if n < want && !self.hangup && self.sock.tls().is_none() {
                    self.readable = false;
                }
                if self.is_closing() {
                    Input::Nothing
                } else {
                    Input::Data(n)
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                self.readable = false;
                Input::Drained
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Input::Nothing,
            Err(e) => Input::Failed(e),
        }
    }

    /// What the service said after input: keep going, or begin the lingering close (its last
    /// words are already queued). A rule broken closes the same way, so the service's word
    /// about it arrives; `Some`: that reason, for the caller to log.
    pub fn follow(&mut self, next: Next, now: Instant) -> Option<String> {
        match next {
            Next::Continue => None,
            Next::Close => {
                self.said_bye = true;
                self.begin_closing(None, now);
                None
            }
            Next::Drop(why) => {
                self.said_bye = true;
                self.begin_closing(Some(why.clone()), now);
                Some(why)
            }
        }
    }

    /// Begins the lingering close: what is owed (the goodbye line among it) goes out, then our
    /// side is shut and the client's input is read and discarded until it closes, for at most
    /// `LINGER`: closing with input unread would send a reset, which can destroy the line
    /// before the client reads it. `why`: the reason the `closed` line will give. A client that
    /// already sent EOF needs no drain: it is closed once what it is owed is out.
    pub fn begin_closing(&mut self, why: Option<String>, now: Instant) {
        if why.is_some() {
            self.ending = why;
        }
        if self.phase == Phase::Open {
            self.phase = Phase::Closing { shut: false };
        }
        self.closing_since.get_or_insert(now);
    }

    /// Sends `data`: straight to the kernel when nothing is queued before it, and what the
    /// kernel does not take is kept, in order, for the next writable event.
    pub fn send(&mut self, data: &[u8], now: Instant, at_cap: &mut AtCap) -> io::Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        let result = if self.owed() > 0 {
            if self.sent > 0 {
                self.owed.drain(..self.sent);
                self.sent = 0;
            }
            self.owed.extend_from_slice(data);
            self.flush(now, at_cap)
        } else {
            self.write_some(data, now).map(|n| {
                if n < data.len() {
                    self.owed.clear();
                    self.sent = 0;
                    self.owed.extend_from_slice(&data[n..]);
                }
            })
        };
        let owed = self.owed();
        at_cap.note(&mut self.full, owed);
        result
    }

    /// Bytes from another client (fan-out). When nothing was waiting, this delivery starts
    /// the clock that tells a client that does not read (`not_reading`).
    pub fn pass_on(&mut self, data: &[u8], now: Instant, at_cap: &mut AtCap) -> io::Result<()> {
        if self.owed() == 0 {
            self.last_drained = now;
        }
        self.send(data, now, at_cap)
    }

    /// Writes as much of what is owed as the kernel takes now.
    pub fn flush(&mut self, now: Instant, at_cap: &mut AtCap) -> io::Result<()> {
        if self.owed() == 0 {
            return Ok(());
        }
        let owed = std::mem::take(&mut self.owed);
        let result = self.write_some(&owed[self.sent..], now);
        self.owed = owed;
        if let Ok(n) = result {
            self.sent += n;
            if self.sent == self.owed.len() {
                self.owed.clear();
                self.sent = 0;
                if self.owed.capacity() > KEEP_CAPACITY {
                    self.owed = Vec::new();
                }
            }
        }
        let owed = self.owed();
        at_cap.note(&mut self.full, owed);
        result.map(drop)
    }

    /// write() until the data is gone or the kernel's buffer is full (EAGAIN); how much went.
    fn write_some(&mut self, data: &[u8], now: Instant) -> io::Result<usize> {
        let mut done = 0;
        while done < data.len() {
            let r = (&self.sock).write(&data[done..]);
            if let Some(flow) = self.flow.as_mut().filter(|_| self.sock.tls().is_none()) {
                data_call(
                    flow,
                    Dir::Send,
                    self.sock.as_raw_fd(),
                    data.len() - done,
                    &r,
                );
            }
            match r {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
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

    /// What the clock says about the connection now, if anything: its lingering close is
    /// over (close it now), or it has been silent past the idle timeout (tell it, then the
    /// lingering close).
    pub fn overdue(&self, now: Instant, idle_timeout: Option<Duration>) -> Option<Overdue> {
        if let Some(why) = self.sock.tls().and_then(|t| t.overdue(now)) {
            return Some(Overdue::Dropped(why));
        }
        if let Some(since) = self.closing_since {
            let waited = now.saturating_duration_since(since);
            return (waited >= LINGER).then(|| {
                let why = format!(
                    "did not close within {} of our goodbye",
                    narrate::short(LINGER)
                );
                Overdue::Now(match &self.ending {
                    Some(first) => format!("{first}; {why}"),
                    None => why,
                })
            });
        }
        let quiet = now.saturating_duration_since(self.last_active);
        let limit = idle_timeout.filter(|&limit| quiet >= limit)?;
        let why = format!(
            "idle for {} (--idle-timeout {})",
            narrate::short(quiet),
            humantime::format_duration(limit)
        );
        Some(match self.phase {
            Phase::Open => Overdue::Idle(limit, why),
            // It sent EOF and takes nothing of what it is owed: nothing left to say.
            _ => Overdue::Now(why),
        })
    }

    /// Why a fan-out recipient counts as not reading, if it does: owed its cap or more and
    /// nothing taken by the kernel for `stall`.
    pub fn not_reading(&self, now: Instant, cap: usize, stall: Duration) -> Option<String> {
        let stalled = now.saturating_duration_since(self.last_drained);
        (self.owed() >= cap && stalled >= stall).then(|| {
            format!(
                "not reading: {} waiting to be sent to it, none taken for {}",
                narrate::bytes(self.owed() as u64),
                narrate::short(stalled)
            )
        })
    }

    /// Ends the connection: its `-v` line (or `--json` object), TCP_INFO at `-vv`, close()
    /// narrated, its place in `at_cap` given back. Returns the bytes it took in and sent, for
    /// the loop's totals, and whether its TLS peer ended without close_notify (always said:
    /// the data may be cut).
    pub fn close(self, why: &str, at_cap: &mut AtCap) -> (u64, u64, bool) {
        if self.full {
            at_cap.count -= 1;
        }
        let truncated = self
            .sock
            .tls()
            .is_some_and(crate::tls::TlsStream::truncated);
        if truncated {
            narrate::emit(format_args!(
                "{}: TLS: EOF without close_notify after {}: possible truncation",
                self.peer,
                narrate::bytes(self.bytes_in)
            ));
        }
        // Over TLS, what rustls was handed is not out until its records are in the kernel:
        // plaintext still queued at the close is not counted as sent.
        let out = self.bytes_out.saturating_sub(self.sock.unsent());
        if narrate::json() {
            narrate::json_line(&summary::client(&summary::Client {
                peer: &self.peer,
                sock: SockRef::from(&self.sock),
                received: self.bytes_in,
                sent: out,
                elapsed: self.opened.elapsed(),
                reason: why,
                tls: self.sock.tls().map(crate::tls::TlsStream::json),
            }));
        } else {
            narrate::info(format_args!(
                "closed {}: {why}; {} in, {} out, {}",
                self.peer,
                narrate::bytes(self.bytes_in),
                narrate::bytes(out),
                narrate::short(self.opened.elapsed())
            ));
        }
        if narrate::narrating()
            && let Some(info) = socket::tcp_info_summary(&SockRef::from(&self.sock))
        {
            narrate::emit(format_args!("{} {info}", self.peer));
        }
        if self.sock.is_tcp() {
            sample::end(self.sock.as_raw_fd());
        }
        self.sock.close();
        (self.bytes_in, out, truncated)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What an idle client costs the engine is its Conn (the socket buffers are the
    /// kernel's): 10,000 idle clients in a few MiB (benches/README.md) need it small, and
    /// what only -vv uses stays behind a pointer.
    #[test]
    fn an_idle_client_costs_a_small_struct() {
        let size = std::mem::size_of::<Conn<()>>();
        assert!(size <= 224, "a Conn is {size} bytes");
    }

    /// A connection to a Unix stream pair's other end, which the test reads when it likes.
    fn pair() -> (Conn<()>, std::os::unix::net::UnixStream) {
        let (ours, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
        ours.set_nonblocking(true).unwrap();
        let sock = Stream::Unix(mio::net::UnixStream::from_std(ours));
        let peer = Peer::Unix("test".to_string());
        (Conn::new(sock, peer, (), Instant::now()), theirs)
    }

    #[test]
    fn at_cap_counts_each_crossing_of_the_line_and_the_close() {
        let mut at_cap = AtCap::new(4096);
        let (mut a, mut reader) = pair();
        let (b, _keep) = pair();
        let now = Instant::now();
        // More than the kernel's buffer: the rest is owed, far past the cap.
        a.send(&vec![7u8; 4 << 20], now, &mut at_cap).unwrap();
        assert!(a.owed() >= 4096 && at_cap.any());
        // Sending more while full does not count it twice.
        a.send(b"more", now, &mut at_cap).unwrap();
        assert_eq!(at_cap.count, 1);
        // The client reads; what it is owed drains below the cap, and the count follows.
        let mut buf = vec![0u8; 1 << 20];
        while a.owed() > 0 {
            let _ = std::io::Read::read(&mut reader, &mut buf).unwrap();
            a.flush(now, &mut at_cap).unwrap();
            assert_eq!(at_cap.any(), a.owed() >= 4096);
        }
        assert!(!at_cap.any());
        // A full connection that closes gives its place back.
        a.send(&vec![7u8; 4 << 20], now, &mut at_cap).unwrap();
        assert!(at_cap.any());
        let _ = a.close("test", &mut at_cap);
        assert!(!at_cap.any());
        let _ = b.close("test", &mut at_cap);
        assert_eq!(at_cap.count, 0);
    }

    #[test]
    fn a_goodbye_shuts_our_side_once_all_is_sent_and_their_eof_ends_it() {
        let mut at_cap = AtCap::new(4096);
        let (mut c, mut client) = pair();
        let now = Instant::now();
        c.send(b"bye\n", now, &mut at_cap).unwrap();
        assert_eq!(c.follow(Next::Close, now), None);
        assert!(c.is_closing());
        // Nothing owed: pump shuts our side; the client reads the goodbye, then EOF.
        assert_eq!(c.pump(&mut at_cap, now), Ok(false));
        let mut got = Vec::new();
        std::io::Read::read_to_end(&mut client, &mut got).unwrap();
        assert_eq!(got, b"bye\n");
        // Their input is discarded, then their EOF ends the connection.
        std::io::Write::write_all(&mut client, b"late").unwrap();
        drop(client);
        c.woken(true, true);
        let mut buf = [0u8; 64];
        assert!(matches!(c.read(&mut buf, 4096, now), Input::Nothing));
        assert!(matches!(c.read(&mut buf, 4096, now), Input::Nothing));
        assert_eq!(
            c.pump(&mut at_cap, now),
            Err("the service ended the session".to_string())
        );
    }

    #[test]
    fn a_dropped_client_gets_the_same_lingering_close_and_its_reason_is_kept() {
        let mut at_cap = AtCap::new(4096);
        let (mut c, mut client) = pair();
        let now = Instant::now();
        c.send(b"too long, bye\n", now, &mut at_cap).unwrap();
        let why = c.follow(Next::Drop("sent a line too long".into()), now);
        assert_eq!(why.as_deref(), Some("sent a line too long"));
        assert!(
            c.is_closing(),
            "not closed at once: the line must get out first"
        );
        assert_eq!(c.pump(&mut at_cap, now), Ok(false));
        let mut got = Vec::new();
        std::io::Read::read_to_end(&mut client, &mut got).unwrap();
        assert_eq!(
            got, b"too long, bye\n",
            "the line, then EOF: our side is shut"
        );
        // A client that never closes is closed when the linger is up, whatever it does.
        assert_eq!(c.overdue(now, None), None);
        let later = now + LINGER;
        assert!(matches!(
            c.overdue(later, Some(Duration::from_hours(1))),
            Some(Overdue::Now(why)) if why.starts_with("sent a line too long; did not close")
        ));
        drop(client);
        c.woken(true, true);
        let mut buf = [0u8; 64];
        assert!(matches!(c.read(&mut buf, 4096, now), Input::Nothing));
        assert_eq!(
            c.pump(&mut at_cap, now),
            Err("sent a line too long".to_string())
        );
    }

    #[test]
    fn an_idle_client_is_told_before_it_is_closed() {
        let (c, _client) = pair();
        let now = Instant::now();
        let limit = Duration::from_secs(1);
        assert_eq!(c.overdue(now, Some(limit)), None);
        assert!(matches!(
            c.overdue(now + limit, Some(limit)),
            Some(Overdue::Idle(l, why)) if l == limit && why.contains("--idle-timeout 1s")
        ));
    }
}
