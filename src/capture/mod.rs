//! `--wire` and `--pcap`: the packets of this process's own connection, captured by the
//! kernel on a packet socket behind a BPF filter (filter.rs), decoded (decode.rs), told on
//! stderr beside the calls on the session clock (format.rs) and written as a pcap file
//! (pcap.rs). handle.rs is the small handle the commands start and stop; legs.rs follows a
//! forwarder's target connections as they open and close; sample.rs reads
//! TCP_INFO through each connection's life (`--tcp-info-every`). The socket calls
//! themselves are `crate::sys`'s.

pub mod decode;
pub mod filter;
pub mod format;
pub mod handle;
pub mod legs;
pub mod pcap;
pub mod sample;

pub use handle::{Capture, CaptureOpts, Proto, Scope};
pub use legs::{Leg, Legs};
