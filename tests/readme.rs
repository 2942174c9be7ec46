//! The README's transcripts, re-run against the program so they stay true. A console block
//! after `<!-- checked -->` is run command by command (`$ ...` lines, through `sh`, with this
//! build's sockkit first on PATH) and its output compared line for line. Named markers are
//! the transcripts that need a peer: `knock-client` (the lines a user types are sent, the
//! rest must be what the server says), `knock-log` and `echo-log` (a server's `-v` log,
//! compared with ports, descriptors, times and thread counts masked). What the other blocks
//! show depends on the machine (DNS, timings), so they are not checked.

mod util;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};

use util::*;

fn readme() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("reading README.md")
}

/// The lines of each console block after the marker `<!-- checked{name} -->`.
fn blocks(text: &str, name: &str) -> Vec<Vec<String>> {
    let marker = format!("<!-- checked{name} -->");
    let mut found = Vec::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if line.trim() != marker {
            continue;
        }
        let fence = lines.next().unwrap_or_default();
        assert!(
            fence.starts_with("```"),
            "{marker} is not followed by a code block"
        );
        found.push(
            lines
                .by_ref()
                .take_while(|l| !l.starts_with("```"))
                .map(str::to_string)
                .collect(),
        );
    }
    assert!(
        !found.is_empty(),
        "README.md has no {marker} block any more"
    );
    found
}

/// `sh -c CMD` with this build's `sockkit` first on PATH; stdout and stderr as one text, as
/// a terminal shows them.
fn shell(cmd: &str) -> String {
    let bin_dir = Path::new(bin()).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut c = Command::new("sh");
    c.arg("-c").arg(format!("{cmd} 2>&1")).env("PATH", path);
    let out = run_cmd_from(&mut c, Stdio::null(), T);
    out.stdout_text()
}

#[test]
fn checked_command_transcripts_are_what_the_program_prints() {
    let mut ran = 0;
    for block in blocks(&readme(), "") {
        let mut i = 0;
        while i < block.len() {
            let cmd = block[i]
                .strip_prefix("$ ")
                .unwrap_or_else(|| panic!("a checked block must start with `$ `: {}", block[i]));
            let want: Vec<&str> = block[i + 1..]
                .iter()
                .take_while(|l| !l.starts_with("$ "))
                .map(String::as_str)
                .collect();
            i += 1 + want.len();
            let got = shell(cmd);
            let got: Vec<&str> = got.lines().collect();
            assert_eq!(got, want, "README: `$ {cmd}` prints something else");
            ran += 1;
        }
    }
    assert!(ran >= 5, "only {ran} checked commands");
}

/// Masks what differs from run to run in a server's `-v` log: ports, descriptors, durations.
/// The event-loop thread count depends on the CPUs, so that line is dropped.
fn masked(line: &str) -> Option<String> {
    if line.contains("event-loop threads") {
        return None;
    }
    let mut out = String::new();
    let mut rest = line;
    while let Some(c) = rest.chars().next() {
        let after_port = out.ends_with(':') || out.ends_with("fd ");
        if c.is_ascii_digit() {
            let end = rest
                .find(|ch: char| !(ch.is_ascii_digit() || ch == '.'))
                .unwrap_or(rest.len());
            let (num, tail) = rest.split_at(end);
            let unit = ["ns", "µs", "ms", "s"]
                .into_iter()
                .find(|u| tail.starts_with(u) && !tail[u.len()..].starts_with(char::is_alphabetic));
            if let Some(u) = unit {
                out.push_str("<time>");
                rest = &tail[u.len()..];
            } else if after_port {
                out.push_str("<n>");
                rest = tail;
            } else {
                out.push_str(num);
                rest = tail;
            }
        } else {
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    Some(out)
}

/// The log lines of the README's server transcript blocks named `name`, without the `$`
/// command line, masked and sorted (the loops' threads may interleave their lines).
fn readme_log(name: &str) -> (String, Vec<String>) {
    let mut command = String::new();
    let mut lines: Vec<String> = Vec::new();
    for block in blocks(&readme(), name) {
        for l in block {
            if let Some(cmd) = l.strip_prefix("$ ") {
                command = cmd.to_string();
            } else {
                lines.extend(masked(&l));
            }
        }
    }
    lines.sort();
    (command, lines)
}

/// Runs the server `args` (port 0 for the README's fixed one), lets `client` visit it, stops
/// it with SIGINT as the README does, and returns its log, masked and sorted.
fn server_log(args: &[&str], client: impl FnOnce(u16)) -> Vec<String> {
    let mut server = Server::start(args);
    client(server.port());
    server
        .stderr
        .wait_for(T, |l| {
            l.contains("leaves after") || l.contains("nothing left owed")
        })
        .unwrap_or_else(|e| panic!("the visit was not logged: {e}"));
    // SAFETY: kill() on our own child's PID.
    unsafe { libc::kill(server.child.id() as i32, libc::SIGINT) };
    server.child.status_within(T, "the server after SIGINT");
    let said = server.stderr.finish(T);
    let mut lines: Vec<String> = said.lines().filter_map(masked).collect();
    lines.sort();
    lines
}

/// What the README's knock client transcript types, in order: everything else in the block
/// is what the server says.
const TYPED: [&str; 7] = [
    "Who's there?",
    "Socket who?",
    "y",
    "Who is it?",
    "Who's there?",
    "SYN who?",
    "n",
];

#[test]
fn the_knock_client_transcript_is_what_the_server_says() {
    let block = blocks(&readme(), ": knock-client").remove(0);
    assert_eq!(block[0], "$ sockkit connect localhost 4444");
    assert_eq!(block.last().map(String::as_str), Some("$"));
    // The typed lines, in order, as the block has them; the rest is the server's.
    let mut typed = TYPED.iter().peekable();
    let mut said = Vec::new();
    for l in &block[1..block.len() - 1] {
        if typed.peek().is_some_and(|t| **t == l.as_str()) {
            typed.next();
        } else {
            said.push(l.as_str());
        }
    }
    assert!(
        typed.peek().is_none(),
        "the README's transcript no longer types {TYPED:?}"
    );
    let server = Server::start(&["knock", "127.0.0.1", "0"]);
    let port = server.port().to_string();
    let input: String = TYPED.iter().map(|t| format!("{t}\n")).collect();
    let out = run(&["connect", "127.0.0.1", &port], input.as_bytes(), T);
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    assert_eq!(out.stdout_text().lines().collect::<Vec<_>>(), said);
}

#[test]
fn the_knock_server_log_is_what_the_server_logs() {
    let (command, want) = readme_log(": knock-log");
    assert_eq!(command, "sockkit knock -v");
    let got = server_log(&["knock", "-v", "0"], |port| {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(T)).unwrap();
        let input: String = TYPED.iter().map(|t| format!("{t}\n")).collect();
        s.write_all(input.as_bytes()).unwrap();
        let mut all = Vec::new();
        s.read_to_end(&mut all).unwrap();
    });
    assert_eq!(got, want);
}

#[test]
fn the_echo_server_log_is_what_the_server_logs() {
    let (command, want) = readme_log(": echo-log");
    assert_eq!(command, "sockkit echo -v 127.0.0.1 7007");
    let got = server_log(&["echo", "-v", "127.0.0.1", "0"], |port| {
        let out = run(
            &["connect", "127.0.0.1", &port.to_string()],
            b"hello, echo\n",
            T,
        );
        assert_eq!(out.stdout_text(), "hello, echo\n");
    });
    assert_eq!(got, want);
}
