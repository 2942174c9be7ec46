//! The datagram session of `connect -u` and `listen -u` (UDP, and SOCK_DGRAM Unix sockets with
//! `-U -u`): each stdin read (or line, with `--lines`) becomes one datagram, each datagram
//! received is written to stdout, one thread polling both, every datagram through the wire
//! stages of wire.rs. It lives apart from stream.rs because datagrams have no stream to
//! half-close, no EOF and a size limit, and an unconnected socket has many peers: it answers
//! the one heard from last and announces every new one. The sockets are made in `socket`.

use std::collections::HashSet;
use std::io::{self, Read, Write};
use std::mem::MaybeUninit;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow};
use socket2::{SockAddr, Socket};

use super::ending::{End, Ending};
use super::wire::{Framing, Outbound, Wire};
use crate::error;
use crate::interrupt::{self, Live};
use crate::narrate::{self, Flow, Key};
use crate::socket::unix;
use crate::socket::{self, fd};

/// The largest UDP payload over IPv4: 65,535 (the IPv4 total length field) less the 20-byte
/// IPv4 header and the 8-byte UDP header.
pub const MAX_UDP4: usize = 65_507;
/// The largest UDP payload over IPv6: 65,535 (the payload length field, which excludes the
/// 40-byte IPv6 header) less the 8-byte UDP header. Jumbograms aside.
pub const MAX_UDP6: usize = 65_527;

/// One receive buffer, larger than any UDP datagram and than a Unix datagram under the
/// default socket buffer sizes; a larger one is reported as truncated, never silently cut.
const RECV_BUF: usize = 256 * 1024;

/// The most peers `listen -u` remembers (to tell a new peer from a returning one); past it the
/// oldest are forgotten, so a flood of senders costs bounded memory.
const MAX_KNOWN_PEERS: usize = 4096;

/// Whom a datagram relay talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peers {
    /// A connected socket: send() and recv(), one peer.
    Connected,
    /// An unconnected (listening) socket: recvfrom() from anyone, stdin goes by sendto() to
    /// the peer heard from last.
    AnswerLast,
}

/// A datagram session's settings.
pub struct DgramRelay<'a> {
    pub sock: &'a Socket,
    pub opts: Ending,
    pub lines: bool,
    pub peers: Peers,
    /// Whether `-q` was given: quiet servers do not announce peers either.
    pub quiet: bool,
    /// `--crlf` and the dump, applied to each datagram.
    pub wire: &'a Wire,
}

/// What a session moved, for `-v`.
#[derive(Debug, Clone)]
pub struct Counts {
    pub sent: u64,
    pub sent_bytes: u64,
    pub received: u64,
    pub received_bytes: u64,
    /// Datagrams larger than sockkit's receive buffer, cut to it (and said so on stderr).
    pub truncated: u64,
    /// Who the session was with: the connected peer, or the one heard from last.
    pub peer: Option<SockAddr>,
    /// The byte counts again, for the signal thread (interrupt.rs).
    live: Arc<Live>,
}

impl Counts {
    /// Zero counts for a session starting now, published to the signal thread.
    fn start() -> Counts {
        let live = Live::new(Arc::new(AtomicU64::new(0)));
        interrupt::publish(&live);
        Counts {
            sent: 0,
            sent_bytes: 0,
            received: 0,
            received_bytes: 0,
            truncated: 0,
            peer: None,
            live,
        }
    }
}

/// How a peer's address reads: `127.0.0.1:5000` (IPv4 on a dual-stack socket unmapped), a
/// path, `@name`.
pub fn show(a: &SockAddr) -> String {
    match a.as_socket() {
        Some(s) => plain(s).to_string(),
        None => unix::show(a),
    }
}

/// An IPv4 peer of a dual-stack socket as `127.0.0.1:5000`, not `[::ffff:127.0.0.1]:5000`.
fn plain(a: std::net::SocketAddr) -> std::net::SocketAddr {
    std::net::SocketAddr::new(a.ip().to_canonical(), a.port())
}

/// The size limit for one datagram to `to` and its explanation, or `None` where the kernel's
/// send buffer is the only limit (Unix datagrams).
fn limit_for(to: &SockAddr) -> Option<(usize, &'static str)> {
    let s = to.as_socket()?;
    let v4 = match s.ip() {
        std::net::IpAddr::V4(_) => true,
        std::net::IpAddr::V6(v6) => v6.to_ipv4_mapped().is_some(),
    };
    Some(if v4 {
        (
            MAX_UDP4,
            "a UDP datagram over IPv4 carries at most 65,507 bytes (65,535 less the 20-byte IPv4 \
             and 8-byte UDP headers)",
        )
    } else {
        (
            MAX_UDP6,
            "a UDP datagram over IPv6 carries at most 65,527 bytes (65,535 less the 8-byte UDP \
             header)",
        )
    })
}

/// The error for a datagram too big to send, with what the limit is and why.
/// `at_least`: sockkit stopped reading at one byte over the limit, so `len` is a lower bound.
fn too_big(len: usize, at_least: bool, to: &SockAddr, sock: &Socket, lines: bool) -> anyhow::Error {
    let len = if at_least {
        format!("at least {len}")
    } else {
        len.to_string()
    };
    let how = if lines {
        "shorten the line"
    } else {
        "send less per write, or use --lines to send one datagram per line"
    };
    if let Some((_, why)) = limit_for(to) {
        anyhow!("datagram of {len} bytes is too big: {why}; {how}")
    } else {
        let sndbuf = sock
            .send_buffer_size()
            .map(|n| format!(" ({n} bytes now)"))
            .unwrap_or_default();
        anyhow!(
            "datagram of {len} bytes is too big: a Unix datagram must fit the socket's send \
             buffer, SO_SNDBUF{sndbuf}; raise it with -o sndbuf=SIZE or {how}"
        )
    }
}

fn refused(peer: &SockAddr) -> anyhow::Error {
    match peer.as_socket() {
        Some(a) => anyhow!(
            "connection refused: nothing is listening on UDP {a} (its host answered with ICMP \
             port unreachable)"
        ),
        None => anyhow!(
            "connection refused: nothing is bound to {} any more (its server has gone)",
            unix::show(peer)
        ),
    }
}

/// An error as narration needs it twice: the same errno (or kind) in a new value.
fn copy_error(e: &io::Error) -> io::Error {
    e.raw_os_error()
        .map_or_else(|| io::Error::from(e.kind()), io::Error::from_raw_os_error)
}

/// Writes all of `data` to stdout, each write(2) told to `flow`.
fn write_all(flow: &mut Option<Flow>, out: &mut std::fs::File, mut data: &[u8]) -> io::Result<()> {
    while !data.is_empty() {
        let r = out.write(data);
        if let Some(flow) = flow {
            let key = Key {
                name: "write",
                from: 1,
                to: None,
            };
            let len = data.len();
            flow.call(
                key,
                || format!("write(fd 1, buf, {len})"),
                &r.as_ref().map(|n| *n).map_err(copy_error),
            );
        }
        match r {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => data = &data[n..],
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

impl DgramRelay<'_> {
    /// Relays until stdin EOF plus `--quit-after`, `--idle-timeout`, `--send-only` at stdin
    /// EOF, a closed stdout, or an error.
    pub fn run(&self) -> Result<(Counts, End)> {
        let mut out = self.wire.outbound(Framing::Datagrams);
        let mut inb = self.wire.inbound(Framing::Datagrams);
        // Unbuffered on purpose: one read is one datagram, and std's Stdin would merge reads.
        let mut stdout = crate::sys::stdio_file(1);
        let mut stdin = crate::sys::stdio_file(0);
        let connected_to = match self.peers {
            Peers::Connected => Some(
                narrate::traced(
                    || self.sock.peer_addr(),
                    |r| match r {
                        Ok(a) => format!("getpeername(fd {}) = {}", fd(self.sock), show(a)),
                        Err(e) => {
                            format!(
                                "getpeername(fd {}) {}",
                                fd(self.sock),
                                narrate::errno_text(e)
                            )
                        }
                    },
                )
                .map_err(|e| anyhow!("getpeername(): {}", error::plain(&e)))?,
            ),
            Peers::AnswerLast => None,
        };
        // The data calls, narrated at -vv: the first of each in full, then once a second.
        let mut up = Flow::new("stdin -> socket");
        let mut down = Flow::new("socket -> stdout");
        // Where stdin goes: the connected peer, or the last one heard from.
        let mut target: Option<SockAddr> = connected_to.clone();
        let mut known: HashSet<Vec<u8>> = HashSet::new();
        let mut known_order = std::collections::VecDeque::<Vec<u8>>::new();
        let read_max = match connected_to.as_ref().and_then(limit_for) {
            // One more than the limit, so an oversized read is seen as such.
            Some((max, _)) => max + 1,
            None => RECV_BUF,
        };
        let mut inbuf = vec![0u8; read_max];
        let mut line: Vec<u8> = Vec::new();
        let mut rbuf = vec![MaybeUninit::<u8>::uninit(); RECV_BUF];
        let mut counts = Counts::start();
        counts.peer.clone_from(&connected_to);
        let mut stdin_open = !self.opts.recv_only;
        let mut stdin_eof_at: Option<Instant> = None;
        let mut last_activity = Instant::now();
        let sfd = fd(self.sock);
        loop {
            let now = Instant::now();
            let quit_at = stdin_eof_at.zip(self.opts.quit_after).map(|(t, q)| t + q);
            if quit_at.is_some_and(|q| now >= q) {
                narrate::info(format_args!("--quit-after ran out after stdin EOF; ending"));
                return Ok((counts, End::QuitAfter));
            }
            let idle_at = self.opts.idle_timeout.map(|t| last_activity + t);
            if let (Some(at), Some(t)) = (idle_at, self.opts.idle_timeout)
                && now >= at
            {
                narrate::info(format_args!(
                    "no datagram either way for {} (--idle-timeout): ending",
                    humantime::format_duration(t)
                ));
                return Ok((counts, End::Closed));
            }
            let timeout = [quit_at, idle_at]
                .into_iter()
                .flatten()
                .min()
                .map(|d| d.saturating_duration_since(now));
            // stdin waits until there is someone to send it to.
            let want_stdin = stdin_open && target.is_some();
            let ready =
                socket::poll_readable(&[Some(sfd), want_stdin.then(|| stdin.as_raw_fd())], timeout)
                    .map_err(|e| anyhow!("poll(): {}", error::plain(&e)))?;
            let (sock_ready, stdin_ready) = (ready[0], ready[1]);
            if sock_ready {
                let got = self.sock.recv_from_with_flags(&mut rbuf, libc::MSG_TRUNC);
                if let Some(flow) = &mut down {
                    let who = got
                        .as_ref()
                        .map_or_else(|_| String::new(), |(_, a)| show(a));
                    let key = Key {
                        name: "recvfrom",
                        from: sfd,
                        to: None,
                    };
                    let full = || format!("recvfrom(fd {sfd}, buf, {RECV_BUF}, MSG_TRUNC, {who})");
                    flow.call(
                        key,
                        full,
                        &got.as_ref().map(|(n, _)| *n).map_err(copy_error),
                    );
                }
                let (n, from) = match got {
                    Ok(r) => r,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) if e.raw_os_error() == Some(libc::ECONNREFUSED) => {
                        if let Some(p) = &connected_to {
                            return Err(refused(p));
                        }
                        narrate::emit(format_args!(
                            "an earlier datagram bounced: the peer's port is closed \
                             (ICMP port unreachable)"
                        ));
                        continue;
                    }
                    Err(e) => {
                        return Err(anyhow!(
                            "recvfrom(fd {sfd}): {} (after {} datagrams)",
                            error::plain(&e),
                            counts.received
                        ));
                    }
                };
                let kept = n.min(RECV_BUF);
                let who = show(&from);
                if n > RECV_BUF {
                    counts.truncated += 1;
                    counts.live.truncated.fetch_add(1, Ordering::Relaxed);
                    narrate::emit(format_args!(
                        "a datagram of {n} bytes from {who} was cut to {RECV_BUF} (sockkit's \
                         receive buffer)"
                    ));
                }
                counts.received += 1;
                counts
                    .live
                    .datagrams_received
                    .fetch_add(1, Ordering::Relaxed);
                counts.received_bytes += kept as u64;
                counts
                    .live
                    .received
                    .fetch_add(kept as u64, Ordering::Relaxed);
                last_activity = Instant::now();
                if self.peers == Peers::AnswerLast
                    && self.note_peer(&from, &who, &mut target, &mut known, &mut known_order)
                {
                    counts.peer.clone_from(&target);
                }
                narrate::info(format_args!("datagram of {n} B from {who}"));
                let data = crate::sys::received(&rbuf, kept);
                inb.received(data);
                if !self.opts.send_only
                    && let Err(e) = write_all(&mut down, &mut stdout, data)
                {
                    if error::is_broken_pipe(&e) {
                        return Ok((counts, End::StdoutClosed));
                    }
                    return Err(anyhow!("writing to stdout: {}", error::plain(&e)));
                }
            }
            if !stdin_ready {
                continue;
            }
            let Some(to) = target.clone() else { continue };
            let got = stdin.read(&mut inbuf);
            if let Some(flow) = &mut up {
                let key = Key {
                    name: "read",
                    from: 0,
                    to: None,
                };
                let len = inbuf.len();
                flow.call(
                    key,
                    || format!("read(fd 0, buf, {len})"),
                    &got.as_ref().map(|n| *n).map_err(copy_error),
                );
            }
            let n = match got {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(anyhow!("reading stdin: {}", error::plain(&e))),
            };
            if n == 0 {
                stdin_open = false;
                stdin_eof_at = Some(Instant::now());
                if self.lines && !line.is_empty() {
                    let rest = std::mem::take(&mut line);
                    self.send(&mut up, &mut out, &rest, &to, &mut counts)?;
                }
                narrate::info(format_args!(
                    "stdin ended after {} datagrams; a datagram socket has no EOF to send, so {}",
                    counts.sent,
                    match (
                        self.opts.send_only,
                        self.opts.quit_after,
                        self.opts.idle_timeout
                    ) {
                        (true, _, _) => "ending (--send-only)".to_string(),
                        (_, Some(q), _) => format!(
                            "still printing datagrams for {} (--quit-after)",
                            humantime::format_duration(q)
                        ),
                        (_, None, Some(_)) => "ending after --idle-timeout of silence".into(),
                        _ => "still printing datagrams until Ctrl-C (see --quit-after)".into(),
                    }
                ));
                if self.opts.send_only {
                    return Ok((counts, End::Closed));
                }
                continue;
            }
            last_activity = Instant::now();
            if !self.lines {
                self.send(&mut up, &mut out, &inbuf[..n], &to, &mut counts)?;
                continue;
            }
            line.extend_from_slice(&inbuf[..n]);
            let mut start = 0;
            while let Some(pos) = line[start..].iter().position(|&b| b == b'\n') {
                let end = start + pos + 1;
                self.send(&mut up, &mut out, &line[start..end], &to, &mut counts)?;
                start = end;
            }
            line.drain(..start);
            // A line longer than any datagram can never be sent: say so now, not at its end.
            if let Some((max, _)) = limit_for(&to)
                && line.len() > max
            {
                return Err(too_big(line.len(), true, &to, self.sock, true));
            }
            if line.len() > RECV_BUF {
                return Err(too_big(line.len(), true, &to, self.sock, true));
            }
        }
    }

    /// `listen -u`: remembers who sent the last datagram (stdin goes there) and announces a
    /// new peer, or a change back to an earlier one, so no peer goes unnoticed. True when
    /// stdin's target changed.
    fn note_peer(
        &self,
        from: &SockAddr,
        who: &str,
        target: &mut Option<SockAddr>,
        known: &mut HashSet<Vec<u8>>,
        order: &mut std::collections::VecDeque<Vec<u8>>,
    ) -> bool {
        let key = addr_key(from);
        if target.as_ref().map(addr_key).as_deref() == Some(&key[..]) {
            return false;
        }
        // An unbound Unix socket: no path, no abstract name, so nothing to sendto.
        let unnamed = from.as_socket().is_none()
            && from.as_pathname().is_none()
            && from.as_abstract_namespace().is_none();
        if unnamed {
            if !self.quiet {
                narrate::emit(format_args!(
                    "a datagram came from an unbound Unix socket: it has no address, so it \
                     cannot be answered (stdin still goes to {})",
                    target.as_ref().map_or_else(|| "nobody".into(), show)
                ));
            }
            return false;
        }
        let new = known.insert(key.clone());
        if new {
            order.push_back(key);
            if order.len() > MAX_KNOWN_PEERS
                && let Some(old) = order.pop_front()
            {
                known.remove(&old);
            }
        }
        *target = Some(from.clone());
        // Published before it is announced, so a signal that follows the announcement finds
        // the peer in the cut-short summary.
        if narrate::json() {
            interrupt::peer_changed(crate::json::address(Some(from)));
        }
        if !self.quiet {
            if new {
                narrate::emit(format_args!("new peer {who}: stdin now goes to it"));
            } else {
                narrate::emit(format_args!(
                    "stdin now goes to {who} again (heard from last)"
                ));
            }
        }
        true
    }

    /// Sends one datagram, through the wire stages, to the connected peer or by sendto to `to`.
    fn send(
        &self,
        flow: &mut Option<Flow>,
        stages: &mut Outbound,
        data: &[u8],
        to: &SockAddr,
        counts: &mut Counts,
    ) -> Result<()> {
        // The dump shows a datagram only if it went (a gone `listen -u` peer is skipped).
        let before = counts.sent;
        stages.pass(data, |data| {
            let r = self.send_one(flow, data, to, counts);
            (if counts.sent > before { data.len() } else { 0 }, r)
        })
    }

    fn send_one(
        &self,
        flow: &mut Option<Flow>,
        data: &[u8],
        to: &SockAddr,
        counts: &mut Counts,
    ) -> Result<()> {
        if let Some((max, _)) = limit_for(to)
            && data.len() > max
        {
            return Err(too_big(data.len(), !self.lines, to, self.sock, self.lines));
        }
        let sfd = fd(self.sock);
        let who = show(to);
        let r = loop {
            let r = match self.peers {
                Peers::Connected => self.sock.send(data),
                Peers::AnswerLast => self.sock.send_to(data, to),
            };
            if let Some(flow) = flow {
                let key = Key {
                    name: "sendto",
                    from: sfd,
                    to: None,
                };
                // socket2's send and send_to are sendto(2) with no flags, as strace shows.
                let len = data.len();
                let full = || match self.peers {
                    Peers::Connected => {
                        format!("sendto(fd {sfd}, buf, {len}, 0, NULL, 0)")
                    }
                    Peers::AnswerLast => {
                        format!("sendto(fd {sfd}, buf, {len}, 0, {who})")
                    }
                };
                flow.call(key, full, &r.as_ref().map(|n| *n).map_err(copy_error));
            }
            match r {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                other => break other,
            }
        };
        match r {
            Ok(_) => {
                counts.sent += 1;
                counts.sent_bytes += data.len() as u64;
                counts
                    .live
                    .sent
                    .fetch_add(data.len() as u64, Ordering::Relaxed);
                counts.live.datagrams_sent.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Err(e) if e.raw_os_error() == Some(libc::EMSGSIZE) => {
                Err(too_big(data.len(), false, to, self.sock, self.lines))
            }
            Err(e) if e.raw_os_error() == Some(libc::ECONNREFUSED) => match self.peers {
                Peers::Connected => Err(refused(to)),
                Peers::AnswerLast => {
                    narrate::emit(format_args!(
                        "{who} is gone: {} bytes from stdin were not delivered",
                        data.len()
                    ));
                    Ok(())
                }
            },
            Err(e) => Err(anyhow!(
                "sending {} bytes to {who}: {}",
                data.len(),
                error::plain(&e)
            )),
        }
    }
}

/// A peer's address as bytes, to tell peers apart.
fn addr_key(a: &SockAddr) -> Vec<u8> {
    match a.as_socket() {
        Some(s) => plain(s).to_string().into_bytes(),
        None => unix::show(a).into_bytes(),
    }
}

/// The `-v` end-of-session lines: what moved, and what the kernel dropped before sockkit
/// could read it (UDP has no flow control: a sender faster than the reader overflows the
/// receive buffer, and nobody is told unless we ask).
pub(crate) fn report(sock: &Socket, c: &Counts, elapsed: Duration) {
    if !narrate::verbose() {
        return;
    }
    narrate::info(format_args!(
        "closed: sent {} datagrams ({}), received {} datagrams ({}) in {}",
        c.sent,
        narrate::bytes(c.sent_bytes),
        c.received,
        narrate::bytes(c.received_bytes),
        narrate::short(elapsed)
    ));
    if let Some(dropped) = socket::udp::kernel_drops(sock).filter(|&d| d > 0) {
        let rcvbuf = sock
            .recv_buffer_size()
            .map(|b| format!(" (SO_RCVBUF {})", narrate::bytes(b as u64)))
            .unwrap_or_default();
        narrate::info(format_args!(
            "the kernel dropped {dropped} datagrams: they arrived while the receive buffer{rcvbuf} \
             was full; raise it with -o rcvbuf=4M (capped by net.core.rmem_max), or pace the sender"
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;

    #[test]
    fn limits_follow_the_family_and_mapped_ipv4_counts_as_ipv4() {
        let v4 = SockAddr::from("127.0.0.1:9".parse::<SocketAddr>().unwrap());
        let v6 = SockAddr::from("[::1]:9".parse::<SocketAddr>().unwrap());
        let mapped = SockAddr::from("[::ffff:127.0.0.1]:9".parse::<SocketAddr>().unwrap());
        assert_eq!(limit_for(&v4).unwrap().0, 65_507);
        assert_eq!(limit_for(&v6).unwrap().0, 65_527);
        assert_eq!(limit_for(&mapped).unwrap().0, 65_507);
        let unix = SockAddr::unix("/tmp/x").unwrap();
        assert!(limit_for(&unix).is_none());
    }
}
