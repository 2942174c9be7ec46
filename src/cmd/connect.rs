//! `sockkit connect HOST PORT`: the client. Resolve the name, try each address until one
//! connects, then relay stdin and stdout over the socket until the session ends.

use anyhow::Result;

use crate::addr;
use crate::cli::ConnectArgs;
use crate::narrate;
use crate::relay::{self, Relay};
use crate::socket;
use crate::sockopt::{Plan, SockKind};

pub fn run(args: ConnectArgs) -> Result<()> {
    if args.unix.is_some() || args.dgram.udp {
        return super::socktype::connect(args);
    }
    let (host, port) = args.host_port()?;
    let port = addr::connect_port(port)?;
    let addrs = addr::resolve(host, port, args.net.family())?;
    if narrate::verbose() {
        let list: Vec<String> = addrs.iter().map(ToString::to_string).collect();
        narrate::info(format_args!("{} resolves to {}", host, list.join(", ")));
    }
    let plan = Plan::new(&args.sockopts.opts);
    let sock = socket::connect(&addrs, args.timeout, &plan)?;
    let local = socket::local_addr(&sock)?;
    let peer = socket::peer_addr(&sock)?;
    narrate::info(format_args!("connected: {local} -> {peer}"));
    if args.sockopts.show_opts {
        let title = format!("fd {} ({local} -> {peer})", socket::fd(&sock));
        eprint!(
            "{}",
            plan.show(&sock, socket::target(&peer, SockKind::Tcp), &title)
        );
    }
    let result = Relay::new(args.relay).session(&sock);
    if let Ok(totals) = &result {
        relay::report(&sock, totals);
    }
    socket::close(sock);
    result.map(drop)
}
