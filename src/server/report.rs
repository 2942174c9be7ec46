//! The words servers use about their clients that more than one loop says: counts (`1 client`,
//! `2 datagrams`) and why an I/O error ended a client. Formatting only; the loops decide when.

use std::io;

use crate::narrate;

/// `1 client`, `2 clients`.
pub fn counted(n: u64, noun: &str) -> String {
    format!("{n} {noun}{}", if n == 1 { "" } else { "s" })
}

/// Why an I/O error ended a client, worded for the `closed` line.
pub fn io_reason(op: &str, e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(libc::ECONNRESET) => "reset by the client (ECONNRESET)".to_string(),
        Some(libc::EPIPE) => "client went away before taking its answer (EPIPE)".to_string(),
        Some(code) => format!(
            "{op} failed: {} ({})",
            crate::error::plain(e),
            narrate::errno_name(code)
        ),
        None => format!("{op} failed: {}", crate::error::plain(e)),
    }
}
