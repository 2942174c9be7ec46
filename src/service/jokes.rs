//! The jokes `sockkit knock` tells: the built-in set written for sockkit, and the parser for a
//! `--jokes FILE` of `clue<TAB>punchline` lines. It checks a file whole before the server
//! starts, so a mistake is reported with its line number instead of surfacing mid-joke. The
//! conversation that tells the jokes lives in `knock.rs`.
//!
//! File format, one joke per line:
//!
//! ```text
//! # comments start with '#'; blank lines are skipped
//! Socket<TAB>Socket to me: I've been listening on port 4444 all day!
//! ```
//!
//! Exactly one TAB separates the clue from the punchline; spaces around either are trimmed.
//! Lines may end in LF or CRLF, and a UTF-8 byte-order mark at the start is ignored.

use std::fmt;
use std::io::Read;
use std::path::Path;

use anyhow::{Context, Result};

use crate::error::UsageError;

/// The longest line the server accepts from a client (without its line ending).
pub const MAX_LINE: usize = 1024;

/// What the client adds to the clue in its answer: `Socket` -> `Socket who?`.
pub const WHO_SUFFIX: &str = " who?";

/// The longest clue a file may hold: its answer, `<clue> who?`, must fit in one client line.
pub const MAX_CLUE: usize = MAX_LINE - WHO_SUFFIX.len();

/// The longest punchline, so one reply line stays a line a terminal can show.
pub const MAX_PUNCHLINE: usize = 4096;

/// A jokes file bigger than this is refused before it is read whole (`--jokes /dev/zero`).
pub const MAX_FILE: u64 = 4 * 1024 * 1024;

/// Written for sockkit, about the things sockkit shows. (The tutorial's own jokes are not
/// reused.)
const BUILTIN: &[(&str, &str)] = &[
    (
        "Socket",
        "Socket to me: I've been listening on port 4444 all day!",
    ),
    ("SYN", "SYN-ACK! Now you say ACK and we are ESTABLISHED."),
    (
        "Nagle",
        "Nagle-ing feeling this line waited 40 ms for company. Try TCP_NODELAY!",
    ),
    (
        "Backlog",
        "Backlog of 128 knockers out here, and nobody has called accept()!",
    ),
    ("Ping", "Pong! Sorry, reflex."),
    (
        "Buffer",
        "Buffer you ask: yes, I kept every byte you sent, in order.",
    ),
    (
        "Keepalive",
        "Keepalive probe. Just checking you're still there.",
    ),
    (
        "Loopback",
        "Loopback and knock again: nobody else lives at 127.0.0.1.",
    ),
    (
        "Kernel",
        "Kernel of truth: a socket is just a file descriptor.",
    ),
    ("Packet", "Packet up, we're moving to IPv6!"),
];

/// One joke, with the answer key precomputed so a reply costs no allocation of the set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Joke {
    pub clue: String,
    pub punchline: String,
    /// `<clue> who?` folded for comparison (see [`fold`]).
    answer_key: String,
}

impl Joke {
    pub fn new(clue: &str, punchline: &str) -> Joke {
        Joke {
            clue: clue.to_string(),
            punchline: punchline.to_string(),
            answer_key: fold(&format!("{clue}{WHO_SUFFIX}")),
        }
    }

    /// The answer the client owes after the clue, as the client should type it.
    pub fn expected_answer(&self) -> String {
        format!("{}{WHO_SUFFIX}", self.clue)
    }

    /// True when `folded` (already passed through [`fold`]) is this joke's `<clue> who?`.
    pub fn is_answer(&self, folded: &str) -> bool {
        self.answer_key == folded
    }
}

/// What a comparison sees of a line: lowercase, no surrounding whitespace, inner runs of
/// whitespace as one space. Matching is lenient so a person at telnet is not told off for a
/// double space; the line still has to say the right words.
pub fn fold(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    for word in line.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        out.extend(word.chars().flat_map(char::to_lowercase));
    }
    out
}

/// A non-empty set of jokes, in the order they are told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Jokes {
    list: Vec<Joke>,
}

/// Why a jokes file was refused: the line (1-based) and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileError {
    /// 0 when the problem is the file as a whole (empty, too big).
    pub line: usize,
    pub why: String,
}

impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            f.write_str(&self.why)
        } else {
            write!(f, "line {}: {}", self.line, self.why)
        }
    }
}

impl std::error::Error for FileError {}

impl Jokes {
    /// The set sockkit tells when no `--jokes` file is given.
    pub fn builtin() -> Jokes {
        Jokes {
            list: BUILTIN.iter().map(|(c, p)| Joke::new(c, p)).collect(),
        }
    }

    /// Jokes from a list; `None` when it is empty (a joke server needs at least one).
    pub fn from_list(list: Vec<Joke>) -> Option<Jokes> {
        (!list.is_empty()).then_some(Jokes { list })
    }

    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// Never true (a set has at least one joke); here because clippy pairs it with `len`.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// The joke at `index`, wrapping around the set.
    pub fn get(&self, index: usize) -> &Joke {
        &self.list[index % self.list.len()]
    }

    pub fn iter(&self) -> impl Iterator<Item = &Joke> {
        self.list.iter()
    }

    /// Reads and checks a jokes file. A file that cannot be read is an I/O error (exit 1); a
    /// file that reads but is malformed is the user's to fix, so it is a usage error (exit 2)
    /// naming the line.
    pub fn load(path: &Path) -> Result<Jokes> {
        let what = || format!("reading jokes from {}", path.display());
        let file = std::fs::File::open(path).with_context(what)?;
        let mut bytes = Vec::new();
        file.take(MAX_FILE + 1)
            .read_to_end(&mut bytes)
            .with_context(what)?;
        if bytes.len() as u64 > MAX_FILE {
            let e = FileError {
                line: 0,
                why: format!("the file is larger than {} MiB", MAX_FILE >> 20),
            };
            return Err(UsageError::new(e.to_string())).with_context(what);
        }
        Jokes::parse(&bytes)
            .map_err(|e| UsageError::new(e.to_string()))
            .with_context(what)
    }

    /// Parses the text of a jokes file (format in the module docs).
    pub fn parse(bytes: &[u8]) -> Result<Jokes, FileError> {
        let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
        let mut list = Vec::new();
        for (i, raw) in bytes.split(|&b| b == b'\n').enumerate() {
            let line = i + 1;
            let err = |why: String| FileError { line, why };
            let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
            let text = std::str::from_utf8(raw).map_err(|e| {
                err(format!(
                    "not UTF-8 text (bad byte at column {})",
                    e.valid_up_to() + 1
                ))
            })?;
            let trimmed = text.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let fields: Vec<&str> = text.split('\t').collect();
            let (clue, punchline) = match fields.as_slice() {
                [clue, punchline] => (clue.trim(), punchline.trim()),
                [_] => {
                    return Err(err(
                        "no TAB between clue and punchline (expected clue<TAB>punchline)".into(),
                    ));
                }
                more => {
                    return Err(err(format!(
                        "{} TABs; expected exactly one, between clue and punchline",
                        more.len() - 1
                    )));
                }
            };
            check_field("clue", clue, MAX_CLUE).map_err(err)?;
            check_field("punchline", punchline, MAX_PUNCHLINE).map_err(err)?;
            list.push(Joke::new(clue, punchline));
        }
        Jokes::from_list(list).ok_or(FileError {
            line: 0,
            why: "no jokes in the file (only blank lines and # comments)".into(),
        })
    }
}

fn check_field(name: &str, text: &str, max: usize) -> Result<(), String> {
    if text.is_empty() {
        return Err(format!("the {name} is empty"));
    }
    if let Some(c) = text.chars().find(|c| c.is_control()) {
        return Err(format!("the {name} holds a control character ({c:?})"));
    }
    if text.len() > max {
        return Err(format!(
            "the {name} is {} bytes long; at most {max} fit",
            text.len()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_set_is_big_enough_and_well_formed() {
        let jokes = Jokes::builtin();
        assert!(jokes.len() >= 8);
        for j in jokes.iter() {
            assert!(check_field("clue", &j.clue, MAX_CLUE).is_ok(), "{j:?}");
            assert!(check_field("punchline", &j.punchline, MAX_PUNCHLINE).is_ok());
        }
        // Every clue distinct, so a transcript says which joke was told.
        let mut clues: Vec<String> = jokes.iter().map(|j| fold(&j.clue)).collect();
        clues.sort();
        clues.dedup();
        assert_eq!(clues.len(), jokes.len());
    }

    #[test]
    fn fold_ignores_case_and_spacing_but_not_words() {
        assert_eq!(fold("  WHO'S   there? \t"), "who's there?");
        assert_eq!(fold("Who'sthere?"), "who'sthere?");
        assert_eq!(fold(""), "");
        assert_eq!(fold("ÉCOLE who?"), "école who?");
    }

    #[test]
    fn answers_match_clue_plus_who() {
        let j = Joke::new("Nagle", "x");
        assert_eq!(j.expected_answer(), "Nagle who?");
        assert!(j.is_answer(&fold("nagle WHO?")));
        assert!(!j.is_answer(&fold("Nagle")));
        assert!(!j.is_answer(&fold("Nagle who")));
    }

    #[test]
    fn parses_tabs_comments_blank_lines_crlf_and_bom() {
        let text = b"\xEF\xBB\xBF# my jokes\n\nOne\tFirst punch\r\n  # indented comment\n  Two \t Second punch  \n";
        let jokes = Jokes::parse(text).unwrap();
        assert_eq!(jokes.len(), 2);
        assert_eq!(jokes.get(0), &Joke::new("One", "First punch"));
        assert_eq!(jokes.get(1), &Joke::new("Two", "Second punch"));
        assert_eq!(jokes.get(2), jokes.get(0), "get wraps around");
    }

    #[test]
    fn malformed_lines_are_named() {
        let cases: &[(&[u8], usize, &str)] = &[
            (b"A\tok\nno tab here\n", 2, "no TAB"),
            (b"A\tb\tc\n", 1, "2 TABs"),
            (b"\tpunch\n", 1, "clue is empty"),
            (b"# c\nClue\t  \n", 2, "punchline is empty"),
            (b"A\tok\nB\t\xff\xfe\n", 2, "not UTF-8"),
            (b"A\x00B\tpunch\n", 1, "control character"),
        ];
        for (text, line, why) in cases {
            let e = Jokes::parse(text).unwrap_err();
            assert_eq!(e.line, *line, "{e}");
            assert!(e.to_string().contains(why), "{e}");
            assert!(e.to_string().starts_with(&format!("line {line}: ")), "{e}");
        }
    }

    #[test]
    fn a_clue_whose_answer_would_not_fit_a_line_is_refused() {
        let fits = format!("{}\tp\n", "c".repeat(MAX_CLUE));
        assert!(Jokes::parse(fits.as_bytes()).is_ok());
        let too_long = format!("{}\tp\n", "c".repeat(MAX_CLUE + 1));
        let e = Jokes::parse(too_long.as_bytes()).unwrap_err();
        assert!(e.why.contains("at most 1019"), "{e}");
    }

    #[test]
    fn a_file_without_jokes_is_refused() {
        for text in [&b""[..], b"\n\n", b"# only\n# comments\n"] {
            let e = Jokes::parse(text).unwrap_err();
            assert_eq!(e.line, 0);
            assert!(e.to_string().contains("no jokes"), "{e}");
        }
    }

    #[test]
    fn load_reports_missing_and_malformed_files_differently() {
        let dir = std::env::temp_dir().join(format!("sockkit-jokes-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let bad = dir.join("bad.tsv");
        std::fs::write(&bad, "Good\tone\nbad line\n").unwrap();
        let e = Jokes::load(&bad).unwrap_err();
        assert_eq!(crate::error::exit_status(&e), crate::error::EXIT_USAGE);
        let msg = format!("{e:#}");
        assert!(
            msg.contains("bad.tsv") && msg.contains("line 2: no TAB"),
            "{msg}"
        );

        let missing = dir.join("missing.tsv");
        let e = Jokes::load(&missing).unwrap_err();
        assert_eq!(crate::error::exit_status(&e), crate::error::EXIT_FAILURE);
        assert!(format!("{e:#}").contains("missing.tsv"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
