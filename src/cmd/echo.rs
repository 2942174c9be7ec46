//! `sockkit echo [ADDR] PORT`: the echo service (RFC 862) on the connection engine, or on UDP
//! with `-u`. Glue only: the endpoint, the socket plan, the announcement, then the engine.

use anyhow::Result;

use crate::addr;
use crate::cli::EchoArgs;
use crate::server::{self, Limits, udp};
use crate::service::echo::Echo;
use crate::socket;
use crate::sockopt::{Plan, SockKind, Value};

pub fn run(args: EchoArgs) -> Result<()> {
    if let Some(path) = &args.local.unix {
        let (s, v) = (&args.sockopts, args.verbosity);
        if args.udp {
            return super::socktype::serve_unix_dgram(path, &args.local, s, v, &args.server, Echo);
        }
        return super::socktype::serve_unix(path, &args.local, s, v, &args.server, Echo);
    }
    let (host, port) = addr::server_endpoint(args.addr.as_deref(), args.port, None)?;
    let bind = addr::bind_target(host.as_deref(), port, args.net.family())?;
    // Servers restart without waiting out TIME_WAIT; `-o reuseaddr=0` turns it off.
    let plan = Plan::new(&args.sockopts.opts).with_default("SO_REUSEADDR", Value::Bool(true));
    let limits = Limits::from_args(&args.server);
    let (listener, kind) = if args.udp {
        (udp::bind(bind, &plan)?, SockKind::Udp)
    } else {
        (socket::listen(bind, &plan)?, SockKind::TcpListener)
    };
    // The plan as applied, with the defaults binding added, so --show-opts shows them.
    let plan = listener.plan.clone();
    if args.sockopts.show_opts {
        let title = format!(
            "{} fd {} ({})",
            if args.udp { "UDP" } else { "listening" },
            socket::fd(&listener.socket),
            listener.local
        );
        let target = socket::target(&listener.local, kind);
        eprint!("{}", listener.plan.show(&listener.socket, target, &title));
    }
    super::announce(&listener, args.verbosity);
    if args.udp {
        udp::serve(listener, &limits, Echo)
    } else {
        server::serve(listener, &plan, limits, Echo)
    }
}
