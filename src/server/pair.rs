//! One forwarded client: the pair of sockets (the client accepted, the connection made for it
//! to the target) and the two directions between them. Each direction moves bytes with
//! splice(2), socket -> pipe -> socket, so they never enter user space; where splice is refused
//! (or the hex view must see the bytes) a bounded buffer does the same job. Either way a side
//! is read only while its direction has room: backpressure reaches the sender through TCP.
//! A FIN becomes shutdown(SHUT_WR) on the other side once every byte before it is delivered;
//! a failure on either side resets both (SO_LINGER 0). When to move, and the outbound connect,
//! are the loop's (`forward.rs`); this file never waits.
//!
//! Memory: an idle pair costs its struct (under 350 bytes) and its two sockets. A direction
//! holds a pipe (kernel memory, at most `PIPE_SIZE`) only while bytes are in it: an emptied
//! pipe goes back to the loop's pool (`PipePool`, at most `POOL_MAX`), so ten thousand idle
//! pairs hold no pipes and no extra descriptors. The copying fallback's buffer (`COPY_BUF` per
//! direction) is allocated only when used.

use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use socket2::SockRef;

use super::peer::{Peer, plain_addr};
use super::socks::Handshake;
use super::stream::Stream;
use super::via::Via;
use crate::capture::{Leg, sample};
use crate::narrate::{self, Flow, Key};
use crate::relay::wire::{Dir, Dump};

/// What a pipe of one direction is asked to hold (the Linux default, made sure of).
const PIPE_SIZE: i32 = 64 * 1024;
/// The copying fallback's buffer, per direction.
pub const COPY_BUF: usize = 32 * 1024;
/// Empty pipes a loop keeps for reuse (each is two descriptors and a little kernel memory).
const POOL_MAX: usize = 64;
/// Rounds of fill-and-drain one direction gets per turn before the other pairs get theirs.
const ROUNDS_PER_TURN: usize = 16;

/// Which socket of a pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Client,
    Target,
}

/// Why a direction stopped for good before its FIN was passed on.
#[derive(Debug)]
pub enum Broken {
    /// Reading from the sending side failed (a reset, usually).
    Read(io::Error),
    /// Writing to the receiving side failed (it reset, or closed and reset our bytes).
    Write(io::Error),
}

/// How far one turn took a direction.
#[derive(Debug, PartialEq, Eq)]
pub enum Turn {
    /// Nothing more can move until an event says so.
    Waiting,
    /// Its share of the turn is used up and more could move now.
    More,
}

/// One direction: what was read from one side and not yet written to the other.
pub struct Half {
    /// The splice pipe, taken from the pool when bytes come and given back once empty.
    pipe: Option<Pipe>,
    /// The copying fallback: bytes `start..start + held` wait to be written.
    buf: Option<Box<[u8]>>,
    start: usize,
    /// Bytes taken from the source and not yet delivered.
    held: usize,
    cap: usize,
    /// Copy instead of splice: splice was refused, or the hex view must see the bytes.
    copy: bool,
    /// The source sent its FIN.
    pub eof: bool,
    /// The FIN was passed on (shutdown(SHUT_WR) on the receiving side).
    pub shut: bool,
    /// Bytes read from the source, and delivered to the other side.
    pub taken: u64,
    pub delivered: u64,
    /// The source's TLS ended with a TCP EOF and no close_notify; the FIN passed on was bare.
    pub truncated: bool,
    /// A plain TCP receiver's TCP_INFO bytes_acked before our first write to it: what it
    /// acknowledges of our bytes counts from there (`unacked`).
    acked_base: Option<u64>,
    /// This direction's data calls (splice, read, write), narrated at -vv; `None` otherwise,
    /// and boxed so an idle pair stays small when narration is off.
    flow: Option<Box<Flow>>,
}

impl Half {
    pub fn new(copy: bool) -> Half {
        Half {
            pipe: None,
            buf: None,
            start: 0,
            held: 0,
            cap: if copy { COPY_BUF } else { 0 },
            copy,
            eof: false,
            shut: false,
            taken: 0,
            delivered: 0,
            truncated: false,
            acked_base: None,
            flow: None,
        }
    }

    /// Narrates this direction's data calls at -vv, each line tagged with `who` (the
    /// client's address and which way).
    fn narrated(mut self, who: &str) -> Half {
        self.flow = Flow::for_client(&who).map(Box::new);
        self
    }

    /// Bytes taken and not delivered (what a reset now would lose).
    pub fn held(&self) -> u64 {
        self.held as u64
    }

    /// Bytes written to a plain TCP receiver `dst` that its TCP has not acknowledged: what a
    /// reset now loses in the kernel. 0 for TLS (the stage counts its own) and Unix sockets.
    pub fn unacked(&self, dst: &Stream) -> u64 {
        let (Some(base), None) = (self.acked_base, dst.tls()) else {
            return 0;
        };
        let acked =
            crate::socket::bytes_acked(dst.as_raw_fd()).map_or(0, |now| now.saturating_sub(base));
        self.delivered.saturating_sub(acked)
    }

    /// Moves bytes from `src` to `dst` until neither can go further (or the turn's share is
    /// used), then passes on the FIN once everything before it is out. `dump`: the hex view,
    /// with this direction's label.
    pub fn pump(
        &mut self,
        src: &Stream,
        dst: &Stream,
        dump: Option<(&Dump, &str, Dir)>,
        pool: &mut PipePool,
    ) -> Result<Turn, Broken> {
        let turn = self.rounds(src, dst, dump, pool);
        if self.held == 0
            && let Some(p) = self.pipe.take()
        {
            pool.give(p);
        }
        turn
    }

    fn rounds(
        &mut self,
        src: &Stream,
        dst: &Stream,
        dump: Option<(&Dump, &str, Dir)>,
        pool: &mut PipePool,
    ) -> Result<Turn, Broken> {
        for _ in 0..ROUNDS_PER_TURN {
            let mut moved = false;
            if !self.eof && (self.cap == 0 || self.held < self.cap) {
                match self.fill(src, dump, pool) {
                    Ok(0) => {
                        self.eof = true;
                        moved = true;
                    }
                    Ok(n) => {
                        self.held += n;
                        self.taken += n as u64;
                        moved = true;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => moved = true,
                    Err(e) => return Err(Broken::Read(e)),
                }
            }
            if self.held > 0 {
                if self.acked_base.is_none() && dst.tls().is_none() && dst.is_tcp() {
                    // Anything sent before (a SOCKS5 reply, a proxy request) was answered, so
                    // acknowledged, before the first bytes come to be relayed.
                    self.acked_base = crate::socket::bytes_acked(dst.as_raw_fd());
                }
                match self.drain(dst) {
                    Ok(n) => {
                        self.held -= n;
                        self.delivered += n as u64;
                        moved |= n > 0;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => moved = true,
                    Err(e) => return Err(Broken::Write(e)),
                }
            }
            if self.eof && self.held == 0 && !self.shut {
                self.shut = true;
                // The receiver may be gone already; its reset shows in the other direction.
                // Over TLS: close_notify, then the FIN once it is out; but a truncation
                // (the source's TLS ended without close_notify) is passed on as one, a bare
                // FIN, so the far end does not take cut data for a clean end.
                self.truncated = src.truncated();
                if self.truncated {
                    dst.shutdown_write_bare();
                } else {
                    dst.shutdown_write();
                }
                return Ok(Turn::Waiting);
            }
            if !moved {
                return Ok(Turn::Waiting);
            }
        }
        Ok(Turn::More)
    }

    /// One read from the source into the pipe (or the buffer). 0: its FIN.
    fn fill(
        &mut self,
        src: &Stream,
        dump: Option<(&Dump, &str, Dir)>,
        pool: &mut PipePool,
    ) -> io::Result<usize> {
        if !self.copy {
            if self.pipe.is_none() {
                match pool.take() {
                    Ok(pipe) => {
                        self.cap = pipe.cap;
                        self.pipe = Some(pipe);
                    }
                    // Out of descriptors, most likely: this direction copies instead.
                    Err(_) => self.fall_back_to_copy(),
                }
            }
            if let Some(p) = &self.pipe {
                let room = self.cap - self.held;
                let got = splice(&mut self.flow, src.as_raw_fd(), p.w.as_raw_fd(), room);
                match got {
                    // Refused for these descriptors (EINVAL) or this kernel (ENOSYS): copy.
                    Err(e) if self.held == 0 && refused(&e) => {
                        narrate::info(format_args!(
                            "splice(2) refused ({}): this direction copies through a {} buffer",
                            crate::error::plain(&e),
                            narrate::bytes(COPY_BUF as u64)
                        ));
                        self.fall_back_to_copy();
                    }
                    other => return other,
                }
            }
        }
        let buf = self
            .buf
            .get_or_insert_with(|| vec![0; COPY_BUF].into_boxed_slice());
        if self.held == 0 {
            self.start = 0;
        }
        let end = self.start + self.held;
        if end == buf.len() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let want = buf.len() - end;
        let got = (&*src).read(&mut buf[end..]);
        let fd = src.as_raw_fd();
        // std's socket read is recvfrom(2) with no flags, as strace shows it.
        tell(&mut self.flow, ("recvfrom", fd, None), &got, || {
            format!("recvfrom(fd {fd}, buf, {want}, 0, NULL, NULL)")
        });
        let n = got?;
        if let Some((d, label, dir)) = dump {
            d.record(Some(label), dir, self.taken, &buf[end..end + n]);
        }
        Ok(n)
    }

    /// One write of what is held to the other side.
    fn drain(&mut self, dst: &Stream) -> io::Result<usize> {
        let (held, fd) = (self.held, dst.as_raw_fd());
        if let (false, Some(p)) = (self.copy, &self.pipe) {
            return splice(&mut self.flow, p.r.as_raw_fd(), fd, held);
        }
        let Some(buf) = &self.buf else {
            return Ok(0);
        };
        let got = (&*dst).write(&buf[self.start..self.start + held]);
        // std's socket write is sendto(2) with MSG_NOSIGNAL, as strace shows it.
        tell(&mut self.flow, ("sendto", fd, None), &got, || {
            format!("sendto(fd {fd}, buf, {held}, MSG_NOSIGNAL, NULL, 0)")
        });
        let n = got?;
        self.start += n;
        Ok(n)
    }

    fn fall_back_to_copy(&mut self) {
        self.copy = true;
        self.pipe = None;
        self.cap = COPY_BUF;
    }
}

const NONBLOCK: libc::c_uint = libc::SPLICE_F_NONBLOCK;

/// splice(2) of at most `len` bytes, non-blocking, told to `flow` at -vv.
fn splice(flow: &mut Option<Box<Flow>>, from: RawFd, to: RawFd, len: usize) -> io::Result<usize> {
    let got = crate::sys::splice(from, to, len, NONBLOCK);
    tell(flow, ("splice", from, Some(to)), &got, || {
        format!("splice(fd {from}, NULL, fd {to}, NULL, {len}, SPLICE_F_MOVE|SPLICE_F_NONBLOCK)")
    });
    got
}

/// Tells `flow` (when -vv made one) of one data call: its name and descriptors, its result,
/// and how strace spells it (`full`, only formatted when the line is shown).
fn tell(
    flow: &mut Option<Box<Flow>>,
    (name, from, to): (&'static str, RawFd, Option<RawFd>),
    got: &io::Result<usize>,
    full: impl FnOnce() -> String,
) {
    if let Some(f) = flow {
        let result = got.as_ref().map(|n| *n).map_err(copy_error);
        f.call(Key { name, from, to }, full, &result);
    }
}

/// A copy of a call's error for the narration, which takes the result by reference while the
/// caller keeps the original.
fn copy_error(e: &io::Error) -> io::Error {
    e.raw_os_error().map_or_else(
        || io::Error::new(e.kind(), e.to_string()),
        io::Error::from_raw_os_error,
    )
}

fn refused(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EINVAL | libc::ENOSYS))
}

/// A splice pipe: its read end, its write end, the bytes it holds.
pub struct Pipe {
    r: OwnedFd,
    w: OwnedFd,
    cap: usize,
}

/// A loop's empty pipes, so a burst of bytes does not cost a pipe2() and two close()s.
#[derive(Default)]
pub struct PipePool {
    free: Vec<Pipe>,
}

impl PipePool {
    fn take(&mut self) -> io::Result<Pipe> {
        if let Some(p) = self.free.pop() {
            return Ok(p);
        }
        let (r, w) = crate::sys::pipe()?;
        let cap = crate::sys::grow_pipe(w.as_raw_fd(), PIPE_SIZE)?;
        Ok(Pipe { r, w, cap })
    }

    /// Takes back an empty pipe (closed instead when the pool is full).
    fn give(&mut self, p: Pipe) {
        if self.free.len() < POOL_MAX {
            self.free.push(p);
        }
    }
}

/// A pair: the client, its target (once a connection to it is under way), both directions.
pub struct Pair {
    pub client: Stream,
    pub peer: Peer,
    pub target: Option<Stream>,
    /// The target being connected to or connected to.
    pub target_addr: String,
    /// The target connection is established (before that, the client is not read).
    pub up_and_running: bool,
    /// The addresses still to try after the current attempt, and when the attempt expires.
    pub next_addrs: Vec<std::net::SocketAddr>,
    pub deadline: Option<Instant>,
    /// Client to target, and target to client.
    pub up: Half,
    pub down: Half,
    pub last: Instant,
    pub opened: Instant,
    /// `forward --socks5`: the SOCKS5 handshake, before the target is known.
    pub socks: Option<Handshake>,
    /// `--proxy`: what to ask the proxy for (until it is asked), and the handshake with it.
    pub via_dest: Option<(crate::proxy::Dest, u16)>,
    /// `--socks5`: the target the client asked for (as said, as looked up, port) while its
    /// addresses are being looked up.
    pub asked: Option<(String, String, u16)>,
    pub via: Option<Via>,
    /// The capture's hold on the target connection (`--wire`): let go when the socket goes.
    pub leg: Option<Leg>,
}

impl Pair {
    pub fn new(client: Stream, peer: Peer, copy: bool, now: Instant) -> Pair {
        if client.is_tcp() {
            sample::begin(client.as_raw_fd(), || {
                Some(sample::Who::ClientLeg(peer.to_string()))
            });
        }
        let (mut up, mut down) = (Half::new(copy), Half::new(copy));
        if narrate::narrating() {
            up = up.narrated(&format!("{peer} -> target"));
            down = down.narrated(&format!("{peer} <- target"));
        }
        Pair {
            client,
            peer,
            target: None,
            target_addr: String::new(),
            up_and_running: false,
            next_addrs: Vec::new(),
            deadline: None,
            up,
            down,
            last: now,
            opened: now,
            socks: None,
            asked: None,
            via_dest: None,
            via: None,
            leg: None,
        }
    }

    /// Both FINs passed on (and over TLS, the last ciphertext out): the pair is done.
    pub fn done(&self) -> bool {
        self.up.shut
            && self.down.shut
            && !self.client.holds_output()
            && !self.target.as_ref().is_some_and(Stream::holds_output)
    }

    /// The `-v` lines of a TLS handshake either side just finished.
    pub fn tell_tls(&self) {
        let sides = [
            ("client", Some(&self.client)),
            ("target", self.target.as_ref()),
        ];
        for (side, s) in sides {
            if let Some(lines) = s
                .and_then(Stream::tls)
                .and_then(crate::tls::TlsStream::news)
            {
                for line in lines {
                    narrate::info(format_args!("{} ({side} side): {line}", self.peer));
                }
            }
        }
    }

    /// Why the pair must go now: a TLS handshake on either side has run past its bound.
    pub fn tls_overdue(&self, now: Instant) -> Option<String> {
        if !self.up_and_running {
            return None;
        }
        let sides = [
            ("client", Some(&self.client)),
            ("target", self.target.as_ref()),
        ];
        sides.into_iter().find_map(|(side, s)| {
            s.and_then(Stream::tls)
                .and_then(|t| t.overdue(now))
                .map(|why| format!("the {side}: {why}"))
        })
    }

    /// Moves both directions as far as they go now. `More`: call again this turn.
    pub fn pump(
        &mut self,
        dump: Option<&Dump>,
        pool: &mut PipePool,
        now: Instant,
    ) -> Result<Turn, (Side, Broken)> {
        let Some(target) = &self.target else {
            return Ok(Turn::Waiting);
        };
        // Ciphertext rustls could not hand over last time goes first (a writable event).
        self.client
            .send_held()
            .map_err(|e| (Side::Target, Broken::Write(e)))?;
        target
            .send_held()
            .map_err(|e| (Side::Client, Broken::Write(e)))?;
        let (before_up, before_down) = (self.up.taken, self.down.taken);
        let labels = dump.map(|d| {
            (
                d,
                format!("{} to {}", self.peer, self.target_addr),
                format!("{} to {}", self.target_addr, self.peer),
            )
        });
        let up = self
            .up
            .pump(
                &self.client,
                target,
                labels.as_ref().map(|(d, l, _)| (*d, l.as_str(), Dir::Out)),
                pool,
            )
            .map_err(|b| (Side::Client, b))?;
        let down = self
            .down
            .pump(
                target,
                &self.client,
                labels.as_ref().map(|(d, _, l)| (*d, l.as_str(), Dir::In)),
                pool,
            )
            .map_err(|b| (Side::Target, b))?;
        if self.up.taken != before_up || self.down.taken != before_down {
            self.last = now;
        }
        Ok(if up == Turn::More || down == Turn::More {
            Turn::More
        } else {
            Turn::Waiting
        })
    }

    /// Bytes taken from one side and never delivered to the other: held here, or accepted by
    /// a TLS side whose records the kernel has not taken whole. When the pair `broke` (it is
    /// being reset), also what the reset loses on the way: bytes (a TLS side: whole records)
    /// the kernel took and the peer's TCP has not acknowledged, and what a plain side sent
    /// that waits unread in our receive queue.
    pub fn undelivered(&self, broke: bool) -> u64 {
        let (up, down) = self.unsent(broke);
        let unread = if broke { self.unread() } else { 0 };
        self.up.held() + self.down.held() + up + down + unread
    }

    /// Bytes delivered to the target, and back to the client: what the kernel took (over
    /// TLS, as whole records: not what rustls was handed) and, if the pair `broke`, what the
    /// peer's TCP acknowledged.
    pub fn delivered(&self, broke: bool) -> (u64, u64) {
        let (up, down) = self.unsent(broke);
        (
            self.up.delivered.saturating_sub(up),
            self.down.delivered.saturating_sub(down),
        )
    }

    /// Bytes handed to a side and not delivered (to the target, to the client): over TLS not
    /// in the kernel yet; and (`broke`) not acknowledged by the peer.
    fn unsent(&self, broke: bool) -> (u64, u64) {
        let side = |half: &Half, s: &Stream| {
            s.unsent()
                + if broke {
                    s.unacked() + half.unacked(s)
                } else {
                    0
                }
        };
        (
            self.target.as_ref().map_or(0, |t| side(&self.up, t)),
            side(&self.down, &self.client),
        )
    }

    /// Bytes a plain side sent that wait unread in our receive queue (FIONREAD): lost when
    /// the pair is reset. A TLS side's are ciphertext, whose plaintext is unknown until
    /// decrypted, so they are not counted.
    fn unread(&self) -> u64 {
        std::iter::once(&self.client)
            .chain(self.target.as_ref())
            .filter(|s| s.tls().is_none())
            .map(|s| crate::sys::unread(s.as_raw_fd()).map_or(0, |n| n as u64))
            .sum()
    }

    /// Closes both sockets; `reset`: with SO_LINGER 0, so each peer gets a RST, not a FIN.
    pub fn close(self, reset: bool) {
        let Pair { client, target, .. } = self;
        // Sampled or not, each socket's registration goes before the socket does.
        for s in std::iter::once(&client).chain(target.as_ref()) {
            if s.is_tcp() {
                sample::end(s.as_raw_fd());
            }
        }
        for s in std::iter::once(client).chain(target) {
            if reset {
                set_linger_zero(&s);
            }
            s.close();
        }
    }

    /// Starts sampling the target leg (`--tcp-info-every`), once it is connected; its last
    /// sample is taken in [`Pair::close`].
    pub fn sample_target(&self) {
        let Some(target) = self.target.as_ref().filter(|t| t.is_tcp()) else {
            return;
        };
        sample::begin(target.as_raw_fd(), || {
            let sock = SockRef::from(target);
            let name = |a: std::io::Result<socket2::SockAddr>| a.ok().and_then(|a| a.as_socket());
            let peer = name(sock.peer_addr()).map(plain_addr)?;
            let port = name(sock.local_addr()).map_or(0, |a| a.port());
            Some(sample::Who::TargetLeg {
                target: peer.to_string(),
                port,
                client: self.peer.to_string(),
            })
        });
    }

    /// How long the pair has been open.
    pub fn age(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.opened)
    }
}

/// setsockopt(SO_LINGER, {on, 0}): the close that follows sends a RST, at once.
pub fn set_linger_zero(s: &Stream) {
    let fd = s.as_raw_fd();
    let _ = narrate::traced(
        || SockRef::from(s).set_linger(Some(Duration::ZERO)),
        |r| {
            format!(
                "setsockopt(fd {fd}, SOL_SOCKET, SO_LINGER, {{l_onoff=1, l_linger=0}}) {}",
                narrate::outcome(r)
            )
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An idle pair holds no buffer and no pipe: its cost in user space is its struct (and
    /// its slot), which must stay well under the 2 KiB per pair the design promises.
    #[test]
    fn an_idle_pair_costs_its_struct_alone() {
        let size = std::mem::size_of::<Pair>();
        assert!(size < 1024, "a Pair is {size} bytes");
        let h = Half::new(false);
        assert!(h.pipe.is_none() && h.buf.is_none() && h.held() == 0);
    }
}
