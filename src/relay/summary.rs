//! `--json`: a relay session's end-of-session summary as one JSON object (one line on
//! stderr), the stable schema scripts read instead of `-v`'s lines. The totals are the
//! sessions' (stream.rs, dgram.rs), TCP_INFO is socket/'s to read; this file only names the
//! fields. Every session object has `kind` ("session"), `proto` ("tcp", "udp", "unix",
//! "unix_dgram"), `local`, `peer` (addresses as strings: `ip:port`, a Unix path, or null),
//! `sent`, `received` (bytes), `duration` (seconds), `rate_up`, `rate_down` (bytes per
//! second), `end` ("closed", "quit_after", "stdout_closed") and `tcp_info` (an object, or null
//! off TCP); a datagram session adds `datagrams_sent`, `datagrams_received`, `truncated` and
//! `dropped`. Each builder returns the object unfinished, so a stage that wraps the session
//! (TLS) can add its own nested object before it is written.

use std::time::Duration;

use socket2::{Domain, SockAddr, Socket};

use super::dgram::Counts;
use super::ending::End;
use super::stream::Totals;
use crate::json::{self, Object};
use crate::socket;

/// How the session ended, as `end` spells it.
fn end_name(end: End) -> &'static str {
    match end {
        End::Closed => "closed",
        End::QuitAfter => "quit_after",
        End::StdoutClosed => "stdout_closed",
    }
}

/// The transport, as `proto` spells it (the same words as `-z`'s objects where they meet).
fn proto(sock: &Socket, datagrams: bool) -> &'static str {
    let unix = sock.domain().is_ok_and(|d| d == Domain::UNIX);
    match (unix, datagrams) {
        (false, false) => "tcp",
        (false, true) => "udp",
        (true, false) => "unix",
        (true, true) => "unix_dgram",
    }
}

/// The fields that say which session it is, up to `local`: what a stop signal's object
/// (interrupt.rs) begins with too.
pub fn head(sock: &Socket, datagrams: bool) -> Object {
    Object::default()
        .str("kind", "session")
        .str("proto", proto(sock, datagrams))
        .raw("local", json::address(sock.local_addr().ok().as_ref()))
}

/// The fields every session object has, up to `end`, in schema order.
#[allow(clippy::too_many_arguments)]
fn common(
    sock: &Socket,
    datagrams: bool,
    peer: Option<&SockAddr>,
    sent: u64,
    received: u64,
    elapsed: Duration,
    end: End,
) -> Object {
    let secs = elapsed.as_secs_f64();
    head(sock, datagrams)
        .raw("peer", json::address(peer))
        .num("sent", sent)
        .num("received", received)
        .real("duration", secs)
        .real("rate_up", json::rate(sent, secs))
        .real("rate_down", json::rate(received, secs))
        .str("end", end_name(end))
}

/// The summary of the byte-stream session on `sock` with `peer` (named when it began) that
/// ended with `t`.
pub fn stream(sock: &Socket, peer: Option<&SockAddr>, t: &Totals) -> Object {
    common(sock, false, peer, t.sent, t.received, t.elapsed, t.end).raw(
        "tcp_info",
        socket::tcp_info_json(sock).unwrap_or_else(|| "null".to_string()),
    )
}

/// The summary of the datagram session on `sock` that moved `c` in `elapsed` and ended with
/// `end`. `peer` is the connected peer, or for `listen -u` the one heard from last.
pub fn datagrams(sock: &Socket, c: &Counts, elapsed: Duration, end: End) -> Object {
    common(
        sock,
        true,
        c.peer.as_ref(),
        c.sent_bytes,
        c.received_bytes,
        elapsed,
        end,
    )
    .raw("tcp_info", "null")
    .num("datagrams_sent", c.sent)
    .num("datagrams_received", c.received)
    .num("truncated", c.truncated)
    .num("dropped", socket::udp::kernel_drops(sock).unwrap_or(0))
}
