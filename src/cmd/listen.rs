//! `sockkit listen [ADDR] PORT`: the server side of the relay. socket, bind, listen, accept
//! one client, relay with it; with `-k`, accept the next when it leaves.

use anyhow::{Context, Result};

use crate::addr;
use crate::cli::ListenArgs;
use crate::narrate;
use crate::relay::{self, End, Relay};
use crate::socket;
use crate::sockopt::{Plan, SockKind, Stage, Value};

pub fn run(args: ListenArgs) -> Result<()> {
    if args.local.unix.is_some() || args.dgram.udp {
        return super::socktype::listen(args);
    }
    let family = args.net.family();
    let (host, port) = addr::server_endpoint(args.addr.as_deref(), args.port, None)?;
    let bind = addr::bind_target(host.as_deref(), port, family)?;
    let plan = Plan::new(&args.sockopts.opts).with_default("SO_REUSEADDR", Value::Bool(true));
    let listener = socket::listen(bind, &plan)?;
    // The plan as applied, with the defaults listening added, so --show-opts shows them.
    let plan = listener.plan.clone();
    if args.sockopts.show_opts {
        let title = format!(
            "listening fd {} ({})",
            socket::fd(&listener.socket),
            listener.local
        );
        let target = socket::target(&listener.local, SockKind::TcpListener);
        eprint!("{}", plan.show(&listener.socket, target, &title));
    }
    super::announce(&listener, args.verbosity);
    let mut relay = Relay::new(args.relay);
    let mut listening = Some(listener.socket);
    while let Some(lsock) = listening.as_ref() {
        let (conn, peer) = match socket::accept(lsock) {
            Ok(c) => c,
            // A client that gave up between SYN and accept, or a signal: not our failure.
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::ECONNABORTED) | Some(libc::EINTR)
                ) =>
            {
                continue;
            }
            Err(e) => return Err(e).context("accept()"),
        };
        if !args.keep_open {
            // One client only: stop listening so a second one is refused, not left queued.
            if let Some(l) = listening.take() {
                socket::close(l);
            }
        }
        let local = socket::local_addr(&conn)?;
        narrate::info(format_args!("accepted {peer} on {local}"));
        plan.apply(
            &conn,
            socket::target(&peer, SockKind::Tcp),
            Stage::Connected,
        )?;
        if args.sockopts.show_opts {
            let title = format!("fd {} ({local} <- {peer})", socket::fd(&conn));
            eprint!(
                "{}",
                plan.show(&conn, socket::target(&peer, SockKind::Tcp), &title)
            );
        }
        let result = relay.session(&conn);
        if let Ok(totals) = &result {
            relay::report(&conn, totals);
        }
        socket::close(conn);
        match result {
            Ok(t) if t.end == End::StdoutClosed => return Ok(()),
            Ok(_) => {}
            Err(e) if args.keep_open => {
                // One client's failure does not end a -k server; say it and serve the next.
                narrate::emit(format_args!("client {peer}: {e:#}"));
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
