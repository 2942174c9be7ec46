//! UDP client sockets: made and connected, narrated like the TCP ones. A connected UDP socket
//! sends nothing at connect(): it fixes the peer, so an ICMP port unreachable comes back as
//! ECONNREFUSED on the next call. Server sockets are bound by `listener.rs` (`bind_udp`);
//! datagrams are relayed elsewhere.

use std::io;
use std::net::SocketAddr;

use anyhow::{Result, anyhow};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use super::call;
use super::state::After;
use crate::error;
use crate::narrate;
use crate::sockopt::{Plan, SockKind, Stage};

/// `socket(AF_INET, SOCK_DGRAM, IPPROTO_UDP) = fd 3`.
pub fn udp_socket(domain: Domain) -> io::Result<Socket> {
    call::open(domain, Type::DGRAM, Some(Protocol::UDP))
}

/// A connected UDP socket to the first of `addrs` the kernel has a route to. connect() on UDP
/// sends nothing: it only fixes the peer, so that send() needs no address, only its datagrams
/// are received, and an ICMP port unreachable comes back as ECONNREFUSED.
pub fn connect_udp(addrs: &[SocketAddr], plan: &Plan) -> Result<Socket> {
    let mut failures = Vec::new();
    for addr in addrs {
        let sock = udp_socket(Domain::for_address(*addr))
            .map_err(|e| anyhow!("socket() for {addr}: {}", error::plain(&e)))?;
        let tgt = call::target(addr, SockKind::Udp);
        plan.apply(&sock, tgt, Stage::Early)?;
        match call::connect(&sock, &SockAddr::from(*addr), addr, None, After::Nothing) {
            Ok(()) => {
                plan.apply(&sock, tgt, Stage::Connected)?;
                narrate::info(format_args!(
                    "UDP connect() sent nothing: it only fixed the peer ({addr}); nothing says \
                     yet that anyone is there"
                ));
                return Ok(sock);
            }
            Err(e) => {
                failures.push(error::connect_failure(*addr, &e));
                call::close(sock);
            }
        }
    }
    Err(anyhow!("{}", failures.join("; ")))
}

/// How many datagrams the kernel has dropped on `sock` because its receive queue was full
/// (the socket's `sk_drops`), read with getsockopt(SO_MEMINFO) at the end of a session. This
/// is the counter SO_RXQ_OVFL would attach to each datagram received; read here it also
/// counts the drops after the last datagram that arrived. `None` where the kernel does not say.
#[cfg(target_os = "linux")]
pub fn kernel_drops(sock: &Socket) -> Option<u64> {
    /// SK_MEMINFO_DROPS in linux/sock_diag.h: the ninth u32 of SO_MEMINFO.
    const SK_MEMINFO_DROPS: usize = 8;
    let fd = call::fd(sock);
    let t0 = std::time::Instant::now();
    let r = crate::sys::getsockopt::<[u32; SK_MEMINFO_DROPS + 1]>(
        fd,
        libc::SOL_SOCKET,
        libc::SO_MEMINFO,
    );
    let drops = r.as_ref().ok().map(|m| u64::from(m[SK_MEMINFO_DROPS]));
    narrate::call(
        format_args!(
            "getsockopt(fd {fd}, SOL_SOCKET, SO_MEMINFO) {}",
            match (&r, drops) {
                (Ok(_), Some(d)) => format!("= 0 (drops {d})"),
                _ => narrate::outcome(&r),
            }
        ),
        t0.elapsed(),
    );
    drops
}

#[cfg(not(target_os = "linux"))]
pub fn kernel_drops(_sock: &Socket) -> Option<u64> {
    None
}
