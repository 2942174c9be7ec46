//! Where a client's connection comes from: `-s/--source ADDR` and `-p/--source-port PORT`,
//! bound before connect (narrated like every socket call). `tcp.rs` and the port check call it
//! on each attempt; which address fits which target is `addr::Source`'s, and the words for a
//! failure (not this machine's address, port taken) are `error::source_failure`'s.

use std::net::SocketAddr;

use anyhow::{Result, anyhow};
use socket2::{SockAddr, Socket};

use super::call;
use crate::error;

/// `bind(fd 3, 127.0.0.1:40000) = 0` before connect, with a learner's error when it fails.
pub fn bind_source(sock: &Socket, addr: SocketAddr) -> Result<()> {
    call::bind(
        sock,
        &SockAddr::from(addr),
        &addr,
        " (source for the connect)",
    )
    .map_err(|e| anyhow!("{}", error::source_failure(addr, &e)))
}
