//! The table as documentation: the `-o help` listing (and spotting `-o help` on a command
//! line clap rejected for a missing HOST), and the roff of the man page's SOCKET OPTIONS
//! section, which tests/man.rs wraps into the page. Both render the same rows in the same
//! groups, so the page cannot drift from the help; the words themselves are the rows'.

use std::ffi::OsString;

use super::parse::is_help_word;
use super::table::{NOT_OFFERED, TABLE, names_of};
use super::types::{Level, Row};

/// The levels in the order help and the man page list them.
fn level_groups() -> Vec<(String, Vec<&'static Row>)> {
    let mut groups: Vec<(String, Vec<&'static Row>)> = Vec::new();
    for row in TABLE {
        let title = match row.level {
            Level::Call(call) => format!("{call} arguments"),
            other => format!("{other} options"),
        };
        match groups.iter_mut().find(|(t, _)| *t == title) {
            Some((_, rows)) => rows.push(row),
            None => groups.push((title, vec![row])),
        }
    }
    groups
}

/// The paragraph that opens both `-o help` and the man page section: how NAME is read.
const INTRO: &str = "NAME is the kernel's name in any case, with or without its prefix: \
    SO_RCVBUF, so_rcvbuf and rcvbuf are the same option. A bare NAME means on. -o is \
    repeatable; options are set in the order given, before bind/connect unless the option says \
    otherwise, and a value the kernel refuses stops sockkit before any data moves. \
    --show-opts prints what the kernel made of each.";

impl Row {
    /// `integer: 1-255, ...`: the value syntax and, where it helps, the accepted range.
    pub fn value_text(&self) -> String {
        if self.valid.is_empty() {
            self.kind.describe().to_string()
        } else {
            format!("{}: {}", self.kind.describe(), self.valid)
        }
    }

    /// `TCP, listening TCP sockets over IPv4 and IPv6; set before bind/connect`.
    pub fn scope_text(&self) -> String {
        let when = match self.level {
            Level::Call(call) => format!("given to {call}"),
            _ => self.stage.describe().to_string(),
        };
        format!("{}; {when}.", self.applies.describe())
    }

    /// The spellings besides the kernel name: `rcvbuf`, `mss`.
    fn other_names(&self) -> Vec<String> {
        names_of(self).skip(1).collect()
    }
}

/// Prints `-o help` on stdout: asked-for help is the command's output, as `--help` is. A
/// reader that stops early (`| head`) is not an error for a listing.
pub fn print_help() {
    use std::io::Write;
    let _ = std::io::stdout().write_all(help_text().as_bytes());
}

/// `-o help`: every row grouped by level, with its names, value syntax, the sockets it
/// applies to, when it is set, what it does and its caveats.
pub fn help_text() -> String {
    let mut out = String::from("Socket options for -o NAME[=VALUE]\n\n");
    for line in wrap(INTRO, 92) {
        out.push_str(&line);
        out.push('\n');
    }
    for (title, rows) in level_groups() {
        out.push_str(&format!("\n{title}:\n"));
        for row in rows {
            let names = row.other_names();
            let also = if names.is_empty() {
                String::new()
            } else {
                format!(" ({})", names.join(", "))
            };
            out.push_str(&format!("\n  {}{also} = {}\n", row.name, row.value_text()));
            let mut paragraphs = vec![row.doc.to_string()];
            if !row.notes.is_empty() {
                paragraphs.push(format!("Notes: {}", row.notes));
            }
            paragraphs.push(format!("For {}", row.scope_text()));
            for text in paragraphs {
                for line in wrap(&text, 86) {
                    out.push_str("      ");
                    out.push_str(&line);
                    out.push('\n');
                }
            }
        }
    }
    out.push('\n');
    for line in wrap(NOT_OFFERED, 92) {
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// True when a command line asks for `-o help` in any spelling (`-o help`, `-ohelp`,
/// `--opt help`, `--opt=help`). main uses it when clap rejects a command line only for its
/// missing HOST or PORT, so `sockkit connect -o help` lists the options like `--help` would.
pub fn help_in_args(args: impl IntoIterator<Item = OsString>) -> bool {
    let args: Vec<String> = args
        .into_iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    args.iter().enumerate().any(|(i, a)| {
        let value = if a == "-o" || a == "--opt" {
            args.get(i + 1).map(String::as_str)
        } else if let Some(v) = a.strip_prefix("--opt=") {
            Some(v)
        } else if a.starts_with("-o") && !a.starts_with("--") {
            Some(a[2..].trim_start_matches('='))
        } else {
            None
        };
        value.is_some_and(is_help_word)
    })
}

/// The body of the man page's SOCKET OPTIONS section, in roff, without its `.SH` line: the
/// same rows as `-o help`, grouped by level with `.SS`, one `.TP` entry per option. Nothing
/// in it depends on the machine it is generated on, and it passes `mandoc -Tlint -W all`
/// (one sentence per line, lines under 80 bytes).
pub fn man_roff() -> String {
    let mut out = String::new();
    out.push_str(&roff_text(&format!(
        "Set with -o NAME[=VALUE]; sockkit CMD -o help lists the same. {INTRO}"
    )));
    for (title, rows) in level_groups() {
        out.push_str(&format!(".SS {}\n", roff_escape(&title)));
        for row in rows {
            out.push_str(".TP\n");
            out.push_str(&format!("\\fB{}\\fR", roff_escape(row.name)));
            let names = row.other_names();
            if !names.is_empty() {
                out.push_str(&format!(" ({})", roff_escape(&names.join(", "))));
            }
            out.push_str(&format!(
                " = \\fI{}\\fR\n",
                roff_escape(row.kind.describe())
            ));
            out.push_str(&roff_text(row.doc));
            if !row.notes.is_empty() {
                out.push_str(".br\n");
                out.push_str(&roff_text(&format!("Notes: {}", row.notes)));
            }
            out.push_str(".br\n");
            let values = if row.valid.is_empty() {
                String::new()
            } else {
                format!("Values: {}. ", row.valid)
            };
            out.push_str(&roff_text(&format!("{values}For {}", row.scope_text())));
        }
    }
    out.push_str(".PP\n");
    out.push_str(&roff_text(NOT_OFFERED));
    out
}

/// Running text as roff source: one sentence per line, wrapped under 80 bytes, escaped.
fn roff_text(text: &str) -> String {
    let mut out = String::new();
    for sentence in text.split_inclusive(". ") {
        for line in wrap(sentence, 72) {
            out.push_str(&roff_escape(&line));
            out.push('\n');
        }
    }
    out
}

/// Escapes text for roff: backslashes, hyphens that must stay hyphens (option names), and a
/// leading `.` or `'` that roff would read as a request.
fn roff_escape(text: &str) -> String {
    let body = text.replace('\\', "\\e").replace('-', "\\-");
    if body.starts_with('.') || body.starts_with('\'') {
        format!("\\&{body}")
    } else {
        body
    }
}

/// Words into lines of at most `width` characters (a longer word gets a line of its own).
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut cur = String::new();
    for word in text.split_whitespace() {
        if !cur.is_empty() && cur.chars().count() + 1 + word.chars().count() > width {
            lines.push(std::mem::take(&mut cur));
        }
        if !cur.is_empty() {
            cur.push(' ');
        }
        cur.push_str(word);
    }
    if !cur.is_empty() {
        lines.push(cur);
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn help_and_man_page_list_every_row() {
        let help = help_text();
        let man = man_roff();
        for row in TABLE {
            assert!(help.contains(row.name), "help lacks {}", row.name);
            assert!(
                help.contains(&row.doc[..30]),
                "help lacks {}'s doc",
                row.name
            );
            let roff_name = roff_escape(row.name);
            assert!(
                man.contains(&format!("\\fB{roff_name}\\fR")),
                "man lacks {}",
                row.name
            );
        }
        assert!(help.contains("SO_RCVTIMEO") && man.contains("SO_RCVTIMEO"));
        for line in man.lines() {
            if line.starts_with('.') {
                let req = line.split_whitespace().next().unwrap();
                assert!(
                    [".PP", ".SS", ".TP", ".br"].contains(&req),
                    "unexpected roff request {line:?}"
                );
            }
            assert!(!line.starts_with('\''), "{line:?}");
            assert!(line.len() < 80, "roff line over 80 bytes: {line:?}");
        }
        assert!(!man.contains(".SH"), "the caller adds the .SH header");
        assert!(
            !man.starts_with(".PP"),
            "a .PP right after the caller's .SH is an error"
        );
        assert_eq!(man, man_roff(), "the man section is deterministic");
    }

    #[test]
    fn option_help_is_found_in_any_spelling() {
        let args = |s: &str| s.split(' ').map(OsString::from).collect::<Vec<_>>();
        for ok in [
            "sockkit connect -o help",
            "sockkit connect -ohelp",
            "sockkit connect --opt help",
            "sockkit connect --opt=help",
            "sockkit connect -o nodelay -o HELP",
        ] {
            assert!(help_in_args(args(ok)), "{ok}");
        }
        for no in ["sockkit connect help 80", "sockkit connect -o nodelay"] {
            assert!(!help_in_args(args(no)), "{no}");
        }
    }
}
