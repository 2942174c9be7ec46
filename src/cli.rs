//! Every command-line type sockkit has, as clap derive structs: the subcommands and the option
//! groups they share (flattened, so `-o`, `-v`, `-4` are spelled the same everywhere). Values
//! are parsed to real types here, at the edge; nothing in this file does I/O.
//!
//! Doc comments here are `--help` text, not rustdoc: `[ADDR]` is usage syntax, not a link.
#![allow(rustdoc::broken_intra_doc_links)]

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::addr::{Family, PortArg};
use crate::scan::PortList;
use crate::sockopt::SockOptRequest;

/// A socket toolkit that shows its work: a netcat whose every socket can be seen and tuned.
///
/// sockkit connects, listens, echoes and tells Knock Knock jokes over TCP, and on the way
/// shows the sockets API happening: `-vv` narrates each call (socket, setsockopt, bind,
/// listen, accept, connect, shutdown, close) with its result and time, `-o` sets any socket
/// option by its kernel name, and `--show-opts` prints what the kernel really set.
///
/// Data goes to stdout, and only data; everything sockkit says goes to stderr.
#[derive(Parser, Debug)]
#[command(
    name = "sockkit",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    Connect(ConnectArgs),
    Listen(ListenArgs),
    Echo(EchoArgs),
}

/// Connect to HOST PORT and relay: stdin to the socket, the socket to stdout.
///
/// Each address HOST resolves to is tried in order until one connects. When stdin ends,
/// sockkit shuts down its sending side (the peer reads EOF) and keeps printing what the peer
/// sends until the peer closes: request/response over a pipe just works.
///
/// Example: printf 'GET / HTTP/1.0\r\n\r\n' | sockkit connect example.org 80
#[derive(Args, Debug)]
pub struct ConnectArgs {
    /// Host name or address to connect to (IPv6 literals with or without brackets).
    #[arg(value_name = "HOST")]
    pub host: String,

    /// Port to connect to (1-65535); with -z also a list: 80, 8000-8100, 22,80,8000-8010.
    #[arg(value_name = "PORT", allow_negative_numbers = true)]
    pub port: PortList,

    /// Give up on each address after this long (humantime: 2s, 500ms, 1m; with -z: 3s).
    #[arg(short = 'w', long = "timeout", value_name = "DURATION", value_parser = parse_duration)]
    pub timeout: Option<Duration>,

    #[command(flatten)]
    pub scan: ScanArgs,

    #[command(flatten)]
    pub source: SourceArgs,

    #[command(flatten)]
    pub net: NetArgs,

    #[command(flatten)]
    pub relay: RelayArgs,

    #[command(flatten)]
    pub wire: WireArgs,

    #[command(flatten)]
    pub sockopts: SockOptArgs,

    #[command(flatten)]
    pub verbosity: Verbosity,
}

/// Listen on `[ADDR] PORT`, accept one client and relay: stdin to it, it to stdout.
///
/// Without ADDR sockkit binds `[::]` with IPV6_V6ONLY off, so one socket serves IPv4 and IPv6
/// clients (0.0.0.0 where IPv6 is unavailable). PORT 0 asks the kernel for a free port. When
/// ready it prints `listening on ADDR:PORT` on stderr with the real port.
#[derive(Args, Debug)]
pub struct ListenArgs {
    /// Address to bind (default: every address, IPv4 and IPv6), then PORT.
    #[arg(value_name = "ADDR")]
    pub addr: Option<String>,

    /// Port to listen on; 0 lets the kernel choose a free one.
    #[arg(value_name = "PORT", allow_negative_numbers = true)]
    pub port: Option<PortArg>,

    /// After a client leaves, accept the next one (one at a time).
    #[arg(short = 'k', long)]
    pub keep_open: bool,

    #[command(flatten)]
    pub broker: BrokerArgs,

    #[command(flatten)]
    pub net: NetArgs,

    #[command(flatten)]
    pub relay: RelayArgs,

    #[command(flatten)]
    pub wire: WireArgs,

    #[command(flatten)]
    pub sockopts: SockOptArgs,

    #[command(flatten)]
    pub verbosity: Verbosity,
}

/// Echo service (RFC 862): every byte a client sends comes back to it, many clients at once.
#[derive(Args, Debug)]
pub struct EchoArgs {
    /// Address to bind (default: every address, IPv4 and IPv6), then PORT.
    #[arg(value_name = "ADDR")]
    pub addr: Option<String>,

    /// Port to listen on; 0 lets the kernel choose a free one.
    #[arg(value_name = "PORT", allow_negative_numbers = true)]
    pub port: Option<PortArg>,

    /// Serve UDP instead of TCP: each datagram goes back to its sender.
    #[arg(short = 'u', long)]
    pub udp: bool,

    #[command(flatten)]
    pub dump: DumpArgs,

    #[command(flatten)]
    pub server: ServerArgs,

    #[command(flatten)]
    pub net: NetArgs,

    #[command(flatten)]
    pub sockopts: SockOptArgs,

    #[command(flatten)]
    pub verbosity: Verbosity,
}

/// The Knock Knock joke server of the Java sockets tutorial, many clients at once.
///
/// Wire-compatible with the tutorial's KnockKnockClient; `sockkit connect localhost 4444`,
/// telnet and nc work too. Default port 4444, as in the tutorial.
#[derive(Args, Debug)]
pub struct KnockArgs {
    /// Address to bind (default: every address, IPv4 and IPv6), then PORT.
    #[arg(value_name = "ADDR")]
    pub addr: Option<String>,

    /// Port to listen on (default 4444); 0 lets the kernel choose a free one.
    #[arg(value_name = "PORT", allow_negative_numbers = true)]
    pub port: Option<PortArg>,

    /// Tell your own jokes: one `clue<TAB>punchline` per line.
    #[arg(long, value_name = "FILE")]
    pub jokes: Option<PathBuf>,

    /// Tell the jokes in a random order for each client instead of in file order.
    #[arg(long)]
    pub shuffle: bool,

    #[command(flatten)]
    pub server: ServerArgs,

    #[command(flatten)]
    pub net: NetArgs,

    #[command(flatten)]
    pub sockopts: SockOptArgs,

    #[command(flatten)]
    pub verbosity: Verbosity,
}

/// Address family choice shared by every subcommand.
#[derive(Args, Debug, Clone, Copy)]
pub struct NetArgs {
    /// Use IPv4 only.
    #[arg(short = '4', conflicts_with = "ipv6")]
    pub ipv4: bool,

    /// Use IPv6 only (a server binds with IPV6_V6ONLY on).
    #[arg(short = '6')]
    pub ipv6: bool,
}

impl NetArgs {
    pub fn family(&self) -> Family {
        match (self.ipv4, self.ipv6) {
            (true, _) => Family::V4,
            (_, true) => Family::V6,
            _ => Family::Any,
        }
    }
}

/// How the stdio <-> socket relay of `connect` and `listen` ends.
#[derive(Args, Debug, Clone, Copy)]
pub struct RelayArgs {
    /// At stdin EOF keep the sending side open instead of shutdown(SHUT_WR).
    #[arg(long)]
    pub no_shutdown: bool,

    /// After stdin EOF wait at most this long for the peer to close, then end (exit 0).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub quit_after: Option<Duration>,

    /// Only send stdin; ignore what the peer sends.
    #[arg(long, conflicts_with = "recv_only")]
    pub send_only: bool,

    /// Only print what the peer sends; do not read stdin.
    #[arg(long)]
    pub recv_only: bool,

    /// End the session (exit 1) when no byte has moved either way for this long.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub idle_timeout: Option<Duration>,
}

/// `connect -z`: the port check.
#[derive(Args, Debug, Clone, Copy)]
pub struct ScanArgs {
    /// Port check: connect to each of PORTS without sending data; one line per port on stdout
    /// (open, closed, timed out), a summary on stderr; exit 0 if any port is open, 1 if none.
    #[arg(short = 'z', long = "scan", conflicts_with_all = [
        "crlf", "hexdump", "hexdump_file", "send_only", "recv_only", "quit_after", "no_shutdown",
        "show_opts",
    ])]
    pub scan: bool,

    /// With -z, check at most N ports at once.
    #[arg(long, value_name = "N", default_value_t = crate::scan::DEFAULT_PARALLEL as u16,
          value_parser = clap::value_parser!(u16).range(1..=1024), requires = "scan")]
    pub parallel: u16,
}

/// `-s`/`-p`: the local end of a client's connection, bound before connect.
#[derive(Args, Debug, Clone, Copy)]
pub struct SourceArgs {
    /// Connect from this local address (one of this machine's: 127.0.0.2, ::1, a LAN address).
    #[arg(short = 's', long = "source", value_name = "ADDR", value_parser = parse_ip)]
    pub source: Option<std::net::IpAddr>,

    /// Connect from this local port (the kernel picks one otherwise).
    #[arg(short = 'p', long = "source-port", value_name = "PORT")]
    pub source_port: Option<PortArg>,
}

impl SourceArgs {
    pub fn source(&self) -> crate::source::Source {
        crate::source::Source {
            ip: self.source,
            port: self.source_port.map(|p| p.0).filter(|&p| p != 0),
        }
    }
}

/// `--broker`/`--chat`: listen as a hub for many clients instead of relaying with one.
#[derive(Args, Debug, Clone, Copy)]
pub struct BrokerArgs {
    /// Serve many clients at once; each client's bytes go to all the others (not back to it).
    #[arg(long, conflicts_with_all = ["keep_open", "crlf"])]
    pub broker: bool,

    /// Broker for people: each line goes out as `<ADDR:PORT> line`; joins and leaves are
    /// announced (implies --broker).
    #[arg(long, conflicts_with_all = ["keep_open", "crlf"])]
    pub chat: bool,

    /// With --broker or --chat, serve at most N clients at once (others are refused).
    #[arg(long, value_name = "N", default_value_t = 100)]
    pub max_conns: usize,
}

/// What the relay does to the bytes on the way: `--crlf` and the hex view.
#[derive(Args, Debug, Clone)]
pub struct WireArgs {
    /// Send each LF typed on stdin as CRLF (for SMTP, HTTP and other line protocols by hand).
    #[arg(long)]
    pub crlf: bool,

    #[command(flatten)]
    pub dump: DumpArgs,
}

/// `-x`/`--hexdump-file`: a hex + ASCII view of every byte that crosses the wire.
#[derive(Args, Debug, Clone, Default)]
pub struct DumpArgs {
    /// Show each direction's bytes as a hex + ASCII dump on stderr (`>` sent, `<` received,
    /// with the offset in that direction).
    #[arg(short = 'x', long)]
    pub hexdump: bool,

    /// Write the hex dump to FILE instead of stderr (implies -x).
    #[arg(long, value_name = "FILE")]
    pub hexdump_file: Option<PathBuf>,
}

/// An IP address for `-s`, with or without the brackets of `[::1]`.
fn parse_ip(s: &str) -> Result<std::net::IpAddr, String> {
    let t = s.trim();
    let bare = t
        .strip_prefix('[')
        .and_then(|x| x.strip_suffix(']'))
        .unwrap_or(t);
    bare.parse().map_err(|_| {
        format!("'{s}' is not an IP address: give one of this machine's, e.g. 127.0.0.1 or ::1")
    })
}

/// Limits every server puts on what clients can cost it.
#[derive(Args, Debug, Clone)]
pub struct ServerArgs {
    /// Serve at most N clients at once; further clients are refused (closed at once, logged).
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    pub max_conns: usize,

    /// Close a client that has sent nothing for this long (0 turns the limit off).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "5m")]
    pub idle_timeout: Duration,

    /// Only serve clients from this network (CIDR, e.g. 127.0.0.0/8 or ::1/128); repeatable.
    #[arg(long, value_name = "CIDR")]
    pub allow: Vec<crate::addr::Cidr>,

    /// Refuse clients from this network (CIDR); repeatable; checked before --allow.
    #[arg(long, value_name = "CIDR")]
    pub deny: Vec<crate::addr::Cidr>,

    /// Event-loop threads (default: one per CPU core); each serves its share of the clients.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
    pub threads: Option<u16>,
}

/// `-o NAME[=VALUE]` and `--show-opts`, the same on every subcommand.
#[derive(Args, Debug, Clone, Default)]
pub struct SockOptArgs {
    /// Set a socket option by its kernel name before bind/connect (repeatable); `-o help`
    /// lists them all. Examples: -o rcvbuf=256K -o nodelay -o keepalive=30s -o TCP_CONGESTION=reno
    #[arg(short = 'o', long = "opt", value_name = "NAME[=VALUE]")]
    pub opts: Vec<SockOptRequest>,

    /// After setup, print every option that applies to the socket: requested and kernel values.
    #[arg(long)]
    pub show_opts: bool,
}

/// `-v`, `-vv` and `-q`, the same on every subcommand.
#[derive(Args, Debug, Clone, Copy)]
pub struct Verbosity {
    /// Say more on stderr: -v connections and totals, -vv every socket call as it happens.
    #[arg(short = 'v', long = "verbose", action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// Servers do not announce `listening on ...`; errors are still printed.
    #[arg(short = 'q', long)]
    pub quiet: bool,
}

/// Durations in humantime form: `30s`, `500ms`, `1m30s`; a bare number means seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if let Ok(secs) = s.parse::<f64>() {
        if secs.is_finite() && secs >= 0.0 {
            return Ok(Duration::from_secs_f64(secs));
        }
        return Err(format!(
            "'{s}' is not a duration (use e.g. 2s, 500ms, 1m30s)"
        ));
    }
    humantime::parse_duration(s)
        .map_err(|e| format!("'{s}' is not a duration ({e}; use e.g. 2s, 500ms, 1m30s)"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_valid() {
        Cli::command().debug_assert();
    }

    #[test]
    fn durations_take_humantime_and_bare_seconds() {
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("-1").is_err());
        assert!(
            parse_duration("soon")
                .unwrap_err()
                .contains("not a duration")
        );
    }
}
