//! Datagram serving, for UDP and Unix SOCK_DGRAM sockets alike: each datagram is one whole
//! exchange with the `Service` (open, then input), answered to its sender's address. There are
//! no connections, so `--allow`/`--deny` are checked per datagram and the other limits do not
//! apply; instead no IP sender is answered that could make the server a reflector or one end
//! of a loop (its own port, service ports, a per-source rate: `reflect.rs`). What differs by transport is only who a sender is (`Sender`): an IP address, a
//! named Unix socket, or an unbound Unix socket that cannot be answered. mio watches the
//! descriptor, socket2 does the I/O (mio's Unix datagram type cannot send to an abstract
//! address, which is where `connect -U PATH -u` clients live). Stops on SIGINT/SIGTERM.

use std::io;
use std::mem::MaybeUninit;
use std::os::fd::OwnedFd;
use std::time::Instant;

use anyhow::{Context, Result};
use mio::event::Source;
use mio::net::{UdpSocket, UnixDatagram};
use mio::{Events, Interest, Poll, Token};
use socket2::{Domain, SockAddr, SockRef, Socket};

use super::limits::Limits;
use super::peer::{Peer, plain_addr};
use super::reflect::{Guard, Silence};
use super::report::counted;
use super::service::Service;
use super::stop::Stop;
use super::summary;
use crate::error;
use crate::narrate;
use crate::socket::{self, unix};

const DATAGRAMS: Token = Token(0);
/// Datagrams handled before the loop looks at its events again (a signal among them).
const PER_TURN: usize = 256;
const SIGNAL: Token = Token(1);

/// Answers datagrams on the bound socket `sock` (UDP, or Unix datagram) with `service` until
/// SIGINT or SIGTERM. A sender `limits` refuses (`--allow`/`--deny`; only an IP sender can
/// be) is ignored. A reply the kernel cannot queue right now is dropped, as any datagram may
/// be; the totals count them.
pub fn serve_datagrams<S: Service>(sock: Socket, limits: &Limits, service: S) -> Result<()> {
    // getsockname, narrated like every call on the socket: which domain it is in.
    let name = narrate::traced(
        || sock.local_addr(),
        |r| match r {
            Ok(a) => format!("getsockname(fd {}) = {}", socket::fd(&sock), show(a)),
            Err(e) => format!(
                "getsockname(fd {}) {}",
                socket::fd(&sock),
                narrate::errno_text(e)
            ),
        },
    )
    .context("reading the datagram socket's address (getsockname)")?;
    let unix = name.domain() == Domain::UNIX;
    let noun = if unix {
        "datagram socket"
    } else {
        "UDP socket"
    };
    let mut stop = Stop::install()?;
    socket::set_nonblocking(&sock, true)
        .with_context(|| format!("making the {noun} non-blocking"))?;
    let fd = socket::fd(&sock);
    let mut watched = Watched::new(sock, unix);
    let mut poll = Poll::new().context("creating the event loop (epoll_create)")?;
    poll.registry()
        .register(watched.source(), DATAGRAMS, Interest::READABLE)
        .with_context(|| format!("registering the {noun} with epoll"))?;
    poll.registry()
        .register(&mut stop.pipe, SIGNAL, Interest::READABLE)
        .context("registering the signal pipe with epoll")?;
    let sock = watched.sock();
    let started = Instant::now();
    // The reflection guard needs our own port: the getsockname above already said it.
    let mut guard = name.as_socket().map(|local| Guard::new(local, started));
    let mut events = Events::with_capacity(64);
    // A Unix datagram may be far larger than a UDP one can.
    let len = if unix { 256 * 1024 } else { 64 * 1024 };
    let mut buf = vec![MaybeUninit::<u8>::uninit(); len];
    let mut out = Vec::with_capacity(64 * 1024);
    let mut t = Tally::default();
    // Datagrams may be queued that no event will announce (edge-triggered, and a turn takes
    // at most PER_TURN), so the next wait does not sleep.
    let mut behind = false;
    // The datagram calls, narrated at -vv: the first few in full, then once a second.
    let mut flow = narrate::Flow::new("datagrams");
    let stopped_by = 'serve: loop {
        let wait = behind.then_some(std::time::Duration::ZERO);
        if let Err(e) = poll.poll(&mut events, wait) {
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e).context("waiting for events (epoll_wait)");
        }
        for ev in &events {
            if ev.token() == SIGNAL {
                if let Some(sig) = stop.take() {
                    break 'serve sig;
                }
            } else {
                behind = true;
            }
        }
        if behind {
            // A flood never keeps the loop from hearing SIGINT: after PER_TURN datagrams it
            // looks at its events again.
            for _ in 0..PER_TURN {
                // Until recvfrom says EAGAIN, more may be waiting.
                behind = true;
                let got = sock.recv_from(&mut buf);
                if let Some(f) = &mut flow {
                    let who = got
                        .as_ref()
                        .map_or_else(|_| String::new(), |(_, a)| show(a));
                    let len = buf.len();
                    let r = got.as_ref().map(|(n, _)| *n).map_err(copy_error);
                    let full = || format!("recvfrom(fd {fd}, buf, {len}, 0, {who})");
                    f.call(key("recvfrom", fd), full, &r);
                }
                let (n, from) = match got {
                    Ok(got) => got,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        behind = false;
                        break;
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    // UDP: an ICMP error for an earlier reply (the sender's port was closed),
                    // reported on the next call: that sender's problem, not the server's.
                    Err(e) if !unix => {
                        narrate::info(format_args!(
                            "recvfrom(fd {fd}): {} (an earlier reply bounced)",
                            error::plain(&e)
                        ));
                        continue;
                    }
                    Err(e) => {
                        narrate::info(format_args!("recvfrom(fd {fd}): {}", error::plain(&e)));
                        behind = false;
                        break;
                    }
                };
                t.bytes_in += n as u64;
                let peer = match Sender::of(&from, limits) {
                    Sender::Answerable(peer) => peer,
                    Sender::Refused(peer, why) => {
                        t.refused += 1;
                        narrate::info(format_args!("ignored a datagram from {peer}: {why}"));
                        continue;
                    }
                    Sender::Unbound => {
                        t.unanswerable += 1;
                        narrate::info(format_args!(
                            "a datagram of {n} B from an unbound socket: no address to answer"
                        ));
                        continue;
                    }
                };
                if let (Some(g), Peer::Ip(a)) = (guard.as_mut(), &peer)
                    && let Some(silence) = g.check(*a, Instant::now())
                {
                    t.silent(&peer, &silence);
                    continue;
                }
                out.clear();
                let mut session = service.open(peer.sock_addr(), &mut out);
                let _ = service.input(&mut session, crate::sys::received(&buf, n), &mut out);
                if !out.is_empty() || S::ANSWERS_EMPTY {
                    t.reply(&sock, &out, &from, &peer, n, &mut flow);
                }
            }
        }
    };
    let _ = poll.registry().deregister(watched.source());
    watched.close();
    if narrate::json() {
        let o = summary::datagram_totals(t.answered)
            .num("refused", t.refused)
            .num("looping", t.looping)
            .num("limited", t.limited)
            .num("unanswerable", t.unanswerable)
            .num("dropped", t.dropped)
            .num("sent", t.bytes_out)
            .num("received", t.bytes_in);
        narrate::json_line(&summary::totals_tail(
            o,
            started.elapsed(),
            Some(stopped_by),
        ));
        return Ok(());
    }
    let skipped = if unix {
        format!("{} from unbound senders", t.unanswerable)
    } else {
        format!(
            "{} refused, {} not answered to stop a loop, {} over the rate limit",
            t.refused, t.looping, t.limited
        )
    };
    narrate::info(format_args!(
        "stopped on {stopped_by}: answered {} ({skipped}, {} replies dropped), {} in, {} out, up {}",
        counted(t.answered, "datagram"),
        t.dropped,
        narrate::bytes(t.bytes_in),
        narrate::bytes(t.bytes_out),
        narrate::short(started.elapsed())
    ));
    Ok(())
}

/// Who sent a datagram, and whether it gets an answer.
enum Sender {
    Answerable(Peer),
    /// Kept out by `--allow`/`--deny`, for this reason.
    Refused(Peer, String),
    /// A Unix socket that never bound a name: there is no address to answer to.
    Unbound,
}

impl Sender {
    fn of(from: &SockAddr, limits: &Limits) -> Sender {
        if let Some(a) = from.as_socket() {
            let a = plain_addr(a);
            return match limits.refuses(a.ip()) {
                Some(why) => Sender::Refused(Peer::Ip(a), why),
                None => Sender::Answerable(Peer::Ip(a)),
            };
        }
        if from.as_pathname().is_none() && from.as_abstract_namespace().is_none() {
            return Sender::Unbound;
        }
        Sender::Answerable(Peer::Unix(unix::show(from)))
    }
}

/// The loop's counts, for the totals line.
#[derive(Default)]
struct Tally {
    answered: u64,
    refused: u64,
    /// Not answered: from our own port or a service port.
    looping: u64,
    /// Not answered: the source was over its budget.
    limited: u64,
    /// What the last line about an unanswered datagram was for (which kind of reason, from
    /// where).
    silence_said: Option<(std::mem::Discriminant<Silence>, std::net::IpAddr)>,
    unanswerable: u64,
    dropped: u64,
    bytes_in: u64,
    bytes_out: u64,
}

impl Tally {
    /// A datagram the guard keeps unanswered: counted, and said at `-v`, once for a run of
    /// them from one address for one reason, so a flood gets one line, not one per datagram.
    fn silent(&mut self, peer: &Peer, silence: &Silence) {
        if *silence == Silence::RateLimited {
            self.limited += 1;
        } else {
            self.looping += 1;
        }
        let key = match peer {
            Peer::Ip(a) => Some((std::mem::discriminant(silence), a.ip())),
            Peer::Unix(_) => None,
        };
        if std::mem::replace(&mut self.silence_said, key) == key {
            return;
        }
        narrate::info(format_args!(
            "not answering {peer}: {} (more like it are counted, not shown)",
            silence.why()
        ));
    }

    /// sendto() the service's answer to a datagram of `n` bytes; counted and, at -v, said.
    fn reply(
        &mut self,
        sock: &Socket,
        out: &[u8],
        to: &SockAddr,
        peer: &Peer,
        n: usize,
        flow: &mut Option<narrate::Flow>,
    ) {
        // A datagram's sender as the log has always named it: the address or socket name.
        let who: &dyn std::fmt::Display = match peer {
            Peer::Ip(a) => a,
            Peer::Unix(name) => name,
        };
        let sent = sock.send_to(out, to);
        if let Some(f) = flow {
            let fd = socket::fd(sock);
            let len = out.len();
            let r = sent.as_ref().map(|m| *m).map_err(copy_error);
            // socket2's send_to is sendto(2) with no flags, as strace shows.
            let full = || format!("sendto(fd {fd}, buf, {len}, 0, {who})");
            f.call(key("sendto", fd), full, &r);
        }
        match sent {
            Ok(m) => {
                self.answered += 1;
                self.bytes_out += m as u64;
                narrate::info(format_args!("{who}: {n} B in, {m} B back"));
            }
            Err(e) => {
                self.dropped += 1;
                narrate::info(format_args!(
                    "{who}: reply of {} B dropped: {}",
                    out.len(),
                    error::plain(&e)
                ));
            }
        }
    }
}

/// A datagram call's identity for narration's counting.
fn key(name: &'static str, fd: std::os::fd::RawFd) -> narrate::Key {
    narrate::Key {
        name,
        from: fd,
        to: None,
    }
}

/// The same errno in a new value: narration tells an error the caller still matches on.
fn copy_error(e: &io::Error) -> io::Error {
    e.raw_os_error()
        .map_or_else(|| io::Error::from(e.kind()), io::Error::from_raw_os_error)
}

/// A sender's address as narration shows it: IP, or a Unix socket's name.
fn show(a: &SockAddr) -> String {
    a.as_socket()
        .map_or_else(|| unix::show(a), |s| plain_addr(s).to_string())
}

/// The socket as mio watches it (mio registers only its own types); the I/O goes through
/// socket2 (`sock`), which can answer any sender address.
enum Watched {
    Udp(UdpSocket),
    Unix(UnixDatagram),
}

impl Watched {
    fn new(sock: Socket, unix: bool) -> Watched {
        if unix {
            Watched::Unix(UnixDatagram::from_std(sock.into()))
        } else {
            Watched::Udp(UdpSocket::from_std(sock.into()))
        }
    }

    fn source(&mut self) -> &mut dyn Source {
        match self {
            Watched::Udp(s) => s,
            Watched::Unix(s) => s,
        }
    }

    fn sock(&self) -> SockRef<'_> {
        match self {
            Watched::Udp(s) => SockRef::from(s),
            Watched::Unix(s) => SockRef::from(s),
        }
    }

    /// close(), narrated.
    fn close(self) {
        socket::close(match self {
            Watched::Udp(s) => Socket::from(OwnedFd::from(s)),
            Watched::Unix(s) => Socket::from(OwnedFd::from(s)),
        });
    }
}
