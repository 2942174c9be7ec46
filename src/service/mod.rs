//! The services sockkit's servers plug into the connection engine (`server::Service`): pure
//! byte-in, byte-out logic that never touches a socket, so each can be tested alone.

pub mod echo;
pub mod jokes;
pub mod knock;
