//! sockkit: a socket toolkit that shows its work. The binary in `main.rs` is a thin shell over
//! these modules. Only what the binary, the integration tests and the benchmarks use is
//! public (the command line, the exit statuses, the option table, the joke file format); the
//! rest is the crate's own, so rustc reports code nothing uses.

mod addr;
mod capture;
pub mod cli;
mod clock;
pub mod cmd;
pub mod error;
mod interrupt;
mod json;
mod narrate;
mod progress;
mod proxy;
mod relay;
mod report;
mod scan;
mod server;
pub mod service;
mod socket;
pub mod sockopt;
mod sys;
mod tls;
mod trace;
mod value;
