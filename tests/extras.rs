//! Integration tests for netcat's everyday extras, driving the real binary over loopback: the
//! port check (`connect -z`), source binding (`-s`/`-p`), the broker and chat (`listen
//! --broker`/`--chat`), `--crlf` and the hex dump (`-x`). Every wait is bounded; every port is
//! learned (port 0, a `listening on` line) or made closed by binding and dropping a socket.
//!
//! The helpers are private to this file (the shared tests/util module lives on another branch
//! while this one is written); they kill what they start, by PID, when dropped.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::thread;
use std::time::{Duration, Instant};

/// The bound on any one step; generous because the machine is shared, yet a hang fails.
const T: Duration = Duration::from_secs(30);

fn sockkit(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sockkit"));
    c.args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

/// A child killed (its own PID only) and reaped when dropped.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Guard {
    fn wait_within(&mut self, limit: Duration) -> ExitStatus {
        let until = Instant::now() + limit;
        loop {
            if let Some(s) = self.0.try_wait().expect("try_wait") {
                return s;
            }
            assert!(
                Instant::now() < until,
                "sockkit still running after {limit:?}"
            );
            thread::sleep(Duration::from_millis(5));
        }
    }
}

struct Out {
    status: ExitStatus,
    stdout: Vec<u8>,
    stderr: String,
}

impl Out {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
}

/// Reads a whole stream on a thread; the receiver gets it at EOF.
fn slurp<R: Read + Send + 'static>(mut r: R) -> Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut v = Vec::new();
        let _ = r.read_to_end(&mut v);
        let _ = tx.send(v);
    });
    rx
}

/// Runs sockkit with `input` on stdin (then EOF) and waits at most `limit` for it to end.
fn run(args: &[&str], input: &[u8], limit: Duration) -> Out {
    let mut g = Guard(sockkit(args).spawn().expect("spawn sockkit"));
    let mut stdin = g.0.stdin.take().unwrap();
    let input = input.to_vec();
    thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let out = slurp(g.0.stdout.take().unwrap());
    let err = slurp(g.0.stderr.take().unwrap());
    let status = g.wait_within(limit);
    Out {
        status,
        stdout: out.recv_timeout(T).expect("stdout"),
        stderr: String::from_utf8_lossy(&err.recv_timeout(T).expect("stderr")).into_owned(),
    }
}

/// A server started with sockkit, its port read from `listening on ADDR:PORT`, its stderr
/// lines kept coming on a channel.
#[allow(dead_code)] // used by the broker tests
struct Server {
    guard: Guard,
    port: u16,
    lines: Receiver<String>,
}

#[allow(dead_code)]
fn server(args: &[&str]) -> Server {
    let mut g = Guard(sockkit(args).spawn().expect("spawn server"));
    let stderr = g.0.stderr.take().unwrap();
    let (tx, lines) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let until = Instant::now() + T;
    loop {
        let left = until.saturating_duration_since(Instant::now());
        let line = lines
            .recv_timeout(left)
            .expect("no `listening on` line from the server");
        if let Some(rest) = line.strip_prefix("sockkit: listening on ") {
            let addr = rest.split(' ').next().unwrap();
            let port = addr.rsplit(':').next().unwrap().parse().unwrap();
            return Server {
                guard: g,
                port,
                lines,
            };
        }
    }
}

#[allow(dead_code)]
impl Server {
    /// Waits for a stderr line containing `want`; returns it.
    fn line_with(&self, want: &str) -> String {
        let until = Instant::now() + T;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) if l.contains(want) => return l,
                Ok(_) => {}
                Err(_) => panic!("server never said {want:?}"),
            }
        }
    }
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}

/// A port nothing listens on: bound, read, dropped (so the kernel answers with a RST).
fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

// ---------------------------------------------------------------------------------------------
// connect -z

/// Two listening ports followed by a closed one, adjacent, so they can be written as a range.
fn three_in_a_row() -> (TcpListener, TcpListener, u16) {
    for _ in 0..200 {
        let a = TcpListener::bind("127.0.0.1:0").unwrap();
        let p = a.local_addr().unwrap().port();
        if p > 65530 {
            continue;
        }
        let Ok(b) = TcpListener::bind(loopback(p + 1)) else {
            continue;
        };
        if TcpListener::bind(loopback(p + 2)).is_ok() {
            return (a, b, p + 2);
        }
    }
    panic!("found no three free adjacent ports on 127.0.0.1");
}

#[test]
fn port_check_reports_each_port_in_order_and_exits_0_when_one_is_open() {
    let (_a, _b, c) = three_in_a_row();
    let (p, q) = (c - 2, closed_port());
    let ports = format!("{p}-{c},{q}");
    let out = run(&["connect", "-z", "127.0.0.1", &ports], b"", T);
    assert!(out.status.success(), "{}", out.stderr);
    let lines: Vec<String> = out.text().lines().map(String::from).collect();
    assert_eq!(lines.len(), 4, "one line per port: {lines:?}");
    assert!(
        lines[0].starts_with(&format!("127.0.0.1:{p} open in ")),
        "{lines:?}"
    );
    assert!(lines[1].starts_with(&format!("127.0.0.1:{} open in ", p + 1)));
    assert_eq!(lines[2], format!("127.0.0.1:{c} closed"));
    assert_eq!(lines[3], format!("127.0.0.1:{q} closed"));
    // The summary is status, on stderr; stdout holds only the port lines.
    assert!(
        out.stderr.contains("4 ports on 127.0.0.1"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("2 open, 2 closed"), "{}", out.stderr);
}

#[test]
fn port_check_exits_1_when_no_port_is_open() {
    let (p, q) = (closed_port(), closed_port());
    let out = run(&["connect", "-z", "127.0.0.1", &format!("{p},{q}")], b"", T);
    assert_eq!(out.status.code(), Some(1), "{}", out.stderr);
    assert_eq!(
        out.text(),
        format!("127.0.0.1:{p} closed\n127.0.0.1:{q} closed\n")
    );
    assert!(
        out.stderr.starts_with("sockkit: no open port: 2 ports"),
        "{}",
        out.stderr
    );
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
}

#[test]
fn bad_port_lists_are_usage_errors() {
    for (ports, says) in [
        ("8100-8000", "runs backwards"),
        ("1-70000", "out of range"),
        ("22,,80", "empty item"),
        ("80-", "FIRST-LAST"),
        ("0-5", "port 0"),
    ] {
        let out = run(&["connect", "-z", "127.0.0.1", ports], b"", T);
        assert_eq!(out.status.code(), Some(2), "{ports}: {}", out.stderr);
        assert!(out.stderr.contains(says), "{ports}: {}", out.stderr);
        assert!(out.stdout.is_empty());
    }
    // A list is a port check's; the relay needs one port.
    let out = run(&["connect", "127.0.0.1", "80,81"], b"", T);
    assert_eq!(out.status.code(), Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("needs -z"), "{}", out.stderr);
    let out = run(&["connect", "-z", "-p", "4000", "127.0.0.1", "80"], b"", T);
    assert_eq!(out.status.code(), Some(2), "{}", out.stderr);
}

/// A listener whose accept queue is full: nobody accepts, so further SYNs are dropped and a
/// connect to it can only time out. listen(0) queues one connection; fill until one times out.
fn black_hole() -> (socket2::Socket, Vec<TcpStream>, u16) {
    use socket2::{Domain, Socket, Type};
    let s = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    s.bind(&loopback(0).into()).unwrap();
    s.listen(0).unwrap();
    let port = s.local_addr().unwrap().as_socket().unwrap().port();
    let mut fillers = Vec::new();
    for _ in 0..8 {
        match TcpStream::connect_timeout(&loopback(port), Duration::from_millis(300)) {
            Ok(c) => fillers.push(c),
            Err(_) => return (s, fillers, port),
        }
    }
    panic!("the accept queue of a listen(0) socket never filled");
}

/// Most sockets open at once, from `-vv` narration: socket() opens one, close() ends it.
fn max_in_flight(stderr: &str) -> usize {
    let (mut now, mut most) = (0usize, 0usize);
    for line in stderr.lines() {
        if line.contains(" socket(AF_INET, SOCK_STREAM") {
            now += 1;
            most = most.max(now);
        } else if line.contains(" close(fd ") {
            now -= 1;
        }
    }
    most
}

#[test]
fn port_check_keeps_at_most_parallel_connects_in_flight() {
    let holes: Vec<_> = (0..6).map(|_| black_hole()).collect();
    let ports: Vec<String> = holes.iter().map(|h| h.2.to_string()).collect();
    let ports = ports.join(",");
    for (parallel, expect) in [("2", 2), ("6", 6)] {
        let out = run(
            &[
                "connect",
                "-z",
                "-vv",
                "-w",
                "500ms",
                "--parallel",
                parallel,
                "127.0.0.1",
                &ports,
            ],
            b"",
            T,
        );
        assert_eq!(out.status.code(), Some(1), "{}", out.stderr);
        let text = out.text();
        assert_eq!(text.lines().count(), 6, "{text}");
        assert!(text.lines().all(|l| l.contains(" timed out")), "{text}");
        // Every port timed out, so each connect stayed in flight until its deadline: the
        // most at once is exactly the bound.
        assert_eq!(
            max_in_flight(&out.stderr),
            expect,
            "--parallel {parallel}:\n{}",
            out.stderr
        );
        assert!(out.stderr.contains("6 timed out"), "{}", out.stderr);
    }
}

// ---------------------------------------------------------------------------------------------
// -s / -p

#[test]
fn the_server_sees_the_source_address_and_port() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let src_port = closed_port();
    let mut g = Guard(
        sockkit(&[
            "connect",
            "-vv",
            "-s",
            "127.0.0.2",
            "-p",
            &src_port.to_string(),
            "127.0.0.1",
            &port.to_string(),
        ])
        .spawn()
        .unwrap(),
    );
    let err = slurp(g.0.stderr.take().unwrap());
    g.0.stdin.take().unwrap().write_all(b"hi").unwrap(); // dropped: EOF
    listener.set_nonblocking(false).unwrap();
    let (mut conn, peer) = listener.accept().unwrap();
    assert_eq!(peer, SocketAddr::from(([127, 0, 0, 2], src_port)));
    conn.set_read_timeout(Some(T)).unwrap();
    let mut got = Vec::new();
    conn.read_to_end(&mut got).unwrap();
    assert_eq!(got, b"hi");
    drop(conn);
    assert!(g.wait_within(T).success());
    let stderr = String::from_utf8_lossy(&err.recv_timeout(T).unwrap()).into_owned();
    // -vv narrates the bind before the connect.
    let bind = stderr
        .find(&format!("bind(fd 3, 127.0.0.2:{src_port}) = 0"))
        .unwrap_or_else(|| panic!("no bind line:\n{stderr}"));
    let connect = stderr.find("connect(fd 3, 127.0.0.1:").unwrap();
    assert!(bind < connect, "{stderr}");
}

#[test]
fn a_source_that_is_not_local_or_taken_is_a_clear_error() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    // 192.0.2.1 (TEST-NET-1) is nobody's address: bind fails locally, no packet is sent.
    let out = run(&["connect", "-s", "192.0.2.1", "127.0.0.1", &port], b"", T);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        out.stderr
            .contains("192.0.2.1: it is not an address of this machine"),
        "{}",
        out.stderr
    );
    // The listener's own port is taken.
    let out = run(
        &[
            "connect",
            "-s",
            "127.0.0.1",
            "-p",
            &port,
            "127.0.0.1",
            &port,
        ],
        b"",
        T,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        out.stderr.contains(&format!(
            "cannot use source port {port}: another socket holds"
        )),
        "{}",
        out.stderr
    );
    // A source of the wrong family for the host.
    let out = run(&["connect", "-s", "::1", "127.0.0.1", &port], b"", T);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stderr.contains("same family"), "{}", out.stderr);
}
