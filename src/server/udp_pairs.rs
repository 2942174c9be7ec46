//! UDP forwarding (`forward -u`): one loop, the bound socket clients send to, and a connected
//! outbound socket per client address (a flow), so the target's replies come back on the
//! socket of the client they are for and go back to that client alone. UDP has no FIN: a flow
//! ends when it has been idle for `--idle-timeout`, or at stop. `--max-conns` caps the flows,
//! `--allow`/`--deny` are checked for each new client; a datagram the kernel cannot queue is
//! dropped (as any datagram may be) and counted. The TCP forwarder is `forward.rs`.

use std::collections::HashMap;
use std::io;
use std::mem::MaybeUninit;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token};
use socket2::{SockRef, Socket};

use super::forward::{Dest, Forward};
use super::limits::Limits;
use super::lookup::Lookup;
use super::peer::{Peer, plain_addr};
use super::reflect::Guard;
use super::report::counted;
use super::slots::Slots;
use super::stop::Stop;
use super::summary;
use crate::error;
use crate::narrate;
use crate::relay::wire::Dir;
use crate::socket::{self, udp};

const LISTENER: Token = Token(usize::MAX);
const SIGNAL: Token = Token(usize::MAX - 1);
/// The largest UDP payload (IPv6 jumbograms aside).
const DATAGRAM_MAX: usize = 65_536;

/// One client address and the outbound socket that speaks for it.
struct Flow {
    sock: UdpSocket,
    client: SocketAddr,
    target: SocketAddr,
    out_local: String,
    up: (u64, u64),
    down: (u64, u64),
    dropped: u64,
    last: Instant,
    opened: Instant,
    /// The capture's hold on the outbound socket (`--wire`), let go as the flow ends.
    _leg: Option<crate::capture::Leg>,
}

#[derive(Default)]
struct Tally {
    flows: u64,
    refused: u64,
    dropped: u64,
    up: (u64, u64),
    down: (u64, u64),
}

/// Forwards the datagrams arriving on the bound UDP socket `sock` until SIGINT or SIGTERM.
pub fn serve_udp_forward(sock: Socket, limits: &Limits, fwd: &Forward) -> Result<()> {
    let Dest::Ip { host, port, family } = &fwd.dest else {
        anyhow::bail!("UDP forwarding needs HOST PORT as its target");
    };
    // HOST looked up off the loop from here on (lookup.rs).
    let lookup = Lookup::start(
        host,
        *port,
        *family,
        crate::addr::resolve(host, *port, *family)?,
    );
    let mut stop = Stop::install()?;
    sock.set_nonblocking(true)
        .context("making the UDP socket non-blocking")?;
    let bound = socket::local_addr(&sock).ok();
    let local = bound.map_or_else(|| "?".to_string(), |a| a.to_string());
    // What keeps echo -u from answering itself keeps forward -u from relaying a target's
    // replies to itself or to another service (reflect.rs), checked when a flow would open.
    let mut guard = bound.map(|a| Guard::new(a, Instant::now()));
    let mut listener = UdpSocket::from_std(std::net::UdpSocket::from(OwnedFd::from(sock)));
    let mut poll = Poll::new().context("creating the event loop (epoll_create)")?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)
        .context("registering the UDP socket with epoll")?;
    poll.registry()
        .register(&mut stop.pipe, SIGNAL, Interest::READABLE)
        .context("registering the signal pipe with epoll")?;
    let idle = limits.idle_timeout;
    let sweep_every = idle
        .map_or(Duration::from_secs(1), |t| t / 10)
        .clamp(Duration::from_millis(10), Duration::from_secs(1));
    let mut next_sweep = Instant::now() + sweep_every;
    let mut flows: Slots<Flow> = Slots::new();
    let mut by_client: HashMap<SocketAddr, usize> = HashMap::new();
    let mut buf = vec![MaybeUninit::<u8>::uninit(); DATAGRAM_MAX];
    let mut t = Tally::default();
    let mut last_refusal: Option<Instant> = None;
    let started = Instant::now();
    let mut events = Events::with_capacity(256);
    let stopped_by = 'serve: loop {
        let timeout = next_sweep.saturating_duration_since(Instant::now());
        if let Err(e) = poll.poll(&mut events, Some(timeout)) {
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e).context("waiting for events (epoll_wait)");
        }
        let now = Instant::now();
        for ev in &events {
            match ev.token() {
                SIGNAL => {
                    if let Some(sig) = stop.take() {
                        break 'serve sig;
                    }
                }
                LISTENER => loop {
                    let (n, from) = match SockRef::from(&listener).recv_from(&mut buf) {
                        Ok((n, from)) => match from.as_socket() {
                            Some(a) => (n, plain_addr(a)),
                            None => continue,
                        },
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        // An ICMP error for a datagram sent back earlier: that client's problem.
                        Err(e) if e.raw_os_error() == Some(libc::ECONNREFUSED) => continue,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        // Anything else is not one datagram's: say it, and wait for the next event.
                        Err(e) => {
                            narrate::emit(format_args!("recvfrom(): {}", error::plain(&e)));
                            break;
                        }
                    };
                    let data = crate::sys::received(&buf, n);
                    let slot = if let Some(&slot) = by_client.get(&from) {
                        slot
                    } else {
                        let silenced = guard.as_mut().and_then(|g| g.check(from, now));
                        let refusal = silenced
                            .map(|s| s.why())
                            .or_else(|| limits.refuses(from.ip()))
                            .or_else(|| {
                                (by_client.len() >= limits.max_conns).then(|| {
                                    format!(
                                        "--max-conns {} reached ({} flows open)",
                                        limits.max_conns,
                                        by_client.len()
                                    )
                                })
                            });
                        if let Some(why) = refusal {
                            t.refused += 1;
                            // At most one line a second: a flood must not flood stderr.
                            if last_refusal.is_none_or(|l| now - l >= Duration::from_secs(1)) {
                                last_refusal = Some(now);
                                narrate::emit(format_args!("refused {from}: {why}"));
                            }
                            continue;
                        }
                        match open_flow(&lookup, fwd, from, now) {
                            Ok(mut flow) => {
                                let (slot, tok) = flows.vacant();
                                if let Err(e) = poll.registry().register(
                                    &mut flow.sock,
                                    tok,
                                    Interest::READABLE,
                                ) {
                                    flows.release(slot);
                                    narrate::emit(format_args!(
                                        "{from}: registering with epoll: {e}"
                                    ));
                                    continue;
                                }
                                flows.fill(slot, flow);
                                by_client.insert(from, slot);
                                t.flows += 1;
                                slot
                            }
                            Err(e) => {
                                narrate::emit(format_args!(
                                    "{from}: target unreachable, datagram dropped: {e:#}"
                                ));
                                t.dropped += 1;
                                continue;
                            }
                        }
                    };
                    let Some(flow) = flows.get_mut(slot) else {
                        continue;
                    };
                    flow.last = now;
                    if let Some(d) = &fwd.dump {
                        let label = format!("{} to {}", flow.client, flow.target);
                        d.record(Some(&label), Dir::Out, flow.up.1, data);
                    }
                    match flow.sock.send(data) {
                        Ok(m) => {
                            flow.up.0 += 1;
                            flow.up.1 += m as u64;
                        }
                        Err(e) => {
                            flow.dropped += 1;
                            narrate::info(format_args!(
                                "{from}: a datagram of {n} B to {} dropped: {}",
                                flow.target,
                                error::plain(&e)
                            ));
                        }
                    }
                },
                tok => {
                    let Some(slot) = flows.slot_of(tok) else {
                        continue;
                    };
                    let Some(flow) = flows.get_mut(slot) else {
                        continue;
                    };
                    loop {
                        let n = match SockRef::from(&flow.sock).recv(&mut buf) {
                            Ok(n) => n,
                            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                            Err(e) => {
                                // ICMP port unreachable and friends, for what we sent: said
                                // once; the datagram that caused it is lost.
                                narrate::info(format_args!(
                                    "{}: the target {}: {}",
                                    flow.client,
                                    flow.target,
                                    error::plain(&e)
                                ));
                                if e.raw_os_error() == Some(libc::ECONNREFUSED) {
                                    continue;
                                }
                                break;
                            }
                        };
                        let data = crate::sys::received(&buf, n);
                        flow.last = now;
                        if let Some(d) = &fwd.dump {
                            let label = format!("{} to {}", flow.target, flow.client);
                            d.record(Some(&label), Dir::In, flow.down.1, data);
                        }
                        match listener.send_to(data, flow.client) {
                            Ok(m) => {
                                flow.down.0 += 1;
                                flow.down.1 += m as u64;
                            }
                            Err(_) => flow.dropped += 1,
                        }
                    }
                }
            }
        }
        if now >= next_sweep {
            if let Some(limit) = idle {
                for slot in 0..flows.end() {
                    if flows
                        .get(slot)
                        .is_some_and(|f| now.saturating_duration_since(f.last) >= limit)
                        && let Some(f) = flows.remove(slot)
                    {
                        by_client.remove(&f.client);
                        end_flow(f, &local, &mut t, &poll, "idle past --idle-timeout");
                    }
                }
            }
            next_sweep = now + sweep_every;
        }
    };
    for slot in 0..flows.end() {
        if let Some(f) = flows.remove(slot) {
            end_flow(f, &local, &mut t, &poll, "server stopping");
        }
    }
    let _ = poll.registry().deregister(&mut listener);
    socket::close(Socket::from(OwnedFd::from(listener)));
    if narrate::json() {
        let o = summary::totals_head(t.flows)
            .num("refused", t.refused)
            .num("dropped", t.dropped)
            .num("up", t.up.1)
            .num("down", t.down.1)
            .num("datagrams_up", t.up.0)
            .num("datagrams_down", t.down.0);
        narrate::json_line(&summary::totals_tail(
            o,
            started.elapsed(),
            Some(stopped_by),
        ));
        return Ok(());
    }
    narrate::info(format_args!(
        "stopped on {stopped_by}: forwarded {} ({} datagrams refused, {} dropped), {} in {} to \
         targets, {} in {} back, up {}",
        counted(t.flows, "client"),
        t.refused,
        t.dropped,
        narrate::bytes(t.up.1),
        counted(t.up.0, "datagram"),
        narrate::bytes(t.down.1),
        counted(t.down.0, "datagram"),
        narrate::short(started.elapsed())
    ));
    Ok(())
}

/// A connected UDP socket to the target for a new client address (HOST's latest addresses,
/// so a target that moved is followed).
fn open_flow(lookup: &Lookup, fwd: &Forward, client: SocketAddr, now: Instant) -> Result<Flow> {
    let addrs = lookup.current().map_err(|why| anyhow::anyhow!(why))?;
    let sock = udp::connect_udp(&addrs, &fwd.out_plan)?;
    sock.set_nonblocking(true)
        .context("making the outbound UDP socket non-blocking")?;
    let target = socket::peer_addr(&sock)?;
    let local = socket::local_addr(&sock).ok();
    let out_local = local.map_or_else(|| "?".to_string(), |a| a.to_string());
    // UDP's connect() sends nothing: the leg is registered with both ends known, before
    // the first datagram goes.
    let leg = fwd
        .legs
        .as_ref()
        .zip(local)
        .map(|(legs, local)| legs.connected(local, target));
    if fwd.show_opts {
        let tgt = socket::target(&target, crate::sockopt::SockKind::Udp);
        let title = format!("outbound UDP fd {} ({target})", sock.as_raw_fd());
        eprint!("{}", fwd.out_plan.show(&sock, tgt, &title));
    }
    Ok(Flow {
        sock: UdpSocket::from_std(std::net::UdpSocket::from(OwnedFd::from(sock))),
        client,
        target,
        out_local,
        up: (0, 0),
        down: (0, 0),
        dropped: 0,
        last: now,
        opened: now,
        _leg: leg,
    })
}

/// A flow ends: its -v line, its counts, its socket closed.
fn end_flow(mut f: Flow, local: &str, t: &mut Tally, poll: &Poll, why: &str) {
    let _ = poll.registry().deregister(&mut f.sock);
    t.up.0 += f.up.0;
    t.up.1 += f.up.1;
    t.down.0 += f.down.0;
    t.down.1 += f.down.1;
    t.dropped += f.dropped;
    if narrate::json() {
        let target = f.target.to_string();
        let o = summary::pair(&summary::Pair {
            proto: "udp",
            peer: &Peer::Ip(f.client),
            local,
            target: &target,
            up: f.up.1,
            down: f.down.1,
            elapsed: f.opened.elapsed(),
            reason: why,
        })
        .num("datagrams_up", f.up.0)
        .num("datagrams_down", f.down.0)
        .num("dropped", f.dropped);
        narrate::json_line(&o.text());
    } else {
        narrate::info(format_args!(
            "flow {} -> {local} | {} -> {}: {} ({}) to the target, {} ({}) back, {} dropped, {} ({why})",
            f.client,
            f.out_local,
            f.target,
            counted(f.up.0, "datagram"),
            narrate::bytes(f.up.1),
            counted(f.down.0, "datagram"),
            narrate::bytes(f.down.1),
            f.dropped,
            narrate::short(f.opened.elapsed()),
        ));
    }
    socket::close(Socket::from(OwnedFd::from(f.sock)));
}
