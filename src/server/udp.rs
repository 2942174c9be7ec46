//! Datagram serving: bind a UDP socket (narrated like the TCP ones) and answer each datagram
//! to its sender through the same `Service`, one datagram being one whole exchange (open, then
//! input). There are no connections, so `--allow`/`--deny` are checked per datagram and the
//! other limits do not apply. Stops on SIGINT/SIGTERM like the TCP engine.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Instant;

use anyhow::{Context, Result, anyhow};
use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use super::stop::Stop;
use super::{Limits, Service, plain_addr};
use crate::addr::BindTarget;
use crate::error;
use crate::narrate;
use crate::socket::{self, Listener};
use crate::sockopt::{Plan, SockKind, Stage};

const DATAGRAMS: Token = Token(0);
const SIGNAL: Token = Token(1);

/// socket, setsockopt (the plan), bind: a UDP server socket. The dual-stack default falls back
/// to `0.0.0.0` where the kernel has no IPv6, as for TCP.
pub fn bind(target: BindTarget, plan: &Plan) -> Result<Listener> {
    let (sock, scope) = match target {
        BindTarget::DualStack(port) => {
            let v6 = SocketAddr::new(Ipv6Addr::UNSPECIFIED.into(), port);
            match bind_on(v6, Some(false), plan) {
                Ok(s) => (s, "(UDP, IPv4 and IPv6)"),
                Err(Bind::NoIpv6(why)) => {
                    narrate::info(format_args!("IPv6 unavailable ({why}); binding 0.0.0.0"));
                    let v4 = SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), port);
                    (
                        bind_on(v4, None, plan).map_err(Bind::into_error)?,
                        "(UDP, IPv4 only: no IPv6 here)",
                    )
                }
                Err(Bind::Failed(e)) => return Err(e),
            }
        }
        BindTarget::Addr { addr, v6only } => {
            let v6only = addr.is_ipv6().then_some(v6only);
            let sock = bind_on(addr, v6only, plan).map_err(Bind::into_error)?;
            let scope = match (addr.is_ipv6(), v6only) {
                (false, _) => "(UDP, IPv4)",
                (true, Some(true)) => "(UDP, IPv6 only)",
                (true, _) if addr.ip().is_unspecified() => "(UDP, IPv4 and IPv6)",
                (true, _) => "(UDP, IPv6)",
            };
            (sock, scope)
        }
    };
    let local = socket::local_addr(&sock)?;
    Ok(Listener {
        socket: sock,
        local,
        scope,
        plan: plan.clone(),
    })
}

enum Bind {
    NoIpv6(String),
    Failed(anyhow::Error),
}

impl Bind {
    fn into_error(self) -> anyhow::Error {
        match self {
            Bind::NoIpv6(why) => anyhow!("IPv6 is not available: {why}"),
            Bind::Failed(e) => e,
        }
    }
}

fn bind_on(addr: SocketAddr, v6only: Option<bool>, plan: &Plan) -> Result<Socket, Bind> {
    let domain = Domain::for_address(addr);
    let made = narrate::traced(
        || Socket::new(domain, Type::DGRAM, Some(Protocol::UDP)),
        |r| {
            let res = match r {
                Ok(s) => format!("= fd {}", socket::fd(s)),
                Err(e) => narrate::errno_text(e),
            };
            let fam = if addr.is_ipv6() {
                "AF_INET6"
            } else {
                "AF_INET"
            };
            format!("socket({fam}, SOCK_DGRAM, IPPROTO_UDP) {res}")
        },
    );
    let sock = match made {
        Ok(s) => s,
        Err(e) if addr.is_ipv6() && e.raw_os_error() == Some(libc::EAFNOSUPPORT) => {
            return Err(Bind::NoIpv6(error::plain(&e)));
        }
        Err(e) => return Err(Bind::Failed(anyhow!("socket(): {}", error::plain(&e)))),
    };
    if let Some(only) = v6only {
        narrate::traced(
            || sock.set_only_v6(only),
            |r| {
                format!(
                    "setsockopt(fd {}, IPPROTO_IPV6, IPV6_V6ONLY, {}) {}",
                    socket::fd(&sock),
                    u8::from(only),
                    narrate::outcome(r)
                )
            },
        )
        .map_err(|e| Bind::Failed(anyhow!("setting IPV6_V6ONLY: {}", error::plain(&e))))?;
    }
    plan.apply(&sock, socket::target(&addr, SockKind::Udp), Stage::Early)
        .map_err(Bind::Failed)?;
    let sa = SockAddr::from(addr);
    if let Err(e) = narrate::traced(
        || sock.bind(&sa),
        |r| {
            format!(
                "bind(fd {}, {addr}) {}",
                socket::fd(&sock),
                narrate::outcome(r)
            )
        },
    ) {
        if addr.is_ipv6() && v6only == Some(false) && e.raw_os_error() == Some(libc::EADDRNOTAVAIL)
        {
            return Err(Bind::NoIpv6(error::plain(&e)));
        }
        let reuse = sock.reuse_address().unwrap_or(false);
        return Err(Bind::Failed(anyhow!(
            "{}",
            error::bind_failure(addr, &e, reuse)
        )));
    }
    Ok(sock)
}

/// Answers datagrams on `listener` with `service` until SIGINT or SIGTERM. A reply the kernel
/// cannot queue right now is dropped, as UDP may drop any datagram; the totals count them.
pub fn serve<S: Service>(listener: Listener, limits: &Limits, service: S) -> Result<()> {
    let mut stop = Stop::install()?;
    listener
        .socket
        .set_nonblocking(true)
        .context("making the UDP socket non-blocking")?;
    let fd = socket::fd(&listener.socket);
    let mut sock = UdpSocket::from_std(std::net::UdpSocket::from(listener.socket));
    let mut poll = Poll::new().context("creating the event loop (epoll_create)")?;
    poll.registry()
        .register(&mut sock, DATAGRAMS, Interest::READABLE)
        .context("registering the UDP socket with epoll")?;
    poll.registry()
        .register(&mut stop.pipe, SIGNAL, Interest::READABLE)
        .context("registering the signal pipe with epoll")?;
    let started = Instant::now();
    let mut events = Events::with_capacity(64);
    let mut buf = vec![0u8; 64 * 1024];
    let mut out = Vec::with_capacity(64 * 1024);
    let (mut answered, mut refused, mut dropped, mut bytes_in, mut bytes_out) =
        (0u64, 0u64, 0u64, 0u64, 0u64);
    let stopped_by = 'serve: loop {
        if let Err(e) = poll.poll(&mut events, None) {
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e).context("waiting for events (epoll_wait)");
        }
        for ev in events.iter() {
            if ev.token() == SIGNAL {
                if let Some(sig) = stop.take() {
                    break 'serve sig;
                }
                continue;
            }
            loop {
                let (n, from) = match sock.recv_from(&mut buf) {
                    Ok(got) => got,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    // An ICMP error for an earlier reply (the sender's port was closed), reported
                    // on the next call: that sender's problem, not the server's.
                    Err(e) => {
                        narrate::info(format_args!(
                            "recvfrom(fd {fd}): {} (an earlier reply bounced)",
                            error::plain(&e)
                        ));
                        continue;
                    }
                };
                let peer = plain_addr(from);
                bytes_in += n as u64;
                if let Some(why) = limits.refuses(peer.ip()) {
                    refused += 1;
                    narrate::info(format_args!("ignored a datagram from {peer}: {why}"));
                    continue;
                }
                out.clear();
                let mut session = service.open(peer, &mut out);
                let _ = service.input(&mut session, &buf[..n], &mut out);
                if out.is_empty() {
                    continue;
                }
                match sock.send_to(&out, from) {
                    Ok(m) => {
                        answered += 1;
                        bytes_out += m as u64;
                        narrate::info(format_args!("{peer}: {n} B in, {m} B back"));
                    }
                    Err(e) => {
                        dropped += 1;
                        narrate::info(format_args!(
                            "{peer}: reply of {} B dropped: {}",
                            out.len(),
                            error::plain(&e)
                        ));
                    }
                }
            }
        }
    };
    let _ = poll.registry().deregister(&mut sock);
    socket::close(Socket::from(std::os::fd::OwnedFd::from(sock)));
    narrate::info(format_args!(
        "stopped on {stopped_by}: answered {answered} datagrams ({refused} refused, {dropped} replies dropped), {} in, {} out, up {}",
        narrate::bytes(bytes_in),
        narrate::bytes(bytes_out),
        narrate::short(started.elapsed())
    ));
    Ok(())
}
