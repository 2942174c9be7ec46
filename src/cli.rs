//! Every command-line type sockkit has, as clap derive structs: the subcommands and the option
//! groups they share (flattened, so `-o`, `-v`, `-4` are spelled the same everywhere). Values
//! are parsed to real types here, at the edge. `parse()` owns the parser's special exits
//! (`--help`, `-o help` without HOST, clap's usage errors as one line), so main never looks at
//! argv; whether an option applies to the transport chosen is cmd's check, not the parser's.
//!
//! Doc comments here are `--help` text, not rustdoc: `[ADDR]` is usage syntax, not a link.
#![allow(rustdoc::broken_intra_doc_links)]

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use clap::error::ErrorKind;
use clap::parser::ValueSource;
use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};

mod complete;
mod nc;
mod ncmode;

use crate::addr::{Family, PortArg, PortList, UnixAddr, parse_ip};
use crate::error;
use crate::sockopt::{self, SockOptRequest};
use crate::value::{parse_duration, parse_timeout};

/// What the command line asks for.
#[derive(Debug)]
// Made once per run and matched at once: boxing the large variant would buy nothing.
#[allow(clippy::large_enum_variant)]
pub enum ParseResult {
    /// A subcommand to run.
    Run(Invocation),
    /// An exit the parser handles itself: print, then exit with the status `finish` returns.
    Special(Special),
}

/// A subcommand to run, with which options were typed (not defaulted), so cmd can refuse one
/// that does not apply.
#[derive(Debug)]
pub struct Invocation {
    pub command: Command,
    pub given: Given,
}

/// The clap ids of the options given on the command line.
#[derive(Debug, Default)]
pub struct Given(BTreeSet<String>);

impl Given {
    pub fn has(&self, id: &str) -> bool {
        self.0.contains(id)
    }
}

/// The parser's own exits.
#[derive(Debug)]
pub enum Special {
    /// `-o help`: the socket option list on stdout (even without HOST and PORT), exit 0.
    OptionHelp,
    /// A mistake on the command line, as one `sockkit: ...` line on stderr, exit 2.
    Usage(String),
    /// `--help`, `--version` (stdout, exit 0), or bare `sockkit` (the usage, stderr, exit 2).
    Clap(clap::Error),
}

impl Special {
    /// Prints what this exit shows; returns the exit status.
    pub fn finish(self) -> u8 {
        match self {
            Special::OptionHelp => {
                sockopt::print_help();
                error::EXIT_OK
            }
            Special::Usage(line) => {
                crate::narrate::say(&format!("{line}\n"));
                error::EXIT_USAGE
            }
            Special::Clap(e) => {
                let _ = e.print();
                u8::try_from(e.exit_code()).unwrap_or(error::EXIT_USAGE)
            }
        }
    }
}

/// Parses the process's command line.
pub fn parse() -> ParseResult {
    parse_from(std::env::args_os())
}

/// Parses `args` (the program name first).
pub fn parse_from(args: impl IntoIterator<Item = impl Into<OsString>>) -> ParseResult {
    let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    if let Some(words) = ncmode::nc_args(&args) {
        return nc_mode(&words);
    }
    let matches = match command().try_get_matches_from(&args) {
        Ok(m) => m,
        Err(e) => return ParseResult::Special(special(e, &args)),
    };
    // `listen -q 1 4444` parses (quiet, ADDR 1 = 0.0.0.1) but an nc user meant quit-after.
    if let Some(line) = nc::spelling(&args, true) {
        return ParseResult::Special(Special::Usage(line));
    }
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => return ParseResult::Special(special(e, &args)),
    };
    let sockopts = match &cli.command {
        Command::Completions(_) | Command::Report(_) => &SockOptArgs::default(),
        Command::Connect(a) => &a.sockopts,
        Command::Listen(a) => &a.sockopts,
        Command::Echo(a) => &a.sockopts,
        Command::Knock(a) => &a.sockopts,
        Command::Forward(a) => &a.sockopts,
    };
    if sockopts
        .opts
        .iter()
        .any(|o| matches!(o, SockOptRequest::Help))
    {
        return ParseResult::Special(Special::OptionHelp);
    }
    let mut given = Given::default();
    if let Some((name, sub)) = matches.subcommand() {
        let command = Cli::command();
        let options = command
            .find_subcommand(name)
            .into_iter()
            .flat_map(clap::Command::get_arguments);
        for arg in options {
            let id = arg.get_id().as_str();
            if sub.value_source(id) == Some(ValueSource::CommandLine) {
                given.0.insert(id.to_string());
            }
        }
    }
    ParseResult::Run(Invocation {
        command: cli.command,
        given,
    })
}

/// OpenBSD nc's command line (invoked as `nc`, or `sockkit nc ...`): rewritten as sockkit's,
/// parsed as sockkit's, then marked so the engines follow nc where its rules differ.
fn nc_mode(words: &[String]) -> ParseResult {
    let argv = match ncmode::translate(words) {
        Ok(argv) => argv,
        Err(line) => return ParseResult::Special(Special::Usage(line)),
    };
    let mut result = parse_from(argv);
    if let ParseResult::Run(invocation) = &mut result {
        match &mut invocation.command {
            // OpenBSD nc draws no progress line, even with -v at a terminal.
            Command::Connect(a) => {
                a.relay.nc_rules = true;
                a.relay.no_progress = true;
                a.scan.nc_quiet = true;
            }
            Command::Listen(a) => {
                a.relay.nc_rules = true;
                a.relay.no_progress = true;
            }
            _ => {}
        }
    }
    result
}

/// The parser: `Cli`'s command with every option that takes a value told to take a negative
/// number as that value. Without it clap reads `-w -1` as an unknown flag `-1` (because `-4`
/// and `-6` are flags) and the user is told about a port they never typed; with it the
/// option's own value parser refuses `-1` and the message names the option. Done over the
/// whole tree so an option added later is covered too.
pub fn command() -> clap::Command {
    fn negatives_are_values(cmd: clap::Command) -> clap::Command {
        let cmd = cmd.mut_args(|arg| {
            if !arg.is_positional() && arg.get_action().takes_values() {
                arg.allow_negative_numbers(true)
            } else {
                arg
            }
        });
        cmd.mut_subcommands(negatives_are_values)
    }
    negatives_are_values(Cli::command())
}

/// A file name an option takes (`--hexdump-file`, `--jokes`). A name that starts with `-` is
/// an option typed where the file should be (`--hexdump-file -v`), or a number that is no
/// file name (`-1`): refused with the way to say it if it really is meant.
fn parse_file_path(s: &str) -> Result<PathBuf, String> {
    if s.starts_with('-') {
        return Err(format!(
            "'{s}' looks like an option, not a file name (for a file of that name write ./{s})"
        ));
    }
    if s.is_empty() {
        return Err("an empty file name".to_string());
    }
    Ok(PathBuf::from(s))
}

/// A TLS name (`--sni`) or ALPN protocol: `-1` there is an option typed where the name
/// should be, or a number no name starts with.
fn parse_tls_name(s: &str) -> Result<String, String> {
    if s.starts_with('-') {
        return Err(format!("'{s}' looks like an option, not a name"));
    }
    if s.is_empty() {
        return Err("an empty name".to_string());
    }
    Ok(s.to_string())
}

/// What a clap error means for the user.
fn special(e: clap::Error, args: &[OsString]) -> Special {
    if e.use_stderr()
        && let Some(line) = nc::spelling(args, false)
    {
        return Special::Usage(line);
    }
    match e.kind() {
        // `sockkit connect -o help` lists the options although HOST and PORT are missing.
        ErrorKind::MissingRequiredArgument if sockopt::help_in_args(args.iter().cloned()) => {
            Special::OptionHelp
        }
        // A mistake gets one line; bare `sockkit` gets the usage (clap, stderr, exit 2).
        kind if e.use_stderr() && kind != ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            Special::Usage(error::usage_line(&e))
        }
        _ => Special::Clap(e),
    }
}

/// A socket toolkit that shows its work: a netcat whose every socket can be seen and tuned.
///
/// sockkit connects, listens, echoes, forwards and tells Knock Knock jokes over TCP (UDP with -u,
/// Unix-domain sockets with -U), and on the way
/// shows the sockets API happening: `-vv` narrates each call (socket, setsockopt, bind,
/// listen, accept, connect, shutdown, close) with its result and time, `-o` sets any socket
/// option by its kernel name, and `--show-opts` prints what the kernel really set.
///
/// Data goes to stdout, and only data; everything sockkit says goes to stderr.
///
/// Invoked as `nc` (a symlink named nc) or as `sockkit nc ARGS`, sockkit takes OpenBSD
/// netcat's command line instead (-l, -k, -u, -U, -z, -v, -w, -q, -N, -C, -d, -n, -s, -p, -4,
/// -6, -I, -O, -T, -M) and follows nc's rules, so scripts written for nc keep working.
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
    Knock(KnockArgs),
    Forward(ForwardArgs),
    Completions(CompletionsArgs),
    Report(ReportArgs),
}

/// The completion script for `shell` (bash, zsh, fish, elvish, powershell), `-o` names included.
pub fn completion_script(shell: clap_complete::Shell) -> Vec<u8> {
    complete::script(shell, command())
}

/// Print a shell completion script on stdout: subcommands, options, and `-o` socket option names.
///
/// Install it where the shell looks (see README, Install):
///
///   bash: sockkit completions bash > ~/.local/share/bash-completion/completions/sockkit
///
///   zsh:  sockkit completions zsh > ~/.zfunc/_sockkit  (with fpath+=~/.zfunc before compinit)
///
///   fish: sockkit completions fish > ~/.config/fish/completions/sockkit.fish
///
///   elvish: sockkit completions elvish >> ~/.config/elvish/rc.elv
///
///   powershell: sockkit completions powershell >> $PROFILE
#[derive(Args, Debug)]
pub struct CompletionsArgs {
    /// The shell to write the script for: bash, zsh, fish, elvish or powershell.
    #[arg(value_name = "SHELL", hide_possible_values = true)]
    pub shell: clap_complete::Shell,
}

/// Draw a saved --trace file as one self-contained HTML page, the page --report writes at exit.
///
/// The page has a sequence diagram (this end and the peer, each segment an arrow at its time
/// with its flags and length, the calls, the TCP states the segments imply) and plots of cwnd,
/// rtt, bytes in flight and throughput from the "tcp_info" samples. Inline SVG and CSS only:
/// no script, no font, nothing fetched. A long session is drawn in part (its first and last
/// segments, with how many were left out said) so the page stays small.
///
/// Exit status: 0 written; 1 TRACE cannot be read, is not a --trace file (said in one line),
/// or the page cannot be written; 2 usage.
///
/// Example: sockkit report session.jsonl -o session.html
#[derive(Args, Debug)]
pub struct ReportArgs {
    /// The --trace file (JSON lines) to draw.
    #[arg(value_name = "TRACE", value_parser = parse_file_path)]
    pub trace: PathBuf,

    /// Write the page to FILE (default: stdout).
    #[arg(short = 'o', long, value_name = "FILE", value_parser = parse_file_path)]
    pub output: Option<PathBuf>,
}

/// Connect to HOST PORT and relay: stdin to the socket, the socket to stdout.
///
/// Each address HOST resolves to is tried in order until one connects. When stdin ends,
/// sockkit shuts down its sending side (the peer reads EOF) and keeps printing what the peer
/// sends until the peer closes: request/response over a pipe just works.
///
/// Example: printf 'GET / HTTP/1.0\r\n\r\n' | sockkit connect example.org 80
///
/// With -u, a connected UDP socket: connect() sends nothing, it fixes the peer, so an ICMP
/// port unreachable comes back as "connection refused" (reported, exit 1). With -U PATH, a
/// Unix stream socket (-U PATH -u: a Unix datagram socket, autobound so replies can return).
#[derive(Args, Debug)]
#[command(override_usage = "sockkit connect [OPTIONS] HOST PORT\n       \
                            sockkit connect [OPTIONS] -U PATH")]
pub struct ConnectArgs {
    /// Host name or address to connect to (IPv6 literals with or without brackets).
    #[arg(value_name = "HOST", required_unless_present = "unix")]
    pub host: Option<String>,

    /// Port to connect to (1-65535); with -z also a list: 80, 8000-8100, 22,80,8000-8010.
    #[arg(
        value_name = "PORT",
        allow_negative_numbers = true,
        required_unless_present = "unix"
    )]
    pub port: Option<PortList>,

    /// Connect to a Unix-domain socket at PATH instead of HOST PORT (`@name`: Linux's
    /// abstract namespace, no file).
    #[arg(short = 'U', long = "unix", value_name = "PATH", conflicts_with_all = ["host", "port", "ipv4", "ipv6"])]
    pub unix: Option<UnixAddr>,

    #[command(flatten)]
    pub dgram: DgramArgs,

    /// Give up on each address after this long (humantime: 2s, 500ms, 1m; with -z: 3s).
    #[arg(short = 'w', long = "timeout", value_name = "DURATION", value_parser = parse_timeout)]
    pub timeout: Option<Duration>,

    #[command(flatten)]
    pub scan: ScanArgs,

    #[command(flatten)]
    pub proxy: ProxyArgs,

    #[command(flatten)]
    pub source: SourceArgs,

    #[command(flatten)]
    pub net: NetArgs,

    #[command(flatten)]
    pub relay: RelayArgs,

    #[command(flatten)]
    pub wire: WireArgs,

    #[command(flatten)]
    pub capture: CaptureArgs,

    #[command(flatten)]
    pub sockopts: SockOptArgs,

    #[command(flatten)]
    pub tls: TlsClientArgs,

    #[command(flatten)]
    pub verbosity: Verbosity,
}

/// Listen on `[ADDR] PORT`, accept one client and relay: stdin to it, it to stdout.
///
/// Without ADDR sockkit binds `[::]` with IPV6_V6ONLY off, so one socket serves IPv4 and IPv6
/// clients (0.0.0.0 where IPv6 is unavailable). PORT 0 asks the kernel for a free port. When
/// ready it prints `listening on ADDR:PORT` on stderr with the real port.
///
/// With -u, a UDP socket that takes datagrams from anyone (recvfrom) and prints them. stdin
/// waits for the first datagram, then goes (sendto) to the peer heard from last: when a
/// datagram arrives from someone new, stdin follows it, and stderr says so (`new peer ...`).
///
/// With -U PATH, a Unix stream socket (`listening on PATH (Unix)`), removed again at exit; a
/// stale socket file is replaced only with --unlink, and a file that is not a socket never.
///
/// At a terminal: Ctrl-D ends what you send to this client (shutdown SHUT_WR), and with -k the
/// next client hears what you type next; a client that half-closes has sent its request, so
/// the session stays open for your answer until your Ctrl-D. Ctrl-C ends listen itself.
#[derive(Args, Debug)]
#[command(override_usage = "sockkit listen [OPTIONS] [ADDR] PORT\n       \
                            sockkit listen [OPTIONS] -U PATH")]
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
    pub dgram: DgramArgs,

    #[command(flatten)]
    pub local: LocalArgs,

    #[command(flatten)]
    pub broker: BrokerArgs,

    #[command(flatten)]
    pub net: NetArgs,

    #[command(flatten)]
    pub relay: RelayArgs,

    #[command(flatten)]
    pub wire: WireArgs,

    #[command(flatten)]
    pub capture: CaptureArgs,

    #[command(flatten)]
    pub sockopts: SockOptArgs,

    #[command(flatten)]
    pub tls: TlsServerArgs,

    #[command(flatten)]
    pub verbosity: Verbosity,
}

/// Echo service (RFC 862): every byte a client sends comes back to it, many clients at once.
///
/// One event loop per CPU core serves thousands of clients. Each client is owed at most 64 KiB
/// of echo before sockkit stops reading from it, so a client that sends but never reads costs
/// the server little. When a client shuts its sending side, what it is owed is sent, then the
/// connection closes. SIGINT, SIGTERM or SIGHUP stops the server: no new clients, every client
/// closed, totals with -v, then sockkit ends by that signal (exit status 128+N). With -u, UDP
/// instead: each datagram goes back to its sender.
///
/// Example: sockkit echo -v 127.0.0.1 7007, then: echo hi | sockkit connect 127.0.0.1 7007
///
/// -u echoes UDP datagrams to their senders; -U PATH serves a Unix stream socket (its clients
/// have no IP address, so --allow/--deny do not apply: the file's permissions decide); -U PATH
/// -u echoes Unix datagrams to senders that bound an address.
#[derive(Args, Debug)]
pub struct EchoArgs {
    /// Address to bind (default: every address, IPv4 and IPv6), then PORT.
    #[arg(value_name = "ADDR")]
    pub addr: Option<String>,

    /// Port to listen on; 0 lets the kernel choose a free one.
    #[arg(value_name = "PORT", allow_negative_numbers = true)]
    pub port: Option<PortArg>,

    /// Serve UDP (with -U: Unix datagrams) instead of a stream: each datagram goes back to
    /// its sender.
    #[arg(short = 'u', long)]
    pub udp: bool,

    #[command(flatten)]
    pub local: LocalArgs,

    #[command(flatten)]
    pub dump: DumpArgs,

    #[command(flatten)]
    pub capture: CaptureArgs,

    #[command(flatten)]
    pub server: ServerArgs,

    #[command(flatten)]
    pub net: NetArgs,

    #[command(flatten)]
    pub sockopts: SockOptArgs,

    #[command(flatten)]
    pub tls: TlsServerArgs,

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

    /// Tell your own jokes: one `clue<TAB>punchline` per line; blank lines and lines starting
    /// with # are skipped. A malformed file is refused at start, naming the line.
    #[arg(long, value_name = "FILE", value_parser = parse_file_path)]
    pub jokes: Option<PathBuf>,

    /// Tell the jokes in a random order for each client instead of in file order.
    #[arg(long)]
    pub shuffle: bool,

    #[command(flatten)]
    pub dump: DumpArgs,

    #[command(flatten)]
    pub capture: CaptureArgs,

    #[command(flatten)]
    pub local: LocalArgs,

    #[command(flatten)]
    pub server: ServerArgs,

    #[command(flatten)]
    pub net: NetArgs,

    #[command(flatten)]
    pub sockopts: SockOptArgs,

    #[command(flatten)]
    pub tls: TlsServerArgs,

    #[command(flatten)]
    pub verbosity: Verbosity,
}

/// Listen on `[ADDR] PORT` and forward each client to HOST PORT over a connection of its own.
///
/// Every client gets a new connection to HOST PORT (each address HOST resolves to tried in
/// order, -w per attempt); bytes then flow both ways, spliced in the kernel (socket -> pipe ->
/// socket) without passing through sockkit's memory. A FIN from one side is passed on as
/// shutdown(SHUT_WR) once every byte before it is delivered, a reset as a reset; a target that
/// refuses or times out has its client reset at once, and the reason is logged. Bytes taken
/// from one side that could not be delivered to the other are counted and reported.
///
/// Example: sockkit forward -v 8080 127.0.0.1 80, then: curl http://127.0.0.1:8080/
///
/// -U PATH listens on a Unix stream socket instead of [ADDR] PORT; --to-unix PATH forwards to
/// one instead of HOST PORT (so `sockkit forward 8080 --to-unix /run/app.sock` exposes a Unix
/// socket over TCP). -o sets options on the listening socket and the accepted clients,
/// --to-opt on the outbound sockets; --show-opts shows the listener, and each outbound socket
/// as it connects. -x shows each direction, labelled with the pair's addresses. With -u, UDP:
/// one outbound socket per client address, closed after --idle-timeout without datagrams.
#[derive(Args, Debug)]
#[command(
    override_usage = "sockkit forward [OPTIONS] [ADDR] PORT HOST PORT\n       \
                            sockkit forward [OPTIONS] -U PATH HOST PORT\n       \
                            sockkit forward [OPTIONS] [ADDR] PORT --to-unix PATH\n       \
                            sockkit forward [OPTIONS] --socks5 [ADDR] PORT"
)]
pub struct ForwardArgs {
    /// Where to listen (`[ADDR] PORT`, left out with -U), then where to forward to (`HOST
    /// PORT`, left out with --to-unix).
    #[arg(value_name = "ENDPOINTS", num_args = 0..=4, allow_negative_numbers = true)]
    pub endpoints: Vec<String>,

    /// Listen on a Unix stream socket at PATH instead of [ADDR] PORT (`@name`: abstract).
    #[arg(short = 'U', long = "unix", value_name = "PATH")]
    pub unix: Option<UnixAddr>,

    /// Replace a stale socket file at the -U PATH (one nobody listens on any more).
    #[arg(long, requires = "unix")]
    pub unlink: bool,

    /// Forward to the Unix stream socket at PATH instead of HOST PORT.
    #[arg(long, value_name = "PATH")]
    pub to_unix: Option<UnixAddr>,

    /// Forward UDP: each client address gets an outbound socket of its own, which
    /// --idle-timeout ends (UDP has no FIN). IP on both sides: not with -U or --to-unix.
    #[arg(short = 'u', long)]
    pub udp: bool,

    /// Give up on each address of HOST after this long (default 10s); the client is then reset.
    /// With --socks5 it also bounds each client's handshake, with --to-tls each TLS handshake
    /// with the target, and with --tls each client's (unless --handshake-timeout).
    #[arg(short = 'w', long = "timeout", value_name = "DURATION", value_parser = parse_timeout)]
    pub timeout: Option<Duration>,

    /// Dynamic forwarding (as ssh -D): speak SOCKS5 to each client and connect wherever it
    /// asks, so no HOST PORT is given. --allow/--deny apply to the target asked for as well as
    /// to the client; a target refused or unreachable is answered with its SOCKS5 reply code.
    #[arg(long, conflicts_with_all = ["to_unix", "udp"])]
    pub socks5: bool,

    /// With --socks5, require this username and password (RFC 1929) from every client
    /// (visible in `ps`: for a shared machine, prefer the firewall and --allow).
    #[arg(long, value_name = "USER:PASS", requires = "socks5", value_parser = parse_user_pass)]
    pub proxy_auth: Option<(String, String)>,

    /// Make each outbound connection through a proxy (the URLs of `connect --proxy`: socks5,
    /// socks4a, socks4, http): the forwarder connects to the proxy and asks it for HOST PORT,
    /// or with --socks5 for the target each client names; -w bounds the connect and the
    /// proxy's handshake. The target's name is resolved by the proxy unless --proxy-dns local.
    #[arg(long, value_name = "URL", conflicts_with_all = ["udp", "to_unix"],
          value_parser = clap::value_parser!(crate::proxy::ProxyUrl))]
    pub proxy: Option<crate::proxy::ProxyUrl>,

    /// With --proxy, who resolves the target's name: `remote` (the proxy; the default) or
    /// `local` (here, and the proxy is sent the address).
    #[arg(long, value_name = "WHERE", value_enum, default_value_t = ProxyDns::Remote,
          hide_possible_values = true, requires = "proxy")]
    pub proxy_dns: ProxyDns,

    /// Set a socket option on each outbound socket (repeatable; the names of -o, which sets
    /// them on the listening socket and the clients accepted).
    #[arg(long = "to-opt", value_name = "NAME[=VALUE]")]
    pub to_opts: Vec<SockOptRequest>,

    #[command(flatten)]
    pub dump: DumpArgs,

    #[command(flatten)]
    pub capture: CaptureArgs,

    #[command(flatten)]
    pub server: ServerArgs,

    #[command(flatten)]
    pub net: NetArgs,

    #[command(flatten)]
    pub sockopts: SockOptArgs,

    #[command(flatten)]
    pub tls: TlsServerArgs,

    #[command(flatten)]
    pub to_tls: ToTlsArgs,

    #[command(flatten)]
    pub verbosity: Verbosity,
}

/// `USER:PASS`: a user name (not empty) and a password (may be empty, may hold `:`).
fn parse_user_pass(s: &str) -> Result<(String, String), String> {
    match s.split_once(':') {
        Some((u, p)) if !u.is_empty() && u.len() <= 255 && p.len() <= 255 => {
            Ok((u.to_string(), p.to_string()))
        }
        Some(("", _)) => Err("the user name before `:` is empty".into()),
        Some(_) => Err("SOCKS5 user names and passwords are at most 255 bytes".into()),
        None => Err("expected USER:PASS".into()),
    }
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

impl ConnectArgs {
    /// HOST and PORT, which clap requires unless `-U` is given.
    pub fn host_port(&self) -> Result<(&str, &PortList), crate::error::UsageError> {
        match (&self.host, &self.port) {
            (Some(h), Some(p)) => Ok((h, p)),
            _ => Err(crate::error::UsageError::new(
                "connect needs HOST and PORT (or -U PATH for a Unix socket)",
            )),
        }
    }
}

/// `-u` and `--lines`: datagrams instead of a byte stream, for `connect` and `listen`.
#[derive(Args, Debug, Clone, Copy, Default)]
pub struct DgramArgs {
    /// Use datagrams (UDP; with -U a SOCK_DGRAM Unix socket): each stdin read is one
    /// datagram (at most 65,507 bytes over IPv4, 65,527 over IPv6), each datagram received is
    /// written to stdout. UDP has no EOF: after stdin ends the session goes on until
    /// --quit-after, --idle-timeout (both end it with exit 0) or Ctrl-C. `listen -u` sends
    /// stdin to the peer heard from last and announces each new peer on stderr.
    #[arg(short = 'u', long)]
    pub udp: bool,

    /// With -u, send one datagram per stdin line (newline included) instead of one per read.
    #[arg(long, requires = "udp")]
    pub lines: bool,
}

/// `-U PATH` and `--unlink` for servers: a Unix-domain socket instead of [ADDR] PORT.
#[derive(Args, Debug, Clone, Default)]
pub struct LocalArgs {
    /// Listen on a Unix-domain socket at PATH instead of [ADDR] PORT (`@name`: Linux's
    /// abstract namespace, no file). A file at PATH that is not a socket is never deleted.
    #[arg(short = 'U', long = "unix", value_name = "PATH", conflicts_with_all = ["addr", "port", "ipv4", "ipv6"])]
    pub unix: Option<UnixAddr>,

    /// Replace a stale socket file at the -U PATH (one nobody listens on any more).
    #[arg(long, requires = "unix")]
    pub unlink: bool,
}

/// How the stdio <-> socket relay of `connect` and `listen` ends.
#[derive(Args, Debug, Clone, Copy)]
pub struct RelayArgs {
    /// At stdin EOF keep the sending side open instead of shutdown(SHUT_WR).
    #[arg(long)]
    pub no_shutdown: bool,

    /// After stdin EOF wait at most this long for the peer to close (with -u: keep printing
    /// datagrams this long), then end (exit 0).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub quit_after: Option<Duration>,

    /// Only send stdin; discard what the peer sends. The session still ends at the peer's EOF
    /// (or --quit-after), so nothing unread makes close() reset the connection.
    #[arg(long, conflicts_with = "recv_only")]
    pub send_only: bool,

    /// Only print what the peer sends; do not read stdin.
    #[arg(long)]
    pub recv_only: bool,

    /// End the session (exit 1) when no byte has moved either way for this long (0: no
    /// limit). With -u it is how a datagram session ends normally (exit 0): UDP has no EOF.
    /// With --broker/--chat it closes each silent client instead (default there: 5m).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub idle_timeout: Option<Duration>,

    /// nc mode (never typed: set when invoked as `nc`): OpenBSD nc's rules, under which a
    /// listener's session ends at the client's EOF and an idle timeout is a normal end.
    #[arg(skip)]
    pub nc_rules: bool,

    /// For scripts: the end-of-session summary as one JSON object on stderr (kind, proto,
    /// local, peer, sent, received, duration, rates, end, tcp_info; with -u also datagrams each
    /// way, truncated, dropped; with --tls a tls object: version, suite, group, alpn, resumed,
    /// peer_certificates, close_notify), and with listen -k a totals object at Ctrl-C; with --broker or
    /// --chat one object per client and the totals; with -z one JSON object per port on stdout
    /// instead of the lines (host, port, proto, state, time, reason). See README.
    #[arg(long)]
    pub json: bool,

    /// Keep one live line on stderr: bytes each way and current rates (with a regular file on
    /// stdin, percent sent and time left); with -z, ports checked of the total. On by default
    /// with -v when stderr is a terminal; given, it is drawn even when stderr is not one (as
    /// on a terminal: redrawn with \r, erased before every other line).
    #[arg(long, conflicts_with = "no_progress")]
    pub progress: bool,

    /// No live progress line, even with -v at a terminal.
    #[arg(long)]
    pub no_progress: bool,
}

/// `connect -z`: the port check.
#[derive(Args, Debug, Clone, Copy)]
pub struct ScanArgs {
    /// Port check: connect to each of PORTS without sending data; the open ports on stdout
    /// (with -v every port: open, closed, timed out), a summary counting each state on stderr;
    /// exit 0 if any port is open, 1 if none.
    #[arg(short = 'z', long = "scan", conflicts_with_all = [
        "crlf", "hexdump", "hexdump_file", "send_only", "recv_only", "quit_after", "no_shutdown",
        "show_opts",
    ])]
    pub scan: bool,

    /// With -z, check at most N ports at once (through --proxy, one at a time).
    #[arg(long, value_name = "N", default_value_t = crate::scan::DEFAULT_PARALLEL as u16,
          value_parser = clap::value_parser!(u16).range(1..=1024), requires = "scan",
          conflicts_with = "proxy")]
    pub parallel: u16,

    /// nc mode (never typed: set when invoked as `nc`): like OpenBSD `nc -z`, nothing on
    /// stdout; with -v each port's line goes to stderr.
    #[arg(skip)]
    pub nc_quiet: bool,
}

/// `--proxy URL` and `--proxy-dns`: reach the target through a SOCKS or HTTP CONNECT proxy.
#[derive(Args, Debug, Clone, Default)]
pub struct ProxyArgs {
    /// Go through a proxy: socks5://[USER:PASS@]HOST[:PORT] (the proxy resolves the target's
    /// name, as socks5h), socks4a://HOST[:PORT], socks4://HOST[:PORT] (IPv4, resolved here),
    /// or http://[USER:PASS@]HOST:PORT (CONNECT). The handshake is done on the connected
    /// socket before the relay starts, within -w (30s without it); -vv shows each message.
    /// With -z, says whether the proxy could reach each port.
    #[arg(long, value_name = "URL", conflicts_with_all = ["udp", "unix"],
          value_parser = clap::value_parser!(crate::proxy::ProxyUrl))]
    pub proxy: Option<crate::proxy::ProxyUrl>,

    /// Who resolves the target's name: `remote` (the proxy; the default) or `local` (here,
    /// and the proxy is sent the address).
    #[arg(long, value_name = "WHERE", value_enum, default_value_t = ProxyDns::Remote,
          hide_possible_values = true,
          requires = "proxy")]
    pub proxy_dns: ProxyDns,
}

/// `--proxy-dns`.
#[derive(clap::ValueEnum, Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ProxyDns {
    #[default]
    Remote,
    Local,
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
    pub fn source(&self) -> crate::addr::Source {
        crate::addr::Source {
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

/// `--wire`, `--pcap` and `--trace`: what the connection put on the wire, and every event.
#[derive(Args, Debug, Clone, Default)]
pub struct CaptureArgs {
    /// Show each TCP segment (UDP datagram) of this connection on stderr as it crosses the
    /// wire, beside the calls and on their clock, tcpdump's way: `-> [S] seq 0 win 65495
    /// <mss 65495,sackOK,TS,nop,wscale 7>`, `<- [S.] seq 0 ack 1`, `-> [P.] seq 1:7 ack 1 len
    /// 6`, `-> [F.] seq 7 ack 1`, `<- [R] seq 1`. `->` is sent by this end, `<-` received;
    /// numbers are relative to each side's initial sequence number; the window and options are
    /// shown on SYNs; the time is the kernel's (a line may come just after the call that caused
    /// it). Captured by the kernel on a packet socket (AF_PACKET, `lo` for
    /// loopback) filtered in the kernel (BPF) to this connection's port; needs CAP_NET_RAW
    /// (root, or `setcap cap_net_raw+ep $(which sockkit)`): without it one line says so and the
    /// session goes on. Packets are read from a memory-mapped ring (TPACKET_V3) handed over a
    /// block at a time; with -vv, or with SOCKKIT_CAPTURE=recvmsg in the environment (to
    /// compare the two), one recvmsg per packet instead, so segment lines come out between
    /// the calls. At the end: packets captured and dropped by the kernel. On forward,
    /// both legs: the clients', and each connection to the target (every address a connect
    /// tries, the target each --socks5 client asks for, the proxy with --proxy), tagged
    /// `(target ADDR from port N)`; with -U or --to-unix, the leg that is not a Unix socket.
    #[arg(long)]
    pub wire: bool,

    /// Write the same packets to FILE as a classic pcap file (link type LINUX_SLL), for
    /// `tcpdump -r FILE` or Wireshark. Needs CAP_NET_RAW, as --wire does.
    #[arg(long, value_name = "FILE", value_parser = parse_file_path)]
    pub pcap: Option<PathBuf>,

    /// Write every event of the session to FILE as JSON lines, one object per line, in
    /// timestamp order. Every object has "t_ns" (nanoseconds on the session clock, monotonic,
    /// the clock -vv's +TIME shows) and "event", one of: "call" (a socket call: "name",
    /// "args" and "result" as -vvv spells them, "duration_ns"; a data call has "bytes", the
    /// bytes it moved, instead of "duration_ns"); "kernel" (what the kernel did that no call of
    /// ours did, such as a TCP state change or a RST: "text"); "segment" (a captured packet:
    /// "dir" out or in, "local", "remote", "proto" tcp or udp, "len" payload bytes, for TCP
    /// "flags" as tcpdump writes them and "win", "line", --wire's line, and "kernel_ago_ns", how
    /// long before "t_ns" the kernel saw it; "seq" and, with ACK set, "ack", relative as the
    /// line shows them); "tcp_info" (a --tcp-info-every sample: "rtt_us", "rttvar_us", "cwnd"
    /// and "mss" (cwnd is in segments of mss bytes), "ssthresh" (segments, null before the
    /// first loss), "unacked", "in_flight" (segments), "delivery_rate" (bytes/s), "retrans",
    /// "total_retrans", "snd_wnd" (the peer's advertised window, bytes), "rcv_space",
    /// "bytes_acked", "bytes_received"; on a server "remote", the client; on forward "leg",
    /// client or target, "pair", the client whose pair it is, and for the target leg "remote"
    /// is the target (the proxy through --proxy) and "local_port" our end's port); "capture"
    /// (at the end: "packets", "dropped", and "unmatched": passed the kernel filter but on none
    /// of the session's connections). Segments are captured as for --wire (CAP_NET_RAW). New
    /// fields may be added; these keep their names and meaning.
    #[arg(long, value_name = "FILE", value_parser = parse_file_path)]
    pub trace: Option<PathBuf>,

    /// Read TCP_INFO every DURATION (humantime: 20ms, 1s) through each TCP connection's life,
    /// and once when it starts and ends: one stderr line per sample (`tcp_info: rtt 0.05/0.02
    /// ms cwnd 10 ssthresh - in_flight 0 (unacked 0) delivery 4.4Gbps retrans 0/0 rwnd 64 KiB
    /// ...`) on the session clock, and a "tcp_info" event in --trace. One sampler thread
    /// serves every connection. On forward both legs of each pair are sampled, each line
    /// tagged as --wire tags the leg's segments: `(client ADDR)`, or `(target ADDR from port
    /// N, client ADDR)`. At least 1ms.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub tcp_info_every: Option<Duration>,

    /// At exit, write FILE as one self-contained HTML page (inline SVG and CSS, no script,
    /// nothing fetched): a sequence diagram of the connection (this end and the peer, each
    /// segment an arrow at its time with its flags and length, the calls, and the TCP states
    /// the segments imply) and plots of cwnd, rtt, bytes in flight and throughput over time
    /// from TCP_INFO samples. Without --tcp-info-every it samples every 20ms for the page
    /// alone (no stderr lines). Segments need CAP_NET_RAW, as --wire does. `sockkit report`
    /// draws the same page from a saved --trace file.
    #[arg(long, value_name = "FILE", value_parser = parse_file_path)]
    pub report: Option<PathBuf>,
}

/// `-x`/`--hexdump-file`: a hex + ASCII view of every byte that crosses the wire.
#[derive(Args, Debug, Clone, Default)]
pub struct DumpArgs {
    /// Show each direction's bytes as a hex + ASCII dump on stderr (`>` sent, `<` received,
    /// with the offset in that direction).
    #[arg(short = 'x', long)]
    pub hexdump: bool,

    /// Write the hex dump to FILE instead of stderr (implies -x).
    #[arg(long, value_name = "FILE", value_parser = parse_file_path)]
    pub hexdump_file: Option<PathBuf>,
}

/// Limits every server puts on what clients can cost it.
#[derive(Args, Debug, Clone)]
pub struct ServerArgs {
    /// Serve at most N clients at once; further clients are refused (closed at once, logged).
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    pub max_conns: usize,

    /// Close a client once no byte has moved either way for this long (0 turns the limit off).
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

    /// For scripts: one JSON object on stderr per client as it ends (peer, sent, received,
    /// duration, rates, reason, tcp_info, tls with --tls; forward: one per pair, with
    /// client_tls and target_tls) and a totals object when the
    /// server stops, instead of -v's lines. See README.
    #[arg(long)]
    pub json: bool,
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

/// TLS for `connect`: rustls over the TCP (or Unix stream) connection.
#[derive(Args, Debug, Clone, Default)]
pub struct TlsClientArgs {
    /// Speak TLS over the connection (rustls). The server's certificate is verified against
    /// the system's roots (/etc/ssl/certs) unless --ca or --insecure; SNI is HOST (over -U:
    /// localhost) unless --sni. With SSLKEYLOGFILE=FILE in the environment the session keys are appended to FILE,
    /// so Wireshark can decrypt a capture of the session.
    #[arg(long)]
    pub tls: bool,

    /// Trust the CA certificates in this PEM file instead of the system's roots.
    #[arg(long, value_name = "FILE", value_parser = parse_file_path)]
    pub ca: Option<PathBuf>,

    /// The name to send in SNI and check the certificate against (default: HOST).
    #[arg(long, value_name = "NAME", value_parser = parse_tls_name)]
    pub sni: Option<String>,

    /// Offer these ALPN protocols, comma-separated, in order of preference (h2,http/1.1).
    #[arg(long, value_name = "PROTOS", value_delimiter = ',', value_parser = parse_tls_name)]
    pub alpn: Vec<String>,

    /// Present this client certificate (PEM chain, leaf first); needs --key.
    #[arg(long, value_name = "FILE", value_parser = parse_file_path)]
    pub cert: Option<PathBuf>,

    /// The private key of --cert (PEM).
    #[arg(long, value_name = "FILE", value_parser = parse_file_path)]
    pub key: Option<PathBuf>,

    /// Do not verify the server's certificate (said once on stderr): anyone in the middle can
    /// read and change the session.
    #[arg(long, conflicts_with = "ca")]
    pub insecure: bool,
}

/// TLS for `listen`: rustls on each accepted connection.
#[derive(Args, Debug, Clone, Default)]
pub struct TlsServerArgs {
    /// Speak TLS with each client (rustls). Without --cert/--key a self-signed certificate is
    /// made at start for the listening names, and its SHA-256 fingerprint printed after the
    /// `listening on` line so a client can pin it. SSLKEYLOGFILE=FILE appends the session keys
    /// to FILE (for Wireshark).
    #[arg(long)]
    pub tls: bool,

    /// Serve this certificate chain (PEM, leaf first); needs --key.
    #[arg(long, value_name = "FILE", value_parser = parse_file_path)]
    pub cert: Option<PathBuf>,

    /// The private key of --cert (PEM).
    #[arg(long, value_name = "FILE", value_parser = parse_file_path)]
    pub key: Option<PathBuf>,

    /// Ask each client for a certificate and verify it against the CAs in this PEM file.
    #[arg(long, value_name = "FILE", value_parser = parse_file_path)]
    pub client_ca: Option<PathBuf>,

    /// Accept these ALPN protocols, comma-separated, in order of preference.
    #[arg(long, value_name = "PROTOS", value_delimiter = ',', value_parser = parse_tls_name)]
    pub alpn: Vec<String>,

    /// How long a client may take over its TLS handshake before it is dropped (default
    /// 10s; forward: -w, or 10s): a client stalled mid-handshake costs the server only this
    /// long.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub handshake_timeout: Option<Duration>,
}

/// TLS toward forward's target: forward originates it, verified as `connect --tls` verifies.
#[derive(Args, Debug, Clone, Default)]
pub struct ToTlsArgs {
    /// Speak TLS to the target (rustls): each client's plain bytes go out encrypted. The
    /// target's certificate is verified against the system's roots unless --ca or --insecure;
    /// SNI is HOST (with --to-unix: localhost) unless --sni.
    #[arg(long)]
    pub to_tls: bool,

    /// With --to-tls: trust the CA certificates in this PEM file instead of the system's roots.
    #[arg(long, value_name = "FILE", value_parser = parse_file_path, requires = "to_tls")]
    pub ca: Option<PathBuf>,

    /// With --to-tls: the name to send in SNI and check the target's certificate against.
    #[arg(long, value_name = "NAME", value_parser = parse_tls_name, requires = "to_tls")]
    pub sni: Option<String>,

    /// With --to-tls: do not verify the target's certificate (said once on stderr).
    #[arg(long, conflicts_with = "ca", requires = "to_tls")]
    pub insecure: bool,

    /// With --to-tls: present this client certificate to the target (PEM chain, leaf
    /// first); needs --to-key. (--cert is the certificate forward --tls serves to clients.)
    #[arg(long, value_name = "FILE", value_parser = parse_file_path)]
    pub to_cert: Option<PathBuf>,

    /// With --to-tls: the private key of --to-cert (PEM).
    #[arg(long, value_name = "FILE", value_parser = parse_file_path)]
    pub to_key: Option<PathBuf>,

    /// With --to-tls: offer these ALPN protocols to the target, comma-separated, in order
    /// of preference (h2,http/1.1). (--alpn is what forward --tls accepts from clients.)
    #[arg(long, value_name = "PROTOS", value_delimiter = ',', value_parser = parse_tls_name)]
    pub to_alpn: Vec<String>,
}

/// `-v`, `-vv` and `-q`, the same on every subcommand.
#[derive(Args, Debug, Clone, Copy, Default)]
pub struct Verbosity {
    /// Say more on stderr: -v connections and totals, -vv every socket call as it happens
    /// (data calls: the first three of each, then a summary once a second), -vvv every call.
    #[arg(short = 'v', long = "verbose", action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// For learners: after each socket call, one plain sentence on what it did and why it
    /// matters, with the Java tutorial's equivalent where there is one (implies -vv).
    #[arg(long)]
    pub explain: bool,

    /// Servers do not announce `listening on ...`; errors are still printed.
    #[arg(short = 'q', long)]
    pub quiet: bool,
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
    fn parse_sees_typed_options_not_defaults() {
        let ParseResult::Run(run) = parse_from(["sockkit", "listen", "--broker", "0"]) else {
            panic!("listen --broker 0 should parse");
        };
        assert!(run.given.has("broker"));
        assert!(!run.given.has("max_conns"), "100 is only the default");
        let ParseResult::Run(run) = parse_from(["sockkit", "listen", "--max-conns", "5", "0"])
        else {
            panic!("listen --max-conns 5 0 should parse");
        };
        assert!(run.given.has("max_conns"));
    }

    #[test]
    fn option_help_needs_no_host() {
        for args in [
            &["sockkit", "connect", "-o", "help"][..],
            &["sockkit", "connect", "-o", "help", "localhost", "80"],
        ] {
            assert!(
                matches!(parse_from(args), ParseResult::Special(Special::OptionHelp)),
                "{args:?}"
            );
        }
        assert!(matches!(
            parse_from(["sockkit", "connect", "--bogus"]),
            ParseResult::Special(Special::Usage(_))
        ));
    }

    #[test]
    fn usage_errors_are_one_line() {
        let line = |args: &[&str]| {
            let e = Cli::try_parse_from(args).unwrap_err();
            crate::error::usage_line(&e)
        };
        let l = line(&["sockkit", "listen", "-1"]);
        assert_eq!(
            l,
            "sockkit: port -1 is out of range: ports go from 0 to 65535"
        );
        let l = line(&["sockkit", "connect", "localhost", "65536"]);
        assert!(
            l.starts_with("sockkit: invalid value '65536'") && !l.contains('\n'),
            "{l}"
        );
        let l = line(&["sockkit", "connect", "--bogus", "h", "1"]);
        assert!(l.contains("--bogus") && !l.contains('\n'), "{l}");
    }
}
