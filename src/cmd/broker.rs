//! `sockkit listen --broker [ADDR] PORT` (and `--chat`; `--broker -U PATH` on a Unix stream
//! socket): the hub on the connection engine. Glue only: the socket as `listen` binds it,
//! limits from listen's own options, the announcement, then the engine with the broker
//! service. stdin is not read: the broker passes clients' bytes between them and takes no
//! part itself. Which transports a broker runs on is applies.rs's call. `--wire` and the other
//! watchers cover its port, so every client's segments, as they do for echo.

use std::time::Duration;

use anyhow::Result;

use super::applies::Transport;
use super::observe;
use super::options;
use super::setup::{self, Place};
use super::tls;
use crate::cli::ListenArgs;
use crate::narrate;
use crate::server::Limits;
use crate::service::broker::Broker;

/// What one client may be owed (bytes from the others the kernel has not taken yet) before
/// the broker stops reading the senders; a client held there that takes nothing for half a
/// second is dropped as not reading. So one client costs the broker at most this plus one
/// message over it (one read of a sender, 64 KiB; as chat lines, each with its prefix), and
/// the kernel's socket buffers besides (SO_SNDBUF, autotuned up to net.ipv4.tcp_wmem's
/// maximum); the broker as a whole at most `--max-conns` (default 100) times that.
pub const MAX_OWED: usize = 256 * 1024;

/// How long a broker client may stay silent (no byte either way) when `--idle-timeout` is not
/// given: a client that left without closing does not hold its place forever.
pub const DEFAULT_IDLE: Duration = Duration::from_mins(5);

pub fn run(args: &ListenArgs) -> Result<()> {
    let dump = options::dump(&args.wire.dump)?;
    let max_conns = options::max_conns(args.broker.max_conns)?;
    // Not given: the default; 0: off, as everywhere.
    let idle_timeout = match args.relay.idle_timeout {
        None => Some(DEFAULT_IDLE),
        given => options::idle_limit(given),
    };
    let tls = tls::engine_server(&args.tls, args.addr.as_deref())?;
    let (capture, observed) = observe::start(&args.capture)?;
    let transport = Transport::of(args.local.unix.is_some(), args.dgram.udp);
    let place = Place::new(args.addr.as_deref(), args.port, args.net, &args.local);
    // The capture is in place before the `listening on` line: no client comes before it.
    let (bound, captured) =
        setup::bind_then(&place, transport, &args.sockopts, args.verbosity, |b| {
            observe::capture_server(&capture, b)
        })?;
    let limits = Limits {
        max_conns,
        idle_timeout,
        allow: Vec::new(),
        deny: Vec::new(),
        max_owed: MAX_OWED,
        threads: 1,
    };
    narrate::info(format_args!(
        "{}: each client's bytes go to every other client; stdin is not read",
        if args.broker.chat { "chat" } else { "broker" }
    ));
    let tls = tls::engine_accept(
        tls,
        args.verbosity.quiet,
        tls::handshake_bound(&args.tls, None),
    );
    let result = setup::serve(bound, limits, Broker::new(args.broker.chat), dump, tls);
    if let Some(c) = captured {
        c.stop();
    }
    result.and(observed.finish())
}
