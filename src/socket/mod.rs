//! Making TCP sockets with socket2: socket, bind, listen, accept, connect over candidate
//! addresses, shutdown and close; and binding UDP server sockets the same way. Every call goes through the narrator, so `-vv` shows the
//! sockets API in the order it happens; options come from the plan in `sockopt.rs`.

pub mod source;
pub mod udp;
pub mod unix;

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr};
use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;

use anyhow::{Result, anyhow};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use crate::addr::BindTarget;
use crate::addr::Source;
use crate::error;
use crate::narrate;
use crate::sockopt::{Fam, Plan, SockKind, Stage, Target, Value};

/// The listen() backlog sockkit's servers ask for (the kernel caps it at somaxconn).
pub const DEFAULT_BACKLOG: i32 = 1024;

/// The descriptor number, which narration shows so learners can match it with `ls /proc/PID/fd`.
pub fn fd(s: &Socket) -> RawFd {
    s.as_raw_fd()
}

fn domain_name(d: Domain) -> &'static str {
    if d == Domain::IPV6 {
        "AF_INET6"
    } else if d == Domain::IPV4 {
        "AF_INET"
    } else {
        "AF_UNIX"
    }
}

/// The option-table target for a TCP socket of this address.
pub fn target(addr: &SocketAddr, kind: SockKind) -> Target {
    Target {
        kind,
        family: if addr.is_ipv6() { Fam::V6 } else { Fam::V4 },
    }
}

/// `socket(AF_INET6, SOCK_STREAM, IPPROTO_TCP) = fd 3`.
pub fn tcp_socket(domain: Domain) -> io::Result<Socket> {
    narrate::traced(
        || Socket::new(domain, Type::STREAM, Some(Protocol::TCP)),
        |r| {
            let res = match r {
                Ok(s) => format!("= fd {}", fd(s)),
                Err(e) => narrate::errno_text(e),
            };
            format!(
                "socket({}, SOCK_STREAM, IPPROTO_TCP) {res}",
                domain_name(domain)
            )
        },
    )
}

/// Connects to the first of `addrs` that accepts, each attempt bounded by `timeout`. When all
/// fail, the error lists every address and why.
pub fn connect(addrs: &[SocketAddr], timeout: Option<Duration>, plan: &Plan) -> Result<Socket> {
    connect_from(addrs, timeout, plan, &Source::default())
}

/// `connect`, from a chosen local address and/or port (`-s`, `-p`): bound before each attempt.
/// A bind failure is local (not this host's address, port taken) and ends the attempts at once.
pub fn connect_from(
    addrs: &[SocketAddr],
    timeout: Option<Duration>,
    plan: &Plan,
    source: &Source,
) -> Result<Socket> {
    let mut failures: Vec<(SocketAddr, String)> = Vec::new();
    for addr in addrs {
        let sock = tcp_socket(Domain::for_address(*addr))
            .map_err(|e| anyhow!("socket() for {addr}: {}", error::plain(&e)))?;
        let tgt = target(addr, SockKind::Tcp);
        if let Err(e) = plan.apply(&sock, tgt, Stage::Early) {
            close(sock);
            return Err(e);
        }
        if let Some(src) = source.bind_addr(addr)
            && let Err(e) = crate::socket::source::bind_source(&sock, src)
        {
            close(sock);
            return Err(e);
        }
        narrate::info(format_args!("connecting to {addr}"));
        let sa = SockAddr::from(*addr);
        let result = narrate::traced(
            || match timeout {
                Some(t) => sock.connect_timeout(&sa, t),
                None => sock.connect(&sa),
            },
            |r| {
                let limit = timeout
                    .map(|t| format!(" (timeout {})", narrate::short(t)))
                    .unwrap_or_default();
                format!(
                    "connect(fd {}, {addr}){limit} {}{}",
                    fd(&sock),
                    narrate::outcome(r),
                    state_suffix(&sock)
                )
            },
        );
        match result {
            Ok(()) => {
                if let Err(e) = plan.apply(&sock, tgt, Stage::Connected) {
                    close(sock);
                    return Err(e);
                }
                return Ok(sock);
            }
            Err(e) => {
                let e = if e.kind() == io::ErrorKind::TimedOut {
                    io::Error::from_raw_os_error(libc::ETIMEDOUT)
                } else {
                    e
                };
                failures.push((*addr, error::connect_failure(*addr, &e)));
                close(sock);
            }
        }
    }
    match failures.as_slice() {
        [(_, why)] => Err(anyhow!("{why}")),
        many => {
            let each: Vec<String> = many.iter().map(|(_, why)| why.clone()).collect();
            Err(anyhow!(
                "could not connect to any of {} addresses: {}",
                many.len(),
                each.join("; ")
            ))
        }
    }
}

/// A bound, listening TCP socket and what to announce about it.
pub struct Listener {
    pub socket: Socket,
    pub local: SocketAddr,
    /// `(IPv4 and IPv6)` and the like, for the `listening on` line.
    pub scope: &'static str,
    /// The plan as applied: the caller's, plus the defaults listening added (IPV6_V6ONLY,
    /// the backlog), so `--show-opts` can show them as defaults.
    pub plan: Plan,
}

/// socket, setsockopt (the plan), bind, listen: a server's listening socket. The dual-stack
/// default falls back to `0.0.0.0` where the kernel has no IPv6. IPV6_V6ONLY goes through the
/// plan as a default, so a user's `-o v6only` replaces it (one setsockopt, not two) and the
/// announced scope follows what was really set.
pub fn listen(bind: BindTarget, plan: &Plan) -> Result<Listener> {
    let plan = plan
        .clone()
        .with_default("backlog", Value::Int(i64::from(DEFAULT_BACKLOG)));
    server_socket(bind, plan, Serve::Stream)
}

/// socket, setsockopt (the plan), bind: a UDP server's socket. The same dual-stack default,
/// fallback and errors as `listen`, without listen(), which datagram sockets do not have.
pub fn bind_udp(bind: BindTarget, plan: &Plan) -> Result<Listener> {
    server_socket(bind, plan.clone(), Serve::Datagram)
}

/// Which kind of server socket `server_socket` makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Serve {
    /// TCP: socket, bind, listen.
    Stream,
    /// UDP: socket, bind.
    Datagram,
}

fn server_socket(bind: BindTarget, plan: Plan, serve: Serve) -> Result<Listener> {
    match bind {
        BindTarget::DualStack(port) => {
            let v6 = SocketAddr::new(Ipv6Addr::UNSPECIFIED.into(), port);
            let plan6 = plan.clone().with_default("IPV6_V6ONLY", Value::Bool(false));
            match listen_on(v6, &plan6, serve) {
                Ok(sock) => finish(sock, scope(&v6, &plan6, serve), plan6),
                Err(Attempt::NoIpv6(why)) => {
                    narrate::info(format_args!("IPv6 unavailable ({why}); binding 0.0.0.0"));
                    let v4 = SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), port);
                    let sock = listen_on(v4, &plan, serve).map_err(Attempt::into_error)?;
                    let scope = match serve {
                        Serve::Stream => "(IPv4 only: no IPv6 here)",
                        Serve::Datagram => "(UDP, IPv4 only: no IPv6 here)",
                    };
                    finish(sock, scope, plan)
                }
                Err(other) => Err(other.into_error()),
            }
        }
        BindTarget::Addr { addr, v6only } => {
            let plan = if addr.is_ipv6() {
                plan.with_default("IPV6_V6ONLY", Value::Bool(v6only))
            } else {
                plan
            };
            let sock = listen_on(addr, &plan, serve).map_err(Attempt::into_error)?;
            finish(sock, scope(&addr, &plan, serve), plan)
        }
    }
}

/// Which families a server socket bound to `addr` serves, from the IPV6_V6ONLY it was given.
fn scope(addr: &SocketAddr, plan: &Plan, serve: Serve) -> &'static str {
    let v6only = matches!(plan.requested("IPV6_V6ONLY"), Some(Value::Bool(true)));
    let udp = serve == Serve::Datagram;
    match (addr.is_ipv6(), v6only, udp) {
        (false, _, false) => "(IPv4)",
        (false, _, true) => "(UDP, IPv4)",
        (true, true, false) => "(IPv6 only)",
        (true, true, true) => "(UDP, IPv6 only)",
        (true, false, false) if addr.ip().is_unspecified() => "(IPv4 and IPv6)",
        (true, false, true) if addr.ip().is_unspecified() => "(UDP, IPv4 and IPv6)",
        (true, false, false) => "(IPv6)",
        (true, false, true) => "(UDP, IPv6)",
    }
}

enum Attempt {
    /// The kernel cannot do IPv6 at all: worth falling back to IPv4.
    NoIpv6(String),
    Failed(anyhow::Error),
}

impl Attempt {
    fn into_error(self) -> anyhow::Error {
        match self {
            Attempt::NoIpv6(why) => anyhow!("IPv6 is not available: {why}"),
            Attempt::Failed(e) => e,
        }
    }
}

fn listen_on(addr: SocketAddr, plan: &Plan, serve: Serve) -> Result<Socket, Attempt> {
    let (made, kind) = match serve {
        Serve::Stream => (tcp_socket(Domain::for_address(addr)), SockKind::TcpListener),
        Serve::Datagram => (
            crate::socket::udp::udp_socket(Domain::for_address(addr)),
            SockKind::Udp,
        ),
    };
    let sock = match made {
        Ok(s) => s,
        Err(e) if addr.is_ipv6() && e.raw_os_error() == Some(libc::EAFNOSUPPORT) => {
            return Err(Attempt::NoIpv6(error::plain(&e)));
        }
        Err(e) => return Err(Attempt::Failed(anyhow!("socket(): {}", error::plain(&e)))),
    };
    if let Err(e) = plan.apply(&sock, target(&addr, kind), Stage::Early) {
        close(sock);
        return Err(Attempt::Failed(e));
    }
    let dual = addr.is_ipv6() && plan.requested("IPV6_V6ONLY") == Some(&Value::Bool(false));
    let sa = SockAddr::from(addr);
    if let Err(e) = narrate::traced(
        || sock.bind(&sa),
        |r| format!("bind(fd {}, {addr}) {}", fd(&sock), narrate::outcome(r)),
    ) {
        if dual && e.raw_os_error() == Some(libc::EADDRNOTAVAIL) {
            close(sock);
            return Err(Attempt::NoIpv6(error::plain(&e)));
        }
        let reuse = sock.reuse_address().unwrap_or(false);
        close(sock);
        let why = match (serve, e.raw_os_error()) {
            // UDP has no listening or TIME_WAIT: the port is simply bound by another socket.
            (Serve::Datagram, Some(libc::EADDRINUSE)) => format!(
                "address already in use: another socket is bound to UDP port {} ('ss -lunp' \
                 shows which process)",
                addr.port()
            ),
            _ => error::bind_failure(addr, &e, reuse),
        };
        return Err(Attempt::Failed(anyhow!("{why}")));
    }
    if serve == Serve::Datagram {
        return Ok(sock);
    }
    let backlog = plan.backlog().unwrap_or(DEFAULT_BACKLOG);
    let listened = narrate::traced(
        || sock.listen(backlog),
        |r| {
            format!(
                "listen(fd {}, backlog {backlog}) {}{}",
                fd(&sock),
                narrate::outcome(r),
                state_suffix(&sock)
            )
        },
    );
    if let Err(e) = listened {
        close(sock);
        return Err(Attempt::Failed(anyhow!("listen(): {}", error::plain(&e))));
    }
    Ok(sock)
}

fn finish(socket: Socket, scope: &'static str, plan: Plan) -> Result<Listener> {
    let local = local_addr(&socket)?;
    Ok(Listener {
        socket,
        local,
        scope,
        plan,
    })
}

/// `getsockname()`: where the socket is bound (the real port after binding port 0).
pub fn local_addr(sock: &Socket) -> Result<SocketAddr> {
    let r = narrate::traced(
        || sock.local_addr(),
        |r| match r {
            Ok(a) => format!("getsockname(fd {}) = {}", fd(sock), show(a)),
            Err(e) => format!("getsockname(fd {}) {}", fd(sock), narrate::errno_text(e)),
        },
    )
    .map_err(|e| anyhow!("getsockname(): {}", error::plain(&e)))?;
    r.as_socket()
        .ok_or_else(|| anyhow!("getsockname(): not an IP address"))
}

/// `getpeername()`: who is at the other end.
pub fn peer_addr(sock: &Socket) -> Result<SocketAddr> {
    let r = narrate::traced(
        || sock.peer_addr(),
        |r| match r {
            Ok(a) => format!("getpeername(fd {}) = {}", fd(sock), show(a)),
            Err(e) => format!("getpeername(fd {}) {}", fd(sock), narrate::errno_text(e)),
        },
    )
    .map_err(|e| anyhow!("getpeername(): {}", error::plain(&e)))?;
    r.as_socket()
        .ok_or_else(|| anyhow!("getpeername(): not an IP address"))
}

fn show(a: &SockAddr) -> String {
    a.as_socket()
        .map(|s| s.to_string())
        .unwrap_or_else(|| "(not IP)".to_string())
}

/// `accept()`: blocks until a client has connected; returns its socket and address.
pub fn accept(listener: &Socket) -> io::Result<(Socket, SocketAddr)> {
    let result = narrate::traced(
        || listener.accept(),
        |r| match r {
            Ok((s, a)) => format!(
                "accept(fd {}) = fd {} from {}{}",
                fd(listener),
                fd(s),
                show(a),
                state_suffix(s)
            ),
            Err(e) => format!("accept(fd {}) {}", fd(listener), narrate::errno_text(e)),
        },
    )?;
    let peer = result
        .1
        .as_socket()
        .ok_or_else(|| io::Error::other("accepted a peer without an IP address"))?;
    Ok((result.0, peer))
}

/// `shutdown(fd, SHUT_WR)` and friends: half-close, the peer reads EOF.
pub fn shutdown(sock: &Socket, how: Shutdown) -> io::Result<()> {
    let name = match how {
        Shutdown::Read => "SHUT_RD",
        Shutdown::Write => "SHUT_WR",
        Shutdown::Both => "SHUT_RDWR",
    };
    narrate::traced(
        || sock.shutdown(how),
        |r| {
            format!(
                "shutdown(fd {}, {name}) {}{}",
                fd(sock),
                narrate::outcome(r),
                state_suffix(sock)
            )
        },
    )
}

/// `close(fd)`, narrated; the socket is gone afterwards.
pub fn close(sock: Socket) {
    let n = fd(&sock);
    let was = if narrate::narrating() {
        tcp_state(n)
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

/// ` -> ESTABLISHED`: where the TCP state machine is now, when the kernel says (Linux).
pub fn state_suffix(sock: &Socket) -> String {
    if !narrate::narrating() {
        return String::new();
    }
    tcp_state(fd(sock))
        .map(|s| format!(" -> {s}"))
        .unwrap_or_default()
}

/// TCP_INFO's state, by name as in the RFC 793 diagram.
#[cfg(target_os = "linux")]
pub fn tcp_state(fd: RawFd) -> Option<&'static str> {
    let info = crate::sys::tcp_info(fd)?;
    Some(match info.tcpi_state {
        1 => "ESTABLISHED",
        2 => "SYN_SENT",
        3 => "SYN_RECV",
        4 => "FIN_WAIT1",
        5 => "FIN_WAIT2",
        6 => "TIME_WAIT",
        7 => "CLOSE",
        8 => "CLOSE_WAIT",
        9 => "LAST_ACK",
        10 => "LISTEN",
        11 => "CLOSING",
        _ => return None,
    })
}

#[cfg(not(target_os = "linux"))]
pub fn tcp_state(_fd: RawFd) -> Option<&'static str> {
    None
}

/// The `-v` end-of-connection TCP_INFO line, in `ss -ti`'s words and units so the two can be
/// compared: rtt/rttvar in ms, retrans as current/total, cwnd in segments, delivery_rate in
/// bits per second. bytes_acked and bytes_received count the SYN and FIN too, as the kernel does.
#[cfg(target_os = "linux")]
pub fn tcp_info_summary(sock: &Socket) -> Option<String> {
    let i = crate::sys::tcp_info(fd(sock))?;
    Some(format!(
        "tcp_info: rtt:{}/{} ms, retrans:{}/{}, cwnd:{}, mss:{}, bytes_sent:{}, bytes_acked:{}, \
         bytes_received:{}, delivery_rate {} (compare with ss -ti)",
        f64::from(i.tcpi_rtt) / 1000.0,
        f64::from(i.tcpi_rttvar) / 1000.0,
        i.tcpi_retransmits,
        i.tcpi_total_retrans,
        i.tcpi_snd_cwnd,
        i.tcpi_snd_mss,
        i.tcpi_bytes_sent,
        i.tcpi_bytes_acked,
        i.tcpi_bytes_received,
        bits_per_second(i.tcpi_delivery_rate),
    ))
}

/// A rate in bytes/s as `ss` prints it: bits per second, `12.3Mbps`.
#[cfg(target_os = "linux")]
fn bits_per_second(bytes_per_sec: u64) -> String {
    let bits = bytes_per_sec as f64 * 8.0;
    if bits >= 1e9 {
        format!("{:.1}Gbps", bits / 1e9)
    } else if bits >= 1e6 {
        format!("{:.1}Mbps", bits / 1e6)
    } else if bits >= 1e3 {
        format!("{:.1}Kbps", bits / 1e3)
    } else {
        format!("{bits}bps")
    }
}

#[cfg(not(target_os = "linux"))]
pub fn tcp_info_summary(_sock: &Socket) -> Option<String> {
    None
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
