//! The man pages: `man/sockkit.1` and one `man/sockkit-<sub>.1` per subcommand, generated
//! from the clap definitions (clap_mangen) plus the sections clap does not know: SOCKET
//! OPTIONS (from the option table), EXIT STATUS (from `sockkit::error`), EXAMPLES and SEE
//! ALSO. The pages are committed; this test renders them, rewrites any that are stale and
//! fails so the change gets committed. `mandoc -Tlint` checks them where mandoc exists.

mod util;

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command as Process;

use clap::{Command, CommandFactory};
use clap_mangen::Man;
use clap_mangen::roff::{Roff, bold, roman};
use sockkit::cli::Cli;
use sockkit::error::{EXIT_FAILURE, EXIT_OK, EXIT_USAGE};
use sockkit::sockopt::TABLE;

/// Worked examples per page: (what it does, the command line). Every page must have some;
/// a new subcommand fails the test until its examples are added here.
const EXAMPLES: &[(&str, &[(&str, &str)])] = &[
    (
        "sockkit",
        &[
            (
                "A two-way pipe between two terminals: run the server, then the client.",
                "sockkit listen 4444\nsockkit connect localhost 4444",
            ),
            (
                "Watch the sockets API at work: every call, its result and time.",
                "sockkit connect -vv localhost 4444",
            ),
            (
                "List the socket options -o accepts.",
                "sockkit listen -o help",
            ),
        ],
    ),
    (
        "connect",
        &[
            (
                "Request/response over a pipe: stdin EOF half-closes the socket, so the server \
                 knows the request is complete, and the whole reply is printed.",
                "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | sockkit connect localhost 8080",
            ),
            (
                "Send a file to a listener (see sockkit-listen(1)).",
                "sockkit connect 192.0.2.10 4444 < backup.tar",
            ),
            (
                "Try each address of a name for at most 2 seconds, narrating the calls.",
                "sockkit connect -vv -w 2s localhost 4444",
            ),
            (
                "Disable Nagle's algorithm, ask for a bigger send buffer, and see what the \
                 kernel really set.",
                "sockkit connect -o nodelay -o sndbuf=256K --show-opts localhost 4444",
            ),
            (
                "Wait at most one second for the answer after sending.",
                "echo ping | sockkit connect --quit-after 1s localhost 4444",
            ),
            (
                "Port check: which of these ports are open? The open ones on stdout (-v: every \
                 port); exit 0 if any is open, 1 if none.",
                "sockkit connect -z localhost 22,80,8000-8010",
            ),
            (
                "The same for a script: one JSON object per port (host, port, proto, state, \
                 time, reason).",
                "sockkit connect -z --json localhost 22,80,8000-8010",
            ),
            (
                "Connect from a chosen local address and port; -vv shows the bind before the \
                 connect.",
                "sockkit connect -vv -s 127.0.0.2 -p 40000 127.0.0.1 4444",
            ),
            (
                "Speak a line protocol by hand: each LF typed goes out as CRLF, and -x shows \
                 every byte both ways in hex on stderr.",
                "sockkit connect --crlf -x mail.example.org 25",
            ),
        ],
    ),
    (
        "listen",
        &[
            (
                "Chat with whoever connects (IPv4 or IPv6, on one dual-stack socket).",
                "sockkit listen 4444",
            ),
            (
                "Receive a file: the client's EOF ends the session.",
                "sockkit listen 4444 > backup.tar < /dev/null",
            ),
            (
                "Let the kernel choose a free port on IPv6 loopback; the port is announced on \
                 stderr.",
                "sockkit listen ::1 0",
            ),
            (
                "Serve clients one after another, and watch TCP's states change.",
                "sockkit listen -k -vv 127.0.0.1 4444",
            ),
            (
                "A chat room: each line a client types goes to every other client, with its \
                 sender in front; joins and leaves are announced.",
                "sockkit listen --chat 4444",
            ),
            (
                "A broker: each client's bytes go to all the others, unchanged (at most 50 \
                 clients).",
                "sockkit listen --broker --max-conns 50 4444",
            ),
            (
                "Keep a hex dump of one session in a file.",
                "sockkit listen --hexdump-file session.hex 4444",
            ),
        ],
    ),
    (
        "echo",
        &[
            (
                "Run an echo server and talk to it.",
                "sockkit echo 7777\necho hello | sockkit connect localhost 7777",
            ),
            (
                "Bound what clients can cost: at most 100 at once, idle ones closed after 30s.",
                "sockkit echo --max-conns 100 --idle-timeout 30s 127.0.0.1 7777",
            ),
            (
                "See each client's bytes in hex, labelled with its address.",
                "sockkit echo -x 127.0.0.1 7777",
            ),
        ],
    ),
    (
        "knock",
        &[
            (
                "Serve Knock Knock jokes on port 4444, then hear one.",
                "sockkit knock\nsockkit connect localhost 4444",
            ),
            (
                "Tell your own jokes (one clue<TAB>punchline per line), in random order.",
                "sockkit knock --jokes my-jokes.tsv --shuffle 0",
            ),
            (
                "Watch the protocol byte by byte: each client's lines in hex on stderr.",
                "sockkit knock -x 127.0.0.1 4444",
            ),
        ],
    ),
    (
        "forward",
        &[
            (
                "Put a relay in front of a web server, with a line per connection.",
                "sockkit forward -v 8080 127.0.0.1 80\ncurl http://127.0.0.1:8080/",
            ),
            (
                "Expose a Unix socket over TCP (loopback only), and a TCP service as a Unix socket.",
                "sockkit forward 127.0.0.1 8080 --to-unix /run/app.sock\n\
                 sockkit forward -U /tmp/web.sock 127.0.0.1 80",
            ),
            (
                "Forward DNS over UDP; each client's flow ends after 30 s without datagrams.",
                "sockkit forward -u --idle-timeout 30s 5353 127.0.0.53 53",
            ),
        ],
    ),
    (
        "completions",
        &[
            (
                "Complete sockkit in bash from now on (bash-completion loads it on first use).",
                "sockkit completions bash > ~/.local/share/bash-completion/completions/sockkit",
            ),
            (
                "Complete it in zsh: a directory on fpath before compinit runs.",
                "mkdir -p ~/.zfunc && sockkit completions zsh > ~/.zfunc/_sockkit\n\
                 echo 'fpath+=~/.zfunc; autoload -U compinit; compinit' >> ~/.zshrc",
            ),
            (
                "Complete it in fish.",
                "sockkit completions fish > ~/.config/fish/completions/sockkit.fish",
            ),
        ],
    ),
    (
        "report",
        &[
            (
                "Draw a session saved with --trace as a page (sequence diagram and TCP_INFO plots).",
                "sockkit report session.jsonl -o session.html",
            ),
            (
                "Or have the session write its own page at exit, with TCP_INFO every 10 ms.",
                "sockkit connect --report session.html --tcp-info-every 10ms example.org 80",
            ),
        ],
    ),
];

/// Meaning of each exit status, numbered from `sockkit::error` so the page cannot drift.
fn exit_status_roff() -> Roff {
    let mut r = Roff::new();
    r.control("SH", ["EXIT STATUS"]);
    for (code, meaning) in [
        (
            EXIT_OK,
            "Success: the session ended as asked (both sides closed, --quit-after ran out, \
             or the reader of stdout went away, as with | head).",
        ),
        (
            EXIT_FAILURE,
            "A network or I/O failure: connection refused or timed out, name not resolved, \
             address in use, permission denied, connection reset, data that could not be \
             delivered. One line on stderr says what and why.",
        ),
        (
            EXIT_USAGE,
            "A usage error: an unknown option, a bad port or duration, a missing argument.",
        ),
    ] {
        r.control("TP", []);
        r.text([bold(code.to_string())]);
        r.text([roman(meaning)]);
    }
    r.control("TP", []);
    r.text([bold("128+N")]);
    r.text([roman(
        "Stopped by signal N: SIGINT (130), SIGTERM (143) or SIGHUP (129), the same on every \
         subcommand. sockkit first cleans up (a server closes its clients, the -U socket file \
         is removed, -v prints what moved), then ends by that signal itself, so the shell \
         reports 128+N.",
    )]);
    r
}

fn examples_roff(name: &str, examples: &[(&str, &str)]) -> Roff {
    let mut r = Roff::new();
    r.control("SH", ["EXAMPLES"]);
    assert!(!examples.is_empty(), "{name}: no examples");
    for (i, (what, cmdline)) in examples.iter().enumerate() {
        if i > 0 {
            r.control("PP", []);
        }
        r.text([roman(*what)]);
        r.control("PP", []);
        r.control("RS", ["4"]);
        r.control("nf", []);
        for line in cmdline.lines() {
            r.text([bold(line)]);
        }
        r.control("fi", []);
        r.control("RE", []);
    }
    r
}

fn see_also_roff(page: &str, subs: &[String]) -> Roff {
    let mut r = Roff::new();
    r.control("SH", ["SEE ALSO"]);
    let mut refs: Vec<String> = std::iter::once("sockkit".to_string())
        .chain(subs.iter().map(|s| format!("sockkit-{s}")))
        .filter(|p| p != page)
        .map(|p| format!("{p}(1)"))
        .collect();
    refs.extend(
        [
            "nc(1)",
            "ncat(1)",
            "socat(1)",
            "socket(7)",
            "tcp(7)",
            "ss(8)",
        ]
        .map(String::from),
    );
    r.text([roman(refs.join(", "))]);
    r
}

/// The text every rendered roff document starts with (clap_mangen's apostrophe set-up); kept
/// once per page, stripped from the pieces after the first.
fn preamble() -> String {
    Roff::new().render()
}

fn piece(f: impl FnOnce(&mut Vec<u8>) -> io::Result<()>) -> String {
    let mut buf = Vec::new();
    f(&mut buf).expect("rendering to memory");
    let text = String::from_utf8(buf).expect("roff is UTF-8");
    text.strip_prefix(&preamble()).unwrap_or(&text).to_string()
}

/// One page: clap's sections, then ours, in the order man-pages(7) suggests.
fn render_page(cmd: Command, page: &str, subs: &[String], examples: &[(&str, &str)]) -> String {
    let has_options = cmd.get_arguments().any(|a| !a.is_hide_set());
    let has_subcommands = cmd.get_subcommands().any(|s| !s.is_hide_set());
    let takes_sockopts = cmd.get_arguments().any(|a| a.get_id() == "opts");
    let has_after_help = cmd.get_after_help().is_some() || cmd.get_after_long_help().is_some();
    let man = Man::new(cmd);
    let mut out = preamble();
    // Written by hand because clap_mangen drops an empty date argument, which shifts the
    // source into the date's place. No date: a generated page's date would go stale daily.
    out += &format!(
        ".TH {} 1 \"\" \"sockkit {}\" \"sockkit manual\"\n",
        page.to_uppercase(),
        env!("CARGO_PKG_VERSION")
    );
    out += &piece(|w| man.render_name_section(w));
    out += &piece(|w| man.render_synopsis_section(w));
    out += &piece(|w| man.render_description_section(w));
    if has_options {
        out += &piece(|w| man.render_options_section(w));
    }
    if has_subcommands {
        out += &piece(|w| man.render_subcommands_section(w));
    }
    if page == "sockkit" {
        // The rows render themselves (sockopt::man_roff), so the page cannot drift from -o help.
        out += ".SH \"SOCKET OPTIONS\"\n";
        out += &sockkit::sockopt::man_roff();
    } else if takes_sockopts {
        let mut r = Roff::new();
        r.control("SH", ["SOCKET OPTIONS"]);
        r.text([
            roman("The names -o accepts are listed in "),
            bold("sockkit"),
            roman("(1) under SOCKET OPTIONS, and by "),
            bold(format!("{} -o help", page.replacen('-', " ", 1))),
            roman("."),
        ]);
        out += &r.to_roff();
    }
    out += &exit_status_roff().to_roff();
    out += &examples_roff(page, examples).to_roff();
    out += &see_also_roff(page, subs).to_roff();
    if has_after_help {
        out += &piece(|w| man.render_extra_section(w));
    }
    out += &piece(|w| man.render_version_section(w));
    // The apostrophe handling of `render()` is what `to_roff()` skipped: apply it the same way.
    out.replace('\'', "\\*(Aq")
        .replacen(&preamble().replace('\'', "\\*(Aq"), &preamble(), 1)
}

/// Every page, by file name: the top-level page and one per visible subcommand, found from
/// `Cli::command()` so new subcommands get pages without touching this file (but for their
/// EXAMPLES).
fn pages() -> BTreeMap<String, String> {
    let mut cmd = Cli::command().disable_help_subcommand(true);
    cmd.build();
    let examples: BTreeMap<&str, &[(&str, &str)]> = EXAMPLES.iter().copied().collect();
    let subs: Vec<String> = cmd
        .get_subcommands()
        .filter(|s| !s.is_hide_set())
        .map(|s| s.get_name().to_string())
        .collect();
    let mut out = BTreeMap::new();
    out.insert(
        "sockkit.1".to_string(),
        render_page(cmd.clone(), "sockkit", &subs, examples["sockkit"]),
    );
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let name = sub.get_name();
        let Some(ex) = examples.get(name) else {
            panic!("no EXAMPLES for `sockkit {name}`: add them to EXAMPLES in tests/man.rs");
        };
        let page = format!("sockkit-{name}");
        let sub = sub.clone().display_name(page.clone());
        out.insert(format!("{page}.1"), render_page(sub, &page, &subs, ex));
    }
    out
}

fn man_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("man")
}

#[test]
fn man_pages_are_up_to_date() {
    let dir = man_dir();
    fs::create_dir_all(&dir).unwrap();
    let pages = pages();
    let mut stale = Vec::new();
    for (file, text) in &pages {
        let path = dir.join(file);
        if fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
            fs::write(&path, text).unwrap();
            stale.push(file.clone());
        }
    }
    // Pages of subcommands that no longer exist.
    for entry in fs::read_dir(&dir).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        if name.ends_with(".1") && !pages.contains_key(&name) {
            fs::remove_file(dir.join(&name)).unwrap();
            stale.push(format!("{name} (removed)"));
        }
    }
    assert!(
        stale.is_empty(),
        "man/ was stale; re-run and commit (rewrote: {})",
        stale.join(", ")
    );
}

#[test]
fn pages_have_the_promised_sections() {
    for (file, text) in pages() {
        for section in [
            "NAME",
            "SYNOPSIS",
            "DESCRIPTION",
            "EXIT STATUS",
            "EXAMPLES",
            "SEE ALSO",
        ] {
            let heading = format!(".SH {}\n", roff_arg(section));
            assert!(text.contains(&heading), "{file} has no {section} section");
        }
        // Where -o is taken (and on the main page, which lists them): the option names.
        let takes_opts = file == "sockkit.1" || text.contains("\\fB\\-\\-opt\\fR");
        assert_eq!(
            text.contains(".SH \"SOCKET OPTIONS\"\n"),
            takes_opts,
            "{file}: SOCKET OPTIONS where -o is taken"
        );
    }
    let main = &pages()["sockkit.1"];
    for row in TABLE {
        assert!(main.contains(row.name), "SOCKET OPTIONS lacks {}", row.name);
    }
}

fn roff_arg(s: &str) -> String {
    if s.contains(' ') {
        format!("\"{s}\"")
    } else {
        s.to_string()
    }
}

#[test]
fn mandoc_finds_nothing_to_warn_about() {
    let Some(mandoc) = util::peer_or_skip("mandoc") else {
        return;
    };
    for (file, text) in pages() {
        let tmp = std::env::temp_dir().join(format!("sockkit-lint-{}-{file}", std::process::id()));
        fs::write(&tmp, &text).unwrap();
        let out = util::run_cmd(
            Process::new(&mandoc)
                .args(["-Tlint", "-Wwarning"])
                .arg(&tmp),
            b"",
            util::T,
        );
        let _ = fs::remove_file(&tmp);
        let said = String::from_utf8_lossy(&out.stdout).into_owned() + &out.stderr;
        // The one warning we choose: the pages carry no date (see render_page).
        let complaints: Vec<&str> = said
            .lines()
            .filter(|l| !l.contains("missing date"))
            .collect();
        assert!(
            complaints.is_empty(),
            "mandoc -Tlint {file}:\n{}",
            complaints.join("\n")
        );
    }
}
