//! `sockkit connect HOST PORT`: the client. Resolve the name, try each address until one
//! connects (TCP), or fix the peer of a UDP socket, or connect to a Unix socket (`-U`), then
//! relay stdin and stdout over it until the session ends: the same relay, with the same wire
//! stages, on every transport. `-z` checks ports instead (scan.rs).

use std::net::SocketAddr;

use anyhow::{Result, anyhow};
use socket2::{Socket, Type};

use super::applies::Transport;
use super::observe;
use super::options;
use super::tls;
use crate::addr;
use crate::capture::{Capture, CaptureOpts, Proto, Scope, sample};
use crate::cli::ConnectArgs;
use crate::error::{self, UsageError};
use crate::narrate;
use crate::relay::{Peers, Relay};
use crate::scan;
use crate::socket::{self, Proxy, unix};
use crate::sockopt::{Plan, SockKind};

pub fn run(args: ConnectArgs) -> Result<()> {
    if args.scan.scan {
        return check_ports(&args);
    }
    let tls = tls::client(&args.tls, args.host.as_deref())?;
    let wire = options::wire(&args.wire)?;
    let (capture, observed) = observe::start(&args.capture)?;
    let plan = Plan::new(&args.sockopts.opts);
    let transport = Transport::of(args.unix.is_some(), args.dgram.udp);
    let (sock, captured) = match &args.unix {
        Some(path) => {
            let ty = if transport.is_stream() {
                Type::STREAM
            } else {
                Type::DGRAM
            };
            let sock = unix::connect(path, ty, args.timeout, &plan)?;
            narrate::info(format_args!(
                "connected to {path} (Unix, fd {})",
                socket::fd(&sock)
            ));
            let title = format!("fd {} (Unix -> {path})", socket::fd(&sock));
            show_opts(&args, &plan, &sock, unix::target(), &title);
            (sock, None)
        }
        None => match options::proxy(&args.proxy) {
            Some(proxy) => {
                if args.capture.wire || args.capture.pcap.is_some() {
                    return Err(UsageError::new(
                        "--wire/--pcap capture the connection to HOST PORT, and with --proxy \
                         sockkit's own connection goes to the proxy: capture the proxy's port \
                         with tcpdump instead",
                    )
                    .into());
                }
                (connect_proxied(&args, &proxy, &plan)?, None)
            }
            None => connect_ip(&args, transport, &plan, &capture)?,
        },
    };
    let channel = options::channel(args.dgram, Peers::Connected, args.verbosity);
    let ending = options::ending(&args.relay, options::Role::Client);
    let watch = if transport == Transport::Tcp {
        sample::watch(socket::fd(&sock), None)
    } else {
        None
    };
    let result = match tls {
        Some(client) => tls::connect_session(
            client,
            &sock,
            ending,
            wire,
            args.timeout,
            args.relay.json,
            options::progress(&args.relay, args.verbosity),
        ),
        None => Relay::new(ending, wire)
            .json(args.relay.json)
            .progress(options::progress(&args.relay, args.verbosity))
            .session(&sock, channel),
    };
    drop(watch);
    socket::close(sock);
    if let Some(c) = captured {
        c.stop();
    }
    let finished = observed.finish();
    result.map(drop).and(finished)
}

/// Resolves HOST, then connects over TCP (each address in turn, from `-s`/`-p` if given) or
/// fixes the peer of a UDP socket (connect() sends nothing). `--wire` starts capturing before
/// the first call, so the SYN is seen; it watches the first address tried.
fn connect_ip(
    args: &ConnectArgs,
    transport: Transport,
    plan: &Plan,
    capture: &CaptureOpts,
) -> Result<(Socket, Option<Capture>)> {
    let (host, port) = args.host_port()?;
    let port = addr::connect_port(port.single()?)?;
    let addrs = addr::resolve(host, port, args.net.family())?;
    if narrate::verbose() {
        let list: Vec<String> = addrs.iter().map(ToString::to_string).collect();
        narrate::info(format_args!("{} resolves to {}", host, list.join(", ")));
    }
    let udp = transport == Transport::Udp;
    let (proto, addrs) = if udp {
        (Proto::Udp, addrs)
    } else {
        (Proto::Tcp, args.source.source().fitting(host, addrs)?)
    };
    let cap = Capture::start(
        capture,
        Scope::Client {
            proto,
            peer: addrs[0],
        },
    );
    let sock = if udp {
        socket::udp::connect_udp(&addrs, plan)?
    } else {
        socket::connect_from(&addrs, args.timeout, plan, &args.source.source())?
    };
    let local = socket::local_addr(&sock)?;
    let fd = socket::fd(&sock);
    let (peer, kind, said, title) = if udp {
        let peer = socket::peer_addr(&sock)?;
        (peer, SockKind::Udp, "UDP socket", format!("UDP fd {fd}"))
    } else {
        (
            tcp_peer(&sock)?,
            SockKind::Tcp,
            "connected:",
            format!("fd {fd}"),
        )
    };
    narrate::info(format_args!("{said} {local} -> {peer}"));
    let title = format!("{title} ({local} -> {peer})");
    show_opts(args, plan, &sock, socket::target(&peer, kind), &title);
    Ok((sock, cap))
}

/// Connects to the proxy and has it connect to HOST PORT; then the socket is a stream to the
/// target like any other.
fn connect_proxied(args: &ConnectArgs, proxy: &Proxy, plan: &Plan) -> Result<Socket> {
    let (host, port) = args.host_port()?;
    let port = addr::connect_port(port.single()?)?;
    let source = args.source.source();
    let (sock, reached) = socket::connect_via(
        proxy,
        host,
        port,
        args.net.family(),
        args.timeout,
        plan,
        &source,
    )?;
    if let Err(why) = reached {
        socket::close(sock);
        return Err(anyhow!(
            "proxy {} could not connect to {host}:{port}: {why}",
            proxy.url
        ));
    }
    let local = socket::local_addr(&sock)?;
    let peer = tcp_peer(&sock)?;
    narrate::info(format_args!(
        "connected: {local} -> {peer} (proxy), tunnel to {host}:{port}"
    ));
    let title = format!("fd {} ({local} -> proxy {peer})", socket::fd(&sock));
    show_opts(
        args,
        plan,
        &sock,
        socket::target(&peer, SockKind::Tcp),
        &title,
    );
    Ok(sock)
}

/// The peer of a TCP connection just made. A peer that accepts and resets at once leaves
/// nobody to name: say what happened.
fn tcp_peer(sock: &Socket) -> Result<SocketAddr> {
    match socket::peer_addr(sock) {
        Ok(peer) => Ok(peer),
        Err(e) => match sock.take_error() {
            Ok(Some(why)) => Err(anyhow!(
                "{}: the peer ended the connection as soon as it was made",
                error::plain(&why)
            )),
            _ => Err(e),
        },
    }
}

/// `--show-opts` for the connected socket.
fn show_opts(
    args: &ConnectArgs,
    plan: &Plan,
    sock: &Socket,
    target: crate::sockopt::Target,
    title: &str,
) {
    if args.sockopts.show_opts {
        crate::narrate::say(&plan.show(sock, target, title));
    }
}

/// Where a check's per-port lines go: nc mode's (nothing, or stderr with -v), JSON, only the
/// open ports, or (-v) every port.
fn lines(args: &ConnectArgs) -> scan::Lines {
    match (args.scan.nc_quiet, args.relay.json, args.verbosity.verbose) {
        (true, _, 0) => scan::Lines::Silent,
        (true, _, _) => scan::Lines::Stderr,
        (false, true, _) => scan::Lines::Json,
        (false, false, 0) => scan::Lines::Open,
        (false, false, _) => scan::Lines::All,
    }
}

/// `connect -z HOST PORTS`: from the parsed arguments to the check.
fn check_ports(args: &ConnectArgs) -> Result<()> {
    let (host, list) = args.host_port()?;
    if let Ok(port) = list.single() {
        addr::connect_port(port)?;
    }
    let ports = list.ports();
    if let Some(proxy) = options::proxy(&args.proxy) {
        let plan = Plan::new(&args.sockopts.opts);
        let via = scan::Via {
            proxy: &proxy,
            family: args.net.family(),
            timeout: args.timeout.unwrap_or(scan::DEFAULT_TIMEOUT),
            source: args.source.source(),
            plan: &plan,
            lines: lines(args),
            progress: options::progress(&args.relay, args.verbosity),
        };
        return scan::run_via(host, ports, &via).map(drop);
    }
    let addrs = addr::resolve(host, ports[0], args.net.family())?;
    let source = args.source.source();
    let addrs = source.fitting(host, addrs)?;
    let ip = addrs[0].ip();
    if addrs.len() > 1 {
        narrate::info(format_args!(
            "{} resolves to {} addresses; checking the first, {ip}",
            host,
            addrs.len()
        ));
    }
    let plan = Plan::new(&args.sockopts.opts);
    let check = scan::Check {
        parallel: usize::from(args.scan.parallel),
        timeout: args.timeout.unwrap_or(scan::DEFAULT_TIMEOUT),
        source,
        plan: &plan,
        lines: lines(args),
        progress: options::progress(&args.relay, args.verbosity),
    };
    if check.timeout.is_zero() {
        return Err(UsageError::new("-w 0 leaves no time for any port to answer").into());
    }
    if args.dgram.udp {
        narrate::info(format_args!(
            "UDP: each port gets one empty datagram (no payload bytes); an ICMP port \
             unreachable says closed, silence says only open|filtered"
        ));
        return scan::run_udp(ip, ports, &check).map(drop);
    }
    narrate::info(format_args!(
        "checking {} port{} on {ip}, at most {} at once, each within {}",
        ports.len(),
        if ports.len() == 1 { "" } else { "s" },
        check.parallel,
        narrate::short(check.timeout)
    ));
    scan::run(ip, ports, &check).map(drop)
}
