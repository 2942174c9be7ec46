//! The echo service of RFC 862: every byte a client sends is sent back to it, unchanged and in
//! order (over UDP an empty datagram too). It keeps no state; the engine bounds what a client that never reads can cost.

use std::net::SocketAddr;

use crate::server::{Next, Service};

/// RFC 862 echo: the answer to any bytes is the same bytes.
#[derive(Debug, Clone, Copy, Default)]
pub struct Echo;

impl Service for Echo {
    type Session = ();

    /// An empty datagram is echoed as an empty datagram.
    const ANSWERS_EMPTY: bool = true;

    fn open(&self, _peer: SocketAddr, _out: &mut Vec<u8>) {}

    fn input(&self, _session: &mut (), data: &[u8], out: &mut Vec<u8>) -> Next {
        out.extend_from_slice(data);
        Next::Continue
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echoes_every_byte_in_order_and_closes_at_eof() {
        let peer: SocketAddr = "127.0.0.1:7".parse().unwrap();
        let mut out = Vec::new();
        Echo.open(peer, &mut out);
        assert!(out.is_empty(), "echo has no greeting");
        let data: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
        assert_eq!(Echo.input(&mut (), &data[..10], &mut out), Next::Continue);
        assert_eq!(Echo.input(&mut (), &data[10..], &mut out), Next::Continue);
        assert_eq!(out, data);
        let mut last = Vec::new();
        assert_eq!(Echo.eof(&mut (), &mut last), Next::Close);
        assert!(last.is_empty());
    }
}
