//! The narrated socket calls every transport shares: socket(), bind(), listen(), accept(),
//! getsockname/getpeername, shutdown() and close(), each shown at `-vv` as strace would print
//! it, plus the descriptor number and poll(2) for readability. What a call means for a
//! transport (which addresses to try, what a taken port means) is left to `tcp.rs`, `udp.rs`,
//! `unix.rs` and `listener.rs`; the TCP state shown after a call comes from `state.rs`.

use std::fmt;
use std::io;
use std::net::{Shutdown, SocketAddr};
use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;

use anyhow::{Result, anyhow};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use super::state::{self, After};
use crate::error;
use crate::narrate;
use crate::sockopt::{Fam, SockKind, Target};

/// The listen() backlog sockkit's servers ask for (the kernel caps it at somaxconn).
pub const DEFAULT_BACKLOG: i32 = 1024;

/// The descriptor number, which narration shows so learners can match it with `ls /proc/PID/fd`.
pub fn fd(s: &Socket) -> RawFd {
    s.as_raw_fd()
}

/// The option-table target for an IP socket (TCP or UDP) of this address's family.
pub fn target(addr: &SocketAddr, kind: SockKind) -> Target {
    Target {
        kind,
        family: if addr.is_ipv6() { Fam::V6 } else { Fam::V4 },
    }
}

/// `socket(AF_INET6, SOCK_STREAM, IPPROTO_TCP) = fd 3`, `socket(AF_UNIX, SOCK_DGRAM, 0) = fd 3`:
/// the arguments by their C names, so the line reads as the call in a textbook.
pub fn open(domain: Domain, ty: Type, protocol: Option<Protocol>) -> io::Result<Socket> {
    narrate::traced(
        || Socket::new(domain, ty, protocol),
        |r| {
            let res = match r {
                Ok(s) => format!("= fd {}", fd(s)),
                Err(e) => narrate::errno_text(e),
            };
            let family = if domain == Domain::IPV6 {
                "AF_INET6"
            } else if domain == Domain::IPV4 {
                "AF_INET"
            } else {
                "AF_UNIX"
            };
            let proto = match protocol {
                Some(p) if p == Protocol::TCP => "IPPROTO_TCP",
                Some(p) if p == Protocol::UDP => "IPPROTO_UDP",
                _ => "0",
            };
            format!("socket({family}, {}, {proto}) {res}", type_name(ty))
        },
    )
}

/// `SOCK_STREAM` or `SOCK_DGRAM`, as socket() and the Unix `connecting to` line name it.
pub fn type_name(ty: Type) -> &'static str {
    if ty == Type::DGRAM {
        "SOCK_DGRAM"
    } else {
        "SOCK_STREAM"
    }
}

/// `bind(fd 3, 127.0.0.1:4444) = 0`, with `shown` as the user knows the address and `note`
/// (empty, or ` (why)`) after the result.
pub fn bind(sock: &Socket, to: &SockAddr, shown: &dyn fmt::Display, note: &str) -> io::Result<()> {
    narrated(
        sock,
        || sock.bind(to),
        After::Nothing,
        |fd, res| format!("bind(fd {fd}, {shown}) {res}{note}"),
    )
}

/// `connect(fd 3, 127.0.0.1:4444) (timeout 5s) = 0 -> ESTABLISHED`: bounded by `timeout`
/// when one is given, as socket2 does it (non-blocking connect, then poll).
pub fn connect(
    sock: &Socket,
    to: &SockAddr,
    shown: &dyn fmt::Display,
    timeout: Option<Duration>,
    after: After,
) -> io::Result<()> {
    let call = || match timeout {
        Some(t) => sock.connect_timeout(to, t),
        None => sock.connect(to),
    };
    narrated(sock, call, after, |fd, res| {
        let limit = timeout
            .map(|t| format!(" (timeout {})", narrate::short(t)))
            .unwrap_or_default();
        format!("connect(fd {fd}, {shown}){limit} {res}")
    })
}

/// `listen(fd 3, backlog 1024) = 0 -> LISTEN`.
pub fn listen(sock: &Socket, backlog: i32, after: After) -> Result<()> {
    narrated(
        sock,
        || sock.listen(backlog),
        after,
        |fd, res| format!("listen(fd {fd}, backlog {backlog}) {res}"),
    )
    .map_err(|e| anyhow!("listen(): {}", error::plain(&e)))
}

/// `shutdown(fd, SHUT_WR)` and friends: half-close, the peer reads EOF.
pub fn shutdown(sock: &Socket, how: Shutdown) -> io::Result<()> {
    let name = match how {
        Shutdown::Read => "SHUT_RD",
        Shutdown::Write => "SHUT_WR",
        Shutdown::Both => "SHUT_RDWR",
    };
    narrated(
        sock,
        || sock.shutdown(how),
        After::TcpState,
        |fd, res| format!("shutdown(fd {fd}, {name}) {res}"),
    )
}

/// A call on `sock` that returns nothing, narrated by `text` (given the descriptor and the
/// C-style result, `= 0` or `= -1 ECONNREFUSED (...)`), then what `after` tells.
fn narrated(
    sock: &Socket,
    call: impl FnOnce() -> io::Result<()>,
    after: After,
    text: impl FnOnce(RawFd, String) -> String,
) -> io::Result<()> {
    narrate::traced(call, |r| {
        let told = after.told(sock);
        format!("{}{told}", text(fd(sock), narrate::outcome(r)))
    })
}

/// `accept(fd 3) = fd 4 from 127.0.0.1:51234`: blocks until a client has connected; returns
/// its socket and address, the address shown by `show` (IP and Unix addresses read
/// differently).
pub fn accept(
    listener: &Socket,
    show: fn(&SockAddr) -> String,
    after: After,
) -> io::Result<(Socket, SockAddr)> {
    narrate::traced(
        || listener.accept(),
        |r| match r {
            Ok((s, a)) => format!(
                "accept(fd {}) = fd {} from {}{}",
                fd(listener),
                fd(s),
                show(a),
                after.told(s)
            ),
            Err(e) => format!("accept(fd {}) {}", fd(listener), narrate::errno_text(e)),
        },
    )
}

/// An IP address as narration shows it; `(not IP)` for anything else.
pub fn show_ip(a: &SockAddr) -> String {
    a.as_socket()
        .map_or_else(|| "(not IP)".to_string(), |s| s.to_string())
}

/// `getsockname()`: where the socket is bound (the real port after binding port 0).
pub fn local_addr(sock: &Socket) -> Result<SocketAddr> {
    ip_name(sock, "getsockname", Socket::local_addr)
}

/// `getpeername()`: who is at the other end.
pub fn peer_addr(sock: &Socket) -> Result<SocketAddr> {
    ip_name(sock, "getpeername", Socket::peer_addr)
}

/// getsockname/getpeername, narrated, for a socket that must have an IP address.
fn ip_name(
    sock: &Socket,
    call: &str,
    get: fn(&Socket) -> io::Result<SockAddr>,
) -> Result<SocketAddr> {
    let r = narrate::traced(
        || get(sock),
        |r| match r {
            Ok(a) => format!("{call}(fd {}) = {}", fd(sock), show_ip(a)),
            Err(e) => format!("{call}(fd {}) {}", fd(sock), narrate::errno_text(e)),
        },
    )
    .map_err(|e| anyhow!("{call}(): {}", error::plain(&e)))?;
    r.as_socket()
        .ok_or_else(|| anyhow!("{call}(): not an IP address"))
}

/// `close(fd)`, narrated with the TCP state the socket was in; the socket is gone afterwards.
pub fn close(sock: Socket) {
    let n = fd(&sock);
    let was = if narrate::narrating() {
        state::tcp_state(n)
            .map(|s| format!(" (was {s})"))
            .unwrap_or_default()
    } else {
        String::new()
    };
    narrate::traced(
        || {
            drop(sock);
            Ok(())
        },
        |_| format!("close(fd {n}) = 0{was}"),
    )
    .ok();
}

/// poll(2) for readability: one answer per descriptor (`None` is not watched). A hang-up or
/// an error counts as readable, since the next read reports it; EINTR reads as nothing
/// ready, so callers simply re-check their deadlines. One helper for the relay, the datagram
/// relay and the UDP port check, which all wait on "a socket or a pipe, until a deadline".
pub fn poll_readable(fds: &[Option<RawFd>], timeout: Option<Duration>) -> io::Result<Vec<bool>> {
    let mut polled: Vec<libc::pollfd> = fds
        .iter()
        .map(|fd| libc::pollfd {
            fd: fd.unwrap_or(-1),
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    let ms = match timeout {
        None => -1,
        // Round up so a deadline is never checked a hair early and spun on.
        Some(t) => i32::try_from(t.as_millis() + 1).unwrap_or(i32::MAX),
    };
    match crate::sys::poll(&mut polled, ms) {
        Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(vec![false; fds.len()]),
        Err(e) => return Err(e),
        Ok(_) => {}
    }
    Ok(polled
        .iter()
        .map(|p| p.fd >= 0 && p.revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0)
        .collect())
}
