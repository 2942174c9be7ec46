//! The contract between the engine and a service: `Service` (what a server does with a
//! client's bytes), `Next` (what becomes of the connection after a call) and `Event` (what a
//! fan-out service is told about the others). Services compute; the engine owns every socket.
//! Nothing here runs: the stream loops (`worker.rs`) and the datagram loop (`dgram.rs`) call it.

use std::net::SocketAddr;

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

    /// True for services that answer a datagram even when the answer has no bytes: echo
    /// (RFC 862 sends back what it got, and an empty datagram is something: `connect -z -u`
    /// probes with one). Otherwise an empty answer means no reply is sent.
    const ANSWERS_EMPTY: bool = false;

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
