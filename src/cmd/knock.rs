//! `sockkit knock [ADDR] [PORT]`: the Knock Knock joke server of the Java sockets tutorial.
//! Loads and checks the jokes before anything listens, binds (port 4444 unless told; or a
//! Unix stream socket with `-U PATH`), and hands the socket to the connection engine in
//! `server/` with the knock service.

use anyhow::Result;

use super::applies::Transport;
use super::observe;
use super::options;
use super::setup::{self, Place};
use super::tls;
use crate::cli::KnockArgs;
use crate::narrate;
use crate::service::jokes::Jokes;
use crate::service::knock::Knock;

/// The tutorial's port, so its KnockKnockClient finds sockkit where it looks.
pub const DEFAULT_PORT: u16 = 4444;

pub fn run(args: KnockArgs) -> Result<()> {
    // A bad jokes file is reported before a port is taken: fix it and start again.
    let jokes = match &args.jokes {
        Some(path) => Jokes::load(path)?,
        None => Jokes::builtin(),
    };
    let told = jokes.len();
    let service = Knock::new(jokes, args.shuffle);
    // -x: the same service, with each client's bytes shown in hex on the way.
    let dump = options::dump(&args.dump)?;
    // Checked before anything binds: a refused limit must not follow a `listening on` line.
    let limits = options::limits(&args.server)?;
    let tls = tls::engine_server(&args.tls, args.addr.as_deref())?;
    let (capture, observed) = observe::start(&args.capture)?;
    let place = Place {
        default_port: Some(DEFAULT_PORT),
        ..Place::new(args.addr.as_deref(), args.port, args.net, &args.local)
    };
    let transport = Transport::of(args.local.unix.is_some(), false);
    // The capture is in place before the `listening on` line: no client comes before it.
    let (bound, captured) =
        setup::bind_then(&place, transport, &args.sockopts, args.verbosity, |b| {
            observe::capture_server(&capture, b)
        })?;
    narrate::info(format_args!(
        "knock: {} jokes{}, told {}",
        told,
        match &args.jokes {
            Some(p) => format!(" from {}", p.display()),
            None => " (built in)".to_string(),
        },
        if args.shuffle {
            "in a random order per client"
        } else {
            "in order"
        }
    ));
    let tls = tls::engine_accept(
        tls,
        args.verbosity.quiet,
        tls::handshake_bound(&args.tls, None),
    );
    let result = setup::serve(bound, limits, service, dump, tls);
    if let Some(c) = captured {
        c.stop();
    }
    result.and(observed.finish())
}
