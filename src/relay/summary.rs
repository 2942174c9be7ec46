//! `--json`: a byte-stream session's end-of-session summary as one JSON object (one line on
//! stderr), the stable schema scripts read instead of `-v`'s lines. The totals are the
//! stream's (stream.rs), TCP_INFO is socket/'s to read; this file only names the fields:
//! `local`, `peer` (addresses as strings: `ip:port`, a Unix path, or null), `sent`,
//! `received` (bytes), `duration` (seconds), `rate_up`, `rate_down` (bytes per second),
//! `end` ("closed", "quit_after", "stdout_closed"), `tcp_info` (an object, or null off TCP).

use socket2::{SockAddr, Socket};

use super::ending::End;
use super::stream::Totals;
use crate::json::{self, Object};
use crate::socket;

/// An address as a JSON value: `"127.0.0.1:4444"`, `"[::1]:80"`, a Unix path, or null
/// (an unnamed Unix socket).
fn address(a: Option<SockAddr>) -> String {
    match a {
        Some(a) => match (a.as_socket(), a.as_pathname()) {
            (Some(ip), _) => json::string(&ip.to_string()),
            (None, Some(path)) => json::string(&path.to_string_lossy()),
            _ => "null".to_string(),
        },
        None => "null".to_string(),
    }
}

/// The summary of the session on `sock` with `peer` (named when it began) that ended with `t`.
pub fn json(sock: &Socket, peer: Option<SockAddr>, t: &Totals) -> String {
    let secs = t.elapsed.as_secs_f64();
    let rate = |n: u64| if secs > 0.0 { n as f64 / secs } else { 0.0 };
    let end = match t.end {
        End::Closed => "closed",
        End::QuitAfter => "quit_after",
        End::StdoutClosed => "stdout_closed",
    };
    Object::default()
        .raw("local", address(sock.local_addr().ok()))
        .raw("peer", address(peer))
        .num("sent", t.sent)
        .num("received", t.received)
        .real("duration", secs)
        .real("rate_up", rate(t.sent))
        .real("rate_down", rate(t.received))
        .str("end", end)
        .raw(
            "tcp_info",
            socket::tcp_info_json(sock).unwrap_or_else(|| "null".to_string()),
        )
        .text()
}
