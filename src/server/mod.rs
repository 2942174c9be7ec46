//! The connection engine shared by sockkit's servers (echo, knock, broker): it owns the
//! listening socket, accepts, reads and writes, and enforces the limits; a `Service` decides
//! what bytes to answer with. Services never touch sockets.
//!
//! The parts, each in its own file: the contract with services (`service.rs`) and the limits
//! (`limits.rs`); for streams (TCP and Unix, `stream.rs` hides which) the event loops
//! (`engine.rs`) and one connection (`conn.rs`); one loop for datagrams, UDP or Unix
//! (`dgram.rs`); who a
//! client is (`peer.rs`), how a server is told to stop (`stop.rs`), shared wording
//! (`report.rs`). This file only names what the rest of sockkit may use.

mod conn;
mod dgram;
mod engine;
mod limits;
mod peer;
mod report;
mod service;
mod stop;
mod stream;

pub use dgram::serve_datagrams;
pub use engine::{serve, serve_unix};
pub use limits::{DEFAULT_MAX_OWED, Limits};
pub use peer::plain_addr;
pub use service::{Event, Next, Service};
