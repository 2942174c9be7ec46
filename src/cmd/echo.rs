//! `sockkit echo [ADDR] PORT`: the echo service (RFC 862) on the connection engine, or on the
//! datagram loop with `-u`, over IP or a Unix socket (`-U PATH`). Glue only: the socket on
//! its transport (setup.rs), the limits, the capture of its port (`--wire`), then the engine
//! with the echo service.

use anyhow::Result;

use super::applies::Transport;
use super::observe;
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
    let (capture, observed) = observe::start(&args.capture)?;
    let place = Place::new(args.addr.as_deref(), args.port, args.net, &args.local);
    let transport = Transport::of(args.local.unix.is_some(), args.udp);
    // The capture is in place before the `listening on` line: no client comes before it.
    let (bound, captured) =
        setup::bind_then(&place, transport, &args.sockopts, args.verbosity, |b| {
            observe::capture_server(&capture, b)
        })?;
    let tls = tls::engine_accept(
        tls,
        args.verbosity.quiet,
        tls::handshake_bound(&args.tls, None),
    );
    let result = setup::serve(bound, limits, Echo, dump, tls);
    if let Some(c) = captured {
        c.stop();
    }
    result.and(observed.finish())
}
