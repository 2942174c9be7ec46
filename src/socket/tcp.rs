//! A TCP client's connection and a TCP server's accept: socket(), the option plan, the
//! optional source bind, connect() over each candidate address in turn (every failure kept, so
//! the error can list them), and accept(). A server's listening socket is made by
//! `listener.rs`; the wording of each failure comes from `error`.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Result, anyhow};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use super::call;
use super::source;
use super::state::After;
use crate::addr::Source;
use crate::error;
use crate::narrate;
use crate::sockopt::{Plan, SockKind, Stage};

/// `socket(AF_INET6, SOCK_STREAM, IPPROTO_TCP) = fd 3`.
pub fn tcp_socket(domain: Domain) -> io::Result<Socket> {
    call::open(domain, Type::STREAM, Some(Protocol::TCP))
}

/// Connects to the first of `addrs` that accepts, each attempt bounded by `timeout`, from a
/// chosen local address and/or port (`-s`, `-p`) bound before each attempt. When all fail, the
/// error lists every address and why.
/// A bind failure is local (not this host's address, port taken) and ends the attempts at once.
pub fn connect_from(
    addrs: &[SocketAddr],
    timeout: Option<Duration>,
    plan: &Plan,
    source: &Source,
) -> Result<Socket> {
    let mut failures: Vec<String> = Vec::new();
    for addr in addrs {
        let sock = tcp_socket(Domain::for_address(*addr))
            .map_err(|e| anyhow!("socket() for {addr}: {}", error::plain(&e)))?;
        let tgt = call::target(addr, SockKind::Tcp);
        if let Err(e) = plan.apply(&sock, tgt, Stage::Early) {
            call::close(sock);
            return Err(e);
        }
        if let Some(src) = source.bind_addr(addr)
            && let Err(e) = source::bind_source(&sock, src)
        {
            call::close(sock);
            return Err(e);
        }
        narrate::info(format_args!("connecting to {addr}"));
        let sa = SockAddr::from(*addr);
        match call::connect(&sock, &sa, addr, timeout, After::TcpState) {
            Ok(()) => {
                if let Err(e) = plan.apply(&sock, tgt, Stage::Connected) {
                    call::close(sock);
                    return Err(e);
                }
                return Ok(sock);
            }
            Err(e) => {
                // socket2's connect_timeout reports its own deadline without an errno; the
                // kernel's own give-up (SYN retries) is ETIMEDOUT.
                let why = if e.kind() == io::ErrorKind::TimedOut && e.raw_os_error().is_none() {
                    error::connect_timed_out(*addr, timeout)
                } else {
                    error::connect_failure(*addr, &e)
                };
                failures.push(why);
                call::close(sock);
            }
        }
    }
    match failures.as_slice() {
        [why] => Err(anyhow!("{why}")),
        many => Err(anyhow!(
            "could not connect to any of {} addresses: {}",
            many.len(),
            many.join("; ")
        )),
    }
}

/// `accept()`: blocks until a client has connected; returns its socket and address.
pub fn accept(listener: &Socket) -> io::Result<(Socket, SocketAddr)> {
    let (sock, from) = call::accept(listener, call::show_ip, After::TcpState)?;
    let peer = from
        .as_socket()
        .ok_or_else(|| io::Error::other("accepted a peer without an IP address"))?;
    Ok((sock, peer))
}
