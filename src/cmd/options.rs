//! The only place parsed arguments become engine options: the relay's `Ending`, `Wire` and
//! `Channel`, the server engine's `Limits`. Each engine takes its own options struct and knows
//! nothing of clap; which options apply where is applies.rs's business, not this file's.

use anyhow::Result;

use crate::cli::{DgramArgs, DumpArgs, RelayArgs, ServerArgs, Verbosity, WireArgs};
use crate::relay::wire::Dump;
use crate::relay::{Channel, Ending, Peers, Wire};
use crate::server::{DEFAULT_MAX_OWED, Limits};

/// The relay's options from `--no-shutdown`, `--quit-after`, `--send-only`, `--recv-only` and
/// `--idle-timeout`.
pub fn ending(args: &RelayArgs, role: Role) -> Ending {
    Ending {
        no_shutdown: args.no_shutdown,
        quit_after: args.quit_after,
        send_only: args.send_only,
        recv_only: args.recv_only,
        idle_timeout: args.idle_timeout,
        peer_eof_ends_terminal: role == Role::Client,
    }
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
