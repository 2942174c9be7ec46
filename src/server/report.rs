//! The words servers use about their clients that more than one loop says: counts (`1 client`,
//! `2 datagrams`). Formatting only; the loops decide when. Why an I/O error ended a client is
//! `error::client_io_failure`, beside every other errno sentence.

/// `1 client`, `2 clients`.
pub fn counted(n: u64, noun: &str) -> String {
    format!("{n} {noun}{}", if n == 1 { "" } else { "s" })
}
