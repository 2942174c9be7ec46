//! Datagram serving: bind a UDP socket (narrated like the TCP ones) and answer each datagram
//! to its sender through the same `Service`, one datagram being one whole exchange (open, then
//! input). There are no connections, so `--allow`/`--deny` are checked per datagram and the
//! other limits do not apply. Stops on SIGINT/SIGTERM like the TCP engine.

use std::io;
use std::time::Instant;

use anyhow::{Context, Result};
use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token};
use socket2::Socket;

use super::stop::Stop;
use super::{Limits, Service, plain_addr};
use crate::error;
use crate::narrate;
use crate::socket::{self, Listener};

const DATAGRAMS: Token = Token(0);
const SIGNAL: Token = Token(1);

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
        "stopped on {stopped_by}: answered {} ({refused} refused, {dropped} replies dropped), {} in, {} out, up {}",
        super::engine::counted(answered, "datagram"),
        narrate::bytes(bytes_in),
        narrate::bytes(bytes_out),
        narrate::short(started.elapsed())
    ));
    Ok(())
}
