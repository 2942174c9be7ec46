//! netcat's muscle memory: the command lines an nc user types (`-l -p 4444`, `-lvnp 4444`,
//! `-e /bin/cat`, `-q 1`, `connect host:port`, `sockkit host port`) read as what they mean,
//! answered with one line that gives the sockkit spelling. Only spellings sockkit cannot mean
//! otherwise are recognised; everything else is left to clap. The parser (`cli.rs`) decides
//! when to ask; this file only reads the words.

use std::ffi::OsString;

/// nc's single-letter flags that sockkit does not have, with what to write instead.
const NC_ONLY: &[(char, &str)] = &[
    ('l', "listen is a subcommand"),
    ('n', "numeric addresses are never looked up anyway"),
    (
        'N',
        "stdin EOF shuts the sending side by default; --no-shutdown keeps it open",
    ),
    ('C', "--crlf"),
];

/// The letters of sockkit's own short flags that take a value (the value may follow in the
/// same word, as in `-w2s`).
const TAKES_VALUE: &[char] = &['w', 's', 'p', 'o', 'U'];

/// The one line for an nc spelling in `args` (program name first), or `None` when the command
/// line is not one. `parsed` says clap accepted it: then only spellings that would silently
/// mean something else (`listen -q 1 4444` binding 0.0.0.1) are answered.
pub fn spelling(args: &[OsString], parsed: bool) -> Option<String> {
    let words: Vec<String> = args
        .iter()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let first = words.first()?;
    let (sub, rest) = match first.as_str() {
        "connect" | "listen" | "echo" | "knock" => (first.as_str(), &words[1..]),
        _ if parsed => return None,
        // `sockkit -lvp 4444`, `sockkit -zv host 80`: nc's flags with no subcommand.
        w if w.starts_with('-') && !w.starts_with("--") && w.len() > 1 && !is_num(w) => {
            let sub = if w.contains('l') { "listen" } else { "connect" };
            return translate(sub, &words[..], parsed, true);
        }
        // `sockkit host port`.
        _ if words.len() == 2 && is_port(&words[1]) => {
            return Some(format!(
                "sockkit: '{first}' is not a subcommand: to connect to {first} port {p} write \
                 `sockkit connect {first} {p}` (`sockkit listen {p}` to wait for one)",
                p = words[1]
            ));
        }
        _ => return None,
    };
    translate(sub, rest, parsed, false)
}

/// Reads `rest` (the words after the subcommand) for nc's flags; builds the sockkit command
/// line that means the same, with a note for each flag translated.
/// `inferred`: the subcommand is guessed from nc's flags (`sockkit -zv host 80`).
fn translate(sub: &str, rest: &[String], parsed: bool, inferred: bool) -> Option<String> {
    let server = sub != "connect";
    let mut sub = sub.to_string();
    let mut kept: Vec<String> = Vec::new();
    let mut positionals: Vec<String> = Vec::new();
    let mut seen: Vec<String> = Vec::new();
    let mut notes: Vec<String> = Vec::new();
    let mut i = 0;
    while i < rest.len() {
        let w = &rest[i];
        i += 1;
        if w == "--" || w.starts_with("--") || !w.starts_with('-') || w.len() == 1 || is_num(w) {
            if !w.starts_with('-') || is_num(w) {
                positionals.push(w.clone());
            } else {
                kept.push(w.clone());
            }
            continue;
        }
        let letters: Vec<char> = w[1..].chars().collect();
        let mut flags = String::new();
        let mut j = 0;
        while j < letters.len() {
            let c = letters[j];
            j += 1;
            let inline: String = letters[j..].iter().collect();
            // The value of a flag that takes one: the rest of the word, else the next word.
            let value = |i: &mut usize| -> Option<String> {
                if !inline.is_empty() {
                    Some(inline.clone())
                } else if *i < rest.len() {
                    *i += 1;
                    Some(rest[*i - 1].clone())
                } else {
                    None
                }
            };
            match c {
                'e' | 'c' => {
                    return Some(format!(
                        "sockkit: -{c} runs a program for each client, which sockkit never \
                         does: see `sockkit forward` to relay to a local service"
                    ));
                }
                'q' if inline.is_empty()
                    && rest.get(i).is_some_and(|v| is_num(v))
                    && rest[i + 1..].iter().any(|w| !w.starts_with('-')) =>
                {
                    let secs = value(&mut i).unwrap_or_default();
                    seen.push("-q".into());
                    notes.push("-q is --quiet in sockkit".into());
                    kept.push(format!("--quit-after {secs}s"));
                    break;
                }
                'p' if server => {
                    let Some(port) = value(&mut i) else { break };
                    seen.push("-p".into());
                    notes.push("the port is an argument".into());
                    positionals.push(port);
                    break;
                }
                c if NC_ONLY.iter().any(|(l, _)| *l == c) => {
                    let (_, note) = NC_ONLY.iter().find(|(l, _)| *l == c)?;
                    seen.push(format!("-{c}"));
                    match c {
                        'l' => sub = "listen".into(),
                        'C' => kept.push("--crlf".into()),
                        _ => {}
                    }
                    if c != 'C' && c != 'l' {
                        notes.push(format!("-{c}: {note}"));
                    }
                }
                c if TAKES_VALUE.contains(&c) => {
                    let v = value(&mut i).unwrap_or_default();
                    kept.push(format!("-{c}{v}"));
                    break;
                }
                c => flags.push(c),
            }
        }
        if !flags.is_empty() {
            kept.push(format!("-{flags}"));
        }
    }
    // `connect host:port` and `connect 4444 host`, when clap has refused them.
    if seen.is_empty() && sub == "connect" && !parsed {
        if let [one] = positionals.as_slice()
            && let Some((host, port)) = split_host_port(one)
        {
            seen.push(format!("'{one}'"));
            notes.push("HOST and PORT are two arguments".into());
            positionals = vec![host, port];
        } else if let [a, b] = positionals.as_slice()
            && is_port(a)
            && !is_port(b)
        {
            seen.push(format!("'{a} {b}'"));
            notes.push("HOST comes first".into());
            positionals = vec![b.clone(), a.clone()];
        }
    }
    if inferred && !seen.iter().any(|s| s == "-l") {
        notes.insert(0, format!("{sub} is a subcommand"));
    }
    if (seen.is_empty() && !inferred) || (parsed && !seen.iter().any(|s| s == "-q")) {
        return None;
    }
    let flags: Vec<&str> = seen
        .iter()
        .filter(|s| s.starts_with('-'))
        .map(String::as_str)
        .collect();
    let what = if !flags.is_empty() {
        format!("nc's {}", flags.join(" "))
    } else if seen.is_empty() {
        "no subcommand".to_string()
    } else {
        seen.join(" ")
    };
    let mut line = vec!["sockkit".to_string(), sub];
    line.extend(kept);
    line.extend(positionals);
    let notes = if notes.is_empty() {
        String::new()
    } else {
        format!(" ({})", notes.join("; "))
    };
    Some(format!(
        "sockkit: {what}: in sockkit write `{}`{notes}",
        line.join(" ")
    ))
}

/// `host:port`, `[v6]:port`: the one word nc users and URLs put both in.
fn split_host_port(w: &str) -> Option<(String, String)> {
    let (host, port) = w.rsplit_once(':')?;
    if !is_port(port) || host.is_empty() {
        return None;
    }
    if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return Some((v6.to_string(), port.to_string()));
    }
    // A bare IPv6 address (`::1`, `fe80::1`) is not host:port.
    (!host.contains(':')).then(|| (host.to_string(), port.to_string()))
}

fn is_num(w: &str) -> bool {
    let digits = w.strip_prefix('-').unwrap_or(w);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

fn is_port(w: &str) -> bool {
    w.parse::<u16>().is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(args: &str, parsed: bool) -> Option<String> {
        let v: Vec<OsString> = std::iter::once("sockkit")
            .chain(args.split_whitespace())
            .map(OsString::from)
            .collect();
        spelling(&v, parsed)
    }

    #[test]
    fn valid_sockkit_lines_are_left_alone() {
        for args in [
            "connect -p 5000 h 80",
            "echo -q 7007",
            "listen -vv 0",
            "connect -w2s ::1 80",
            "connect -x h 1",
        ] {
            assert_eq!(line(args, true), None, "{args}");
            assert_eq!(line(args, false), None, "{args}");
        }
    }

    #[test]
    fn clusters_translate_whole() {
        assert_eq!(
            line("listen -lvnp 4444", false).unwrap(),
            "sockkit: nc's -l -n -p: in sockkit write `sockkit listen -v 4444` \
             (-n: numeric addresses are never looked up anyway; the port is an argument)"
        );
    }
}
