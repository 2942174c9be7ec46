//! THE socket option table: one row per option, each level's rows in a file of its own
//! (`socket`, `ip`, `ipv6`, `tcp`, and `listen` for the backlog), joined here into the one
//! slice every consumer reads, and the lookup of a row by any of its spellings. Adding an
//! option is adding a row to its level's file (with the probe value the round-trip tests
//! use); what the row's fields mean is in `types`.

use crate::sockopt::types::Row;

mod ip;
mod ipv6;
mod listen;
mod socket;
mod tcp;

/// Why SO_RCVTIMEO and SO_SNDTIMEO have no row; `-o help` and the man page print it.
pub const NOT_OFFERED: &str = "SO_RCVTIMEO and SO_SNDTIMEO are not offered: sockkit waits in \
    poll(2), which they do not affect, and on Linux they would instead make a blocking connect() \
    fail with EINPROGRESS or accept() with EAGAIN. Use -w/--timeout to bound connecting and \
    --idle-timeout to end a silent session.";

/// Every option sockkit knows, grouped by level as socket(7), ip(7), ipv6(7) and tcp(7) are,
/// in the order `-o help` and the man page list them. Rows that exist only on Linux are
/// cfg-gated in their level's file.
pub static TABLE: &[Row] = &ALL;

const LEVELS: [&[Row]; 5] = [socket::ROWS, ip::ROWS, ipv6::ROWS, tcp::ROWS, listen::ROWS];
const ALL: [Row; count(&LEVELS)] = concat(&LEVELS);

/// How many rows the levels hold together.
const fn count(levels: &[&[Row]]) -> usize {
    let mut n = 0;
    let mut i = 0;
    while i < levels.len() {
        n += levels[i].len();
        i += 1;
    }
    n
}

/// The levels' rows one after another, at compile time: one array, so `TABLE` stays the
/// plain slice every consumer iterates and the files stay one per level.
const fn concat<const N: usize>(levels: &[&[Row]]) -> [Row; N] {
    let mut out = [levels[0][0]; N];
    let mut n = 0;
    let mut i = 0;
    while i < levels.len() {
        let mut j = 0;
        while j < levels[i].len() {
            out[n] = levels[i][j];
            n += 1;
            j += 1;
        }
        i += 1;
    }
    out
}

/// Finds the row for a name as typed: `SO_RCVBUF`, `so_rcvbuf`, `rcvbuf`, `RCVBUF`.
pub fn find(name: &str) -> Option<&'static Row> {
    let want = name.trim().to_ascii_lowercase().replace('-', "_");
    TABLE.iter().find(|row| names_of(row).any(|n| n == want))
}

/// Every spelling a row answers to, lowercase: the name, the name without its prefix, aliases.
pub fn names_of(row: &Row) -> impl Iterator<Item = String> + '_ {
    let full = row.name.to_ascii_lowercase();
    let short = ["so_", "tcp_", "ipv6_", "ip_"]
        .iter()
        .find_map(|p| full.strip_prefix(p))
        .map(str::to_string);
    let mut names = vec![full.clone()];
    for n in short
        .into_iter()
        .chain(row.aliases.iter().map(|a| a.to_ascii_lowercase()))
    {
        if !names.contains(&n) {
            names.push(n);
        }
    }
    names.into_iter()
}
