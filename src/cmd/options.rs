//! The only place parsed arguments become engine options: the relay's `Ending`, `Wire` and
//! `Channel`, the server engine's `Limits`. Each engine takes its own options struct and knows
//! nothing of clap; which options apply where is applies.rs's business, not this file's.

use std::time::Duration;

use anyhow::Result;

use crate::cli::{
    DgramArgs, DumpArgs, ProxyArgs, ProxyDns, RelayArgs, ServerArgs, Verbosity, WireArgs,
};
use crate::error::UsageError;
use crate::relay::wire::Dump;
use crate::relay::{Channel, Ending, Peers, Wire};
use crate::server::{DEFAULT_MAX_OWED, Limits};
use crate::socket::Proxy;

/// The relay's options from `--no-shutdown`, `--quit-after`, `--send-only`, `--recv-only` and
/// `--idle-timeout` (0: no limit, as on every server).
pub fn ending(args: &RelayArgs, role: Role) -> Ending {
    Ending {
        no_shutdown: args.no_shutdown,
        quit_after: args.quit_after,
        send_only: args.send_only,
        recv_only: args.recv_only,
        idle_timeout: idle_limit(args.idle_timeout),
        peer_eof_ends_terminal: role == Role::Client,
        peer_eof_ends: args.nc_rules && role == Role::Server,
        idle_ends_cleanly: args.nc_rules,
    }
}

/// The proxy `--proxy` names, if any, and who resolves the target (`--proxy-dns`).
pub fn proxy(args: &ProxyArgs) -> Option<Proxy> {
    args.proxy.clone().map(|url| Proxy {
        url,
        local_dns: args.proxy_dns == ProxyDns::Local,
    })
}

/// Which end of the relay this is: it decides what the peer's EOF means to a person at a
/// terminal (see `Ending::peer_eof_ends_terminal`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// `connect`.
    Client,
    /// `listen`.
    Server,
}

/// Whether the live `--progress` line is drawn: `--no-progress` never, `--progress` always
/// (even when stderr is not a terminal: the user asked), otherwise with `-v` when stderr is a
/// terminal, where a person watches it. A log never gets it unasked.
pub fn progress(args: &RelayArgs, verbosity: Verbosity) -> bool {
    use std::io::IsTerminal;
    if args.no_progress {
        return false;
    }
    args.progress || (verbosity.verbose >= 1 && std::io::stderr().is_terminal())
}

/// `--idle-timeout` as a limit: 0 turns it off, on every subcommand that takes it.
pub fn idle_limit(given: Option<Duration>) -> Option<Duration> {
    given.filter(|d| !d.is_zero())
}

/// `--max-conns N` checked: 0 would start a server that refuses every client, which nobody
/// means, so it is a usage error that says so.
pub fn max_conns(n: usize) -> Result<usize> {
    if n == 0 {
        return Err(UsageError::new(
            "--max-conns 0: a server that admits no client would refuse everyone; give 1 or more",
        )
        .into());
    }
    Ok(n)
}

/// The hex dump `-x`/`--hexdump-file` asked for, opened now (before anything binds).
pub fn dump(args: &DumpArgs) -> Result<Option<Dump>> {
    Dump::open(args.hexdump, args.hexdump_file.as_deref())
}

/// `--crlf` and the dump: the stages the relay puts on the bytes, on every transport.
pub fn wire(args: &WireArgs) -> Result<Wire> {
    Ok(Wire {
        crlf: args.crlf,
        dump: dump(&args.dump)?,
    })
}

/// What a relay session carries: bytes, or datagrams (`-u`) to one connected peer or, on a
/// server, to the peer heard from last.
pub fn channel(dgram: DgramArgs, peers: Peers, verbosity: Verbosity) -> Channel {
    if dgram.udp {
        Channel::Datagrams {
            lines: dgram.lines,
            peers,
            quiet: verbosity.quiet,
        }
    } else {
        Channel::Bytes
    }
}

/// The server engine's limits from `--max-conns` (0 refused), `--idle-timeout` (0: none),
/// `--allow`, `--deny` and `--threads` (default: one per core).
pub fn limits(args: &ServerArgs) -> Result<Limits> {
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    Ok(Limits {
        max_conns: max_conns(args.max_conns)?,
        idle_timeout: idle_limit(Some(args.idle_timeout)),
        allow: args.allow.clone(),
        deny: args.deny.clone(),
        max_owed: DEFAULT_MAX_OWED,
        threads: args.threads.map_or(cores, usize::from).max(1),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_idle_timeout_means_none() {
        use clap::Parser;
        #[derive(Parser)]
        struct T {
            #[command(flatten)]
            s: ServerArgs,
        }
        let t = T::parse_from(["t", "--idle-timeout", "0", "--threads", "3"]);
        let l = limits(&t.s).unwrap();
        assert_eq!(l.idle_timeout, None);
        assert_eq!(l.threads, 3);
        let t = T::parse_from(["t", "--idle-timeout", "2s"]);
        assert_eq!(
            limits(&t.s).unwrap().idle_timeout,
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            idle_limit(Some(Duration::ZERO)),
            None,
            "0 is off for relays too"
        );
        let t = T::parse_from(["t", "--max-conns", "0"]);
        let e = limits(&t.s).unwrap_err();
        assert_eq!(crate::error::exit_status(&e), crate::error::EXIT_USAGE);
        assert!(e.to_string().contains("refuse everyone"), "{e}");
    }
}
