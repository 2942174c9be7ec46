//! The services sockkit's servers plug into the connection engine (`server::Service`): pure
//! byte-in, byte-out logic that never touches a socket, so each can be tested alone.

pub(crate) mod broker;
pub(crate) mod dumped;
pub(crate) mod echo;
pub mod jokes;
pub(crate) mod knock;
