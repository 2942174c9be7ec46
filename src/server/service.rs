//! The contract between the engine and a service: `Service` (what a server does with a
//! client's bytes), `Next` (what becomes of the connection after a call), `Event` (what a
//! fan-out service is told about the others) and `Farewell` (why the engine ends a client).
//! Services compute; the engine owns every socket.
//! Nothing here runs: the stream loops (`worker.rs`) and the datagram loop (`dgram.rs`) call it.

use std::net::SocketAddr;
use std::time::Duration;

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

    /// The server is ending this client for `why` (not a rule the service itself enforced:
    /// those are `Next::Drop`, whose words the service writes with it): append the one line
    /// that tells the client, where the protocol has lines. The engine then shuts its side
    /// and drains the client's input for a bounded time before close, so the line is not
    /// lost to a reset. A byte protocol (echo, the raw broker) says nothing.
    fn farewell(&self, _why: &Farewell, _out: &mut Vec<u8>) {}

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

/// Why the engine is ending a client, for the service's `farewell` line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Farewell {
    /// Nothing moved either way for this long (`--idle-timeout`).
    Idle(Duration),
    /// The server is stopping (SIGINT, SIGTERM).
    Stopping,
    /// Turned away at the door: this many clients (`--max-conns`) are served already.
    Full(usize),
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
    /// The client broke a rule: the reason is logged (always, `-v` or not), then as `Close`:
    /// what is owed in `out` (the service's word to the client) is sent, and the connection
    /// closes without a reset eating it.
    Drop(String),
}
