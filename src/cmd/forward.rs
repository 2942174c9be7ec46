//! `sockkit forward [ADDR] PORT HOST PORT` (and `-U PATH` to listen on a Unix socket,
//! `--to-unix PATH` to forward to one, `-u` for UDP): glue only. It sorts out the positional endpoints,
//! checks the target once before listening (it resolves, it is not port 0, it is not the
//! listening address itself, which would loop), binds as every server does (setup.rs), and
//! hands the socket to the forwarding engine (`server::serve_forward`), with the capture of
//! both legs when asked (`--wire`: the clients' port here, each target leg as the engine
//! opens it). Moving bytes is the engine's.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::Duration;

use anyhow::Result;

use super::applies::Transport;
use super::observe;
use super::options;
use super::setup::{self, Local, Place};
use super::tls;
use crate::addr::{self, PortArg};
use crate::capture::Capture;
use crate::cli::{ForwardArgs, ProxyArgs, ProxyDns};
use crate::error::UsageError;
use crate::narrate;
use crate::server::{self, Auth, Dest, Forward};
use crate::sockopt::{Plan, SockOptRequest};

/// How long each connect attempt to the target may take without `-w`.
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

pub fn run(args: ForwardArgs) -> Result<()> {
    if args
        .to_opts
        .iter()
        .any(|o| matches!(o, SockOptRequest::Help))
    {
        return Err(UsageError::new("--to-opt help: the list is `sockkit forward -o help`").into());
    }
    if args.udp && (args.unix.is_some() || args.to_unix.is_some()) {
        return Err(UsageError::new(
            "-u forwards UDP between IP addresses: it cannot be used with -U or --to-unix",
        )
        .into());
    }
    if args.udp && args.timeout.is_some() {
        return Err(UsageError::new(
            "-w bounds a TCP connect; with -u there is none (UDP connect() sends nothing)",
        )
        .into());
    }
    if args.udp && args.server.threads.is_some() {
        return Err(UsageError::new(
            "--threads: UDP forwarding runs on one event loop (one socket receives every client)",
        )
        .into());
    }
    if args.unix.is_some() && !(args.server.allow.is_empty() && args.server.deny.is_empty()) {
        return Err(UsageError::new(
            "--allow/--deny filter IP addresses, which a client of -U PATH does not have \
             (the socket file's permissions decide who may connect)",
        )
        .into());
    }
    if args.unix.is_some() && args.to_unix.is_some() && (args.net.ipv4 || args.net.ipv6) {
        return Err(UsageError::new(
            "-4/-6 choose an IP family, and with -U PATH and --to-unix PATH no IP is used",
        )
        .into());
    }
    refuse_capture(&args)?;
    if (args.tls.tls || args.to_tls.to_tls) && args.udp {
        return Err(UsageError::new(
            "--tls and --to-tls need a byte stream: datagrams would need DTLS, which sockkit \
             does not speak",
        )
        .into());
    }
    if (args.tls.tls || args.to_tls.to_tls) && args.socks5 {
        return Err(UsageError::new(
            "--tls and --to-tls are not offered with --socks5: the SOCKS5 handshake comes first \
             and each client names its own target",
        )
        .into());
    }
    let (listen, target) = split(&args)?;
    let family = args.net.family();
    let dest = match (&args.to_unix, target) {
        _ if args.socks5 => Dest::Socks5 {
            auth: args
                .proxy_auth
                .clone()
                .map(|(user, pass)| Auth { user, pass }),
            family,
        },
        (Some(path), _) => Dest::Unix(path.clone()),
        (None, Some((host, port))) => {
            let port = addr::connect_port(port.parse::<PortArg>().map_err(UsageError::new)?)?;
            // Checked once now, so a typo fails before anything listens; resolved again for
            // each client. Through a proxy the name may be known only there.
            if args.proxy.is_none() || args.proxy_dns == ProxyDns::Local {
                addr::resolve(&host, port, family)?;
            }
            Dest::Ip { host, port, family }
        }
        (None, None) => {
            return Err(UsageError::new("forward needs HOST PORT (or --to-unix PATH)").into());
        }
    };
    let to_host = match &dest {
        Dest::Ip { host, .. } => host.as_str(),
        // A Unix socket has no host name: the certificate is checked for `localhost`.
        _ => "localhost",
    };
    let to_tls = tls::originate(&args.to_tls, to_host)?;
    let listen_name = listen.as_ref().and_then(|(a, _)| a.as_deref());
    let server_tls = tls::engine_server(&args.tls, listen_name)?;
    let dump = options::dump(&args.dump)?;
    // Checked before anything binds: a refused limit (--max-conns 0) must not follow a
    // `listening on` line.
    let limits = options::limits(&args.server)?;
    let (laddr, lport) = match listen {
        Some((a, p)) => (a, Some(p.parse::<PortArg>().map_err(UsageError::new)?)),
        None => (None, None),
    };
    let (capture, observed) = observe::start(&args.capture)?;
    let place = Place {
        addr: laddr.as_deref(),
        port: lport,
        default_port: None,
        family,
        unix: args.unix.as_ref(),
        unlink: args.unlink,
    };
    let transport = Transport::of(args.unix.is_some(), args.udp);
    let proxy = options::proxy(&ProxyArgs {
        proxy: args.proxy.clone(),
        proxy_dns: args.proxy_dns,
    });
    // Capture on `lo` alone when every address a target leg may go to is there: the
    // target's, or through --proxy the proxy's; with --socks5 any address may be asked for.
    let all_loopback = |host: &str, port: u16, family| {
        addr::resolve(host, port, family)
            .is_ok_and(|a| !a.is_empty() && a.iter().all(|a| a.ip().is_loopback()))
    };
    let loopback = capture.wanted()
        && match (&proxy, &dest) {
            (Some(p), _) => all_loopback(&p.url.host, p.url.port, crate::addr::Family::Any),
            (None, Dest::Ip { host, port, family }) => all_loopback(host, *port, *family),
            (None, Dest::Unix(_)) => true,
            (None, Dest::Socks5 { .. }) => false,
        };
    // The capture is in place before the `listening on` line: no client comes before it.
    // Each target leg is registered with it as its connect starts (the engine's).
    let (bound, captured) =
        setup::bind_then(&place, transport, &args.sockopts, args.verbosity, |b| {
            let captured = observe::capture_forward(&capture, b, loopback);
            if captured.is_some() {
                say_unwired(&args);
            }
            captured
        })?;
    refuse_loop(&bound.local, &dest)?;
    // -w bounds the TLS handshakes too, as it bounds a SOCKS5 client's; a client's
    // (--tls) may be given its own bound, --handshake-timeout, as on the other servers.
    let handshake = args.timeout.unwrap_or(tls::HANDSHAKE_TIMEOUT);
    let server_tls = tls::engine_accept(
        server_tls,
        args.verbosity.quiet,
        tls::handshake_bound(&args.tls, args.timeout),
    );
    let to_tls = to_tls.map(|o| tls::Originate { handshake, ..o });
    let fwd = Forward {
        proxy,
        dest,
        connect_timeout: args.timeout.unwrap_or(DEFAULT_CONNECT_TIMEOUT),
        out_plan: Plan::new(&args.to_opts),
        show_opts: args.sockopts.show_opts,
        dump,
        tls: server_tls,
        to_tls,
        legs: captured.as_ref().map(Capture::legs),
    };
    let setup::Bound {
        socket,
        plan,
        guard,
        ..
    } = bound;
    let result = if args.udp {
        server::serve_udp_forward(socket, &limits, &fwd)
    } else {
        server::serve_forward(socket, args.unix.is_some(), &plan, limits, &fwd)
    };
    drop(guard);
    if let Some(c) = captured {
        c.stop();
    }
    result.and(observed.finish())
}

/// The capture options forward cannot honour, refused with the reason: packets need IP on
/// at least one leg; TCP_INFO needs TCP.
fn refuse_capture(args: &ForwardArgs) -> Result<(), UsageError> {
    let c = &args.capture;
    let packets = c.wire || c.pcap.is_some() || c.report.is_some();
    if packets && args.unix.is_some() && args.to_unix.is_some() {
        return Err(UsageError::new(
            "--wire/--pcap/--report capture IP packets, and with -U and --to-unix both legs are \
             Unix sockets, which put none on a network wire (--trace records the calls)",
        ));
    }
    if c.tcp_info_every.is_some() && (args.udp || args.unix.is_some() && args.to_unix.is_some()) {
        return Err(UsageError::new(
            "--tcp-info-every samples TCP_INFO of each TCP leg (client and target), and with -u, \
             or with -U and --to-unix, no leg is TCP",
        ));
    }
    Ok(())
}

/// Said once when capture starts and one leg is a Unix socket: only the other is captured.
fn say_unwired(args: &ForwardArgs) {
    if let Some(path) = &args.unix {
        narrate::emit(format_args!(
            "wire: the client leg is a Unix socket (-U {path}), which has no wire: only the \
             target legs are captured"
        ));
    }
    if let Some(path) = &args.to_unix {
        narrate::emit(format_args!(
            "wire: the target leg is a Unix socket (--to-unix {path}), which has no wire: only \
             the client legs are captured"
        ));
    }
}

/// `[ADDR] PORT` to listen on, as typed.
type Endpoint = (Option<String>, String);
/// `HOST PORT` to forward to, as typed.
type TargetWords = (String, String);

/// The positional words: `[ADDR] PORT` unless -U, then `HOST PORT` unless --to-unix.
fn split(args: &ForwardArgs) -> Result<(Option<Endpoint>, Option<TargetWords>), UsageError> {
    let words = &args.endpoints;
    let target_words = if args.to_unix.is_some() || args.socks5 {
        0
    } else {
        2
    };
    let listen_words = words.len().checked_sub(target_words);
    let wanted = || -> UsageError {
        UsageError::new(format!(
            "forward takes {}{}; got {} word{}",
            if args.unix.is_some() {
                ""
            } else {
                "[ADDR] PORT to listen on"
            },
            match (args.unix.is_some(), args.to_unix.is_some() || args.socks5) {
                (true, true) if args.socks5 => {
                    "no HOST PORT with -U PATH and --socks5 (each client names its target)"
                        .to_string()
                }
                (true, true) => "no HOST PORT with -U PATH and --to-unix PATH".to_string(),
                (true, false) => "HOST PORT to forward to after -U PATH".to_string(),
                (false, true) if args.socks5 => {
                    " (with --socks5 each client names its target)".to_string()
                }
                (false, true) => " (the target is --to-unix PATH)".to_string(),
                (false, false) => ", then HOST PORT to forward to".to_string(),
            },
            words.len(),
            if words.len() == 1 { "" } else { "s" }
        ))
    };
    let listen = match (args.unix.is_some(), listen_words) {
        (true, Some(0)) => None,
        (false, Some(1)) => Some((None, words[0].clone())),
        (false, Some(2)) => Some((Some(words[0].clone()), words[1].clone())),
        _ => return Err(wanted()),
    };
    let target = (target_words == 2).then(|| {
        let n = words.len();
        (words[n - 2].clone(), words[n - 1].clone())
    });
    Ok((listen, target))
}

/// Refuses a target that is the listening socket itself: each client would be forwarded to
/// the forwarder, which would forward that connection again, without end.
fn refuse_loop(local: &Local, dest: &Dest) -> Result<(), UsageError> {
    let looped = match (local, dest) {
        (Local::Unix(l), Dest::Unix(d)) => l == d,
        (Local::Ip { addr: l, .. }, Dest::Ip { host, port, family }) => {
            *port == l.port()
                && addr::resolve(host, *port, *family)
                    .unwrap_or_default()
                    .iter()
                    .any(|t| same_host(*l, *t))
        }
        _ => false,
    };
    if looped {
        return Err(UsageError::new(
            "the target is the address forward listens on: each client would be forwarded to \
             itself, without end",
        ));
    }
    Ok(())
}

/// Whether `target` reaches the socket listening on `listen` (same port assumed): the same
/// address, or any address of this host when it listens on all of them.
fn same_host(listen: SocketAddr, target: SocketAddr) -> bool {
    let (l, t) = (listen.ip().to_canonical(), target.ip().to_canonical());
    if l == t {
        return true;
    }
    if !l.is_unspecified() {
        return false;
    }
    // Listening on every address: the target loops if it is one of ours (binding to it works).
    t.is_unspecified() || t.is_loopback() || is_ours(t)
}

fn is_ours(ip: IpAddr) -> bool {
    UdpSocket::bind((ip, 0)).is_ok()
}
