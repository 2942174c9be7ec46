//! `--json` on the servers: one JSON object on stderr per client as it ends (`"kind":
//! "client"` on echo, knock and `--broker`/`--chat`; `"kind":"pair"` on forward) and one
//! totals object when the server stops (`"kind":"totals"`). The field names are the relay
//! session's where they mean the same (relay/summary.rs: `proto`, `local`, `peer`, `sent`,
//! `received`, `duration`, `rate_up`, `rate_down`, `tcp_info`); `sent` and `received` are
//! counted from the server's side, as a session counts them from sockkit's. The loops decide
//! when an object is due and hold the counts; this file only names the fields.

use std::time::Duration;

use socket2::SockRef;

use super::acceptor::Seen;
use super::peer::Peer;
use crate::json::{self, Object};
use crate::socket;

/// A client as JSON: `"127.0.0.1:5000"`, or null for a Unix client (it has no address; its
/// credentials are in `who`).
fn peer(p: &Peer) -> (String, Option<&str>) {
    match p {
        Peer::Ip(a) => (json::string(&super::peer::plain_addr(*a).to_string()), None),
        Peer::Unix(who) => ("null".to_string(), Some(who.as_str())),
    }
}

/// `tcp`, or `unix` for a client of a Unix stream socket.
fn proto(p: &Peer) -> &'static str {
    match p {
        Peer::Ip(_) => "tcp",
        Peer::Unix(_) => "unix",
    }
}

/// What one client moved, from the server's side.
pub struct Client<'a> {
    pub peer: &'a Peer,
    pub sock: SockRef<'a>,
    /// Bytes the server read from the client.
    pub received: u64,
    /// Bytes the server wrote to it.
    pub sent: u64,
    pub elapsed: Duration,
    /// Why it ended, in words (the `-v` `closed` line's reason).
    pub reason: &'a str,
    /// With `--tls`: the `tls` object (tls/report.rs), JSON text; null without.
    pub tls: Option<String>,
}

/// One ended client of echo, knock or a broker: `kind`, `proto`, `local`, `peer`, `who`
/// (a Unix client's credentials, else null), `sent`, `received`, `duration`, `rate_up`,
/// `rate_down`, `reason`, `tcp_info`, and `tls` (an object with `--tls`, else null).
pub fn client(c: &Client) -> String {
    let secs = c.elapsed.as_secs_f64();
    let (shown, who) = peer(c.peer);
    Object::default()
        .str("kind", "client")
        .str("proto", proto(c.peer))
        .raw("local", json::address(c.sock.local_addr().ok().as_ref()))
        .raw("peer", shown)
        .opt_str("who", who)
        .num("sent", c.sent)
        .num("received", c.received)
        .real("duration", secs)
        .real("rate_up", json::rate(c.sent, secs))
        .real("rate_down", json::rate(c.received, secs))
        .str("reason", c.reason)
        .raw(
            "tcp_info",
            socket::tcp_info_json(&c.sock).unwrap_or_else(|| "null".to_string()),
        )
        .raw("tls", c.tls.clone().unwrap_or_else(|| "null".to_string()))
        .text()
}

/// The totals a stream server's loops add up.
pub struct Served {
    pub served: u64,
    pub sent: u64,
    pub received: u64,
    pub uptime: Duration,
}

/// The totals of a stream server (echo, knock, broker) when it stops: `kind`, `served`,
/// `refused_filter` (by --allow/--deny), `refused_full` (at --max-conns), `peak` (most at
/// once), `sent`, `received`, `duration` (uptime), `stopped_by` (the signal, or null).
pub fn totals(s: &Served, seen: &Seen) -> String {
    let o = refusals(totals_head(s.served), seen)
        .num("sent", s.sent)
        .num("received", s.received);
    totals_tail(o, s.uptime, seen.stopped_by)
}

/// What the acceptor turned away and the most clients at once: `refused_filter` (by
/// --allow/--deny), `refused_full` (at --max-conns), `peak`.
pub fn refusals(o: Object, seen: &Seen) -> Object {
    o.num("refused_filter", seen.refused_denied)
        .num("refused_full", seen.refused_full)
        .num("peak", seen.peak as u64)
}

/// What one forwarded pair (or UDP flow) moved.
pub struct Pair<'a> {
    pub proto: &'static str,
    /// The client, as `peer` (its address) and `who` (a Unix client's credentials).
    pub peer: &'a Peer,
    /// Our end of the client's connection, and the target's address.
    pub local: &'a str,
    pub target: &'a str,
    /// Bytes delivered to the target, and back to the client.
    pub up: u64,
    pub down: u64,
    pub elapsed: Duration,
    pub reason: &'a str,
}

/// One ended pair of `forward`: `kind` ("pair"), `proto`, `peer`, `who`, `local`, `target`,
/// `up` (bytes to the target), `down` (bytes back), `duration`, `rate_up`, `rate_down`,
/// `reason`; the caller adds its transport's own (TCP: `undelivered`, `client_tls`,
/// `target_tls` (tls/report.rs objects with `--tls`/`--to-tls`, else null); UDP: `datagrams_up`,
/// `datagrams_down`, `dropped`).
pub fn pair(p: &Pair) -> Object {
    let secs = p.elapsed.as_secs_f64();
    let (shown, who) = peer(p.peer);
    Object::default()
        .str("kind", "pair")
        .str("proto", p.proto)
        .raw("peer", shown)
        .opt_str("who", who)
        .str("local", p.local)
        .str("target", p.target)
        .num("up", p.up)
        .num("down", p.down)
        .real("duration", secs)
        .real("rate_up", json::rate(p.up, secs))
        .real("rate_down", json::rate(p.down, secs))
        .str("reason", p.reason)
}

/// The first totals fields of a server that is not a stream service (forward, the datagram
/// loops): `kind`, `served`; the caller adds its own counts, then `tail`.
pub fn totals_head(served: u64) -> Object {
    Object::default()
        .str("kind", "totals")
        .num("served", served)
}

/// The first totals fields of a datagram server (`echo -u`), which has no clients to count:
/// `kind`, `answered` (datagrams); the loop adds why others were not answered (`refused`,
/// `looping`, `limited`, `unanswerable`), `dropped` replies, `sent`, `received`, then `tail`.
pub fn datagram_totals(answered: u64) -> Object {
    Object::default()
        .str("kind", "totals")
        .num("answered", answered)
}

/// The last totals fields, the same on every server: `duration` (uptime) and `stopped_by`.
pub fn totals_tail(o: Object, uptime: Duration, stopped_by: Option<&str>) -> String {
    o.real("duration", uptime.as_secs_f64())
        .opt_str("stopped_by", stopped_by)
        .text()
}
