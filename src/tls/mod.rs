//! TLS: a stage between a stream socket and the relay (rustls with the ring provider, no
//! OpenSSL). config.rs turns the options into rustls configurations (roots, `--ca`, client and
//! server certificates, the self-signed certificate made at start), verify.rs checks the
//! peer's certificate and turns a refusal into one sentence, report.rs is the `-v` account of
//! a handshake and a certificate chain, session.rs is connect/listen's handshake and the TLS
//! link the relay's one byte-stream session runs over (relay/stream.rs), stage.rs is TLS as a non-blocking stream for the event loops (the server
//! engine, forward), records.rs reads the record layer for the `-vv` handshake narration.
//! Sockets are made elsewhere (socket/, cmd/), and the plain relay stays relay/'s.

pub mod config;
pub mod records;
pub mod report;
pub mod session;
pub mod stage;
pub mod verify;

pub use config::{ClientOptions, ServerOptions};
pub use session::TlsRelay;
pub use stage::TlsStream;
