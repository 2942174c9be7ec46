//! `sockkit echo [ADDR] PORT`: the echo service (RFC 862) on the connection engine, or on UDP
//! with `-u`. Glue only: the endpoint, the socket plan, the announcement, then the engine.

use anyhow::Result;

use crate::addr;
use crate::cli::EchoArgs;
use crate::server::{self, Limits, Service};
use crate::service::dumped::Dumped;
use crate::service::echo::Echo;
use crate::socket::{self, Listener};
use crate::sockopt::{Plan, SockKind};

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
    let plan = super::server_plan(&args.sockopts);
    let limits = super::limits(&args.server);
    let (listener, kind) = if args.udp {
        (socket::bind_udp(bind, &plan)?, SockKind::Udp)
    } else {
        (socket::listen(bind, &plan)?, SockKind::TcpListener)
    };
    // The plan as applied, with the defaults binding added, so --show-opts shows them.
    let plan = listener.plan.clone();
    super::show_listener(&listener, kind, &args.sockopts);
    super::announce(&listener, args.verbosity);
    match super::dump(&args.dump)? {
        Some(dump) => serve(
            args.udp,
            listener,
            &plan,
            limits,
            Dumped { inner: Echo, dump },
        ),
        None => serve(args.udp, listener, &plan, limits, Echo),
    }
}

/// The engine for TCP, or the datagram loop for `-u`, with the service as it was built.
fn serve<S: Service>(
    udp: bool,
    listener: Listener,
    plan: &Plan,
    limits: Limits,
    service: S,
) -> Result<()> {
    if udp {
        server::serve_datagrams(listener.socket, &limits, service)
    } else {
        server::serve(listener, plan, limits, service)
    }
}
