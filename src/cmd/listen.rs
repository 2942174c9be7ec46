//! `sockkit listen [ADDR] PORT` (or `-U PATH`): the server side of the relay. socket, bind,
//! listen, accept one client, relay with it; with `-k`, accept the next when it leaves. On a
//! datagram socket (`-u`) there is nobody to accept: one session with whoever sends. TCP and
//! Unix streams share the one accept loop below. (`--broker`/`--chat` are broker.rs's.)

use anyhow::Result;

use super::applies::Transport;
use super::observe;
use super::options;
use super::setup::{self, Bound, Local, Place};
use super::tls::{self, ServerRelay};
use crate::capture::sample;
use crate::cli::ListenArgs;
use crate::narrate;
use crate::relay::{Channel, End, Peers, Relay};
use crate::socket;
use crate::tls::TlsRelay;

pub fn run(args: ListenArgs) -> Result<()> {
    let transport = Transport::of(args.local.unix.is_some(), args.dgram.udp);
    let tls = tls::server(&args.tls, args.addr.as_deref())?;
    let wire = options::wire(&args.wire)?;
    let relay = Relay::new(
        options::ending(&args.relay, options::Role::Server),
        wire.clone(),
    )
    .json(args.relay.json)
    .progress(options::progress(&args.relay, args.verbosity));
    if args.relay.json && args.keep_open {
        // -k ends at a stop signal: its totals object comes from there.
        crate::interrupt::keep_totals();
    }
    let (capture, observed) = observe::start(&args.capture)?;
    let place = Place::new(args.addr.as_deref(), args.port, args.net, &args.local);
    // A server's capture covers its port: the listening socket and every client's. It is
    // in place before the `listening on` line, so no client can come before it.
    let (bound, captured) =
        setup::bind_then(&place, transport, &args.sockopts, args.verbosity, |b| {
            observe::capture_server(&capture, b)
        })?;
    let channel = options::channel(args.dgram, Peers::AnswerLast, args.verbosity);
    let result = if transport.is_stream() {
        let relay = match tls {
            Some(server) => {
                tls::announce(&server, args.verbosity.quiet);
                let ending = options::ending(&args.relay, options::Role::Server);
                let relay = TlsRelay::new(ending, wire, tls::handshake_bound(&args.tls, None))
                    .json(args.relay.json)
                    .progress(options::progress(&args.relay, args.verbosity));
                ServerRelay::Tls(relay, server)
            }
            None => ServerRelay::Plain(relay),
        };
        one_client_at_a_time(bound, relay, &args)
    } else {
        datagrams(bound, relay, channel)
    };
    if let Some(c) = captured {
        c.stop();
    }
    let finished = observed.finish();
    result.and(finished)
}

/// A datagram socket: one relay session with whoever sends (stdin to the last one heard).
fn datagrams(bound: Bound, mut relay: Relay, channel: Channel) -> Result<()> {
    let result = relay.session(&bound.socket, channel);
    socket::close(bound.socket);
    drop(bound.guard);
    result.map(drop)
}

/// The accept-and-relay loop of a stream socket (TCP, Unix stream): one client, or with `-k`
/// one after another.
fn one_client_at_a_time(bound: Bound, mut relay: ServerRelay, args: &ListenArgs) -> Result<()> {
    let Bound {
        socket,
        plan,
        local,
        guard,
        ..
    } = bound;
    let mut listening = Some(socket);
    let outcome = loop {
        let Some(lsock) = listening.as_ref() else {
            break Ok(());
        };
        let client = match setup::accept(lsock, &local) {
            Ok(Some(c)) => c,
            Ok(None) => continue,
            Err(e) => break Err(e),
        };
        if !args.keep_open
            && let Some(l) = listening.take()
        {
            // One client only: stop listening so a second one is refused, not left queued.
            socket::close(l);
        }
        let here = match client.settle(&local, &plan) {
            Ok(here) => here,
            Err(e) => {
                socket::close(client.sock);
                break Err(e);
            }
        };
        if args.sockopts.show_opts {
            let title = format!("fd {} ({here} <- {})", socket::fd(&client.sock), client.who);
            crate::narrate::say(&plan.show(&client.sock, client.target, &title));
        }
        let watch = match local {
            Local::Ip { .. } => sample::watch(
                socket::fd(&client.sock),
                Some(sample::Who::Client(client.who.clone())),
            ),
            Local::Unix(_) => None,
        };
        let result = relay.session(&client.sock, Channel::Bytes);
        drop(watch);
        socket::close(client.sock);
        match result {
            Ok(End::StdoutClosed) => break Ok(()),
            Ok(_) => {}
            // One client's failure does not end a -k server; say it and serve the next.
            Err(e) if args.keep_open => {
                narrate::emit(format_args!("client {}: {e:#}", client.who));
            }
            Err(e) => break Err(e),
        }
    };
    if let Some(l) = listening {
        socket::close(l);
    }
    drop(guard);
    outcome
}
