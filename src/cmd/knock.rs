//! `sockkit knock [ADDR] [PORT]`: the Knock Knock joke server of the Java sockets tutorial.
//! Loads and checks the jokes before anything listens, binds (port 4444 unless told), and
//! hands the socket to the connection engine in `server/` with the knock service.

use anyhow::Result;

use crate::cli::KnockArgs;
use crate::server::{self};
use crate::service::dumped::Dumped;
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
    let dump = super::dump(&args.dump)?;
    if let Some(path) = &args.local.unix {
        let (s, v) = (&args.sockopts, args.verbosity);
        return match dump {
            Some(dump) => {
                let service = Dumped {
                    inner: service,
                    dump,
                };
                super::socktype::serve_unix(path, &args.local, s, v, &args.server, service)
            }
            None => super::socktype::serve_unix(path, &args.local, s, v, &args.server, service),
        };
    }
    let listener = super::tcp_server(
        args.addr.as_deref(),
        args.port,
        Some(DEFAULT_PORT),
        args.net.family(),
        &args.sockopts,
    )?;
    let plan = listener.plan.clone();
    super::announce(&listener, args.verbosity);
    crate::narrate::info(format_args!(
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
    let limits = super::limits(&args.server);
    match dump {
        Some(dump) => server::serve(
            listener,
            &plan,
            limits,
            Dumped {
                inner: service,
                dump,
            },
        ),
        None => server::serve(listener, &plan, limits, service),
    }
}
