//! `sockkit knock [ADDR] [PORT]`: the Knock Knock joke server of the Java sockets tutorial.
//! Loads and checks the jokes before anything listens, binds (port 4444 unless told), and
//! hands the socket to the connection engine in `server/` with the knock service.

use anyhow::Result;

use crate::addr;
use crate::cli::KnockArgs;
use crate::server::{self, Limits};
use crate::service::jokes::Jokes;
use crate::service::knock::Knock;
use crate::socket;
use crate::sockopt::{Plan, SockKind, Value};

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
    if let Some(path) = &args.local.unix {
        let (s, v) = (&args.sockopts, args.verbosity);
        return super::socktype::serve_unix(path, &args.local, s, v, &args.server, service);
    }
    let (host, port) = addr::server_endpoint(args.addr.as_deref(), args.port, Some(DEFAULT_PORT))?;
    let bind = addr::bind_target(host.as_deref(), port, args.net.family())?;
    let plan = Plan::new(&args.sockopts.opts).with_default("SO_REUSEADDR", Value::Bool(true));
    let listener = socket::listen(bind, &plan)?;
    // The plan as applied, with the defaults binding added, so --show-opts shows them.
    let plan = listener.plan.clone();
    if args.sockopts.show_opts {
        let title = format!(
            "listening fd {} ({})",
            socket::fd(&listener.socket),
            listener.local
        );
        let target = socket::target(&listener.local, SockKind::TcpListener);
        eprint!("{}", plan.show(&listener.socket, target, &title));
    }
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
    let limits = Limits::from_args(&args.server);
    server::serve(listener, &plan, limits, service)
}
