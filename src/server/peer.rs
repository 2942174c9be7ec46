//! Who a client is, as every server names it in log lines, filters it by `--allow`/`--deny`
//! and tells the service: an IP address shown as a person reads it, or for a Unix-domain
//! client (which has no address worth showing) its credentials or socket name. Nothing here
//! touches a socket; `stream.rs` and `dgram.rs` fill it in.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};

/// An address as a person reads it (`addr::plain`): the one form every subcommand prints.
pub use crate::addr::plain as plain_addr;

/// Who a client is, for log lines, `--allow`/`--deny` and the service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Peer {
    Ip(SocketAddr),
    /// A Unix-domain client: `pid 1234 (uid 1000, gid 1000)` from SO_PEERCRED for a stream,
    /// the sender's socket name for a datagram.
    Unix(String),
}

impl Peer {
    /// The address a `Service` is given. A Unix client has no IP address, so it gets the
    /// unspecified one (`0.0.0.0:0`), as the `Service` contract documents.
    pub fn sock_addr(&self) -> SocketAddr {
        match self {
            Peer::Ip(a) => *a,
            Peer::Unix(_) => SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), 0),
        }
    }
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Peer::Ip(a) => write!(f, "{a}"),
            Peer::Unix(who) => write!(f, "Unix client {who}"),
        }
    }
}
