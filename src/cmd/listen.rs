//! `sockkit listen [ADDR] PORT`: the server side of the relay. socket, bind, listen, accept
//! one client, relay with it; with `-k`, accept the next when it leaves.

use anyhow::{Context, Result};

use crate::cli::ListenArgs;
use crate::narrate;
use crate::relay::{self, End, Relay};
use crate::socket;
use crate::sockopt::{SockKind, Stage};

pub fn run(args: ListenArgs) -> Result<()> {
    if args.local.unix.is_some() || args.dgram.udp {
        return super::socktype::listen(args);
    }
    if args.broker.broker || args.broker.chat {
        return super::broker::run(args);
    }
    let listener = super::tcp_server(
        args.addr.as_deref(),
        args.port,
        None,
        args.net.family(),
        &args.sockopts,
    )?;
    let plan = listener.plan.clone();
    super::announce(&listener, args.verbosity);
    let mut relay = Relay::new(super::ending(&args.relay)).with_wire(super::wire(&args.wire)?);
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
