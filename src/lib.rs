//! sockkit: a socket toolkit that shows its work. The binary in `main.rs` is a thin shell over
//! these modules, which tests and benchmarks reach directly.

pub mod addr;
pub mod cli;
pub mod cmd;
pub mod error;
pub mod narrate;
pub mod relay;
pub mod scan;
pub mod server;
pub mod service;
pub mod socket;
pub mod sockopt;
pub mod sys;
pub mod value;
