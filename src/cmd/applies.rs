//! Which option applies where: one declarative table with a row per option, saying for each
//! subcommand that offers it (connect, connect -z, listen, listen --broker/--chat, echo,
//! knock) and each transport (TCP, UDP, Unix stream, Unix datagram) whether it is honoured or
//! refused, and why. `check` reads the options given on the command line against it before
//! anything is opened, so no option is ever accepted and ignored; tests/applies.rs walks every
//! cell. What an option does is the engines' business; clap's own conflicts stay in cli.rs and
//! are marked here as `Parser` so the table tells the whole story.

use crate::cli::Command;
use crate::error::UsageError;

/// The socket a command runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Tcp,
    Udp,
    UnixStream,
    UnixDgram,
}

impl Transport {
    pub const ALL: [Transport; 4] = [
        Transport::Tcp,
        Transport::Udp,
        Transport::UnixStream,
        Transport::UnixDgram,
    ];

    /// `-U` picks a Unix socket, `-u` datagrams.
    pub fn of(unix: bool, datagrams: bool) -> Transport {
        match (unix, datagrams) {
            (false, false) => Transport::Tcp,
            (false, true) => Transport::Udp,
            (true, false) => Transport::UnixStream,
            (true, true) => Transport::UnixDgram,
        }
    }

    pub fn is_stream(self) -> bool {
        matches!(self, Transport::Tcp | Transport::UnixStream)
    }

    pub fn is_unix(self) -> bool {
        matches!(self, Transport::UnixStream | Transport::UnixDgram)
    }
}

/// A subcommand, with the flags that make it a different kind of program.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `connect`: the client relay.
    Connect,
    /// `connect -z`: the port check.
    Check,
    /// `listen`: the server relay, one client at a time.
    Listen,
    /// `listen --broker` or `--chat`: the hub on the server engine.
    Broker,
    /// `echo`: the echo service.
    Echo,
    /// `knock`: the joke service (streams only: it has no `-u`).
    Knock,
}

impl Mode {
    pub const ALL: [Mode; 6] = [
        Mode::Connect,
        Mode::Check,
        Mode::Listen,
        Mode::Broker,
        Mode::Echo,
        Mode::Knock,
    ];
}

/// What one cell of the table says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The option does what it says there.
    Applies,
    /// A usage error with this reason.
    Refused(&'static str),
    /// clap refuses the combination already (a conflict or a requirement in cli.rs).
    Parser,
}

/// An exception to a row's default (Applies): every mode in `modes` on every transport in
/// `on`.
pub struct Rule {
    pub modes: &'static [Mode],
    pub on: &'static [Transport],
    pub verdict: Verdict,
}

/// One option: its clap id, how it is spelled, the modes that offer it, and its exceptions
/// (the first that matches a cell decides it). `sample` is a valid use, `{dir}` a scratch
/// directory (the table test runs every sample).
pub struct Row {
    pub id: &'static str,
    pub flag: &'static str,
    pub modes: &'static [Mode],
    pub rules: &'static [Rule],
    pub sample: &'static [&'static str],
}

impl Row {
    /// The verdict for one cell, which must be one of the row's modes.
    pub fn verdict(&self, mode: Mode, transport: Transport) -> Verdict {
        self.rules
            .iter()
            .find(|r| r.modes.contains(&mode) && r.on.contains(&transport))
            .map_or(Verdict::Applies, |r| r.verdict)
    }
}

use Mode::{Broker, Check, Connect, Echo, Knock, Listen};
use Transport::{Tcp, Udp, UnixDgram, UnixStream};

const ANY: &[Transport] = &Transport::ALL;
const DGRAMS: &[Transport] = &[Udp, UnixDgram];
const UNIX: &[Transport] = &[UnixStream, UnixDgram];
const IP: &[Transport] = &[Tcp, Udp];
const STREAMS: &[Transport] = &[Tcp, UnixStream];
const EVERY: &[Mode] = &Mode::ALL;
const SERVERS: &[Mode] = &[Listen, Broker, Echo, Knock];
const CLIENTS: &[Mode] = &[Connect, Check];
const RELAYS: &[Mode] = &[Connect, Listen];
const RELAY_ARGS: &[Mode] = &[Connect, Check, Listen, Broker];

const fn row(
    id: &'static str,
    flag: &'static str,
    modes: &'static [Mode],
    rules: &'static [Rule],
    sample: &'static [&'static str],
) -> Row {
    Row {
        id,
        flag,
        modes,
        rules,
        sample,
    }
}

const fn refuse(modes: &'static [Mode], on: &'static [Transport], why: &'static str) -> Rule {
    Rule {
        modes,
        on,
        verdict: Verdict::Refused(why),
    }
}

const fn parser(modes: &'static [Mode], on: &'static [Transport]) -> Rule {
    Rule {
        modes,
        on,
        verdict: Verdict::Parser,
    }
}

// Why an option does not apply somewhere: said to the user as the usage error.
const BROKER_UDP: &str = "--broker needs a stream socket: UDP has no connections to relay between";
const BROKER_UNIX_DGRAM: &str = "--broker needs a stream socket: a Unix datagram socket has no \
                                 connections to relay between";
const CHAT_UDP: &str = "--chat needs a stream socket: UDP has no connections to relay between";
const CHAT_UNIX_DGRAM: &str = "--chat needs a stream socket: a Unix datagram socket has no \
                               connections to relay between";
const CHAT_UNIX: &str = "--chat names each line's sender by its address, and a Unix socket's \
                         clients have none: use --broker";
const UNLINK_IP: &str = "--unlink replaces a stale socket file at the -U PATH, and [ADDR] PORT \
                         has no file";
const PROGRESS_BROKER: &str = "--progress draws one relay session's transfer, and --broker/--chat \
                               relay between many clients (-v says each one's totals)";
const SCAN_UNIX: &str = "-z checks ports, and a Unix socket has none";
const LINES_SCAN: &str = "--lines splits stdin into datagrams, and -z sends no stdin";
const KEEP_OPEN_DGRAM: &str = "-k accepts the next client when one leaves, and a datagram \
                               socket has no clients to accept: listen -u takes datagrams from \
                               anyone already";
const MAX_CONNS_LISTEN: &str = "--max-conns limits how many clients --broker or --chat serve at \
                                once, and a plain listen serves one client at a time (with -k, \
                                one after another)";
const MAX_CONNS_DGRAM: &str = "--max-conns limits connections, and a datagram server has none: \
                               each datagram is answered on its own";
const TIMEOUT_DGRAM: &str = "-w limits how long connect() may take, and a datagram socket's \
                             connect() only names the peer: it returns at once";
const SOURCE_UNIX: &str = "-s/--source is an IP address, and a Unix socket has none";
const SOURCE_UDP: &str = "-s/--source is not used by connect -u: only TCP connections and -z \
                          bind a source address";
const PORT_UNIX: &str = "-p/--source-port is a port, and a Unix socket has none";
const PORT_SCAN: &str = "-p/--source-port cannot be used with -z: each check needs a source \
                         port of its own (-s still chooses the source address)";
const PORT_UDP: &str = "-p/--source-port is not used by connect -u: only TCP connections bind \
                        a source port";
const NO_STDIN: &str = "--no-shutdown, --quit-after, --send-only and --recv-only shape the \
                        stdin relay, and --broker does not read stdin: it passes bytes between \
                        clients";
const NO_SHUTDOWN_DGRAM: &str = "--no-shutdown keeps the sending side open at stdin EOF, and a \
                                 datagram socket has no sending side to shut: it sends nothing \
                                 at EOF anyway";
const IDLE_SCAN: &str = "--idle-timeout ends a relay session, and -z relays nothing: -w bounds \
                         each check";
const IDLE_DGRAM: &str = "--idle-timeout closes idle connections, and a datagram server has \
                          none: each datagram is answered on its own";
const IP_FILTERS_UNIX: &str = "--allow/--deny filter IP networks, and a Unix socket's clients \
                               have no IP address: the socket file's permissions (chmod) \
                               decide who may connect";
const THREADS_DGRAM: &str = "--threads sizes the connection engine's event loops, and a \
                             datagram server runs one loop";
const QUIET_CLIENT: &str = "-q silences a server's `listening on` line, and connect is a \
                            client: it has none to silence";
const WIRE_UNIX: &str = "--wire/--pcap capture IP packets, and a Unix socket puts none on a \
                         network wire (--trace still records its calls)";
const CAPTURE_SCAN: &str = "--wire/--pcap/--trace/--tcp-info-every/--report follow a relay \
                            session, and -z checks ports without one (-vv narrates each check)";
const TCP_INFO_UDP: &str = "--tcp-info-every samples TCP_INFO, and a UDP socket has no TCP \
                            state to sample";
const TCP_INFO_UNIX: &str = "--tcp-info-every samples TCP_INFO, and a Unix socket has no TCP \
                             state to sample";
const REPORT_UNIX: &str = "--report draws segments and TCP_INFO samples, and a Unix socket has \
                           neither (--trace still records its calls)";

// One sentence for all of a side's TLS flags: they come together (clap makes each need --tls).
const TLS_SCAN: &str = "--tls (with --ca, --sni, --alpn, --cert, --key, --insecure) speaks TLS \
                        over a relay session, and -z relays nothing: it only checks that each \
                        port accepts a connection";
const TLS_DGRAM_CLIENT: &str = "--tls (with --ca, --sni, --alpn, --cert, --key, --insecure) \
                                needs a byte stream (TCP or a Unix stream socket): datagrams \
                                would need DTLS, which sockkit does not speak";
const TLS_DGRAM_SERVER: &str = "--tls (with --cert, --key, --client-ca, --alpn, \
                                --handshake-timeout) needs a byte stream (TCP or a Unix \
                                stream socket): datagrams would need DTLS, which sockkit does \
                                not speak";
// The exceptions of each row, first match first.
const NONE: &[Rule] = &[];
const BROKER: &[Rule] = &[
    refuse(&[Broker], &[Udp], BROKER_UDP),
    refuse(&[Broker], &[UnixDgram], BROKER_UNIX_DGRAM),
];
const CHAT: &[Rule] = &[
    refuse(&[Broker], &[Udp], CHAT_UDP),
    refuse(&[Broker], &[UnixDgram], CHAT_UNIX_DGRAM),
    refuse(&[Broker], &[UnixStream], CHAT_UNIX),
];
const SCAN: &[Rule] = &[refuse(&[Check], UNIX, SCAN_UNIX)];
const PARALLEL: &[Rule] = &[parser(&[Connect], ANY)];
const PROGRESS: &[Rule] = &[refuse(&[Broker], ANY, PROGRESS_BROKER)];
// A proxy carries a TCP connection: clap refuses it with -u and -U.
const PROXY: &[Rule] = &[parser(CLIENTS, &[Udp, UnixStream, UnixDgram])];
const LINES: &[Rule] = &[
    parser(RELAY_ARGS, STREAMS),
    refuse(&[Check], DGRAMS, LINES_SCAN),
];
const UNLINK: &[Rule] = &[refuse(SERVERS, IP, UNLINK_IP)];
const KEEP_OPEN: &[Rule] = &[
    parser(&[Broker], ANY),
    refuse(&[Listen], DGRAMS, KEEP_OPEN_DGRAM),
];
const HUB_MAX_CONNS: &[Rule] = &[refuse(&[Listen], ANY, MAX_CONNS_LISTEN)];
const MAX_CONNS: &[Rule] = &[refuse(&[Echo], DGRAMS, MAX_CONNS_DGRAM)];
const TIMEOUT: &[Rule] = &[refuse(&[Connect], DGRAMS, TIMEOUT_DGRAM)];
const SOURCE: &[Rule] = &[
    refuse(CLIENTS, UNIX, SOURCE_UNIX),
    refuse(&[Connect], &[Udp], SOURCE_UDP),
];
const SOURCE_PORT: &[Rule] = &[
    refuse(CLIENTS, UNIX, PORT_UNIX),
    refuse(&[Check], IP, PORT_SCAN),
    refuse(&[Connect], &[Udp], PORT_UDP),
];
const FAMILY: &[Rule] = &[parser(EVERY, UNIX)];
const NO_SHUTDOWN: &[Rule] = &[
    parser(&[Check], ANY),
    refuse(&[Broker], ANY, NO_STDIN),
    refuse(RELAYS, DGRAMS, NO_SHUTDOWN_DGRAM),
];
const STDIN_ONLY: &[Rule] = &[parser(&[Check], ANY), refuse(&[Broker], ANY, NO_STDIN)];
const RELAY_IDLE: &[Rule] = &[refuse(&[Check], ANY, IDLE_SCAN)];
const SERVER_IDLE: &[Rule] = &[refuse(&[Echo], DGRAMS, IDLE_DGRAM)];
const CRLF: &[Rule] = &[parser(&[Check, Broker], ANY)];
const NOT_SCAN: &[Rule] = &[parser(&[Check], ANY)];
const IP_FILTERS: &[Rule] = &[refuse(&[Echo, Knock], UNIX, IP_FILTERS_UNIX)];
const THREADS: &[Rule] = &[refuse(&[Echo], DGRAMS, THREADS_DGRAM)];
const QUIET: &[Rule] = &[refuse(CLIENTS, ANY, QUIET_CLIENT)];
const WIRE: &[Rule] = &[
    refuse(&[Check], ANY, CAPTURE_SCAN),
    refuse(&[Connect, Listen, Broker, Echo, Knock], UNIX, WIRE_UNIX),
];
const TRACE: &[Rule] = &[refuse(&[Check], ANY, CAPTURE_SCAN)];
const TCP_INFO: &[Rule] = &[
    refuse(&[Check], ANY, CAPTURE_SCAN),
    refuse(EVERY, &[Udp], TCP_INFO_UDP),
    refuse(EVERY, UNIX, TCP_INFO_UNIX),
];
const REPORT: &[Rule] = &[
    refuse(&[Check], ANY, CAPTURE_SCAN),
    refuse(EVERY, UNIX, REPORT_UNIX),
];
const TLS_CLIENT: &[Rule] = &[
    refuse(&[Check], ANY, TLS_SCAN),
    refuse(&[Connect], DGRAMS, TLS_DGRAM_CLIENT),
];
const TLS_SERVER: &[Rule] = &[refuse(&[Listen, Broker, Echo], DGRAMS, TLS_DGRAM_SERVER)];

/// Every option of every subcommand: id, flag, the modes offering it, its exceptions, a
/// sample. `-u` and `-U` choose the transport, so their rows hold no exceptions of their
/// own: the options they meet say why not.
#[rustfmt::skip]
pub const TABLE: &[Row] = &[
    row("udp", "-u", &[Connect, Check, Listen, Broker, Echo], NONE, &[]),
    row("unix", "-U", EVERY, NONE, &[]),
    row("broker", "--broker", &[Broker], BROKER, &["--broker"]),
    row("chat", "--chat", &[Broker], CHAT, &["--chat"]),
    row("scan", "-z", &[Check], SCAN, &[]),
    row("parallel", "--parallel", CLIENTS, PARALLEL, &["--parallel", "4"]),
    row("json", "--json", RELAY_ARGS, NONE, &["--json"]),
    row("json", "--json", &[Echo, Knock], NONE, &["--json"]),
    row("progress", "--progress", RELAY_ARGS, PROGRESS, &["--progress"]),
    row("no_progress", "--no-progress", RELAY_ARGS, NONE, &["--no-progress"]),
    row("proxy", "--proxy", CLIENTS, PROXY, &["--proxy", "socks5://127.0.0.1:9"]),
    row("proxy_dns", "--proxy-dns", CLIENTS, PROXY,
        &["--proxy-dns", "local", "--proxy", "socks5://127.0.0.1:9"]),
    row("lines", "--lines", RELAY_ARGS, LINES, &["--lines"]),
    row("unlink", "--unlink", SERVERS, UNLINK, &["--unlink"]),
    row("keep_open", "-k", &[Listen, Broker], KEEP_OPEN, &["-k"]),
    row("max_conns", "--max-conns", &[Listen, Broker], HUB_MAX_CONNS, &["--max-conns", "5"]),
    row("max_conns", "--max-conns", &[Echo, Knock], MAX_CONNS, &["--max-conns", "5"]),
    row("timeout", "-w", CLIENTS, TIMEOUT, &["-w", "5s"]),
    row("source", "-s", CLIENTS, SOURCE, &["-s", "127.0.0.1"]),
    row("source_port", "-p", CLIENTS, SOURCE_PORT, &["-p", "0"]),
    row("ipv4", "-4", EVERY, FAMILY, &["-4"]),
    row("ipv6", "-6", EVERY, FAMILY, &["-6"]),
    row("no_shutdown", "--no-shutdown", RELAY_ARGS, NO_SHUTDOWN, &["--no-shutdown"]),
    row("quit_after", "--quit-after", RELAY_ARGS, STDIN_ONLY, &["--quit-after", "5s"]),
    row("send_only", "--send-only", RELAY_ARGS, STDIN_ONLY, &["--send-only"]),
    row("recv_only", "--recv-only", RELAY_ARGS, STDIN_ONLY, &["--recv-only"]),
    row("idle_timeout", "--idle-timeout", RELAY_ARGS, RELAY_IDLE, &["--idle-timeout", "30s"]),
    row("idle_timeout", "--idle-timeout", &[Echo, Knock], SERVER_IDLE, &["--idle-timeout", "30s"]),
    row("crlf", "--crlf", RELAY_ARGS, CRLF, &["--crlf"]),
    row("hexdump", "-x", EVERY, NOT_SCAN, &["-x"]),
    row("hexdump_file", "--hexdump-file", EVERY, NOT_SCAN, &["--hexdump-file", "{dir}/dump"]),
    row("wire", "--wire", EVERY, WIRE, &["--wire"]),
    row("pcap", "--pcap", EVERY, WIRE, &["--pcap", "{dir}/p.pcap"]),
    row("trace", "--trace", EVERY, TRACE, &["--trace", "{dir}/t.jsonl"]),
    row("tcp_info_every", "--tcp-info-every", EVERY, TCP_INFO, &["--tcp-info-every", "20ms"]),
    row("report", "--report", EVERY, REPORT, &["--report", "{dir}/r.html"]),
    row("allow", "--allow", &[Echo, Knock], IP_FILTERS, &["--allow", "127.0.0.0/8"]),
    row("deny", "--deny", &[Echo, Knock], IP_FILTERS, &["--deny", "10.0.0.0/8"]),
    row("threads", "--threads", &[Echo, Knock], THREADS, &["--threads", "2"]),
    row("jokes", "--jokes", &[Knock], NONE, &["--jokes", "{dir}/jokes"]),
    row("shuffle", "--shuffle", &[Knock], NONE, &["--shuffle"]),
    row("opts", "-o", EVERY, NONE, &["-o", "rcvbuf=64K"]),
    row("show_opts", "--show-opts", EVERY, NOT_SCAN, &["--show-opts"]),
    row("verbose", "-v", EVERY, NONE, &["-v"]),
    row("explain", "--explain", EVERY, NONE, &["--explain"]),
    row("quiet", "-q", EVERY, QUIET, &["-q"]),
    row("tls", "--tls", CLIENTS, TLS_CLIENT, &["--tls"]),
    row("ca", "--ca", CLIENTS, TLS_CLIENT, &["--tls", "--ca", "{dir}/ca.pem"]),
    row("sni", "--sni", CLIENTS, TLS_CLIENT, &["--tls", "--sni", "localhost"]),
    row("alpn", "--alpn", CLIENTS, TLS_CLIENT, &["--tls", "--alpn", "h2,http/1.1"]),
    row("cert", "--cert", CLIENTS, TLS_CLIENT, &["--tls", "--cert", "{dir}/cert.pem", "--key", "{dir}/key.pem"]),
    row("key", "--key", CLIENTS, TLS_CLIENT, &["--tls", "--cert", "{dir}/cert.pem", "--key", "{dir}/key.pem"]),
    row("insecure", "--insecure", CLIENTS, TLS_CLIENT, &["--tls", "--insecure"]),
    row("tls", "--tls", SERVERS, TLS_SERVER, &["--tls"]),
    row("cert", "--cert", SERVERS, TLS_SERVER, &["--tls", "--cert", "{dir}/cert.pem", "--key", "{dir}/key.pem"]),
    row("key", "--key", SERVERS, TLS_SERVER, &["--tls", "--cert", "{dir}/cert.pem", "--key", "{dir}/key.pem"]),
    row("client_ca", "--client-ca", SERVERS, TLS_SERVER, &["--tls", "--client-ca", "{dir}/ca.pem"]),
    row("alpn", "--alpn", SERVERS, TLS_SERVER, &["--tls", "--alpn", "h2,http/1.1"]),
    row("handshake_timeout", "--handshake-timeout", SERVERS, TLS_SERVER, &["--tls", "--handshake-timeout", "5s"]),
];

/// The mode and transport a parsed command runs in; `None` for `forward`, whose options all
/// apply to it and whose few refusals (which side an option is for) cmd/forward.rs makes.
pub fn cell(command: &Command) -> Option<(Mode, Transport)> {
    Some(match command {
        Command::Connect(a) => (
            if a.scan.scan { Check } else { Connect },
            Transport::of(a.unix.is_some(), a.dgram.udp),
        ),
        Command::Listen(a) => (
            if a.broker.broker || a.broker.chat {
                Broker
            } else {
                Listen
            },
            Transport::of(a.local.unix.is_some(), a.dgram.udp),
        ),
        Command::Echo(a) => (Echo, Transport::of(a.local.unix.is_some(), a.udp)),
        Command::Knock(a) => (Knock, Transport::of(a.local.unix.is_some(), false)),
        Command::Forward(_) | Command::Completions(_) | Command::Report(_) => return None,
    })
}

/// The row for option `id` in `mode`, if the mode offers it.
pub fn find(id: &str, mode: Mode) -> Option<&'static Row> {
    TABLE.iter().find(|r| r.id == id && r.modes.contains(&mode))
}

/// Refuses the first option given on the command line (`given`: clap ids) that does not
/// apply to this command's mode and transport, with the table's reason. Options are checked
/// in table order, so the one that decides what kind of program runs (`--broker`) speaks
/// before the ones it makes meaningless.
pub fn check(command: &Command, given: &dyn Fn(&str) -> bool) -> Result<(), UsageError> {
    let Some((mode, transport)) = cell(command) else {
        return Ok(());
    };
    for row in TABLE.iter().filter(|r| r.modes.contains(&mode)) {
        if !given(row.id) {
            continue;
        }
        if let Verdict::Refused(why) = row.verdict(mode, transport) {
            return Err(UsageError::new(why));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Cli;
    use clap::CommandFactory;

    fn mode_of(sub: &str) -> &'static [Mode] {
        match sub {
            "connect" => &[Connect, Check],
            "listen" => &[Listen, Broker],
            "echo" => &[Echo],
            "knock" => &[Knock],
            // Not in the table: see `cell` (report reads a file: no socket, no transport).
            "forward" | "report" => &[],
            other => panic!("a subcommand the table does not know: {other}"),
        }
    }

    #[test]
    fn every_option_of_every_subcommand_has_a_row_and_no_row_is_stale() {
        let cli = Cli::command();
        for sub in cli.get_subcommands() {
            for arg in sub.get_arguments() {
                let id = arg.get_id().as_str();
                if arg.is_positional() || id == "help" || id == "version" {
                    continue;
                }
                // -z, --broker and --chat choose the mode they are rows of.
                let modes: &[Mode] = match id {
                    "scan" => &[Check],
                    "broker" | "chat" => &[Broker],
                    _ => mode_of(sub.get_name()),
                };
                for &mode in modes {
                    assert!(
                        find(id, mode).is_some(),
                        "{} {id}: no row in cmd/applies.rs for {mode:?}",
                        sub.get_name()
                    );
                }
            }
        }
        for r in TABLE {
            for &mode in r.modes {
                let sub = match mode {
                    Connect | Check => "connect",
                    Listen | Broker => "listen",
                    Echo => "echo",
                    Knock => "knock",
                };
                let sub = cli.find_subcommand(sub).unwrap();
                assert!(
                    sub.get_arguments().any(|a| a.get_id() == r.id),
                    "row {} names {mode:?}, whose subcommand has no such option",
                    r.id
                );
            }
        }
    }

    #[test]
    fn a_refusal_names_the_flag_it_refuses() {
        for r in TABLE {
            for rule in r.rules {
                if let Verdict::Refused(why) = rule.verdict {
                    assert!(why.contains(r.flag), "{}: {why}", r.flag);
                    assert!(!why.contains('\n') && !why.ends_with('.'), "{why}");
                }
            }
        }
    }
}
