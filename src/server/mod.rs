//! The connection engine shared by sockkit's servers (echo, knock, broker): it owns the
//! listening socket, accepts, reads and writes, and enforces the limits; a `Service` decides
//! what bytes to answer with. Services never touch sockets.
//!
//! The parts, each in its own file: the contract with services (`service.rs`) and the limits
//! (`limits.rs`); for streams (TCP and Unix, `stream.rs` hides which) the server put together
//! (`engine.rs`), the way in (`acceptor.rs`), what the loops share (`lanes.rs`), one event
//! loop (`worker.rs`), its table of clients (`slots.rs`), one connection (`conn.rs`), the
//! clients turned away at the door (`turned.rs`) and the broker's fan-out (`fanout.rs`); the
//! forwarder's loops (`forward.rs`), its two-socket connections (`pair.rs`), the SOCKS5
//! handshake a pair begins with under `--socks5` (`socks.rs`) and the proxy's it goes through
//! under `--proxy` (`via.rs`), and its UDP flows
//! (`udp_pairs.rs`); one loop for datagrams, UDP or Unix (`dgram.rs`), and the senders
//! it will not answer so it cannot become a reflector (`reflect.rs`); who a client is
//! (`peer.rs`), how a server is told to stop (`stop.rs`), shared wording (`report.rs`), and
//! `--json`'s objects for clients and totals (`summary.rs`). This
//! file only names what the rest of sockkit may use.

mod acceptor;
mod conn;
mod dgram;
mod engine;
mod fanout;
mod forward;
mod lanes;
mod limits;
mod lookup;
mod pair;
mod peer;
mod reflect;
mod report;
mod service;
mod slots;
mod socks;
mod stop;
mod stream;
mod summary;
mod turned;
mod udp_pairs;
mod via;
mod worker;

pub use dgram::serve_datagrams;
pub use engine::{serve, serve_unix};
pub use forward::{Dest, Forward, serve_forward};
pub use limits::{DEFAULT_MAX_OWED, Limits};
pub use service::{Event, Farewell, Next, Service};
pub use socks::Auth;
pub use udp_pairs::serve_udp_forward;
