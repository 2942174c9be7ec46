//! `sockkit connect HOST PORT`: the client. Resolve the name, try each address until one
//! connects, then relay stdin and stdout over the socket until the session ends.

use anyhow::{Result, anyhow};

use crate::addr;
use crate::cli::ConnectArgs;
use crate::error;
use crate::narrate;
use crate::relay::{self, Relay};
use crate::socket;
use crate::sockopt::{Plan, SockKind};

pub fn run(args: ConnectArgs) -> Result<()> {
    if args.scan.scan {
        return crate::scan::connect_z(&args);
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
    let wire = crate::wire::Wire::from_args(&args.wire)?;
    let result = Relay::new(args.relay).with_wire(wire).session(&sock);
    if let Ok(totals) = &result {
        relay::report(&sock, totals);
    }
    socket::close(sock);
    result.map(drop)
}
