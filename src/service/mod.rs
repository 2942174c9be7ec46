//! The services sockkit's servers offer, each the logic of one protocol and nothing else:
//! bytes in, bytes out, through the `Service` trait of `server/`, which owns the sockets.

pub mod jokes;
pub mod knock;
