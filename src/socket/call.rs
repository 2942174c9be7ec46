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
    let made = narrate::traced(
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
            // socket2 asks for close-on-exec in the same call, as strace shows.
            format!(
                "socket({family}, {}|SOCK_CLOEXEC, {proto}) {res}",
                type_name(ty)
            )
        },
    )?;
    narrate::explain(format_args!(
        "socket() made an endpoint, fd {}: the kernel's handle for a connection to come; \
         nothing is on the wire yet. Java does this inside new Socket(host, port) and new \
         ServerSocket(port).",
        fd(&made)
    ));
    Ok(made)
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
    )?;
    narrate::explain(format_args!(
        "bind() gave fd {} its local address, {shown}: what arrives for it now comes to this \
         socket (port 0 asks the kernel to pick a free one).",
        fd(sock)
    ));
    Ok(())
}

/// `connect(fd 3, 127.0.0.1:4444) = 0 -> ESTABLISHED`. With a `timeout` it is the
/// non-blocking connect every bounded connect is, each step narrated as it happens: fcntl
/// O_NONBLOCK, connect() = EINPROGRESS, poll(POLLOUT) until the handshake ends or the time is
/// up, getsockopt(SO_ERROR) for how it ended, and blocking again for the relay.
pub fn connect(
    sock: &Socket,
    to: &SockAddr,
    shown: &dyn fmt::Display,
    timeout: Option<Duration>,
    after: After,
) -> io::Result<()> {
    let Some(limit) = timeout else {
        narrated(
            sock,
            || sock.connect(to),
            after,
            |fd, res| format!("connect(fd {fd}, {shown}) {res}"),
        )?;
        explain_connect(sock, shown, after);
        return Ok(());
    };
    set_nonblocking(sock, true)?;
    let started = narrated(
        sock,
        || sock.connect(to),
        After::Nothing,
        |fd, res| {
            let told = if res.contains("EINPROGRESS") && after == After::TcpState {
                state::after_inprogress(sock)
            } else {
                after.told(sock)
            };
            format!("connect(fd {fd}, {shown}) {res}{told}")
        },
    );
    let result = match started {
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => finish_connect(sock, limit, after),
        other => other,
    };
    // Blocking again whatever happened: the relay reads and writes it that way.
    set_nonblocking(sock, false)?;
    if result.is_ok() {
        explain_connect(sock, shown, after);
    }
    result
}

/// `--explain` after a connect() that worked.
fn explain_connect(sock: &Socket, shown: &dyn fmt::Display, after: After) {
    if !narrate::explaining() {
        return;
    }
    let stream = sock.r#type().is_ok_and(|t| t == Type::STREAM);
    if after == After::Nothing && stream {
        narrate::explain(format_args!(
            "connect() joined fd {} to the server listening at {shown}: between Unix sockets \
             the kernel links the two ends directly, no handshake on any wire. Java: \
             SocketChannel.open(UnixDomainSocketAddress.of(path)).",
            fd(sock)
        ));
    } else if after == After::TcpState {
        narrate::explain(format_args!(
            "connect() ran TCP's three-way handshake with {shown} (SYN, SYN-ACK, ACK): fd {} \
             is a connection now, and the kernel gave our end an ephemeral port. Java's new \
             Socket(host, port) is socket() + connect().",
            fd(sock)
        ));
    } else {
        narrate::explain(format_args!(
            "connect() fixed fd {}'s peer, {shown}. On a datagram socket nothing is sent: it \
             only means send() needs no address and only that peer's datagrams come in.",
            fd(sock)
        ));
    }
}

/// `fcntl(fd 3, F_SETFL, O_RDWR|O_NONBLOCK) = 0`: socket2 reads the flags (F_GETFL) and sets
/// them with O_NONBLOCK added or taken away.
pub fn set_nonblocking(sock: &Socket, on: bool) -> io::Result<()> {
    let flags = if on { "O_RDWR|O_NONBLOCK" } else { "O_RDWR" };
    narrated(
        sock,
        || sock.set_nonblocking(on),
        After::Nothing,
        |fd, res| format!("fcntl(fd {fd}, F_SETFL, {flags}) {res}"),
    )
}

/// After connect() said EINPROGRESS: poll(POLLOUT) until the handshake has ended (bounded by
/// `limit`, re-polled after EINTR), then getsockopt(SO_ERROR) for how.
fn finish_connect(sock: &Socket, limit: Duration, after: After) -> io::Result<()> {
    let n = fd(sock);
    let deadline = std::time::Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let ms = i32::try_from(left.as_millis()).unwrap_or(i32::MAX);
        let mut p = [libc::pollfd {
            fd: n,
            events: libc::POLLOUT,
            revents: 0,
        }];
        let t0 = narrate::narrating().then(std::time::Instant::now);
        let r = crate::sys::poll(&mut p, ms);
        if let Some(t0) = t0 {
            let res = match &r {
                Ok(0) => "= 0 (Timeout)".to_string(),
                Ok(k) => format!("= {k} ({})", revents(p[0].revents)),
                Err(e) => narrate::errno_text(e),
            };
            narrate::call(
                format_args!("poll([{{fd={n}, events=POLLOUT}}], 1, {ms}) {res}"),
                t0.elapsed(),
            );
        }
        match r {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
            // Our deadline, not the kernel's: no errno, so the caller can say -w ran out.
            Ok(0) => return Err(io::ErrorKind::TimedOut.into()),
            Ok(_) => break,
        }
    }
    let pending = narrate::traced(
        || sock.take_error(),
        |r| {
            let res = match r {
                Ok(None) => "= 0 (no error: the handshake completed)".to_string(),
                Ok(Some(e)) => format!(
                    "= 0, error {}",
                    narrate::errno_text(e).trim_start_matches("= -1 ")
                ),
                Err(e) => narrate::errno_text(e),
            };
            format!(
                "getsockopt(fd {n}, SOL_SOCKET, SO_ERROR) {res}{}",
                after.told(sock)
            )
        },
    )?;
    match pending {
        None => Ok(()),
        Some(e) => Err(e),
    }
}

/// poll()'s revents as strace prints them: `POLLOUT|POLLERR|POLLHUP`.
fn revents(r: libc::c_short) -> String {
    let names = [
        (libc::POLLIN, "POLLIN"),
        (libc::POLLOUT, "POLLOUT"),
        (libc::POLLERR, "POLLERR"),
        (libc::POLLHUP, "POLLHUP"),
    ];
    let set: Vec<&str> = names
        .iter()
        .filter(|(bit, _)| r & bit != 0)
        .map(|(_, name)| *name)
        .collect();
    set.join("|")
}

/// `listen(fd 3, backlog 1024) = 0 -> LISTEN`.
pub fn listen(sock: &Socket, backlog: i32, after: After) -> Result<()> {
    narrated(
        sock,
        || sock.listen(backlog),
        after,
        |fd, res| format!("listen(fd {fd}, backlog {backlog}) {res}"),
    )
    .map_err(|e| anyhow!("listen(): {}", error::plain(&e)))?;
    narrate::explain(format_args!(
        "listen() made fd {} a listening socket: the kernel now answers handshakes by itself \
         and queues the finished ones (the backlog, {backlog} here, capped by somaxconn) until \
         accept() takes them. Java's new ServerSocket(4444) is socket + \
         setsockopt(SO_REUSEADDR) + bind + listen.",
        fd(sock)
    ));
    Ok(())
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
    )?;
    if how == Shutdown::Write {
        narrate::explain(format_args!(
            "shutdown(SHUT_WR) sent our FIN: the peer's read() returns 0, end of stream, yet we \
             can still read what it sends. Java: socket.shutdownOutput()."
        ));
    }
    Ok(())
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

/// `accept4(fd 3, ..., SOCK_CLOEXEC) = fd 4 from 127.0.0.1:51234` (socket2's accept is
/// accept4, the new descriptor close-on-exec from birth): blocks until a client has connected; returns
/// its socket and address, the address shown by `show` (IP and Unix addresses read
/// differently).
pub fn accept(
    listener: &Socket,
    show: fn(&SockAddr) -> String,
    after: After,
) -> io::Result<(Socket, SockAddr)> {
    let accepted = narrate::traced(
        || listener.accept(),
        |r| match r {
            Ok((s, a)) => format!(
                "accept4(fd {}, ..., SOCK_CLOEXEC) = fd {} from {}{}",
                fd(listener),
                fd(s),
                show(a),
                after.told(s)
            ),
            Err(e) => format!(
                "accept4(fd {}, ..., SOCK_CLOEXEC) {}",
                fd(listener),
                narrate::errno_text(e)
            ),
        },
    )?;
    if let Some(peer) = accepted.1.as_socket() {
        state::remember_end(fd(&accepted.0), peer, false);
    }
    explain_accept(fd(listener), fd(&accepted.0));
    Ok(accepted)
}

/// `--explain` after accept() returned `client` from `listener`.
pub fn explain_accept(listener: RawFd, client: RawFd) {
    narrate::explain(format_args!(
        "accept() took the first finished handshake off the queue and returned it as a new \
         socket, fd {client}, on the same local port; fd {listener} goes on listening. Java: \
         Socket clientSocket = serverSocket.accept()."
    ));
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
    let addr = r
        .as_socket()
        .ok_or_else(|| anyhow!("{call}(): not an IP address"))?;
    state::remember_end(fd(sock), addr, call == "getsockname");
    Ok(addr)
}

/// `close(fd)`, narrated with the TCP state the socket was in and what close() sends (a FIN,
/// a RST, or nothing); the socket is gone afterwards. For a TCP connection, what the kernel
/// still holds of it is then looked up (`state::after_close`): TIME_WAIT, most often.
pub fn close(sock: Socket) {
    let n = fd(&sock);
    if !narrate::narrating() {
        drop(sock);
        return;
    }
    state::look(&sock, "looked before close()");
    let tcp = state::tcp_state(n);
    let was = tcp
        .map(|s| format!(" (was {s}{})", state::before_close(&sock, s)))
        .unwrap_or_default();
    // The two ends as narration showed them, for the look-up after (a listener has none).
    let ends = state::forget(n).filter(|_| tcp.is_some_and(|s| s != "LISTEN"));
    narrate::traced(
        || {
            drop(sock);
            Ok(())
        },
        |_| format!("close(fd {n}) = 0{was}"),
    )
    .ok();
    narrate::explain(format_args!(
        "close() gave fd {n} back; what TCP still owes (a FIN, a RST, the wait after) the \
         kernel finishes without us. Java: socket.close()."
    ));
    if let Some((local, peer)) = ends {
        state::after_close(local, peer);
    }
}

/// `close(fd 6)` of a second descriptor for a socket (F_DUPFD_CLOEXEC): the socket itself
/// stays open on its first, so nothing is sent and nothing is looked up.
pub fn close_dup(sock: Socket) {
    let n = fd(&sock);
    narrate::traced(
        || {
            drop(sock);
            Ok(())
        },
        |_| format!("close(fd {n}) = 0 (a second descriptor: the socket stays open on its first)"),
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
