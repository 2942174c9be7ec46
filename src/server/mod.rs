//! The connection engine shared by sockkit's servers (echo, knock, broker): it owns the
//! listening socket, accepts, reads and writes, and enforces the limits; a `Service` decides
//! what bytes to answer with. Services never touch sockets. This file holds the contract
//! (`Service`, `Next`) and the limits; `engine.rs` runs TCP and Unix streams (`stream.rs`
//! hides which), `dgram.rs` UDP and Unix datagrams.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use crate::addr::Cidr;

/// What a server does with one connection's bytes. The engine calls it; it only computes.
pub trait Service: Send + Sync + 'static {
    /// Per-connection state (a joke's progress; nothing for echo).
    type Session;

    /// A client was accepted. Anything appended to `out` is sent first (a greeting). A
    /// Unix-domain client (`-U`) has no IP address: it comes as `0.0.0.0:0`.
    fn open(&self, peer: SocketAddr, out: &mut Vec<u8>) -> Self::Session;

    /// Bytes arrived from the client; append the reply to `out`.
    fn input(&self, session: &mut Self::Session, data: &[u8], out: &mut Vec<u8>) -> Next;

    /// The client shut its sending side (EOF): append any last words to `out`.
    fn eof(&self, _session: &mut Self::Session, _out: &mut Vec<u8>) -> Next {
        Next::Close
    }

    /// True for services whose clients talk to each other (broker, chat). The engine then runs
    /// a single event loop, so every client is within reach of every other, and calls `share`.
    const FAN_OUT: bool = false;

    /// Fan-out (only when `FAN_OUT`): what the other clients get when this one does something.
    /// Bytes appended to `others` go to every other client, never back to this one; a client
    /// that is owed more than `Limits::max_owed` by then is dropped (it is not reading), so one
    /// slow reader neither holds the others back nor grows the server's memory.
    fn share(&self, _session: &mut Self::Session, _event: Event, _others: &mut Vec<u8>) {}
}

/// What happened to a client, as told to a fan-out service's `share`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event<'a> {
    /// Accepted (after `open`).
    Joined,
    /// These bytes arrived from it (after `input`).
    Data(&'a [u8]),
    /// It shut its sending side (after `eof`).
    Eof,
    /// The connection is gone, for this reason; the session ends with this call.
    Left(&'a str),
}

/// What the engine does with a connection after a service call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Keep the connection.
    Continue,
    /// Send what is owed in `out`, then close.
    Close,
    /// Close now, for this reason (logged): the client broke a rule.
    Drop(String),
}

mod conn;
mod dgram;
mod engine;
mod stop;
pub mod stream;

pub use dgram::serve_datagrams;
pub use engine::{serve, serve_unix};

/// What every server puts on what its clients can cost it: how many at once, how long silent,
/// from where, and how many unsent bytes one may be owed before the server stops reading it.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_conns: usize,
    /// `None`: a silent client may stay forever.
    pub idle_timeout: Option<Duration>,
    pub allow: Vec<Cidr>,
    pub deny: Vec<Cidr>,
    /// Bytes owed to one client (written by the service, not yet taken by the kernel) at which
    /// the engine stops reading from it: a client that sends but never reads costs at most this.
    pub max_owed: usize,
    /// Event-loop threads; clients are shared out among them at accept.
    pub threads: usize,
}

/// The default cap on what one client may be owed: a few socket buffers' worth.
pub const DEFAULT_MAX_OWED: usize = 64 * 1024;

impl Limits {
    /// Why a client at `ip` is refused by `--deny`/`--allow`, or `None` when it may come in.
    /// Deny rules are checked first, so a denied host inside an allowed network stays out.
    pub fn refuses(&self, ip: IpAddr) -> Option<String> {
        if let Some(net) = self.deny.iter().find(|n| n.contains(ip)) {
            return Some(format!("matches --deny {net}"));
        }
        if !self.allow.is_empty() && !self.allow.iter().any(|n| n.contains(ip)) {
            return Some("outside every --allow network".to_string());
        }
        None
    }
}

/// An address as a person reads it: an IPv4 client on a dual-stack socket shows as
/// `127.0.0.1:5000`, not `[::ffff:127.0.0.1]:5000`.
pub fn plain_addr(a: SocketAddr) -> SocketAddr {
    SocketAddr::new(a.ip().to_canonical(), a.port())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(allow: &[&str], deny: &[&str]) -> Limits {
        Limits {
            max_conns: 1,
            idle_timeout: None,
            allow: allow.iter().map(|s| s.parse().unwrap()).collect(),
            deny: deny.iter().map(|s| s.parse().unwrap()).collect(),
            max_owed: DEFAULT_MAX_OWED,
            threads: 1,
        }
    }

    #[test]
    fn deny_wins_over_allow_and_mapped_ipv4_matches() {
        let l = limits(&["127.0.0.0/8"], &["127.0.0.2"]);
        assert_eq!(l.refuses("127.0.0.1".parse().unwrap()), None);
        assert_eq!(l.refuses("::ffff:127.0.0.1".parse().unwrap()), None);
        assert!(
            l.refuses("127.0.0.2".parse().unwrap())
                .unwrap()
                .contains("--deny 127.0.0.2/32")
        );
        assert!(
            l.refuses("::1".parse().unwrap())
                .unwrap()
                .contains("--allow")
        );
        assert_eq!(limits(&[], &[]).refuses("::1".parse().unwrap()), None);
    }
}
