//! The connection engine shared by sockkit's servers (echo, knock, broker): it owns the
//! listening socket, accepts, reads and writes, and enforces the limits; a `Service` decides
//! what bytes to answer with. Services never touch sockets.

use std::net::SocketAddr;

/// What a server does with one connection's bytes. The engine calls it; it only computes.
pub trait Service: Send + Sync + 'static {
    /// Per-connection state (a joke's progress; nothing for echo).
    type Session;

    /// A client was accepted. Anything appended to `out` is sent first (a greeting).
    fn open(&self, peer: SocketAddr, out: &mut Vec<u8>) -> Self::Session;

    /// Bytes arrived from the client; append the reply to `out`.
    fn input(&self, session: &mut Self::Session, data: &[u8], out: &mut Vec<u8>) -> Next;

    /// The client shut its sending side (EOF): append any last words to `out`.
    fn eof(&self, _session: &mut Self::Session, _out: &mut Vec<u8>) -> Next {
        Next::Close
    }
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

// Contract for the engine (implemented in this folder):
//   pub struct Limits { max_conns, idle_timeout: Option<Duration>, allow, deny, ... }
//   impl Limits { pub fn from_args(&ServerArgs) -> Limits }
//   pub fn serve<S: Service>(listener: crate::socket::Listener, plan: &crate::sockopt::Plan,
//                            limits: Limits, service: S) -> anyhow::Result<()>
// serve() runs until SIGINT/SIGTERM, then stops accepting, closes clients, prints totals (-v).
