//! One module per subcommand, each the glue from its parsed arguments to the engines (relay,
//! scan, server): connect.rs, listen.rs (broker.rs for `--broker`/`--chat`), echo.rs,
//! knock.rs, forward.rs, completions.rs, report.rs (`sockkit report`). What they share is in siblings they name directly: applies.rs (which option
//! applies where, checked before anything runs), options.rs (arguments -> engine options) and
//! setup.rs (a server's socket on any transport) and observe.rs (--trace, --tcp-info-every and
//! --report around a session). This file only dispatches.

pub mod applies;
mod broker;
mod completions;
mod connect;
mod echo;
mod forward;
mod knock;
mod listen;
mod observe;
mod options;
mod report;
mod setup;
mod tls;

use anyhow::Result;

use crate::cli::{Command, Invocation, Verbosity};
use crate::interrupt;
use crate::narrate;

/// Runs a parsed command line: refuses an option that does not apply, then the subcommand.
pub fn run(invocation: Invocation) -> Result<()> {
    let Invocation { command, given } = invocation;
    applies::check(&command, &|id| given.has(id))?;
    let verbosity = match &command {
        Command::Connect(a) => a.verbosity,
        Command::Listen(a) => a.verbosity,
        Command::Echo(a) => a.verbosity,
        Command::Knock(a) => a.verbosity,
        Command::Forward(a) => a.verbosity,
        Command::Completions(_) | Command::Report(_) => Verbosity::default(),
    };
    // --explain narrates every step it explains: at least -vv.
    let level = if verbosity.explain {
        verbosity.verbose.max(2)
    } else {
        verbosity.verbose
    };
    narrate::set_level(level);
    narrate::set_explain(verbosity.explain);
    narrate::set_json(match &command {
        Command::Connect(a) => a.relay.json,
        Command::Listen(a) => a.relay.json,
        Command::Echo(a) => a.server.json,
        Command::Knock(a) => a.server.json,
        Command::Forward(a) => a.server.json,
        Command::Completions(_) | Command::Report(_) => false,
    });
    // SIGINT/SIGTERM/SIGHUP from here on: the totals (-v), cleanup, then the process ends by
    // the signal; a server's event loop takes them over once it runs (server/stop.rs).
    interrupt::install()?;
    match command {
        Command::Connect(args) => connect::run(args),
        Command::Listen(args) if args.broker.broker || args.broker.chat => broker::run(&args),
        Command::Listen(args) => listen::run(args),
        Command::Echo(args) => echo::run(args),
        Command::Knock(args) => knock::run(args),
        Command::Forward(args) => forward::run(args),
        Command::Completions(args) => completions::run(&args),
        Command::Report(args) => report::run(&args),
    }
}
