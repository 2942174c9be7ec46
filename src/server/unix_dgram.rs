//! Datagram serving over a Unix SOCK_DGRAM socket (`echo -U PATH -u`): what udp.rs does for
//! UDP, each datagram one whole exchange answered to its sender's address. A sender that never
//! bound an address cannot be answered: it is counted and, with `-v`, said. mio watches the
//! socket, socket2 (through a `SockRef`) does the I/O: mio's Unix datagram type cannot send to
//! an abstract address, which is where `connect -U PATH -u` clients live. Stops on SIGINT/SIGTERM like the other loops.

use std::io;
use std::mem::MaybeUninit;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Instant;

use anyhow::{Context, Result};
use std::os::fd::OwnedFd;

use mio::net::UnixDatagram;
use mio::{Events, Interest, Poll, Token};
use socket2::{SockRef, Socket};

use super::Service;
use super::stop::Stop;
use crate::error;
use crate::narrate;
use crate::socket;
use crate::socket::unix;

const DATAGRAMS: Token = Token(0);
const SIGNAL: Token = Token(1);

/// Answers datagrams on the bound Unix datagram socket `sock` with `service` until SIGINT or
/// SIGTERM. A reply the kernel cannot queue now is dropped, as a datagram may be.
pub fn serve<S: Service>(sock: Socket, service: S) -> Result<()> {
    let mut stop = Stop::install()?;
    sock.set_nonblocking(true)
        .context("making the datagram socket non-blocking")?;
    let fd = socket::fd(&sock);
    let mut watched =
        UnixDatagram::from_std(std::os::unix::net::UnixDatagram::from(OwnedFd::from(sock)));
    let mut poll = Poll::new().context("creating the event loop (epoll_create)")?;
    poll.registry()
        .register(&mut watched, DATAGRAMS, Interest::READABLE)
        .context("registering the datagram socket with epoll")?;
    poll.registry()
        .register(&mut stop.pipe, SIGNAL, Interest::READABLE)
        .context("registering the signal pipe with epoll")?;
    let sock = SockRef::from(&watched);
    // A Unix client has no IP address: the service gets the unspecified one, as for streams.
    let nobody = SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), 0);
    let started = Instant::now();
    let mut events = Events::with_capacity(64);
    let mut buf = vec![MaybeUninit::<u8>::uninit(); 256 * 1024];
    let mut out = Vec::with_capacity(64 * 1024);
    let (mut answered, mut unanswerable, mut dropped, mut bytes_in, mut bytes_out) =
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
                    Err(e) => {
                        narrate::info(format_args!("recvfrom(fd {fd}): {}", error::plain(&e)));
                        break;
                    }
                };
                bytes_in += n as u64;
                let who = unix::show(&from);
                if from.as_pathname().is_none() && from.as_abstract_namespace().is_none() {
                    unanswerable += 1;
                    narrate::info(format_args!(
                        "a datagram of {n} B from an unbound socket: no address to answer"
                    ));
                    continue;
                }
                let data = crate::sys::received(&buf, n);
                out.clear();
                let mut session = service.open(nobody, &mut out);
                let _ = service.input(&mut session, data, &mut out);
                if out.is_empty() {
                    continue;
                }
                match sock.send_to(&out, &from) {
                    Ok(m) => {
                        answered += 1;
                        bytes_out += m as u64;
                        narrate::info(format_args!("{who}: {n} B in, {m} B back"));
                    }
                    Err(e) => {
                        dropped += 1;
                        narrate::info(format_args!(
                            "{who}: reply of {} B dropped: {}",
                            out.len(),
                            error::plain(&e)
                        ));
                    }
                }
            }
        }
    };
    let _ = poll.registry().deregister(&mut watched);
    socket::close(Socket::from(OwnedFd::from(watched)));
    narrate::info(format_args!(
        "stopped on {stopped_by}: answered {answered} datagrams ({unanswerable} from unbound \
         senders, {dropped} replies dropped), {} in, {} out, up {}",
        narrate::bytes(bytes_in),
        narrate::bytes(bytes_out),
        narrate::short(started.elapsed())
    ));
    Ok(())
}
