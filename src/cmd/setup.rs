//! The server side of every subcommand, whatever the transport: where a server binds (`[ADDR]
//! [PORT]` or `-U PATH`), its socket plan, the socket itself (TCP, UDP, Unix stream, Unix
//! datagram), `--show-opts`, the `listening on` line, one accept for `listen`'s loop, and the
//! hand-over to the server engine with or without the hex view. Clients' sockets are made in
//! connect.rs; the socket calls themselves are `socket`'s.

use std::net::SocketAddr;

use anyhow::{Context, Result};
use socket2::{Socket, Type};

use super::applies::Transport;
use crate::addr::{self, Family, PortArg, UnixAddr};
use crate::cli::{LocalArgs, NetArgs, SockOptArgs, Verbosity};
use crate::interrupt;
use crate::narrate;
use crate::relay::wire::Dump;
use crate::server::{self, Limits, Service};
use crate::service::dumped::Dumped;
use crate::socket::unix::{self, PathGuard, UnixListener};
use crate::socket::{self, Listener};
use crate::sockopt::{Plan, SockKind, Stage, Target, Value};
use crate::tls::stage::Accept;

/// Where a server binds: `[ADDR] [PORT]` (with a subcommand's default port), or `-U PATH`.
pub struct Place<'a> {
    pub addr: Option<&'a str>,
    pub port: Option<PortArg>,
    pub default_port: Option<u16>,
    pub family: Family,
    pub unix: Option<&'a UnixAddr>,
    pub unlink: bool,
}

impl<'a> Place<'a> {
    /// `[ADDR] [PORT]` or `-U PATH`, as every server subcommand takes them.
    pub fn new(
        addr: Option<&'a str>,
        port: Option<PortArg>,
        net: NetArgs,
        local: &'a LocalArgs,
    ) -> Self {
        Place {
            addr,
            port,
            default_port: None,
            family: net.family(),
            unix: local.unix.as_ref(),
            unlink: local.unlink,
        }
    }
}

/// The local end of a server's socket, for the announcement and the engine.
pub enum Local {
    Ip {
        addr: SocketAddr,
        scope: &'static str,
    },
    Unix(UnixAddr),
}

/// A server's socket: bound, listening if it is a stream, shown and announced.
pub struct Bound {
    pub socket: Socket,
    pub transport: Transport,
    /// The plan as applied, with the defaults binding added, so `--show-opts` shows them.
    pub plan: Plan,
    pub local: Local,
    /// Unlinks a Unix socket file when dropped.
    pub guard: Option<PathGuard>,
}

/// The socket plan of every server: the user's `-o`, plus SO_REUSEADDR on an IP socket so a
/// restarted server need not wait out TIME_WAIT (`-o reuseaddr=0` turns it off).
fn server_plan(sockopts: &SockOptArgs, unix: bool) -> Plan {
    let plan = Plan::new(&sockopts.opts);
    if unix {
        plan
    } else {
        plan.with_default("SO_REUSEADDR", Value::Bool(true))
    }
}

/// socket, setsockopt, bind (and listen, for a stream) with the server plan, then
/// `before_announcing` on the bound socket (what must be in place before a client can know
/// the port: the capture of `--wire`), then `--show-opts` and the `listening on` line.
pub fn bind_then<T>(
    place: &Place,
    transport: Transport,
    sockopts: &SockOptArgs,
    verbosity: Verbosity,
    before_announcing: impl FnOnce(&Bound) -> T,
) -> Result<(Bound, T)> {
    let plan = server_plan(sockopts, place.unix.is_some());
    let bound = if let Some(path) = place.unix {
        let ty = if transport.is_stream() {
            Type::STREAM
        } else {
            Type::DGRAM
        };
        let l: UnixListener = unix::bind(path, ty, &plan, place.unlink)?;
        Bound {
            socket: l.socket,
            transport,
            plan: l.plan,
            local: Local::Unix(l.addr),
            guard: l.guard,
        }
    } else {
        let (host, port) = addr::server_endpoint(place.addr, place.port, place.default_port)?;
        let bind = addr::bind_target(host.as_deref(), port, place.family)?;
        let l = if transport.is_stream() {
            socket::listen(bind, &plan)?
        } else {
            socket::bind_udp(bind, &plan)?
        };
        Bound {
            socket: l.socket,
            transport,
            plan: l.plan,
            local: Local::Ip {
                addr: l.local,
                scope: l.scope,
            },
            guard: None,
        }
    };
    // A stop signal before the engine takes signals over (or any time in `listen`'s relay)
    // ends the process from the signal thread: the socket file must not outlive it.
    if let Some(g) = &bound.guard {
        let twin = g.twin();
        interrupt::on_stop(move || drop(twin));
    }
    if sockopts.show_opts {
        let what = match bound.transport {
            Transport::Tcp => "listening",
            Transport::Udp => "UDP",
            Transport::UnixStream => "listening Unix",
            Transport::UnixDgram => "Unix datagram",
        };
        let fd = socket::fd(&bound.socket);
        let (place, target) = match &bound.local {
            Local::Ip { addr, .. } => {
                let kind = if bound.transport.is_stream() {
                    SockKind::TcpListener
                } else {
                    SockKind::Udp
                };
                (addr.to_string(), socket::target(addr, kind))
            }
            Local::Unix(path) => (path.to_string(), unix::target()),
        };
        let title = format!("{what} fd {fd} ({place})");
        crate::narrate::say(&bound.plan.show(&bound.socket, target, &title));
    }
    let then = before_announcing(&bound);
    if !verbosity.quiet {
        announce(&bound);
    }
    Ok((bound, then))
}

/// The `listening on ADDR (scope), REACH` line every server prints when ready: which
/// families it serves and whether other machines can reach it. Tests and scripts read the
/// port from it when they asked for port 0.
fn announce(bound: &Bound) {
    match &bound.local {
        Local::Ip { addr, scope } => narrate::emit(format_args!(
            "listening on {addr} {scope}, {}",
            socket::reach(addr)
        )),
        Local::Unix(path) => {
            let line = path.announce();
            let line = match line.strip_suffix(')') {
                Some(head) if !bound.transport.is_stream() => format!("{head}, datagrams)"),
                _ => line,
            };
            narrate::emit(format_args!("listening on {line}"));
        }
    }
}

/// A client `accept` took.
pub struct Accepted {
    pub sock: Socket,
    /// Who it is: `127.0.0.1:5000` (an IPv4 client of a dual-stack socket too, as every
    /// server names it), or a Unix client's credentials.
    pub who: String,
    pub target: Target,
}

/// accept() on a listening stream socket. `None`: a client gave up between SYN and accept, or
/// a signal came: not our failure, accept again.
pub fn accept(listener: &Socket, local: &Local) -> Result<Option<Accepted>> {
    let got = match local {
        Local::Ip { .. } => socket::accept(listener).map(|(sock, peer)| {
            let target = socket::target(&peer, SockKind::Tcp);
            (sock, addr::plain(peer).to_string(), target)
        }),
        Local::Unix(_) => unix::accept(listener).map(|(sock, who)| (sock, who, unix::target())),
    };
    match got {
        Ok((sock, who, target)) => Ok(Some(Accepted { sock, who, target })),
        Err(e) if matches!(e.raw_os_error(), Some(libc::ECONNABORTED | libc::EINTR)) => Ok(None),
        Err(e) => Err(e).context("accept()"),
    }
}

impl Accepted {
    /// Says who came in where (`-v`) and applies the plan's options for connected sockets;
    /// returns the server's end it came in on, for `--show-opts`.
    pub fn settle(&self, local: &Local, plan: &Plan) -> Result<String> {
        let local = match local {
            Local::Ip { .. } => addr::plain(socket::local_addr(&self.sock)?).to_string(),
            Local::Unix(path) => path.to_string(),
        };
        narrate::info(format_args!("accepted {} on {local}", self.who));
        plan.apply(&self.sock, self.target, Stage::Connected)?;
        Ok(local)
    }
}

/// Serves `service` on `bound` through the server engine until SIGINT or SIGTERM, with each
/// client's bytes in the hex view when `dump` is given and over TLS when `tls` is: a stream on the connection engine, a
/// datagram socket on the datagram loop (where the connection limits do not apply). A Unix
/// socket file is removed at the end.
pub fn serve<S: Service>(
    bound: Bound,
    limits: Limits,
    service: S,
    dump: Option<Dump>,
    tls: Option<Accept>,
) -> Result<()> {
    let tls = tls.as_ref();
    match dump {
        Some(dump) => serve_as(
            bound,
            limits,
            Dumped {
                inner: service,
                dump,
            },
            tls,
        ),
        None => serve_as(bound, limits, service, tls),
    }
}

fn serve_as<S: Service>(
    bound: Bound,
    limits: Limits,
    service: S,
    tls: Option<&Accept>,
) -> Result<()> {
    let Bound {
        socket,
        transport,
        plan,
        local,
        guard,
    } = bound;
    let result = match (local, transport.is_stream()) {
        (Local::Ip { addr, scope }, stream) => {
            let listener = Listener {
                socket,
                local: addr,
                scope,
                plan: plan.clone(),
            };
            if stream {
                server::serve(listener, &plan, limits, service, tls)
            } else {
                server::serve_datagrams(listener.socket, &limits, service)
            }
        }
        (Local::Unix(_), true) => server::serve_unix(socket, &plan, limits, service, tls),
        (Local::Unix(_), false) => server::serve_datagrams(socket, &limits, service),
    };
    drop(guard);
    result
}
