//! One module per subcommand, each the glue from its parsed arguments to the parts (addr,
//! socket, sockopt, relay, server). This file dispatches and holds what they all do alike.

pub mod connect;
pub mod echo;
pub mod knock;
pub mod listen;
pub mod socktype;

use anyhow::Result;

use crate::cli::{Cli, Command, SockOptArgs, Verbosity};
use crate::narrate;
use crate::socket::Listener;
use crate::sockopt::{self, SockOptRequest};

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
