//! The glue for the socket types besides TCP: `connect`/`listen` with `-u` (UDP), `-U PATH`
//! (Unix stream) and `-U PATH -u` (Unix datagram), and `serve_unix` / `serve_unix_dgram`,
//! which put any `Service` (echo, knock) on a Unix stream or datagram socket. connect.rs and
//! listen.rs hand over here in one line; the sockets come from unix.rs and dgram.rs, the
//! relays from relay.rs and dgram.rs.

use std::time::Instant;

use anyhow::{Context, Result};
use socket2::{Socket, Type};

use crate::addr::{self, UnixAddr};
use crate::cli::{ConnectArgs, ListenArgs, LocalArgs, ServerArgs, SockOptArgs, Verbosity};
use crate::error::UsageError;
use crate::narrate;
use crate::relay::dgram::{self, DgramRelay, Peers};
use crate::relay::{self, End, Relay};
use crate::server::{self, Service};
use crate::socket;
use crate::socket::unix::{self, UnixListener};
use crate::sockopt::{Plan, SockKind, Stage, Target, Value};

fn unix_type(udp: bool) -> Type {
    if udp { Type::DGRAM } else { Type::STREAM }
}

fn show_opts(args: &SockOptArgs, plan: &Plan, sock: &Socket, target: Target, title: &str) {
    if args.show_opts {
        eprint!("{}", plan.show(sock, target, title));
    }
}

/// The `listening on PATH (Unix)` line, unless `-q`.
fn announce(addr: &UnixAddr, ty: Type, verbosity: Verbosity) {
    if !verbosity.quiet {
        let kind = if ty == Type::DGRAM { ", datagrams" } else { "" };
        let line = addr.announce();
        let line = match line.strip_suffix(')') {
            Some(head) => format!("{head}{kind})"),
            None => line,
        };
        narrate::emit(format_args!("listening on {line}"));
    }
}

/// `connect -u HOST PORT`, `connect -U PATH`, `connect -U PATH -u`.
pub fn connect(args: ConnectArgs) -> Result<()> {
    let plan = Plan::new(&args.sockopts.opts);
    let started = Instant::now();
    let sock = match &args.unix {
        Some(path) => {
            let ty = unix_type(args.dgram.udp);
            let sock = unix::connect(path, ty, args.timeout, &plan)?;
            narrate::info(format_args!(
                "connected to {path} (Unix, fd {})",
                socket::fd(&sock)
            ));
            let title = format!("fd {} (Unix -> {path})", socket::fd(&sock));
            show_opts(&args.sockopts, &plan, &sock, unix::target(), &title);
            sock
        }
        None => {
            let (host, port) = args.host_port()?;
            let port = addr::connect_port(port.single()?)?;
            let addrs = addr::resolve(host, port, args.net.family())?;
            let sock = crate::socket::udp::connect_udp(&addrs, &plan)?;
            let local = socket::local_addr(&sock)?;
            let peer = socket::peer_addr(&sock)?;
            narrate::info(format_args!("UDP socket {local} -> {peer}"));
            let target = socket::target(&peer, SockKind::Udp);
            let title = format!("UDP fd {} ({local} -> {peer})", socket::fd(&sock));
            show_opts(&args.sockopts, &plan, &sock, target, &title);
            sock
        }
    };
    let result = if args.dgram.udp {
        let r = DgramRelay {
            sock: &sock,
            opts: super::ending(&args.relay),
            lines: args.dgram.lines,
            peers: Peers::Connected,
            quiet: args.verbosity.quiet,
        }
        .run();
        if let Ok(c) = &r {
            dgram::report(c, started.elapsed());
        }
        r.map(drop)
    } else {
        let r = Relay::new(super::ending(&args.relay)).session(&sock);
        if let Ok(t) = &r {
            relay::report(&sock, t);
        }
        r.map(drop)
    };
    socket::close(sock);
    result
}

/// `listen -u [ADDR] PORT`, `listen -U PATH`, `listen -U PATH -u`.
pub fn listen(args: ListenArgs) -> Result<()> {
    let started = Instant::now();
    let plan = Plan::new(&args.sockopts.opts);
    if let Some(path) = &args.local.unix {
        let ty = unix_type(args.dgram.udp);
        let l = unix::bind(path, ty, &plan, args.local.unlink)?;
        if let Some(g) = &l.guard {
            g.remove_on_signal()?;
        }
        let title = format!(
            "{} fd {} ({path})",
            if ty == Type::DGRAM {
                "Unix datagram"
            } else {
                "listening Unix"
            },
            socket::fd(&l.socket)
        );
        show_opts(&args.sockopts, &l.plan, &l.socket, unix::target(), &title);
        announce(path, ty, args.verbosity);
        if ty == Type::DGRAM {
            let r = dgram_session(&l.socket, &args, started);
            socket::close(l.socket);
            drop(l.guard);
            return r;
        }
        return unix_stream_listen(l, &args);
    }
    let (host, port) = addr::server_endpoint(args.addr.as_deref(), args.port, None)?;
    let bind = addr::bind_target(host.as_deref(), port, args.net.family())?;
    let plan = plan.with_default("SO_REUSEADDR", Value::Bool(true));
    let listener = socket::bind_udp(bind, &plan)?;
    let title = format!(
        "UDP fd {} ({})",
        socket::fd(&listener.socket),
        listener.local
    );
    let target = socket::target(&listener.local, SockKind::Udp);
    show_opts(
        &args.sockopts,
        &listener.plan,
        &listener.socket,
        target,
        &title,
    );
    super::announce(&listener, args.verbosity);
    let r = dgram_session(&listener.socket, &args, started);
    socket::close(listener.socket);
    r
}

fn dgram_session(sock: &Socket, args: &ListenArgs, started: Instant) -> Result<()> {
    let r = DgramRelay {
        sock,
        opts: super::ending(&args.relay),
        lines: args.dgram.lines,
        peers: Peers::AnswerLast,
        quiet: args.verbosity.quiet,
    }
    .run();
    if let Ok(c) = &r {
        dgram::report(c, started.elapsed());
    }
    r.map(drop)
}

/// The accept-and-relay loop of `listen -U PATH` (with `-k`, one client after another).
fn unix_stream_listen(l: UnixListener, args: &ListenArgs) -> Result<()> {
    let UnixListener {
        socket: lsock,
        addr,
        plan,
        guard,
    } = l;
    let mut relay = Relay::new(super::ending(&args.relay));
    let mut listening = Some(lsock);
    let outcome = loop {
        let Some(lsock) = listening.as_ref() else {
            break Ok(());
        };
        let (conn, who) = match unix::accept(lsock) {
            Ok(c) => c,
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::ECONNABORTED) | Some(libc::EINTR)
                ) =>
            {
                continue;
            }
            Err(e) => break Err(e).context("accept()"),
        };
        if !args.keep_open
            && let Some(l) = listening.take()
        {
            // One client only: stop listening so a second one is refused, not left queued.
            socket::close(l);
        }
        narrate::info(format_args!("accepted {who} on {addr}"));
        if let Err(e) = plan.apply(&conn, unix::target(), Stage::Connected) {
            socket::close(conn);
            break Err(e);
        }
        let title = format!("fd {} ({addr} <- {who})", socket::fd(&conn));
        show_opts(&args.sockopts, &plan, &conn, unix::target(), &title);
        let result = relay.session(&conn);
        if let Ok(t) = &result {
            relay::report(&conn, t);
        }
        socket::close(conn);
        match result {
            Ok(t) if t.end == End::StdoutClosed => break Ok(()),
            Ok(_) => {}
            Err(e) if args.keep_open => narrate::emit(format_args!("client {who}: {e:#}")),
            Err(e) => break Err(e),
        }
    };
    if let Some(l) = listening {
        socket::close(l);
    }
    drop(guard);
    outcome
}

/// Serves `service` on a Unix stream socket at `addr` through the connection engine, with the
/// same limits as over TCP except `--allow`/`--deny` (Unix clients have no IP address: the
/// socket file's permissions decide who may connect). The socket file is removed at the end.
/// echo and knock call it in the same few lines.
pub fn serve_unix<S: Service>(
    addr: &UnixAddr,
    local: &LocalArgs,
    sockopts: &SockOptArgs,
    verbosity: Verbosity,
    server_args: &ServerArgs,
    service: S,
) -> Result<()> {
    no_ip_filters(server_args)?;
    let plan = Plan::new(&sockopts.opts);
    let UnixListener {
        socket: lsock,
        plan,
        guard,
        ..
    } = unix::bind(addr, Type::STREAM, &plan, local.unlink)?;
    let title = format!("listening Unix fd {} ({addr})", socket::fd(&lsock));
    show_opts(sockopts, &plan, &lsock, unix::target(), &title);
    announce(addr, Type::STREAM, verbosity);
    let r = server::serve_unix(lsock, &plan, super::limits(server_args), service);
    drop(guard);
    r
}

/// `--allow`/`--deny` with `-U`: a usage error, since they filter IP networks.
fn no_ip_filters(server_args: &ServerArgs) -> Result<()> {
    if !server_args.allow.is_empty() || !server_args.deny.is_empty() {
        return Err(UsageError::new(
            "--allow/--deny filter IP networks, and a Unix socket's clients have no IP address: \
             the socket file's permissions (chmod) decide who may connect",
        )
        .into());
    }
    Ok(())
}

/// Serves `service` on a Unix datagram socket at `addr` (`echo -U PATH -u`): each datagram
/// answered to its sender, who must have bound an address to be answerable. The connection
/// limits do not apply (there are no connections). The socket file is removed at the end.
pub fn serve_unix_dgram<S: Service>(
    addr: &UnixAddr,
    local: &LocalArgs,
    sockopts: &SockOptArgs,
    verbosity: Verbosity,
    server_args: &ServerArgs,
    service: S,
) -> Result<()> {
    no_ip_filters(server_args)?;
    let plan = Plan::new(&sockopts.opts);
    let UnixListener {
        socket: sock,
        plan,
        guard,
        ..
    } = unix::bind(addr, Type::DGRAM, &plan, local.unlink)?;
    let title = format!("Unix datagram fd {} ({addr})", socket::fd(&sock));
    show_opts(sockopts, &plan, &sock, unix::target(), &title);
    announce(addr, Type::DGRAM, verbosity);
    let r = server::serve_datagrams(sock, &super::limits(server_args), service);
    drop(guard);
    r
}
