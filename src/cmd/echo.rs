//! `sockkit echo [ADDR] PORT`: the echo service (RFC 862) on the connection engine, or on the
//! datagram loop with `-u`, over IP or a Unix socket (`-U PATH`). Glue only: the socket on
//! its transport (setup.rs), the limits, then the engine with the echo service.

use anyhow::Result;

use super::applies::Transport;
use super::options;
use super::setup::{self, Place};
use super::tls;
use crate::cli::EchoArgs;
use crate::service::echo::Echo;

pub fn run(args: EchoArgs) -> Result<()> {
    let dump = options::dump(&args.dump)?;
    // Checked before anything binds: a refused limit must not follow a `listening on` line.
    let limits = options::limits(&args.server)?;
    let tls = tls::engine_server(&args.tls, args.addr.as_deref())?;
    let place = Place::new(args.addr.as_deref(), args.port, args.net, &args.local);
    let transport = Transport::of(args.local.unix.is_some(), args.udp);
    let bound = setup::bind(&place, transport, &args.sockopts, args.verbosity)?;
    let tls = tls::engine_accept(tls, args.verbosity.quiet);
    setup::serve(bound, limits, Echo, dump, tls)
}
