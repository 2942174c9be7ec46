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
    let want = spelling(name);
    TABLE.iter().find(|row| names_of(row).any(|n| n == want))
}

/// A name as typed, in the form `names_of` lists: lowercase, `-` as `_`. The suggestions for
/// a mistyped name compare in this form too, so they rank what `find` would have matched.
pub(super) fn spelling(name: &str) -> String {
    name.trim().to_ascii_lowercase().replace('-', "_")
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sockopt::parse::parse_value;
    use crate::sockopt::types::{Fam, Probe, SockKind, SockOptRequest, Target};

    fn row(name: &str) -> &'static Row {
        find(name).unwrap_or_else(|| panic!("{name} is not a row"))
    }

    #[test]
    fn names_are_unique_and_every_row_is_documented() {
        let mut seen = std::collections::HashSet::new();
        for row in TABLE {
            for n in names_of(row) {
                assert!(seen.insert(n.clone()), "{n} names two rows");
            }
            assert!(
                row.doc.ends_with('.'),
                "{}: doc is not a sentence",
                row.name
            );
            let sentences = row.doc.matches(". ").count() + 1;
            assert!(
                sentences <= 2,
                "{}: doc has {sentences} sentences",
                row.name
            );
            assert!(
                row.notes.is_empty() || row.notes.ends_with('.'),
                "{}: notes are not sentences",
                row.name
            );
        }
    }

    #[test]
    fn every_row_round_trips_or_says_why_not() {
        for row in TABLE {
            match row.probe {
                Probe::Set(text) => {
                    assert!(row.set.is_some(), "{}: probe but no setter", row.name);
                    let v = parse_value(row.kind, Some(text));
                    assert!(v.is_ok(), "{}: probe {text:?}: {v:?}", row.name);
                }
                Probe::Skip(why) => assert!(why.len() > 20, "{}: say why", row.name),
            }
        }
    }

    #[test]
    fn the_rows_the_issue_names_are_all_there() {
        let mut want = vec![
            "SO_REUSEADDR",
            "SO_KEEPALIVE",
            "SO_RCVBUF",
            "SO_SNDBUF",
            "SO_LINGER",
            "SO_BROADCAST",
            "IP_TTL",
            "IPV6_UNICAST_HOPS",
            "IP_TOS",
            "IPV6_TCLASS",
            "IPV6_V6ONLY",
            "TCP_NODELAY",
            "TCP_MAXSEG",
            "backlog",
        ];
        if cfg!(target_os = "linux") {
            want.extend([
                "SO_REUSEPORT",
                "TCP_KEEPIDLE",
                "TCP_KEEPINTVL",
                "TCP_KEEPCNT",
                "SO_PRIORITY",
                "TCP_CONGESTION",
                "TCP_USER_TIMEOUT",
                "TCP_QUICKACK",
                "TCP_NOTSENT_LOWAT",
                "SO_BINDTODEVICE",
            ]);
        }
        for name in want {
            assert_eq!(row(name).name, name);
        }
        assert!(find("SO_RCVTIMEO").is_none() && NOT_OFFERED.contains("SO_RCVTIMEO"));
    }

    #[test]
    fn every_row_sits_in_the_file_of_its_level() {
        let files = [
            (socket::ROWS, "SOL_SOCKET"),
            (ip::ROWS, "IPPROTO_IP"),
            (ipv6::ROWS, "IPPROTO_IPV6"),
            (tcp::ROWS, "IPPROTO_TCP"),
            (listen::ROWS, "listen()"),
        ];
        for (rows, level) in files {
            for row in rows {
                assert_eq!(
                    row.level.to_string(),
                    level,
                    "{} is filed under {level}",
                    row.name
                );
            }
        }
        let joined: Vec<&str> = files
            .iter()
            .flat_map(|(r, _)| r.iter().map(|r| r.name))
            .collect();
        let table: Vec<&str> = TABLE.iter().map(|r| r.name).collect();
        assert_eq!(joined, table, "TABLE is the levels' rows in order");
    }

    #[test]
    fn every_spelling_finds_the_row() {
        for n in ["SO_RCVBUF", "so_rcvbuf", "rcvbuf", "RCVBUF"] {
            assert_eq!(find(n).map(|r| r.name), Some("SO_RCVBUF"), "{n}");
        }
        assert_eq!(find("nodelay").map(|r| r.name), Some("TCP_NODELAY"));
        assert_eq!(find("ttl").map(|r| r.name), Some("IP_TTL"));
        assert_eq!(find("v6only").map(|r| r.name), Some("IPV6_V6ONLY"));
        assert_eq!(
            find("unicast-hops").map(|r| r.name),
            Some("IPV6_UNICAST_HOPS")
        );
    }

    #[test]
    fn rows_say_which_socket_types_they_apply_to() {
        let unix = Target {
            kind: SockKind::Unix,
            family: Fam::Unix,
        };
        let udp4 = Target {
            kind: SockKind::Udp,
            family: Fam::V4,
        };
        let tcp4 = Target {
            kind: SockKind::Tcp,
            family: Fam::V4,
        };
        assert!(row("SO_BROADCAST").applies.admits(udp4));
        assert!(!row("SO_BROADCAST").applies.admits(tcp4));
        assert!(row("SO_RCVBUF").applies.admits(unix));
        assert!(!row("TCP_NODELAY").applies.admits(unix));
        assert!(!row("SO_REUSEADDR").applies.admits(unix));
        if cfg!(target_os = "linux") {
            for name in ["SO_PASSCRED", "SO_PEERCRED"] {
                assert!(row(name).applies.admits(unix), "{name}");
                assert!(!row(name).applies.admits(tcp4), "{name}");
                assert_eq!(row(name).applies.describe(), "Unix sockets");
            }
            let err = "peercred".parse::<SockOptRequest>().unwrap_err();
            assert!(err.contains("read-only"), "{err}");
            assert!("passcred".parse::<SockOptRequest>().is_ok());
        }
    }
}
