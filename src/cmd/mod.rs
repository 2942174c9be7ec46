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
use crate::cli::{Cli, Command, DumpArgs, RelayArgs, ServerArgs, SockOptArgs, Verbosity, WireArgs};
use crate::narrate;
use crate::relay::Ending;
use crate::relay::wire::{Dump, Wire};
use crate::server::{DEFAULT_MAX_OWED, Limits};
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

/// The relay's options from `--no-shutdown`, `--quit-after`, `--send-only`, `--recv-only` and
/// `--idle-timeout`.
pub fn ending(args: &RelayArgs) -> Ending {
    Ending {
        no_shutdown: args.no_shutdown,
        quit_after: args.quit_after,
        send_only: args.send_only,
        recv_only: args.recv_only,
        idle_timeout: args.idle_timeout,
    }
}

/// The hex dump `-x`/`--hexdump-file` asked for, opened now (before anything binds).
pub fn dump(args: &DumpArgs) -> Result<Option<Dump>> {
    Dump::open(args.hexdump, args.hexdump_file.as_deref())
}

/// `--crlf` and the dump: the stages the relay puts on the bytes.
pub fn wire(args: &WireArgs) -> Result<Wire> {
    Ok(Wire {
        crlf: args.crlf,
        dump: dump(&args.dump)?,
    })
}

/// The server engine's limits from `--max-conns`, `--idle-timeout` (0: none), `--allow`,
/// `--deny` and `--threads` (default: one per core).
pub fn limits(args: &ServerArgs) -> Limits {
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    Limits {
        max_conns: args.max_conns,
        idle_timeout: (!args.idle_timeout.is_zero()).then_some(args.idle_timeout),
        allow: args.allow.clone(),
        deny: args.deny.clone(),
        max_owed: DEFAULT_MAX_OWED,
        threads: args.threads.map_or(cores, usize::from).max(1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn zero_idle_timeout_means_none() {
        use clap::Parser;
        #[derive(Parser)]
        struct T {
            #[command(flatten)]
            s: ServerArgs,
        }
        let t = T::parse_from(["t", "--idle-timeout", "0", "--threads", "3"]);
        let l = limits(&t.s);
        assert_eq!(l.idle_timeout, None);
        assert_eq!(l.threads, 3);
        let t = T::parse_from(["t", "--idle-timeout", "2s"]);
        assert_eq!(limits(&t.s).idle_timeout, Some(Duration::from_secs(2)));
    }
}
