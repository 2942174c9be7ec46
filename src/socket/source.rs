//! Where a client's connection comes from: `-s/--source ADDR` and `-p/--source-port PORT`,
//! bound before connect (narrated like every socket call), with errors that say whether the
//! address is not this machine's or the port is taken. `socket.rs` calls it on each attempt.

use std::net::SocketAddr;

use anyhow::{Result, anyhow};
use socket2::{SockAddr, Socket};

use crate::error;
use crate::narrate;
use crate::socket;

/// `bind(fd 3, 127.0.0.1:40000) = 0` before connect, with a learner's error when it fails.
pub fn bind_source(sock: &Socket, addr: SocketAddr) -> Result<()> {
    let result = narrate::traced(
        || sock.bind(&SockAddr::from(addr)),
        |r| {
            format!(
                "bind(fd {}, {addr}) {} (source for the connect)",
                socket::fd(sock),
                narrate::outcome(r)
            )
        },
    );
    result.map_err(|e| anyhow!("{}", failure(addr, &e)))
}

/// Why the source could not be bound, worded for a learner.
pub fn failure(addr: SocketAddr, e: &std::io::Error) -> String {
    let port = addr.port();
    match e.raw_os_error() {
        Some(libc::EADDRNOTAVAIL) => format!(
            "cannot use source address {}: it is not an address of this machine ('ip addr' \
             lists the ones that are)",
            addr.ip()
        ),
        Some(libc::EADDRINUSE) => format!(
            "cannot use source port {port}: another socket holds {addr} ('ss -tanp' shows \
             which; a recent connection from it may still be in TIME_WAIT)"
        ),
        Some(libc::EACCES) if port < 1024 => format!(
            "cannot use source port {port}: ports below 1024 are privileged (root or \
             CAP_NET_BIND_SERVICE)"
        ),
        _ => format!("cannot bind source {addr}: {}", error::plain(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_name_the_cause() {
        let a: SocketAddr = "192.0.2.1:0".parse().unwrap();
        let e = std::io::Error::from_raw_os_error(libc::EADDRNOTAVAIL);
        assert!(failure(a, &e).contains("not an address of this machine"));
        let a: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let e = std::io::Error::from_raw_os_error(libc::EADDRINUSE);
        assert!(failure(a, &e).contains("source port 5000"));
    }
}
