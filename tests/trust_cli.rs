//! Integration tests for the [trust] items of the command line (issue 16): what sockkit says
//! and which status it exits with when stderr is gone, when a value is wrong, when a file
//! cannot be opened, and when an nc user types nc. The relay's own semantics are tested in
//! relay.rs, the servers' in echo.rs and knock.rs.

mod util;

use std::io::{Read, Write};
use std::process::Stdio;

use util::*;

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
    let closed = ClosedPort::new();
    let port = closed.port().to_string();
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

#[test]
fn a_server_with_show_opts_into_a_broken_stderr_still_serves() {
    // The sibling of connect's --show-opts: a server prints its options (and -v lines) into
    // the same broken stderr, and must serve on.
    let dir = TempDir::new("broken-server");
    let path = dir.root().join("e.sock");
    let mut cmd = sockkit(&["echo", "-v", "--show-opts", "-U", path.to_str().unwrap()]);
    cmd.stderr(broken_pipe()).stdout(Stdio::null());
    let mut server = ChildGuard::spawn(&mut cmd);
    let deadline = std::time::Instant::now() + T;
    let mut c = loop {
        if let Ok(c) = std::os::unix::net::UnixStream::connect(&path) {
            break c;
        }
        assert!(
            server.try_status().is_none(),
            "echo ended: {:?}",
            server.try_status()
        );
        assert!(std::time::Instant::now() < deadline, "echo never listened");
        std::thread::sleep(std::time::Duration::from_millis(5));
    };
    c.set_read_timeout(Some(T)).unwrap();
    c.write_all(b"still here").unwrap();
    c.shutdown(std::net::Shutdown::Write).unwrap();
    let mut back = Vec::new();
    c.read_to_end(&mut back).unwrap();
    assert_eq!(back, b"still here");
    assert!(server.try_status().is_none(), "echo ended after one client");
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

// ---- item 6: SIGINT, SIGTERM and SIGHUP end every subcommand the same way ---------------------

const STOP_SIGNALS: [(i32, &str); 3] = [
    (libc::SIGINT, "SIGINT"),
    (libc::SIGTERM, "SIGTERM"),
    (libc::SIGHUP, "SIGHUP"),
];

/// Sends `sig` to the child and returns the signal that ended it (the shell's `$?` is 128 +
/// that), failing if it exited instead.
fn stop_by(child: &mut ChildGuard, sig: i32) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    // SAFETY: kill() on our own child's PID.
    unsafe { libc::kill(child.id() as i32, sig) };
    let status = child.status_within(T, "sockkit after the signal");
    status
        .signal()
        .unwrap_or_else(|| panic!("exited with {status} instead of ending by signal {sig}"))
}

/// Reads exactly `want.len()` bytes from `r`, bounded, and compares them.
fn expect_bytes<R: Read + Send + 'static>(r: R, want: &[u8]) -> R {
    let n = want.len();
    let h = std::thread::spawn(move || {
        let mut r = r;
        let mut buf = vec![0u8; n];
        r.read_exact(&mut buf).map(|()| (buf, r))
    });
    let (got, r) = join_timeout(h, T, "reading stdout").expect("stdout ended early");
    assert_eq!(got, want);
    r
}

// Each session below is made quiet before the signal (the peer's EOF, a `-v` line for the
// datagram), so the totals the signal finds are exact.

#[test]
fn a_stop_signal_ends_connect_with_its_totals_and_by_that_signal() {
    for (sig, name) in STOP_SIGNALS {
        let (addr, peer) = serve_once(|mut s| {
            s.write_all(b"hello\n").unwrap();
            s.shutdown(std::net::Shutdown::Write).unwrap();
            let mut got = Vec::new();
            let _ = s.read_to_end(&mut got);
            got
        });
        let mut c = ChildGuard::spawn(&mut sockkit(&[
            "connect",
            "-v",
            "127.0.0.1",
            &addr.port().to_string(),
        ]));
        let stdin = c.stdin();
        let mut err = LineTap::new(c.stderr());
        let _out = expect_bytes(c.stdout(), b"hello\n");
        err.wait_for(T, |l| l.contains("closed its sending side"))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(stop_by(&mut c, sig), sig, "{name}");
        let said = err.finish(T);
        assert!(
            said.contains(&format!("stopped on {name}: sent 0 B, received 6 B")),
            "{name}: {said}"
        );
        drop(stdin);
        assert_eq!(join_within(peer, T), b"", "{name}");
    }
}

#[test]
fn a_stop_signal_ends_listen_with_its_totals_and_removes_the_socket_file() {
    let dir = TempDir::new("listen-signals");
    for (sig, name) in STOP_SIGNALS {
        let path = dir.root().join(format!("{name}.sock"));
        let p = path.to_str().unwrap();
        let mut l = ChildGuard::spawn(&mut sockkit(&["listen", "-v", "-U", p]));
        let stdin = l.stdin();
        let (_, mut err) = read_listening_unix(l.stderr());
        let mut client = std::os::unix::net::UnixStream::connect(&path).unwrap();
        client.write_all(b"abc").unwrap();
        client.shutdown(std::net::Shutdown::Write).unwrap();
        let _out = expect_bytes(l.stdout(), b"abc");
        err.wait_for(T, |l| l.contains("closed its sending side"))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(stop_by(&mut l, sig), sig, "{name}");
        let said = err.finish(T);
        assert!(
            said.contains(&format!("stopped on {name}: sent 0 B, received 3 B")),
            "{name}: {said}"
        );
        assert!(
            !path.exists(),
            "{name}: the socket file outlived the signal"
        );
        drop(stdin);
    }
}

#[test]
fn a_stop_signal_ends_listen_u_with_its_totals() {
    for (sig, name) in STOP_SIGNALS {
        let mut l = ChildGuard::spawn(&mut sockkit(&["listen", "-u", "-v", "127.0.0.1", "0"]));
        let stdin = l.stdin();
        let (addr, mut err) = read_listening(l.stderr(), T);
        let u = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        u.send_to(b"dgram", addr).unwrap();
        let _out = expect_bytes(l.stdout(), b"dgram");
        err.wait_for(T, |l| l.contains("datagram of 5 B"))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(stop_by(&mut l, sig), sig, "{name}");
        let said = err.finish(T);
        assert!(
            said.contains(&format!("stopped on {name}: sent 0 B, received 5 B")),
            "{name}: {said}"
        );
        drop(stdin);
    }
}

#[test]
fn a_stop_signal_stops_every_server_and_removes_its_socket_file() {
    let dir = TempDir::new("server-signals");
    for sub in ["echo", "knock"] {
        for (sig, name) in STOP_SIGNALS {
            let path = dir.root().join(format!("{sub}-{name}.sock"));
            let p = path.to_str().unwrap();
            let mut s = ChildGuard::spawn(&mut sockkit(&[sub, "-v", "-U", p]));
            let (_, mut err) = read_listening_unix(s.stderr());
            assert_eq!(stop_by(&mut s, sig), sig, "{sub} {name}");
            let said = err.finish(T);
            assert!(
                said.contains(&format!("stopped on {name}")),
                "{sub}: {said}"
            );
            assert!(
                !path.exists(),
                "{sub} {name}: the socket file outlived the signal"
            );
        }
    }
    for (sig, name) in STOP_SIGNALS {
        let mut s = ChildGuard::spawn(&mut sockkit(&["echo", "-u", "-v", "127.0.0.1", "0"]));
        let (_, mut err) = read_listening(s.stderr(), T);
        assert_eq!(stop_by(&mut s, sig), sig, "echo -u {name}");
        let said = err.finish(T);
        assert!(
            said.contains(&format!("stopped on {name}")),
            "echo -u: {said}"
        );
    }
}

/// Waits for a Unix server's `listening on PATH (Unix)` line; the rest of stderr keeps coming.
fn read_listening_unix(stderr: std::process::ChildStderr) -> (String, LineTap) {
    let mut tap = LineTap::new(stderr);
    let line = tap
        .wait_for(T, |l| l.contains("listening on "))
        .unwrap_or_else(|e| panic!("no announcement: {e}"));
    (line, tap)
}
