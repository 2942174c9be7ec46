//! `sockkit connect HOST PORT`: the client. Resolve the name, try each address until one
//! connects, then relay stdin and stdout over the socket until the session ends.

use anyhow::{Result, anyhow};

use crate::addr::{self};
use crate::cli::ConnectArgs;
use crate::error;
use crate::error::UsageError;
use crate::narrate;
use crate::relay::{self, Relay};
use crate::scan;
use crate::socket;
use crate::sockopt::{Plan, SockKind};

pub fn run(args: ConnectArgs) -> Result<()> {
    if args.scan.scan {
        return check_ports(&args);
    }
    if args.unix.is_some() || args.dgram.udp {
        return super::socktype::connect(args);
    }
    let (host, port) = args.host_port()?;
    let port = addr::connect_port(port.single()?)?;
    let addrs = addr::resolve(host, port, args.net.family())?;
    if narrate::verbose() {
        let list: Vec<String> = addrs.iter().map(ToString::to_string).collect();
        narrate::info(format_args!("{} resolves to {}", host, list.join(", ")));
    }
    let plan = Plan::new(&args.sockopts.opts);
    let source = args.source.source();
    let addrs = source.fitting(host, addrs)?;
    let sock = socket::connect_from(&addrs, args.timeout, &plan, &source)?;
    let local = socket::local_addr(&sock)?;
    let peer = match socket::peer_addr(&sock) {
        Ok(peer) => peer,
        // A peer that accepts and resets at once leaves nobody to name: say what happened.
        Err(e) => match sock.take_error() {
            Ok(Some(why)) => {
                return Err(anyhow!(
                    "{}: the peer ended the connection as soon as it was made",
                    error::plain(&why)
                ));
            }
            _ => return Err(e),
        },
    };
    narrate::info(format_args!("connected: {local} -> {peer}"));
    if args.sockopts.show_opts {
        let title = format!("fd {} ({local} -> {peer})", socket::fd(&sock));
        eprint!(
            "{}",
            plan.show(&sock, socket::target(&peer, SockKind::Tcp), &title)
        );
    }
    let wire = super::wire(&args.wire)?;
    let result = Relay::new(super::ending(&args.relay))
        .with_wire(wire)
        .session(&sock);
    if let Ok(totals) = &result {
        relay::report(&sock, totals);
    }
    socket::close(sock);
    result.map(drop)
}

/// `connect -z HOST PORTS`: from the parsed arguments to the check.
fn check_ports(args: &ConnectArgs) -> Result<()> {
    if args.unix.is_some() {
        return Err(UsageError::new("-z checks ports, and a Unix socket has none").into());
    }
    let (host, list) = args.host_port()?;
    if let Ok(port) = list.single() {
        addr::connect_port(port)?;
    }
    if args.source.source_port.is_some_and(|p| p.0 != 0) {
        return Err(UsageError::new(
            "-p/--source-port cannot be used with -z: each check needs a source port of its \
             own (-s still chooses the source address)",
        )
        .into());
    }
    let ports = list.ports();
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
