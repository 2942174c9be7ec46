//! One module per subcommand, each the glue from its parsed arguments to the parts (addr,
//! socket, sockopt, relay, server). This file dispatches and holds what they all do alike.

pub mod broker;
pub mod connect;
pub mod echo;
pub mod knock;
pub mod listen;
pub mod socktype;

use anyhow::Result;

use crate::addr::{self, Family, PortArg};
use crate::cli::{Cli, Command, SockOptArgs, Verbosity};
use crate::narrate;
use crate::socket::{self, Listener};
use crate::sockopt::{self, Plan, SockKind, SockOptRequest, Value};

/// Runs the parsed command line.
pub fn run(cli: Cli) -> Result<()> {
    let (verbosity, sockopts) = match &cli.command {
        Command::Connect(a) => (a.verbosity, &a.sockopts),
        Command::Listen(a) => (a.verbosity, &a.sockopts),
        Command::Echo(a) => (a.verbosity, &a.sockopts),
        Command::Knock(a) => (a.verbosity, &a.sockopts),
    };
    if wants_option_help(sockopts) {
        sockopt::print_help();
        return Ok(());
    }
    narrate::set_level(verbosity.verbose);
    match cli.command {
        Command::Connect(args) => connect::run(args),
        Command::Listen(args) => listen::run(args),
        Command::Echo(args) => echo::run(args),
        Command::Knock(args) => knock::run(args),
    }
}

fn wants_option_help(args: &SockOptArgs) -> bool {
    args.opts.iter().any(|o| matches!(o, SockOptRequest::Help))
}

/// The `listening on ADDR (scope)` line every server prints when ready, unless `-q`. Tests and
/// scripts read the port from it when they asked for port 0.
pub fn announce(listener: &Listener, verbosity: Verbosity) {
    if !verbosity.quiet {
        narrate::emit(format_args!(
            "listening on {} {}",
            listener.local, listener.scope
        ));
    }
}

/// The socket plan of every server: the user's `-o`, plus SO_REUSEADDR on so a restarted
/// server need not wait out TIME_WAIT (`-o reuseaddr=0` turns it off).
pub fn server_plan(sockopts: &SockOptArgs) -> Plan {
    Plan::new(&sockopts.opts).with_default("SO_REUSEADDR", Value::Bool(true))
}

/// What every TCP server does before it serves: sort out `[ADDR] [PORT]`, then socket,
/// setsockopt, bind and listen with the server plan, and `--show-opts` if asked.
pub fn tcp_server(
    addr: Option<&str>,
    port: Option<PortArg>,
    default_port: Option<u16>,
    family: Family,
    sockopts: &SockOptArgs,
) -> Result<Listener> {
    let (host, port) = addr::server_endpoint(addr, port, default_port)?;
    let bind = addr::bind_target(host.as_deref(), port, family)?;
    let listener = socket::listen(bind, &server_plan(sockopts))?;
    show_listener(&listener, SockKind::TcpListener, sockopts);
    Ok(listener)
}

/// `--show-opts` for a server's socket, from the plan as applied (so the defaults binding
/// added show as defaults).
pub fn show_listener(listener: &Listener, kind: SockKind, sockopts: &SockOptArgs) {
    if !sockopts.show_opts {
        return;
    }
    let what = if kind == SockKind::Udp {
        "UDP"
    } else {
        "listening"
    };
    let title = format!(
        "{what} fd {} ({})",
        socket::fd(&listener.socket),
        listener.local
    );
    let target = socket::target(&listener.local, kind);
    eprint!("{}", listener.plan.show(&listener.socket, target, &title));
}
