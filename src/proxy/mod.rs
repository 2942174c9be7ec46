//! Proxy protocols, as bytes: the SOCKS5 (RFC 1928, with RFC 1929 username/password), SOCKS4
//! and SOCKS4a, and HTTP CONNECT (RFC 9110 §9.3.6) messages a client sends and the replies it
//! reads, encoded and decoded without any I/O, plus the `--proxy` URL. Sending them over a
//! socket, within a deadline, narrated, is `socket/proxied.rs`'s job.
//!
//! This file only names the parts: `url.rs` (the URL and the target), `socks5.rs`,
//! `socks4.rs`, `http.rs`, `step.rs` (what a decoder says about the bytes so far) and
//! `client.rs` (a client's handshake as a state machine, for an event loop).

pub mod client;
pub mod http;
pub mod socks4;
pub mod socks5;
mod step;
mod url;

pub use step::{Bad, Step};
pub use url::{Dest, ProxyUrl, Scheme};
