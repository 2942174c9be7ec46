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
