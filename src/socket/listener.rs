//! An IP server's socket, TCP (`listen`) or UDP (`bind_udp`): socket, the option plan, bind,
//! and listen() for TCP, with sockkit's default of one dual-stack `[::]` socket that falls
//! back to `0.0.0.0` where the kernel has no IPv6, and the scope the `listening on` line
//! announces. Accepting is `tcp.rs`'s; Unix servers bind in `unix.rs`.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

use anyhow::{Result, anyhow};
use socket2::{Domain, SockAddr, Socket};

use super::call::{self, DEFAULT_BACKLOG};
use super::state::After;
use super::tcp::tcp_socket;
use super::udp::udp_socket;
use crate::addr::BindTarget;
use crate::error;
use crate::narrate;
use crate::sockopt::{Plan, SockKind, Stage, Value};

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

/// Who can reach a server bound to `addr`, for the `listening on` line: a wildcard or any
/// address but loopback (127.0.0.0/8, `::1`, or loopback in mapped form) is on the network,
/// so the line says so; sockkit's servers bind all interfaces by default, and a learner
/// should not find that out from someone else's connection.
pub fn reach(addr: &SocketAddr) -> &'static str {
    if addr.ip().to_canonical().is_loopback() {
        "this machine only"
    } else {
        "reachable from other machines"
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
        Serve::Datagram => (udp_socket(Domain::for_address(addr)), SockKind::Udp),
    };
    let sock = match made {
        Ok(s) => s,
        Err(e) if addr.is_ipv6() && e.raw_os_error() == Some(libc::EAFNOSUPPORT) => {
            return Err(Attempt::NoIpv6(error::plain(&e)));
        }
        Err(e) => return Err(Attempt::Failed(anyhow!("socket(): {}", error::plain(&e)))),
    };
    if let Err(e) = plan.apply(&sock, call::target(&addr, kind), Stage::Early) {
        call::close(sock);
        return Err(Attempt::Failed(e));
    }
    let dual = addr.is_ipv6() && plan.requested("IPV6_V6ONLY") == Some(&Value::Bool(false));
    if let Err(e) = call::bind(&sock, &SockAddr::from(addr), &addr, "") {
        // Only `[::]` failing says the kernel has no IPv6; `::2` failing says that address is
        // not on this machine, which bind_failure words.
        if dual && addr.ip().is_unspecified() && e.raw_os_error() == Some(libc::EADDRNOTAVAIL) {
            call::close(sock);
            return Err(Attempt::NoIpv6(error::plain(&e)));
        }
        let reuse = sock.reuse_address().unwrap_or(false);
        call::close(sock);
        let why = match serve {
            Serve::Stream => error::bind_failure(addr, &e, reuse),
            Serve::Datagram => error::udp_bind_failure(addr, &e, reuse),
        };
        return Err(Attempt::Failed(anyhow!("{why}")));
    }
    if serve == Serve::Datagram {
        return Ok(sock);
    }
    let backlog = plan.backlog().unwrap_or(DEFAULT_BACKLOG);
    if let Err(e) = call::listen(&sock, backlog, After::TcpState) {
        call::close(sock);
        return Err(Attempt::Failed(e));
    }
    Ok(sock)
}

fn finish(socket: Socket, scope: &'static str, plan: Plan) -> Result<Listener> {
    let local = call::local_addr(&socket)?;
    Ok(Listener {
        socket,
        local,
        scope,
        plan,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_and_network_addresses_are_reachable_loopback_is_not() {
        for a in ["[::]:1", "0.0.0.0:1", "192.0.2.7:1", "[2001:db8::1]:1"] {
            assert_eq!(
                reach(&a.parse().unwrap()),
                "reachable from other machines",
                "{a}"
            );
        }
        for a in [
            "127.0.0.1:1",
            "127.9.9.9:1",
            "[::1]:1",
            "[::ffff:127.0.0.1]:1",
        ] {
            assert_eq!(reach(&a.parse().unwrap()), "this machine only", "{a}");
        }
    }
}
