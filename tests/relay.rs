//! The foundation's integration tests: `sockkit connect` and `sockkit listen` driven as a user
//! drives them, over loopback only, on ports the kernel picks. They prove the relay rules of
//! DESIGN.md (half-close, peer EOF, --quit-after, --send-only/--recv-only, --no-shutdown, a
//! closed stdout), IPv6 and dual-stack, interop with peers nobody here wrote (python3, nc),
//! and every error case with its exit status and message. Every wait is bounded.

mod util;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::process::Stdio;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, SockRef, Socket, Type};
use util::*;

/// `connect 127.0.0.1 PORT` plus extra flags, as argument strings.
fn connect_args(addr: SocketAddr, extra: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = vec!["connect".into()];
    v.extend(extra.iter().map(std::string::ToString::to_string));
    v.push(addr.ip().to_string());
    v.push(addr.port().to_string());
    v
}

/// Reads exactly `n` bytes from a child's stdout on a thread, bounded; returns them and the
/// pipe (still open) so the test decides when the reader goes away.
fn read_n<R: Read + Send + 'static>(mut r: R, n: usize) -> (Vec<u8>, R) {
    let h = thread::spawn(move || {
        let mut buf = vec![0u8; n];
        r.read_exact(&mut buf).map(|()| (buf, r))
    });
    join_timeout(h, T, "reading stdout")
        .unwrap_or_else(|e| panic!("stdout ended before {n} bytes: {e}"))
}

/// A runtime error is one line, `sockkit: ...`, with no panic or backtrace.
#[track_caller]
fn assert_one_error_line(stderr: &str) {
    assert!(
        stderr.starts_with("sockkit: ") && stderr.trim_end().lines().count() == 1,
        "want one `sockkit: ...` line, got:\n{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

// ---------------------------------------------------------------------------------------
// Data in both directions

#[test]
fn sixty_four_mib_each_way_at_once_byte_exact() {
    const N: usize = 64 << 20;
    let to_client = random_bytes(1, N);
    let to_server = random_bytes(2, N);

    let mut server = Server::start(&["listen", "127.0.0.1", "0"]);
    let port = server.port().to_string();
    let mut server_in = server.child.stdin();
    let server_out = collect(server.child.stdout());
    let data = to_client.clone();
    let w1 = thread::spawn(move || server_in.write_all(&data));

    let mut client = ChildGuard::spawn(&mut sockkit(&["connect", "127.0.0.1", &port]));
    let mut client_in = client.stdin();
    let client_out = collect(client.stdout());
    let client_err = collect(client.stderr());
    let data = to_server.clone();
    // Both writers run at the same time: each direction carries 64 MiB while the other does.
    let w2 = thread::spawn(move || client_in.write_all(&data));

    let limit = Duration::from_mins(2);
    let cs = client.status_within(limit, "connect");
    let ss = server.child.status_within(limit, "listen");
    join_timeout(w1, T, "writing listen's stdin").expect("writing listen's stdin");
    join_timeout(w2, T, "writing connect's stdin").expect("writing connect's stdin");
    let client_err = String::from_utf8_lossy(&join_within(client_err, T)).into_owned();
    assert!(cs.success(), "connect: {cs}: {client_err}");
    assert!(ss.success(), "listen: {ss}: {}", server.stderr.finish(T));
    assert_bytes_eq(&join_within(client_out, T), &to_client, "listen -> connect");
    assert_bytes_eq(&join_within(server_out, T), &to_server, "connect -> listen");
    assert_eq!(client_err, "", "connect is silent without -v");
}

#[test]
fn request_response_over_a_pipe() {
    let request = b"GET / HTTP/1.0\r\nHost: test\r\n\r\n".to_vec();
    let body = random_bytes(3, 300_000);
    let mut reply = b"HTTP/1.0 200 OK\r\n\r\n".to_vec();
    reply.extend_from_slice(&body);
    let answer = reply.clone();
    // Like an HTTP/1.0 server that reads the request to EOF: it only answers once our
    // half-close has told it the request is complete.
    let (addr, server) = serve_once(move |mut s| {
        let mut got = Vec::new();
        s.read_to_end(&mut got).expect("reading the request");
        s.write_all(&answer).expect("writing the reply");
        got
    });
    let out = run(&connect_args(addr, &[]), &request, T);
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    assert_eq!(join_timeout(server, T, "server"), request);
    assert_bytes_eq(&out.stdout, &reply, "the reply");
    assert_eq!(out.stderr, "");
}

// ---------------------------------------------------------------------------------------
// The peer ends first

#[test]
fn peer_half_close_keeps_sending_stdin_until_its_eof() {
    let payload = random_bytes(4, 200_000);
    let sent = payload.clone();
    let (addr, server) = serve_once(move |mut s| {
        s.write_all(&sent).unwrap();
        s.shutdown(Shutdown::Write).unwrap(); // half-close: still listening
        let mut got = Vec::new();
        s.read_to_end(&mut got)
            .expect("reading after the half-close");
        got
    });
    let mut client = ChildGuard::spawn(&mut sockkit(&connect_args(addr, &[])));
    let mut stdin = client.stdin();
    let (got, stdout) = read_n(client.stdout(), payload.len());
    assert_bytes_eq(&got, &payload, "what the peer sent before its EOF");
    // stdin is a pipe that is still open: the peer may only have half-closed, so we go on.
    assert!(
        client.wait_timeout(Duration::from_millis(300)).is_none(),
        "connect ended at the peer's EOF although stdin (a pipe) is still open"
    );
    stdin.write_all(b"late words").unwrap();
    drop(stdin);
    let status = client.status_within(T, "connect after stdin EOF");
    assert_eq!(status.code(), Some(0));
    assert_eq!(join_timeout(server, T, "server"), b"late words");
    assert_eq!(
        join_within(collect(stdout), T),
        b"",
        "nothing after the peer's EOF"
    );
}

#[test]
fn peer_close_then_stdin_eof_exits_0_with_everything_printed() {
    let payload = random_bytes(5, 100_000);
    let sent = payload.clone();
    let (addr, server) = serve_once(move |mut s| {
        s.write_all(&sent).unwrap();
        // dropped: a full close
    });
    let mut client = ChildGuard::spawn(&mut sockkit(&connect_args(addr, &[])));
    let stdin = client.stdin();
    let err = collect(client.stderr());
    let (got, _stdout) = read_n(client.stdout(), payload.len());
    assert_bytes_eq(&got, &payload, "what the peer sent before closing");
    join_timeout(server, T, "server");
    drop(stdin);
    let status = client.status_within(T, "connect");
    let err = String::from_utf8_lossy(&join_within(err, T)).into_owned();
    assert_eq!(status.code(), Some(0), "{err}");
    assert_eq!(err, "");
}

#[test]
fn writing_after_the_peer_fully_closed_exits_1_counting_lost_bytes() {
    let (addr, server) = serve_once(|mut s| {
        s.write_all(b"bye\n").unwrap();
    });
    let mut client = ChildGuard::spawn(&mut sockkit(&connect_args(addr, &[])));
    let mut stdin = client.stdin();
    let err = collect(client.stderr());
    let (got, _stdout) = read_n(client.stdout(), 4);
    assert_eq!(got, b"bye\n");
    join_timeout(server, T, "server");
    // The first write after a close only earns an RST; a later one fails. Keep writing, a
    // bounded number of times, until connect gives up.
    let deadline = Instant::now() + T;
    let status = loop {
        if let Some(s) = client.try_status() {
            break s;
        }
        assert!(Instant::now() < deadline, "connect kept running");
        if stdin.write_all(b"are you there?\n").is_err() {
            break client.status_within(T, "connect");
        }
        thread::sleep(Duration::from_millis(20));
    };
    let err = String::from_utf8_lossy(&join_within(err, T)).into_owned();
    assert_eq!(status.code(), Some(1), "{err}");
    assert_one_error_line(&err);
    assert!(
        err.contains("the peer closed the connection") && err.contains("not delivered"),
        "{err}"
    );
}

#[test]
fn peer_close_with_a_terminal_on_stdin_ends_the_session() {
    // A person at a terminal gets their prompt back when the peer says goodbye, even though
    // the terminal never sends EOF. The terminal here is a pseudo-terminal pair.
    let (mut master, mut slave) = (0, 0);
    // SAFETY: openpty writes two descriptors; the name/termios/winsize pointers may be null.
    let rc = unsafe {
        libc::openpty(
            &raw mut master,
            &raw mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    if rc != 0 {
        skip_or_fail(&format!(
            "no pseudo-terminal: {}",
            std::io::Error::last_os_error()
        ));
        return;
    }
    // SAFETY: both descriptors were just opened and are owned only here.
    let (master, slave) = unsafe {
        use std::os::fd::{FromRawFd, OwnedFd};
        (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave))
    };
    let (addr, server) = serve_once(|mut s| {
        s.write_all(b"goodbye\n").unwrap();
    });
    let mut cmd = sockkit(&connect_args(addr, &[]));
    cmd.stdin(Stdio::from(slave));
    let mut client = ChildGuard::spawn(&mut cmd);
    let (got, _stdout) = read_n(client.stdout(), 8);
    assert_eq!(got, b"goodbye\n");
    join_timeout(server, T, "server");
    let status = client.status_within(T, "connect with a terminal on stdin");
    assert_eq!(status.code(), Some(0));
    drop(master);
}

// ---------------------------------------------------------------------------------------
// listen

#[test]
fn listen_0_announces_the_real_port() {
    let mut server = Server::start(&["listen", "0"]);
    assert_ne!(server.port(), 0, "announced port 0");
    let line = server.stderr.text();
    assert!(
        line.contains("(IPv4 and IPv6)") || line.contains("(IPv4 only"),
        "{line}"
    );
    let mut c = TcpStream::connect(("127.0.0.1", server.port())).expect("connecting");
    c.write_all(b"found you").unwrap();
    c.shutdown(Shutdown::Write).unwrap();
    drop(server.child.stdin()); // EOF: listen half-closes and ends after our EOF
    c.set_read_timeout(Some(T)).unwrap();
    let mut rest = Vec::new();
    c.read_to_end(&mut rest).unwrap();
    let out = collect(server.child.stdout());
    let status = server.child.status_within(T, "listen");
    assert_eq!(status.code(), Some(0));
    assert_eq!(join_within(out, T), b"found you");
}

#[test]
fn listen_q_does_not_announce() {
    let mut server = ChildGuard::spawn(&mut sockkit(&["listen", "-q", "127.0.0.1", "0"]));
    let err = collect(server.stderr());
    // No announcement to read the port from: ask the kernel which port the PID listens on.
    let Some(port) = listening_port_of(server.id(), T) else {
        skip_or_fail("cannot read listening sockets from /proc here");
        return;
    };
    let mut c = TcpStream::connect(("127.0.0.1", port)).expect("connecting");
    c.write_all(b"quiet").unwrap();
    c.shutdown(Shutdown::Write).unwrap();
    drop(server.stdin());
    let out = collect(server.stdout());
    assert_eq!(server.status_within(T, "listen -q").code(), Some(0));
    assert_eq!(join_within(out, T), b"quiet");
    assert_eq!(
        String::from_utf8_lossy(&join_within(err, T)),
        "",
        "-q said something"
    );
}

#[test]
fn keep_open_serves_two_clients_one_after_the_other() {
    let mut cmd = sockkit(&["listen", "-k", "-v", "127.0.0.1", "0"]);
    let mut server = Server::start_with(&mut cmd);
    let mut stdin = server.child.stdin();
    let out = collect(server.child.stdout());
    // Typed before any client: goes to the first one only.
    stdin.write_all(b"hello first\n").unwrap();
    drop(stdin);
    let mut replies = Vec::new();
    for word in [&b"one "[..], b"two"] {
        let mut c = TcpStream::connect(server.loopback()).expect("connecting");
        c.set_read_timeout(Some(T)).unwrap();
        c.write_all(word).unwrap();
        c.shutdown(Shutdown::Write).unwrap();
        let mut got = Vec::new();
        c.read_to_end(&mut got).expect("reading until listen's EOF");
        replies.push(got);
        server
            .stderr
            .wait_for(T, |l| l.starts_with("sockkit: closed:"))
            .expect("the session's end");
    }
    assert_eq!(replies, [&b"hello first\n"[..], b""]);
    assert!(
        server.child.try_status().is_none(),
        "-k ended after two clients"
    );
    drop(server.child); // kill it: -k serves until stopped
    assert_eq!(join_within(out, T), b"one two");
    assert_eq!(server.stderr.text().matches("accepted ").count(), 2);
}

#[test]
fn keep_open_survives_a_client_that_resets() {
    let mut server = Server::start(&["listen", "-k", "-v", "127.0.0.1", "0"]);
    drop(server.child.stdin());
    let out = collect(server.child.stdout());
    // First client: an abortive close (RST) in the middle of its session.
    let c = TcpStream::connect(server.loopback()).expect("connecting");
    (&c).write_all(b"cut ").unwrap();
    server
        .stderr
        .wait_for(T, |l| l.contains("accepted "))
        .expect("the first client accepted");
    SockRef::from(&c).set_linger(Some(Duration::ZERO)).unwrap();
    drop(c);
    let said = server
        .stderr
        .wait_for(T, |l| {
            l.starts_with("sockkit: client ") || l.starts_with("sockkit: closed:")
        })
        .expect("the first session's end");
    // Second client: served as if nothing happened.
    let mut c = TcpStream::connect(server.loopback()).expect("connecting again");
    c.set_read_timeout(Some(T)).unwrap();
    c.write_all(b"whole").unwrap();
    c.shutdown(Shutdown::Write).unwrap();
    let mut rest = Vec::new();
    c.read_to_end(&mut rest)
        .expect("reading until listen's EOF");
    server
        .stderr
        .wait_for(T, |l| l.starts_with("sockkit: closed:"))
        .expect("the second session's end");
    assert!(
        server.child.try_status().is_none(),
        "-k ended after a reset: {said}"
    );
    drop(server.child);
    let got = join_within(out, T);
    assert!(
        got.ends_with(b"whole"),
        "{:?}",
        String::from_utf8_lossy(&got)
    );
}

#[test]
fn idle_timeout_ends_a_silent_session_with_1() {
    let (addr, server) = serve_once(|mut s| {
        // Say nothing, and wait for the client to give up.
        let mut got = Vec::new();
        let _ = s.read_to_end(&mut got);
        got
    });
    let mut client = ChildGuard::spawn(&mut sockkit(&connect_args(
        addr,
        &["--idle-timeout", "300ms"],
    )));
    let _stdin = client.stdin(); // open and silent
    let err = collect(client.stderr());
    let status = client.status_within(T, "connect --idle-timeout");
    let err = String::from_utf8_lossy(&join_within(err, T)).into_owned();
    assert_eq!(status.code(), Some(1), "{err}");
    assert_one_error_line(&err);
    assert!(err.contains("idle timeout"), "{err}");
    assert_eq!(join_timeout(server, T, "server"), b"");
}

// ---------------------------------------------------------------------------------------
// IPv6 and dual-stack

#[test]
fn ipv4_client_reaches_the_default_dual_stack_listener() {
    let mut server = Server::start(&["listen", "-v", "0"]);
    if !server.addr.is_ipv6() {
        eprintln!("SKIPPED: no IPv6 here, listen fell back to {}", server.addr);
        return;
    }
    assert_eq!(server.addr.ip().to_string(), "::");
    assert!(server.stderr.text().contains("(IPv4 and IPv6)"));
    drop(server.child.stdin());
    let out = collect(server.child.stdout());
    let port = server.port().to_string();
    let client = run(&["connect", "-4", "127.0.0.1", &port], b"over IPv4", T);
    assert_eq!(client.code(), Some(0), "{}", client.stderr);
    assert_eq!(server.child.status_within(T, "listen").code(), Some(0));
    assert_eq!(join_within(out, T), b"over IPv4");
    let said = server.stderr.finish(T);
    // One address form everywhere: the IPv4 client as IPv4, not the kernel's mapped form.
    assert!(said.contains("accepted 127.0.0.1:"), "{said}");
    assert!(!said.contains("::ffff:"), "{said}");
}

#[test]
fn ipv6_loopback_both_ways_with_and_without_brackets() {
    if !ipv6_loopback_works() {
        eprintln!("SKIPPED: ::1 cannot be bound here (no IPv6 loopback)");
        return;
    }
    let mut server = Server::start(&["listen", "-k", "-v", "::1", "0"]);
    assert_eq!(server.addr.ip().to_string(), "::1");
    assert!(server.stderr.text().contains("(IPv6)"));
    let out = collect(server.child.stdout());
    drop(server.child.stdin());
    let port = server.port().to_string();
    for (host, data) in [("::1", &b"plain "[..]), ("[::1]", b"brackets")] {
        let c = run(&["connect", "-6", host, &port], data, T);
        assert_eq!(c.code(), Some(0), "{host}: {}", c.stderr);
        server
            .stderr
            .wait_for(T, |l| l.starts_with("sockkit: closed:"))
            .expect("the session's end");
    }
    drop(server.child);
    assert_eq!(join_within(out, T), b"plain brackets");
    assert!(server.stderr.text().contains("accepted [::1]:"));
}

// ---------------------------------------------------------------------------------------
// Ending options

#[test]
fn quit_after_ends_a_session_whose_peer_never_closes() {
    let (release_tx, release) = mpsc::channel::<()>();
    let (addr, server) = serve_once(move |mut s| {
        let mut got = Vec::new();
        s.read_to_end(&mut got).unwrap();
        // Hold the connection open until the test is done: no EOF for the client.
        let _ = release.recv_timeout(T);
        got
    });
    let started = Instant::now();
    let out = run(&connect_args(addr, &["--quit-after", "300ms"]), b"x", T);
    let took = started.elapsed();
    release_tx.send(()).unwrap();
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    assert!(took >= Duration::from_millis(300), "ended after {took:?}");
    assert_eq!(join_timeout(server, T, "server"), b"x");
}

#[test]
fn without_quit_after_the_client_waits_for_the_peer() {
    let (release_tx, release) = mpsc::channel::<()>();
    let (addr, server) = serve_once(move |mut s| {
        let mut got = Vec::new();
        s.read_to_end(&mut got).unwrap();
        let _ = release.recv_timeout(T);
        s.write_all(b"late answer").unwrap();
    });
    let mut client = ChildGuard::spawn(&mut sockkit(&connect_args(addr, &[])));
    drop(client.stdin());
    let out = collect(client.stdout());
    assert!(
        client.wait_timeout(Duration::from_millis(500)).is_none(),
        "connect ended before the peer's EOF"
    );
    release_tx.send(()).unwrap();
    join_timeout(server, T, "server");
    assert_eq!(client.status_within(T, "connect").code(), Some(0));
    assert_eq!(join_within(out, T), b"late answer");
}

#[test]
fn send_only_prints_nothing_and_recv_only_sends_nothing() {
    let (sent_tx, sent) = mpsc::channel();
    let (addr, server) = serve_once(move |mut s| {
        s.write_all(b"you should not see this").unwrap();
        sent_tx.send(()).unwrap();
        let mut got = Vec::new();
        s.read_to_end(&mut got).unwrap();
        got
    });
    let mut client = ChildGuard::spawn(&mut sockkit(&connect_args(addr, &["--send-only"])));
    let mut stdin = client.stdin();
    let out = collect(client.stdout());
    sent.recv_timeout(T).expect("the server sending");
    stdin.write_all(b"payload").unwrap();
    // Give the peer's bytes time to arrive while the session is still on (stdin is open), so
    // that printing them would be caught; --send-only must drop them.
    thread::sleep(Duration::from_millis(300));
    drop(stdin);
    let status = client.status_within(T, "connect --send-only");
    assert_eq!(status.code(), Some(0));
    assert_eq!(
        join_within(out, T),
        b"",
        "--send-only printed what the peer sent"
    );
    assert_eq!(join_timeout(server, T, "server"), b"payload");

    let (addr, server) = serve_once(|mut s| {
        s.write_all(b"news").unwrap();
        s.shutdown(Shutdown::Write).unwrap();
        let mut got = Vec::new();
        s.read_to_end(&mut got).unwrap();
        got
    });
    let out = run(&connect_args(addr, &["--recv-only"]), b"must stay here", T);
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    assert_eq!(out.stdout, b"news");
    assert_eq!(
        join_timeout(server, T, "server"),
        b"",
        "--recv-only sent stdin"
    );
}

#[test]
fn no_shutdown_keeps_the_sending_side_open_at_stdin_eof() {
    let (addr, server) = serve_once(|mut s| {
        let mut req = [0u8; 3];
        s.read_exact(&mut req).unwrap();
        // With --no-shutdown no EOF follows the request: the read times out instead.
        s.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        let mut more = [0u8; 1];
        let after = s.read(&mut more);
        s.write_all(b"reply").unwrap();
        (req, after.map_err(|e| e.kind()))
    });
    let out = run(&connect_args(addr, &["--no-shutdown"]), b"req", T);
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    assert_eq!(out.stdout, b"reply");
    let (req, after) = join_timeout(server, T, "server");
    assert_eq!(&req, b"req");
    assert!(
        matches!(
            after,
            Err(std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut)
        ),
        "the server saw {after:?} instead of silence (an EOF means the write side was shut)"
    );
}

#[test]
fn stdout_closed_by_the_reader_ends_quietly_with_0() {
    // `sockkit connect ... | head -c 10`: head reads 10 bytes and goes away.
    let (addr, server) = serve_once(|mut s| {
        let chunk = random_bytes(6, 64 * 1024);
        // Send until the client is gone (bounded: 64 MiB at most).
        for _ in 0..1024 {
            if s.write_all(&chunk).is_err() {
                return true;
            }
        }
        false
    });
    let mut cmd = sockkit(&connect_args(addr, &[]));
    cmd.stdin(Stdio::null());
    let mut client = ChildGuard::spawn(&mut cmd);
    let err = collect(client.stderr());
    let (got, stdout) = read_n(client.stdout(), 10);
    assert_eq!(got, random_bytes(6, 10));
    drop(stdout);
    let status = client.status_within(T, "connect with a closed stdout");
    let err = String::from_utf8_lossy(&join_within(err, T)).into_owned();
    assert_eq!(status.code(), Some(0), "{err}");
    assert_eq!(err, "", "a closed stdout is a normal end: no message");
    assert!(
        join_timeout(server, T, "server"),
        "the server never saw us go"
    );

    // The same for listen, with a client that keeps sending.
    let mut server = Server::start(&["listen", "127.0.0.1", "0"]);
    let addr = server.loopback();
    let sender = thread::spawn(move || {
        let mut c = TcpStream::connect(addr).unwrap();
        c.set_write_timeout(Some(T)).unwrap();
        let chunk = random_bytes(7, 64 * 1024);
        (0..1024).any(|_| c.write_all(&chunk).is_err())
    });
    let (got, stdout) = read_n(server.child.stdout(), 10);
    assert_eq!(got, random_bytes(7, 10));
    drop(stdout);
    let status = server.child.status_within(T, "listen with a closed stdout");
    assert_eq!(status.code(), Some(0));
    let said = server.stderr.finish(T);
    assert!(
        said.starts_with("sockkit: listening on") && said.lines().count() == 1,
        "a closed stdout is a normal end: no message; got:\n{said}"
    );
    assert!(
        join_timeout(sender, T, "client"),
        "the client never saw listen go"
    );
}

// ---------------------------------------------------------------------------------------
// Interop with peers nobody here wrote

/// A python3 TCP server on 127.0.0.1:0 that prints its port, reads to EOF and answers with
/// the bytes reversed.
const PY_REVERSE_SERVER: &str = r#"
import socket, sys
l = socket.socket()
l.bind(("127.0.0.1", 0))
l.listen(1)
l.settimeout(30)
print(l.getsockname()[1], flush=True)
c, _ = l.accept()
c.settimeout(30)
data = b""
while True:
    b = c.recv(65536)
    if not b:
        break
    data += b
c.sendall(data[::-1])
c.close()
"#;

/// A python3 client: sends its stdin to 127.0.0.1:PORT, half-closes, prints what comes back.
const PY_CLIENT: &str = r#"
import socket, sys
payload = sys.stdin.buffer.read()
c = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=30)
c.sendall(payload)
c.shutdown(socket.SHUT_WR)
while True:
    b = c.recv(65536)
    if not b:
        break
    sys.stdout.buffer.write(b)
"#;

#[test]
fn connect_talks_to_a_python3_server() {
    let Some(python) = peer_or_skip("python3") else {
        return;
    };
    let mut cmd = std::process::Command::new(python);
    cmd.args(["-c", PY_REVERSE_SERVER])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let mut py = ChildGuard::spawn(&mut cmd);
    let mut port_line = LineTap::new(py.stdout());
    let port = port_line
        .wait_for(T, |l| l.parse::<u16>().is_ok())
        .expect("python3 printing its port");
    let data = random_bytes(8, 1 << 20);
    let out = run(&["connect", "127.0.0.1", port.as_str()], &data, T);
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    let want: Vec<u8> = data.iter().rev().copied().collect();
    assert_bytes_eq(&out.stdout, &want, "python3's reversed reply");
    assert!(py.status_within(T, "python3 server").success());
}

#[test]
fn listen_talks_to_a_python3_client() {
    let Some(python) = peer_or_skip("python3") else {
        return;
    };
    let mut server = Server::start(&["listen", "0"]);
    let to_py = random_bytes(9, 1 << 20);
    let from_py = random_bytes(10, 1 << 20);
    let mut stdin = server.child.stdin();
    let data = to_py.clone();
    let w = thread::spawn(move || stdin.write_all(&data));
    let out = collect(server.child.stdout());
    let mut cmd = std::process::Command::new(python);
    cmd.args(["-c", PY_CLIENT, &server.port().to_string()]);
    let py = run_cmd(&mut cmd, &from_py, T);
    assert!(py.status.success(), "python3 client: {}", py.stderr);
    assert_eq!(server.child.status_within(T, "listen").code(), Some(0));
    join_timeout(w, T, "writing listen's stdin").unwrap();
    assert_bytes_eq(&py.stdout, &to_py, "listen -> python3");
    assert_bytes_eq(&join_within(out, T), &from_py, "python3 -> listen");
}

#[test]
fn listen_talks_to_openbsd_nc() {
    let Some(nc) = peer_or_skip("nc") else {
        return;
    };
    let mut server = Server::start(&["listen", "127.0.0.1", "0"]);
    let mut stdin = server.child.stdin();
    stdin.write_all(b"from sockkit\n").unwrap();
    drop(stdin);
    let out = collect(server.child.stdout());
    // -N: shut the socket down at stdin EOF (OpenBSD netcat), as sockkit does by default.
    let mut cmd = std::process::Command::new(nc);
    cmd.args(["-N", "127.0.0.1", &server.port().to_string()]);
    let nc_out = run_cmd(&mut cmd, b"from nc\n", T);
    assert!(nc_out.status.success(), "nc: {}", nc_out.stderr);
    assert_eq!(server.child.status_within(T, "listen").code(), Some(0));
    assert_eq!(nc_out.stdout, b"from sockkit\n");
    assert_eq!(join_within(out, T), b"from nc\n");
}

// ---------------------------------------------------------------------------------------
// Errors: one line, the right exit status, words that name the problem

#[test]
fn bad_ports_are_usage_errors() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["connect", "127.0.0.1", "0"],
            "port 0 cannot be connected to",
        ),
        (
            &["connect", "127.0.0.1", "65536"],
            "port 65536 is out of range",
        ),
        (&["connect", "127.0.0.1", "-1"], "port -1 is out of range"),
        (
            &["connect", "127.0.0.1", "abc"],
            "'abc' is not a port number",
        ),
        (&["listen", "65536"], "port 65536 is out of range"),
        (&["listen", "-1"], "port -1 is out of range"),
        (&["listen", "abc"], "'abc' is not a port number"),
        (
            &["listen", "127.0.0.1", "abc"],
            "'abc' is not a port number",
        ),
        (&["listen"], "missing PORT"),
    ];
    for (args, words) in cases {
        let out = run(args, b"", T);
        assert_eq!(out.code(), Some(2), "{args:?}: {}", out.stderr);
        assert!(out.stderr.contains(words), "{args:?}: {}", out.stderr);
        assert_eq!(out.stdout, b"", "{args:?} wrote to stdout");
        assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    }
}

#[test]
fn unknown_flags_and_subcommands_are_usage_errors() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["connect", "--bogus", "127.0.0.1", "1"],
            "unexpected argument '--bogus'",
        ),
        (&["listen", "-Z", "0"], "unexpected argument '-Z'"),
        (&["frobnicate"], "unrecognized subcommand 'frobnicate'"),
        (
            &["connect", "-w", "soon", "127.0.0.1", "1"],
            "not a duration",
        ),
        (
            &["connect", "-4", "-6", "127.0.0.1", "1"],
            "cannot be used with",
        ),
    ];
    for (args, words) in cases {
        let out = run(args, b"", T);
        assert_eq!(out.code(), Some(2), "{args:?}: {}", out.stderr);
        assert!(out.stderr.contains(words), "{args:?}: {}", out.stderr);
        assert_eq!(out.stdout, b"");
    }
    // No subcommand at all: the usage, on stderr, exit 2.
    let out = run::<&str>(&[], b"", T);
    assert_eq!(out.code(), Some(2));
    assert!(out.stderr.contains("Usage: sockkit"), "{}", out.stderr);
}

#[test]
fn unresolvable_host_says_which_name() {
    // .invalid is reserved (RFC 2606): it never resolves, anywhere.
    let out = run(&["connect", "no-such-host.invalid", "80"], b"", T);
    assert_eq!(out.code(), Some(1), "{}", out.stderr);
    assert_one_error_line(&out.stderr);
    assert!(
        out.stderr
            .contains("cannot resolve host 'no-such-host.invalid'"),
        "{}",
        out.stderr
    );
}

/// A port nothing listens on: bound by the kernel's choice, then released.
fn refused_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

#[test]
fn refused_names_the_address_nobody_listens_on() {
    let port = refused_port().to_string();
    let out = run(&["connect", "127.0.0.1", &port], b"", T);
    assert_eq!(out.code(), Some(1), "{}", out.stderr);
    assert_one_error_line(&out.stderr);
    assert!(
        out.stderr.contains(&format!(
            "connection refused: nothing is listening on 127.0.0.1:{port}"
        )),
        "{}",
        out.stderr
    );
}

#[test]
fn every_address_tried_is_listed_when_all_fail() {
    let port = refused_port().to_string();
    let out = run(&["connect", "localhost", &port], b"", T);
    assert_eq!(out.code(), Some(1), "{}", out.stderr);
    assert_one_error_line(&out.stderr);
    assert!(
        out.stderr
            .contains(&format!("nothing is listening on 127.0.0.1:{port}")),
        "{}",
        out.stderr
    );
    let tried = std::net::ToSocketAddrs::to_socket_addrs(&("localhost", 1))
        .map_or(1, |a| a.collect::<std::collections::HashSet<_>>().len());
    if tried > 1 {
        assert!(
            out.stderr
                .contains(&format!("could not connect to any of {tried} addresses")),
            "{}",
            out.stderr
        );
    }
}

#[test]
fn connect_timeout_against_a_full_backlog() {
    // A listener that never accepts, with backlog 0: the kernel queues one connection and
    // then drops further SYNs (Linux, when the accept queue is full), so a connect hangs in
    // SYN_SENT until -w ends it. Fill the queue until a connect of our own times out.
    let l = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).unwrap();
    l.bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
        .unwrap();
    l.listen(0).unwrap();
    let addr = l.local_addr().unwrap().as_socket().unwrap();
    let mut held = Vec::new();
    let full =
        (0..64).any(
            |_| match TcpStream::connect_timeout(&addr, Duration::from_millis(300)) {
                Ok(s) => {
                    held.push(s);
                    false
                }
                Err(e) => {
                    assert_eq!(e.kind(), std::io::ErrorKind::TimedOut, "filling: {e}");
                    true
                }
            },
        );
    assert!(full, "64 connections to a backlog-0 listener all succeeded");
    let port = addr.port().to_string();
    let started = Instant::now();
    let out = run(&["connect", "-w", "300ms", "127.0.0.1", &port], b"", T);
    let took = started.elapsed();
    assert_eq!(out.code(), Some(1), "{}", out.stderr);
    assert_one_error_line(&out.stderr);
    assert!(
        out.stderr.contains(&format!(
            "timed out: 127.0.0.1:{port} did not complete the handshake within 300.0ms (-w)"
        )),
        "{}",
        out.stderr
    );
    assert!(took >= Duration::from_millis(300), "gave up after {took:?}");
    drop(held);
}

#[test]
fn address_in_use_names_ss_and_so_reuseaddr() {
    let holder = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = holder.local_addr().unwrap().port().to_string();
    let out = run(&["listen", "127.0.0.1", &port], b"", T);
    assert_eq!(out.code(), Some(1), "{}", out.stderr);
    assert_one_error_line(&out.stderr);
    assert!(
        out.stderr.contains("address already in use") && out.stderr.contains("ss -ltnp"),
        "{}",
        out.stderr
    );
    // With SO_REUSEADDR turned off, the hint is the option itself.
    let out = run(&["listen", "-o", "reuseaddr=0", "127.0.0.1", &port], b"", T);
    assert_eq!(out.code(), Some(1), "{}", out.stderr);
    assert_one_error_line(&out.stderr);
    assert!(out.stderr.contains("SO_REUSEADDR"), "{}", out.stderr);
    drop(holder);
}

#[test]
fn peer_reset_while_receiving_is_exit_1() {
    let sent = random_bytes(11, 100_000);
    let data = sent.clone();
    let (addr, server) = serve_once(move |mut s| {
        s.write_all(&data).unwrap();
        // SO_LINGER 0: close() sends RST instead of FIN, an abortive close.
        SockRef::from(&s).set_linger(Some(Duration::ZERO)).unwrap();
    });
    let mut client = ChildGuard::spawn(&mut sockkit(&connect_args(addr, &[])));
    let _stdin = client.stdin(); // held open: only the reset can end the session
    let out = collect(client.stdout());
    let err = collect(client.stderr());
    join_timeout(server, T, "server");
    let status = client.status_within(T, "connect after a reset");
    let err = String::from_utf8_lossy(&join_within(err, T)).into_owned();
    assert_eq!(status.code(), Some(1), "{err}");
    assert_one_error_line(&err);
    assert!(err.contains("connection reset by peer"), "{err}");
    let got = join_within(out, T);
    assert!(
        sent.starts_with(&got),
        "stdout is not a prefix of what was sent"
    );
}

#[test]
fn peer_reset_while_sending_is_exit_1() {
    let (addr, server) = serve_once(|mut s| {
        let mut some = vec![0u8; 1 << 20];
        s.read_exact(&mut some).unwrap();
        SockRef::from(&s).set_linger(Some(Duration::ZERO)).unwrap();
    });
    let data = random_bytes(12, 32 << 20);
    let out = run(&connect_args(addr, &[]), &data, T);
    join_timeout(server, T, "server");
    assert_eq!(out.code(), Some(1), "{}", out.stderr);
    assert_one_error_line(&out.stderr);
    assert!(
        out.stderr.contains("reset") || out.stderr.contains("not delivered"),
        "{}",
        out.stderr
    );
}

#[test]
fn privileged_port_without_the_privilege() {
    // The lowest port an unprivileged user cannot bind; the bind below always fails, so no
    // fixed port is ever taken. As root, drop to nobody for the one command.
    let start = std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start")
        .ok()
        .and_then(|s| s.trim().parse::<u16>().ok());
    let Some(port) = start.and_then(|s| s.checked_sub(1)) else {
        eprintln!("SKIPPED: every port is unprivileged here (or /proc does not say)");
        return;
    };
    let port = port.to_string();
    // SAFETY: geteuid has no preconditions and cannot fail.
    let mut cmd = if unsafe { libc::geteuid() } == 0 {
        let Some(setpriv) = peer_or_skip("setpriv") else {
            return;
        };
        let mut c = std::process::Command::new(setpriv);
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups", bin()]);
        c
    } else {
        std::process::Command::new(bin())
    };
    cmd.args(["listen", "127.0.0.1", &port]);
    let out = run_cmd(&mut cmd, b"", T);
    assert_eq!(out.code(), Some(1), "{}", out.stderr);
    assert_one_error_line(&out.stderr);
    assert!(
        out.stderr.contains(&format!(
            "permission denied binding 127.0.0.1:{port}: ports below 1024 are privileged"
        )) && out.stderr.contains("CAP_NET_BIND_SERVICE"),
        "{}",
        out.stderr
    );
}

#[test]
fn one_write_after_the_peer_fully_closed_then_eof_is_not_a_success() {
    // The peer closes; we send once and end stdin. The write "succeeds" locally but the
    // peer's kernel throws the bytes away with a reset: that must be exit 1, not 0.
    let (addr, server) = serve_once(|mut s| {
        s.write_all(b"bye\n").unwrap();
    });
    let mut client = ChildGuard::spawn(&mut sockkit(&connect_args(addr, &[])));
    let mut stdin = client.stdin();
    let err = collect(client.stderr());
    let (got, _stdout) = read_n(client.stdout(), 4);
    assert_eq!(got, b"bye\n");
    join_timeout(server, T, "server");
    stdin.write_all(b"late\n").unwrap();
    drop(stdin);
    let status = client.status_within(T, "connect");
    let err = String::from_utf8_lossy(&join_within(err, T)).into_owned();
    assert_eq!(status.code(), Some(1), "{err}");
    assert_one_error_line(&err);
    assert!(err.contains("not delivered"), "{err}");
}

#[test]
fn send_only_delivers_everything_to_a_peer_that_keeps_talking() {
    // --send-only discards what the peer says, but must not close() with unread bytes (that
    // resets the connection and drops what is still queued for the peer).
    let payload = random_bytes(41, 4 << 20);
    let want = payload.len();
    let (addr, server) = serve_once(move |s| {
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut talker = s.try_clone().unwrap();
        let stop = done.clone();
        let chat = thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                if talker.write_all(&[b'x'; 1024]).is_err() {
                    break;
                }
                thread::sleep(Duration::from_millis(2));
            }
        });
        let mut r = s;
        let mut got = 0usize;
        let mut buf = vec![0u8; 4096];
        loop {
            match r.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) => panic!("peer read failed after {got} bytes: {e}"),
            }
            // A slow reader, so the client's stdin ends while data is still queued.
            if got % (256 * 1024) < 4096 {
                thread::sleep(Duration::from_millis(1));
            }
        }
        done.store(true, std::sync::atomic::Ordering::SeqCst);
        chat.join().unwrap();
        got
    });
    let out = run(&connect_args(addr, &["--send-only"]), &payload, T);
    let got = join_timeout(server, T, "server");
    assert_eq!(
        got, want,
        "the peer got {got} of {want} bytes; {}",
        out.stderr
    );
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    assert_eq!(out.stdout, b"");
}

#[test]
fn idle_timeout_counts_from_the_last_byte() {
    // One byte at ~1.5 s, then silence: the 3 s idle limit ends the session ~3 s after that
    // byte. (It once counted from when the byte was noticed, ending up to 3 s later.)
    let (addr, server) = serve_once(|mut s| {
        let mut buf = [0u8; 16];
        while matches!(s.read(&mut buf), Ok(n) if n > 0) {}
    });
    let mut client =
        ChildGuard::spawn(&mut sockkit(&connect_args(addr, &["--idle-timeout", "3s"])));
    let mut stdin = client.stdin();
    let err = collect(client.stderr());
    thread::sleep(Duration::from_millis(1500));
    // Timed from the byte, not from the spawn: a loaded machine's late wake-up from the
    // sleep above then counts for neither bound. The old count ended up to 3 s late.
    let byte_at = Instant::now();
    stdin.write_all(b"x").unwrap();
    let status = client.status_within(T, "connect");
    let took = byte_at.elapsed();
    drop(stdin);
    let err = String::from_utf8_lossy(&join_within(err, T)).into_owned();
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(err.contains("idle timeout"), "{err}");
    assert!(
        took >= Duration::from_millis(2900),
        "ended early: {took:?} after the byte"
    );
    assert!(
        took < Duration::from_millis(4400),
        "ended late: {took:?} after the byte"
    );
    join_timeout(server, T, "server");
}

#[test]
fn a_reset_while_both_sides_send_is_called_a_reset() {
    // The peer sends, reads a little, then aborts (SO_LINGER 0: a RST, no FIN) while stdin is
    // still pouring in. Whichever of sockkit's two threads meets the reset first, the user
    // must read "reset", never "the peer closed its sending side". The race differs from run
    // to run, so it runs several times.
    for round in 0..8 {
        let (addr, server) = serve_once(|mut s| {
            let _ = s.write_all(&vec![b'x'; 100_000]);
            let mut some = [0u8; 1000];
            let _ = s.read(&mut some);
            thread::sleep(Duration::from_millis(100));
            SockRef::from(&s).set_linger(Some(Duration::ZERO)).unwrap();
        });
        let out = run(&connect_args(addr, &["-v"]), &vec![0u8; 32 << 20], T);
        join_timeout(server, T, "server");
        assert_eq!(out.code(), Some(1), "round {round}: {}", out.stderr);
        assert!(
            !out.stderr.contains("closed its sending side")
                && !out.stderr.contains("closed the connection"),
            "round {round}: a reset told as a close:\n{}",
            out.stderr
        );
        let last = out.stderr.lines().last().unwrap_or_default();
        assert!(last.contains("reset"), "round {round}: {}", out.stderr);
    }
}

/// A pseudo-terminal pair (master, slave): the slave is a child's stdin that `isatty` calls a
/// terminal; writing to the master is typing (`\x04` at a line's start is Ctrl-D).
fn pty() -> Option<(std::os::fd::OwnedFd, std::os::fd::OwnedFd)> {
    let (mut master, mut slave) = (0, 0);
    // SAFETY: openpty writes two descriptors; the name/termios/winsize pointers may be null.
    let rc = unsafe {
        libc::openpty(
            &raw mut master,
            &raw mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    if rc != 0 {
        skip_or_fail(&format!(
            "no pseudo-terminal: {}",
            std::io::Error::last_os_error()
        ));
        return None;
    }
    // SAFETY: both descriptors were just opened and are owned only here.
    Some(unsafe {
        use std::os::fd::{FromRawFd, OwnedFd};
        (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave))
    })
}

/// Reads from `s` until EOF, bounded by its read timeout.
fn read_to_eof(s: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    s.read_to_end(&mut got).expect("reading to EOF");
    got
}

#[test]
fn ctrl_d_on_listen_k_ends_one_client_and_the_next_hears_the_terminal_again() {
    let Some((master, slave)) = pty() else { return };
    let mut typing = std::fs::File::from(master);
    let mut cmd = sockkit(&["listen", "-k", "127.0.0.1", "0"]);
    cmd.stdin(Stdio::from(slave));
    let mut server = Server::start_with(&mut cmd);
    let port = server.port();
    let _out = collect(server.child.stdout());
    for client in ["first", "second", "third"] {
        let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
        c.set_read_timeout(Some(T)).unwrap();
        typing
            .write_all(format!("to the {client}\n").as_bytes())
            .unwrap();
        typing.write_all(b"\x04").unwrap();
        // Ctrl-D: the client gets the line, then EOF (SHUT_WR), not a connection cut off
        // before anything was typed.
        assert_eq!(
            String::from_utf8_lossy(&read_to_eof(&mut c)),
            format!("to the {client}\n"),
            "{client} client"
        );
    }
    assert!(server.child.try_status().is_none(), "listen -k ended");
}

#[test]
fn a_clients_eof_leaves_an_interactive_listen_open_for_the_answer() {
    let Some((master, slave)) = pty() else { return };
    let mut typing = std::fs::File::from(master);
    let mut cmd = sockkit(&["listen", "127.0.0.1", "0"]);
    cmd.stdin(Stdio::from(slave));
    let mut server = Server::start_with(&mut cmd);
    let out = collect(server.child.stdout());
    let mut c = TcpStream::connect(("127.0.0.1", server.port())).unwrap();
    c.set_read_timeout(Some(T)).unwrap();
    c.write_all(b"what time is it?\n").unwrap();
    c.shutdown(Shutdown::Write).unwrap();
    // The person is told the client is done sending; the session waits for the answer.
    server
        .stderr
        .wait_for(T, |l| l.contains("the client has finished sending"))
        .unwrap();
    assert!(
        server.child.try_status().is_none(),
        "listen ended at the client's EOF"
    );
    typing.write_all(b"half past ten\n\x04").unwrap();
    assert_eq!(read_to_eof(&mut c), b"half past ten\n");
    let status = server.child.status_within(T, "listen after Ctrl-D");
    assert_eq!(status.code(), Some(0));
    assert_eq!(join_within(out, T), b"what time is it?\n");
}
