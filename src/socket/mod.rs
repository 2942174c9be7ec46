//! Narrated socket calls for every transport sockkit speaks: TCP, UDP and Unix-domain sockets,
//! made with socket2, each call shown at `-vv` in the order it happens, with options applied
//! from the plan `sockopt` made. No relaying or serving here: engines take the sockets.
//!
//! This file only names the parts, so callers write `socket::connect_from`, `socket::close`,
//! `socket::Listener`, ... whichever file holds them:
//!
//! - `call.rs`: the calls every transport shares (socket, bind, listen, accept, names,
//!   shutdown, close) and poll(2) for readability;
//! - `state.rs`: the TCP state and TCP_INFO, as narration and `-v` show them;
//! - `tcp.rs`: connecting over candidate addresses, and accept;
//! - `listener.rs`: an IP server's socket (TCP or UDP), dual-stack by default;
//! - `proxied.rs`: a TCP connection through a SOCKS or HTTP CONNECT proxy, handshake included;
//! - `udp.rs`, `unix.rs`, `source.rs`: UDP clients, Unix sockets, a client's source address.
//!
//! The parts name each other (`super::call::fd`), never an item through this file, so the
//! module graph has no cycle (tests/layers.rs). The words for a failure come from `error`.

mod call;
mod listener;
mod proxied;
pub mod source;
mod state;
mod tcp;
pub mod udp;
pub mod unix;

pub use call::{
    close, close_dup, explain_accept, fd, local_addr, peer_addr, poll_readable, set_nonblocking,
    shutdown, target,
};
pub use listener::{Listener, bind_udp, listen, reach};
pub use proxied::{Proxy, connect_via, destination, resolves_here};
pub use state::{
    after_inprogress, bytes_acked, look, remember_end, state_suffix, tcp_info_json,
    tcp_info_summary, tcp_state,
};
pub use tcp::{accept, connect_from, tcp_socket};
