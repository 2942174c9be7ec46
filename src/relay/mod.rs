//! The relay: stdio <-> one socket, for `connect` and `listen`. session.rs is the one
//! pipeline every transport goes through; stream.rs and dgram.rs are its two session kinds
//! (byte stream, datagrams), link.rs is what a byte stream runs over (a plain socket, or
//! TLS's link from tls/session.rs), zerocopy.rs moves a stream's bytes, wire.rs holds the stages
//! applied on the way (`--crlf`, `-x`, `--hexdump-file`), ending.rs how a session ends. The
//! relay takes its own options: it knows nothing of the command line, and makes no sockets.
//! What a stop signal does to a live session is `crate::interrupt`'s (sessions publish their
//! counters there).

pub mod dgram;
pub mod ending;
pub mod link;
pub mod session;
pub mod stream;
pub mod summary;
pub mod wire;
pub mod zerocopy;

pub use dgram::Peers;
pub use ending::{End, Ending};
pub use session::{Channel, Relay};
pub use wire::Wire;
