//! Integration tests for the [trust] items of the command line (issue 16): what sockkit says
//! and which status it exits with when stderr is gone, when a value is wrong, when a file
//! cannot be opened, and when an nc user types nc. The relay's own semantics are tested in
//! relay.rs, the servers' in echo.rs and knock.rs.

mod util;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::Stdio;

use util::*;

/// A port on 127.0.0.1 that nothing listens on: bound, learned, then released.
fn closed_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().unwrap().port()
}

/// A pipe whose read end is already closed: writing to it fails with EPIPE, as a stderr
/// piped into `| true` does once `true` has exited.
fn broken_pipe() -> std::io::PipeWriter {
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    writer
}

// ---- item 5: no write to stderr may panic ----------------------------------------------------

#[test]
fn broken_stderr_keeps_the_exit_status_of_a_failure() {
    let port = closed_port().to_string();
    for stderr in ["broken pipe", "closed"] {
        let mut cmd = sockkit(&["connect", "127.0.0.1", &port]);
        if stderr == "closed" {
            cmd.stderr(Stdio::null());
        } else {
            cmd.stderr(broken_pipe());
        }
        cmd.stdin(Stdio::null()).stdout(Stdio::null());
        let mut child = ChildGuard::spawn(&mut cmd);
        let status = child.status_within(T, "connect to a closed port");
        assert_eq!(status.code(), Some(1), "stderr {stderr}: {status:?}");
    }
}

#[test]
fn broken_stderr_keeps_the_exit_status_of_a_usage_error() {
    let mut cmd = sockkit(&["connect", "--bogus", "127.0.0.1", "1"]);
    cmd.stderr(broken_pipe())
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    let mut child = ChildGuard::spawn(&mut cmd);
    let status = child.status_within(T, "a usage error");
    assert_eq!(status.code(), Some(2), "{status:?}");
}

#[test]
fn show_opts_and_narration_into_a_broken_stderr_do_not_abort_the_session() {
    let (addr, peer) = serve_once(|mut s| {
        let mut got = Vec::new();
        s.read_to_end(&mut got).unwrap();
        s.write_all(b"bye\n").unwrap();
        got
    });
    let mut cmd = sockkit(&[
        "connect",
        "-vv",
        "--show-opts",
        "127.0.0.1",
        &addr.port().to_string(),
    ]);
    cmd.stderr(broken_pipe());
    let mut child = ChildGuard::spawn(&mut cmd);
    let mut stdin = child.stdin();
    let out = collect(child.stdout());
    stdin.write_all(b"hello\n").unwrap();
    drop(stdin);
    let status = child.status_within(T, "connect --show-opts");
    assert_eq!(status.code(), Some(0), "{status:?}");
    assert_eq!(join_within(peer, T), b"hello\n");
    assert_eq!(join_within(out, T), b"bye\n");
}

// ---- item 12: a negative value names the option that got it ----------------------------------

/// Every option of every subcommand that takes a value, given `-1`: one line that names the
/// option (long form) and exit 2, never the "port -1" of an option the user did not type.
#[test]
fn a_negative_value_names_the_option_that_got_it() {
    let cli = sockkit::cli::command();
    let mut checked = 0;
    for sub in cli.get_subcommands() {
        let name = sub.get_name();
        let rest: &[&str] = match name {
            "connect" => &["127.0.0.1", "1"],
            _ => &["0"],
        };
        for arg in sub.get_arguments() {
            if arg.is_positional() || !arg.get_action().takes_values() {
                continue;
            }
            let long = format!(
                "--{}",
                arg.get_long().expect("every option has a long name")
            );
            let mut args = vec![name, long.as_str(), "-1"];
            args.extend_from_slice(rest);
            let out = run(&args, b"", T);
            assert_eq!(out.code(), Some(2), "{args:?}: {}", out.stderr);
            let line = out.stderr.trim_end();
            assert!(!line.contains('\n'), "{args:?}: more than one line: {line}");
            assert!(
                line.starts_with("sockkit: ") && line.contains(&format!("'{long} ")),
                "{args:?}: the line does not name {long}: {line}"
            );
            if long != "--source-port" {
                assert!(!line.contains("port -1"), "{args:?}: {line}");
            }
            checked += 1;
        }
    }
    assert!(checked >= 20, "only {checked} options take a value?");
}

// ---- item 18: nc muscle memory gets the sockkit spelling -------------------------------------

/// Each nc spelling: exit 2, one line, and in it the sockkit command line that means the same.
#[test]
fn nc_spellings_get_one_line_with_the_sockkit_spelling() {
    let table: &[(&str, &str)] = &[
        ("listen -p 4444", "`sockkit listen 4444`"),
        ("-l 4444", "`sockkit listen 4444`"),
        ("listen -l 4444", "`sockkit listen 4444`"),
        ("listen -lvnp 4444", "`sockkit listen -v 4444`"),
        ("-lvp 4444", "`sockkit listen -v 4444`"),
        ("listen -e /bin/cat 4444", "`sockkit forward`"),
        ("connect -c cat 127.0.0.1 1", "`sockkit forward`"),
        ("connect -N 127.0.0.1 1", "--no-shutdown"),
        (
            "connect -C 127.0.0.1 1",
            "`sockkit connect --crlf 127.0.0.1 1`",
        ),
        (
            "connect -q 1 127.0.0.1 1",
            "`sockkit connect --quit-after 1s 127.0.0.1 1`",
        ),
        ("listen -q 1 4444", "`sockkit listen --quit-after 1s 4444`"),
        ("connect -n 127.0.0.1 1", "`sockkit connect 127.0.0.1 1`"),
        ("connect localhost:4444", "`sockkit connect localhost 4444`"),
        ("connect [::1]:4444", "`sockkit connect ::1 4444`"),
        ("connect 4444 localhost", "`sockkit connect localhost 4444`"),
        ("localhost 4444", "`sockkit connect localhost 4444`"),
        ("-zv localhost 80", "`sockkit connect -zv localhost 80`"),
    ];
    for (args, want) in table {
        let argv: Vec<&str> = args.split_whitespace().collect();
        let out = run(&argv, b"", T);
        assert_eq!(out.code(), Some(2), "{args}: {}", out.stderr);
        let line = out.stderr.trim_end();
        assert!(
            line.starts_with("sockkit: ") && !line.contains('\n'),
            "{args}: not one line: {line}"
        );
        assert!(line.contains(want), "{args}: {line} lacks {want}");
        assert!(out.stdout.is_empty(), "{args}: stdout {:?}", out.stdout);
    }
}

// ---- item 8: every file is opened before anything listens -------------------------------------

/// A file that cannot be opened fails the command before a port is taken: no `listening on`
/// line for a script to connect to, exit 1, one line naming the file. Every subcommand and
/// transport that takes a file.
#[test]
fn a_file_that_cannot_be_opened_fails_before_listening() {
    let dir = TempDir::new("files-first");
    let sock = dir.root().join("s.sock");
    let sock = sock.to_str().unwrap();
    let missing = "/nonexistent/sockkit-test/x";
    let table: &[&[&str]] = &[
        &["listen", "--hexdump-file", missing, "127.0.0.1", "0"],
        &["listen", "-u", "--hexdump-file", missing, "127.0.0.1", "0"],
        &["listen", "-U", sock, "--hexdump-file", missing],
        &[
            "listen",
            "--broker",
            "--hexdump-file",
            missing,
            "127.0.0.1",
            "0",
        ],
        &[
            "listen",
            "--chat",
            "--hexdump-file",
            missing,
            "127.0.0.1",
            "0",
        ],
        &["echo", "--hexdump-file", missing, "127.0.0.1", "0"],
        &["echo", "-u", "--hexdump-file", missing, "127.0.0.1", "0"],
        &["echo", "-U", sock, "--hexdump-file", missing],
        &["knock", "--hexdump-file", missing, "127.0.0.1", "0"],
        &["knock", "--jokes", missing, "127.0.0.1", "0"],
        &["knock", "-U", sock, "--jokes", missing],
        &["knock", "--jokes", "/", "127.0.0.1", "0"],
    ];
    for args in table {
        let out = run(args, b"", T);
        assert_eq!(out.code(), Some(1), "{args:?}: {}", out.stderr);
        assert!(
            !out.stderr.contains("listening on"),
            "{args:?}: {}",
            out.stderr
        );
        let line = out.stderr.trim_end();
        assert!(!line.contains('\n'), "{args:?}: more than one line: {line}");
        let file = if line.contains(missing) { missing } else { "/" };
        assert!(
            line.contains(file),
            "{args:?}: does not name the file: {line}"
        );
        assert!(!std::path::Path::new(sock).exists(), "{args:?} left {sock}");
    }
}

// ---- item 13: the words say what is true ------------------------------------------------------

#[test]
fn connecting_to_a_file_that_is_not_a_socket_says_so() {
    let dir = TempDir::new("not-a-socket");
    let file = dir.root().join("regular.txt");
    std::fs::write(&file, b"not a socket\n").unwrap();
    for (path, kind) in [
        (file.to_str().unwrap(), "a regular file"),
        (dir.root().to_str().unwrap(), "a directory"),
    ] {
        for udp in [false, true] {
            let mut args = vec!["connect", "-U", path];
            if udp {
                args.push("-u");
            }
            let out = run(&args, b"", T);
            assert_eq!(out.code(), Some(1), "{args:?}: {}", out.stderr);
            assert!(
                out.stderr.contains(&format!("it is {kind}, not a socket"))
                    && !out.stderr.contains("stale"),
                "{args:?}: {}",
                out.stderr
            );
        }
    }
}

#[test]
fn binding_an_ipv6_address_not_on_this_machine_says_so() {
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        return skip_or_fail("no IPv6 on this machine");
    }
    for args in [&["listen", "::2", "0"][..], &["echo", "-u", "::2", "0"]] {
        let out = run(args, b"", T);
        assert_eq!(out.code(), Some(1), "{args:?}: {}", out.stderr);
        assert!(
            out.stderr.contains("not on this machine") && !out.stderr.contains("IPv6 is not"),
            "{args:?}: {}",
            out.stderr
        );
    }
}

/// A listener on loopback with a backlog of 0 and one connection queued: its accept queue is
/// full, so the kernel drops further SYNs and a connect can only time out.
fn full_listener() -> (socket2::Socket, std::net::TcpStream, u16) {
    use socket2::{Domain, Socket, Type};
    let l = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    l.bind(
        &"127.0.0.1:0"
            .parse::<std::net::SocketAddr>()
            .unwrap()
            .into(),
    )
    .unwrap();
    l.listen(0).unwrap();
    let addr = l.local_addr().unwrap().as_socket().unwrap();
    let queued = std::net::TcpStream::connect_timeout(&addr, T).unwrap();
    (l, queued, addr.port())
}

#[test]
fn a_timeout_on_loopback_blames_no_firewall() {
    let (_listener, _queued, port) = full_listener();
    let port = port.to_string();
    let out = run(&["connect", "-w", "300ms", "127.0.0.1", &port], b"", T);
    assert_eq!(out.code(), Some(1), "{}", out.stderr);
    assert!(
        out.stderr.contains("accept queue") && !out.stderr.contains("firewall"),
        "{}",
        out.stderr
    );
    let out = run(&["connect", "-w", "1ns", "127.0.0.1", &port], b"", T);
    assert_eq!(out.code(), Some(1), "{}", out.stderr);
    assert!(
        out.stderr.contains("shorter than a TCP handshake") && !out.stderr.contains("firewall"),
        "{}",
        out.stderr
    );
}
