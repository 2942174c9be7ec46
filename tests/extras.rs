//! Integration tests for netcat's everyday extras, driving the real binary over loopback: the
//! port check (`connect -z`), source binding (`-s`/`-p`), the broker and chat (`listen
//! --broker`/`--chat`), `--crlf` and the hex dump (`-x`). Every wait is bounded; every port is
//! learned (port 0, a `listening on` line) or held closed (tests/util's `ClosedPort`: bound,
//! never listening).
//!
//! The other helpers are private to this file (the shared tests/util module lived on another
//! branch while this one was written); they kill what they start, by PID, when dropped.

mod util;

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
struct Server {
    guard: Guard,
    port: u16,
    lines: Receiver<String>,
}

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

impl Server {
    /// Waits for a stderr line containing `want`; returns it.
    fn line_with(&self, want: &str) -> String {
        let until = Instant::now() + T;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) if l.contains(want) => return l,
                Ok(_) => {}
                Err(e) => panic!("server never said {want:?} ({e})"),
            }
        }
    }
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}

/// accept(), but a client that never comes fails the test after `T` instead of hanging it.
fn accept_within(l: &TcpListener) -> (TcpStream, SocketAddr) {
    l.set_nonblocking(true).unwrap();
    let until = Instant::now() + T;
    loop {
        match l.accept() {
            Ok((c, peer)) => {
                c.set_nonblocking(false).unwrap();
                return (c, peer);
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                assert!(Instant::now() < until, "no client came within {T:?}");
                thread::sleep(Duration::from_millis(5));
            }
            Err(e) => panic!("accept: {e}"),
        }
    }
}

/// A port the kernel just gave and took back, for sockkit to bind (`-p`).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

// ---------------------------------------------------------------------------------------------
// connect -z

/// Two listening ports followed by a closed one, adjacent, so they can be written as a range.
/// The closed one is held (bound, never listening) so no parallel test takes it meanwhile.
fn three_in_a_row() -> (TcpListener, TcpListener, socket2::Socket, u16) {
    for _ in 0..200 {
        let a = TcpListener::bind("127.0.0.1:0").unwrap();
        let p = a.local_addr().unwrap().port();
        if p > 65530 {
            continue;
        }
        let Ok(b) = TcpListener::bind(loopback(p + 1)) else {
            continue;
        };
        let held = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
            .expect("a TCP socket");
        if held.bind(&loopback(p + 2).into()).is_ok() {
            return (a, b, held, p + 2);
        }
    }
    panic!("found no three free adjacent ports on 127.0.0.1");
}

#[test]
fn port_check_reports_each_port_in_order_and_exits_0_when_one_is_open() {
    let (_a, _b, _c, c) = three_in_a_row();
    let closed = util::ClosedPort::new();
    let (p, q) = (c - 2, closed.port());
    let ports = format!("{p}-{c},{q}");
    // Plain -z: only the open ports on stdout; the summary on stderr counts the rest.
    let out = run(&["connect", "-z", "127.0.0.1", &ports], b"", T);
    assert!(out.status.success(), "{}", out.stderr);
    let lines: Vec<String> = out.text().lines().map(String::from).collect();
    assert_eq!(lines.len(), 2, "the open ports: {lines:?}");
    assert!(
        lines[0].starts_with(&format!("127.0.0.1:{p} open in ")),
        "{lines:?}"
    );
    assert!(lines[1].starts_with(&format!("127.0.0.1:{} open in ", p + 1)));
    assert!(out.stderr.contains("2 open, 2 closed"), "{}", out.stderr);
    // -v: every port, in the order given.
    let out = run(&["connect", "-z", "-v", "127.0.0.1", &ports], b"", T);
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
    let (first, second) = (util::ClosedPort::new(), util::ClosedPort::new());
    let (p, q) = (first.port(), second.port());
    let out = run(&["connect", "-z", "127.0.0.1", &format!("{p},{q}")], b"", T);
    assert_eq!(out.status.code(), Some(1), "{}", out.stderr);
    // Nothing open, so nothing on stdout (-v lists the closed ones); the error counts them.
    assert_eq!(out.text(), "");
    assert!(out.stderr.contains("0 open, 2 closed"), "{}", out.stderr);
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
    let src_port = free_port();
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
    let (mut conn, peer) = accept_within(&listener);
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

// ---------------------------------------------------------------------------------------------
// listen --broker / --chat

/// Connects `n` clients to a broker and waits until it has accepted them all (so none misses
/// bytes sent after this returns).
fn join(srv: &Server, n: usize) -> Vec<TcpStream> {
    (0..n)
        .map(|_| {
            let c = TcpStream::connect(loopback(srv.port)).unwrap();
            c.set_read_timeout(Some(T)).unwrap();
            let me = c.local_addr().unwrap();
            srv.line_with(&format!("accepted {me}"));
            c
        })
        .collect()
}

fn read_exact_n(c: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut buf = vec![0; n];
    c.read_exact(&mut buf)
        .expect("reading what the broker passed on");
    buf
}

#[test]
fn broker_gives_each_client_the_others_bytes_and_not_its_own() {
    let srv = server(&["listen", "--broker", "-v", "127.0.0.1", "0"]);
    let mut cs = join(&srv, 3);
    let msgs: [&[u8]; 3] = [b"from-a\n", b"from-b\n", b"\x00\xffc\n"];
    for (c, m) in cs.iter_mut().zip(msgs) {
        c.write_all(m).unwrap();
    }
    for (i, c) in cs.iter_mut().enumerate() {
        let others: Vec<&[u8]> = (0..3).filter(|&j| j != i).map(|j| msgs[j]).collect();
        let got = read_exact_n(c, others[0].len() + others[1].len());
        // Each message went out in one piece; only their order between senders may vary.
        let either = [
            [others[0], others[1]].concat(),
            [others[1], others[0]].concat(),
        ];
        assert!(either.contains(&got), "client {i} got {got:?}");
    }
    // Each half-closes; the broker then closes each one: nothing else (no echo) was queued.
    for c in &cs {
        c.shutdown(std::net::Shutdown::Write).unwrap();
    }
    for (i, c) in cs.iter_mut().enumerate() {
        let mut rest = Vec::new();
        c.read_to_end(&mut rest).unwrap();
        assert!(rest.is_empty(), "client {i} got more: {rest:?}");
    }
    drop(srv);
}

/// Reads everything a client is sent on a thread, counting bytes (all must be `b'z'`).
fn counting_reader(mut c: TcpStream) -> std::sync::Arc<std::sync::atomic::AtomicU64> {
    use std::sync::atomic::{AtomicU64, Ordering};
    let count = std::sync::Arc::new(AtomicU64::new(0));
    let n = count.clone();
    thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        while let Ok(k) = c.read(&mut buf) {
            if k == 0 {
                break;
            }
            assert!(buf[..k].iter().all(|&b| b == b'z'), "foreign bytes");
            n.fetch_add(k as u64, Ordering::SeqCst);
        }
    });
    count
}

#[test]
fn broker_drops_a_client_that_does_not_read_and_the_others_get_everything() {
    use socket2::{Domain, Socket, Type};
    use std::sync::atomic::Ordering;
    // A fixed server send buffer per client, so a non-reader fills up soon.
    let srv = server(&[
        "listen",
        "--broker",
        "-v",
        "-o",
        "sndbuf=64K",
        "127.0.0.1",
        "0",
    ]);
    let mut cs = join(&srv, 3);
    // The non-reader: a small receive buffer, and it never calls read().
    let lazy = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    lazy.set_recv_buffer_size(4096).unwrap();
    lazy.connect(&loopback(srv.port).into()).unwrap();
    let lazy_addr = lazy.local_addr().unwrap().as_socket().unwrap();
    srv.line_with(&format!("accepted {lazy_addr}"));
    let mut sender = cs.remove(0);
    // A broker that never dropped the lazy client would hold the sender back for good: the
    // write then times out and the test fails instead of hanging.
    sender.set_write_timeout(Some(T)).unwrap();
    let counts: Vec<_> = cs.into_iter().map(counting_reader).collect();
    // Flood until the broker says it dropped the lazy client, then a last burst to show the
    // others are still served. The server's stderr is read on a thread meanwhile.
    let Server {
        guard: _guard,
        lines,
        ..
    } = srv;
    let want = format!("{lazy_addr}: not reading");
    let watcher = thread::spawn(move || {
        let until = Instant::now() + T;
        while let Ok(l) = lines.recv_timeout(until.saturating_duration_since(Instant::now())) {
            if l.contains(&want) {
                return Some(l);
            }
        }
        None
    });
    let chunk = vec![b'z'; 64 * 1024];
    let mut sent = 0u64;
    while !watcher.is_finished() {
        sender.write_all(&chunk).unwrap();
        sent += chunk.len() as u64;
    }
    let line = watcher
        .join()
        .unwrap()
        .expect("the lazy client was never dropped");
    assert!(line.contains("waiting to be sent to it"), "{line}");
    for _ in 0..16 {
        sender.write_all(&chunk).unwrap();
        sent += chunk.len() as u64;
    }
    let until = Instant::now() + T;
    for (i, n) in counts.iter().enumerate() {
        while n.load(Ordering::SeqCst) < sent {
            assert!(
                Instant::now() < until,
                "reader {i} got {} of {sent} bytes",
                n.load(Ordering::SeqCst)
            );
            thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(n.load(Ordering::SeqCst), sent, "reader {i} got extra bytes");
    }
    // The lazy client's connection is gone: after what it had buffered, EOF or a reset.
    lazy.set_read_timeout(Some(T)).unwrap();
    let mut lazy = TcpStream::from(lazy);
    let mut sink = Vec::new();
    let ended = lazy.read_to_end(&mut sink);
    assert!(
        ended.is_ok() || ended.as_ref().unwrap_err().kind() == std::io::ErrorKind::ConnectionReset,
        "{ended:?}"
    );
    assert!(
        (sink.len() as u64) < sent,
        "the lazy client was sent everything?"
    );
}

#[test]
fn chat_prefixes_lines_with_the_sender_and_announces_joins_and_leaves() {
    let srv = server(&["listen", "--chat", "-v", "127.0.0.1", "0"]);
    let mut a = join(&srv, 1).remove(0);
    let pa = a.local_addr().unwrap();
    let mut ra = BufReader::new(a.try_clone().unwrap());
    let mut line = String::new();
    ra.read_line(&mut line).unwrap();
    assert_eq!(
        line,
        format!("* welcome, you are {pa}; nobody else is here yet\n")
    );
    let b = join(&srv, 1).remove(0);
    let pb = b.local_addr().unwrap();
    let mut rb = BufReader::new(b.try_clone().unwrap());
    line.clear();
    rb.read_line(&mut line).unwrap();
    assert_eq!(line, format!("* welcome, you are {pb}; 1 other is here\n"));
    line.clear();
    ra.read_line(&mut line).unwrap();
    assert_eq!(line, format!("* {pb} joined\n"));
    // A line in two pieces goes out whole, once, with its sender; blank lines are not sent.
    a.write_all(b"hel").unwrap();
    a.write_all(b"lo there\n\n").unwrap();
    line.clear();
    rb.read_line(&mut line).unwrap();
    assert_eq!(line, format!("<{pa}> hello there\n"));
    drop(rb);
    b.shutdown(std::net::Shutdown::Both).unwrap();
    drop(b);
    line.clear();
    ra.read_line(&mut line).unwrap();
    assert_eq!(line, format!("* {pb} left\n"));
    // Nothing of its own came back to a: the next thing it sees is the end.
    a.shutdown(std::net::Shutdown::Write).unwrap();
    line.clear();
    assert_eq!(ra.read_line(&mut line).unwrap(), 0, "{line}");
}

// ---------------------------------------------------------------------------------------------
// --crlf and the hex dump

/// A one-shot peer in the test: accepts one client, reads to its EOF, answers `reply`, closes.
/// The thread's result is what the client sent.
fn one_shot_peer(reply: &'static [u8]) -> (u16, thread::JoinHandle<Vec<u8>>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let h = thread::spawn(move || {
        let (mut c, _) = accept_within(&l);
        c.set_read_timeout(Some(T)).unwrap();
        let mut got = Vec::new();
        c.read_to_end(&mut got).unwrap();
        c.write_all(reply).unwrap();
        got
    });
    (port, h)
}

#[test]
fn crlf_sends_each_lf_as_crlf_and_leaves_crlf_alone() {
    let (port, peer) = one_shot_peer(b"250 ok\r\n");
    let out = run(
        &["connect", "--crlf", "127.0.0.1", &port.to_string()],
        b"HELO x\nMAIL FROM:<a@b>\r\n\nQUIT\n",
        T,
    );
    assert!(out.status.success(), "{}", out.stderr);
    assert_eq!(
        peer.join().unwrap(),
        b"HELO x\r\nMAIL FROM:<a@b>\r\n\r\nQUIT\r\n"
    );
    // Only what is sent changes: the reply reaches stdout as it came.
    assert_eq!(out.stdout, b"250 ok\r\n");
}

#[test]
fn listen_crlf_converts_what_it_sends() {
    let mut srv = server(&["listen", "--crlf", "127.0.0.1", "0"]);
    let mut stdin = srv.guard.0.stdin.take().unwrap();
    stdin.write_all(b"a\nb\n").unwrap();
    drop(stdin);
    let mut c = TcpStream::connect(loopback(srv.port)).unwrap();
    c.set_read_timeout(Some(T)).unwrap();
    let mut got = Vec::new();
    c.read_to_end(&mut got).unwrap();
    assert_eq!(got, b"a\r\nb\r\n");
    drop(c);
    assert!(srv.guard.wait_within(T).success());
}

/// The dump of the exchange in `crlf_and_hexdump_...`, as it must appear.
const SENT_DUMP: &str =
    "> 00000000  48 45 4c 4f 20 78 0d 0a  00 ff                    |HELO x....|\n";
const RECV_DUMP: &str = "< 00000000  32 35 30 20 77 65 6c 63  6f 6d 65 20 74 6f 20 74  |250 welcome to t|\n\
                         < 00000010  68 65 20 77 69 72 65 0d  0a 07                    |he wire...|\n";

#[test]
fn hexdump_shows_both_directions_with_offsets_and_keeps_stdout_clean() {
    let (port, peer) = one_shot_peer(b"250 welcome to the wire\r\n\x07");
    let out = run(
        &["connect", "-x", "--crlf", "127.0.0.1", &port.to_string()],
        b"HELO x\n\x00\xff",
        T,
    );
    assert!(out.status.success(), "{}", out.stderr);
    assert_eq!(peer.join().unwrap(), b"HELO x\r\n\x00\xff");
    assert_eq!(out.stdout, b"250 welcome to the wire\r\n\x07");
    // The dump shows the bytes as they crossed the wire: after --crlf.
    assert!(out.stderr.contains(SENT_DUMP), "{}", out.stderr);
    assert!(out.stderr.contains(RECV_DUMP), "{}", out.stderr);

    // --hexdump-file: the same lines in the file, none on stderr.
    let file = std::env::temp_dir().join(format!("sockkit-extras-dump-{}", std::process::id()));
    let (port, peer) = one_shot_peer(b"250 welcome to the wire\r\n\x07");
    let out = run(
        &[
            "connect",
            "--crlf",
            "--hexdump-file",
            file.to_str().unwrap(),
            "127.0.0.1",
            &port.to_string(),
        ],
        b"HELO x\n\x00\xff",
        T,
    );
    assert!(out.status.success(), "{}", out.stderr);
    peer.join().unwrap();
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::remove_file(&file).unwrap();
    assert_eq!(text, format!("{SENT_DUMP}{RECV_DUMP}"));
    assert!(!out.stderr.contains("00000000"), "{}", out.stderr);
}

#[test]
fn echo_hexdump_labels_each_client() {
    let srv = server(&["echo", "-x", "127.0.0.1", "0"]);
    let mut c = TcpStream::connect(loopback(srv.port)).unwrap();
    let me = c.local_addr().unwrap();
    c.set_read_timeout(Some(T)).unwrap();
    c.write_all(b"ping\n").unwrap();
    let mut back = [0u8; 5];
    c.read_exact(&mut back).unwrap();
    assert_eq!(&back, b"ping\n");
    srv.line_with(&format!("< {me}: 5 bytes"));
    let line = srv.line_with("< 00000000");
    assert_eq!(
        line,
        "< 00000000  70 69 6e 67 0a                                    |ping.|"
    );
    srv.line_with(&format!("> {me}: 5 bytes"));
    let line = srv.line_with("> 00000000");
    assert!(line.ends_with("|ping.|"), "{line}");
}

#[test]
fn listen_hexdump_shows_what_the_client_sent_and_what_went_back() {
    let mut srv = server(&["listen", "-x", "127.0.0.1", "0"]);
    let mut stdin = srv.guard.0.stdin.take().unwrap();
    stdin.write_all(b"ok\n").unwrap();
    drop(stdin);
    let mut c = TcpStream::connect(loopback(srv.port)).unwrap();
    c.set_read_timeout(Some(T)).unwrap();
    c.write_all(b"GET\n").unwrap();
    c.shutdown(std::net::Shutdown::Write).unwrap();
    let mut got = Vec::new();
    c.read_to_end(&mut got).unwrap();
    assert_eq!(got, b"ok\n");
    assert!(srv.guard.wait_within(T).success());
    // The process has ended: its stderr is complete.
    let said: Vec<String> = srv.lines.iter().collect();
    for want in [
        "> 00000000  6f 6b 0a                                          |ok.|",
        "< 00000000  47 45 54 0a                                       |GET.|",
    ] {
        assert!(said.iter().any(|l| l == want), "{want:?} not in {said:#?}");
    }
}

#[test]
fn port_check_and_source_work_over_ipv6() {
    let Ok(l) = TcpListener::bind("[::1]:0") else {
        println!("SKIPPED: ::1 cannot be bound here (no IPv6 loopback)");
        return;
    };
    let port = l.local_addr().unwrap().port();
    let closed = TcpListener::bind("[::1]:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = run(
        &["connect", "-z", "-v", "::1", &format!("{port},{closed}")],
        b"",
        T,
    );
    assert!(out.status.success(), "{}", out.stderr);
    let text = out.text();
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with(&format!("[::1]:{port} open in ")),
        "{text}"
    );
    assert_eq!(lines[1], format!("[::1]:{closed} closed"));
    // -s ::1 -p: the server sees that source (a fresh listener: the check's probe still
    // waits in the first one's accept queue).
    let l = TcpListener::bind("[::1]:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let src = TcpListener::bind("[::1]:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut g = Guard(
        sockkit(&[
            "connect",
            "-s",
            "[::1]",
            "-p",
            &src.to_string(),
            "::1",
            &port.to_string(),
        ])
        .spawn()
        .unwrap(),
    );
    drop(g.0.stdin.take());
    let (c, peer) = accept_within(&l);
    assert_eq!(peer, SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, src)));
    drop(c);
    assert!(g.wait_within(T).success());
}

#[test]
fn crlf_and_dump_apply_when_stdin_is_a_file_too() {
    // A regular file on stdin would go by sendfile(2), which never shows the bytes to sockkit:
    // --crlf must still convert them.
    let path = std::env::temp_dir().join(format!("sockkit-extras-crlf-{}", std::process::id()));
    std::fs::write(&path, b"a\nb\n").unwrap();
    let (port, peer) = one_shot_peer(b"");
    let mut g = Guard(
        sockkit(&["connect", "--crlf", "-x", "127.0.0.1", &port.to_string()])
            .stdin(std::fs::File::open(&path).unwrap())
            .spawn()
            .unwrap(),
    );
    let err = slurp(g.0.stderr.take().unwrap());
    assert!(g.wait_within(T).success());
    std::fs::remove_file(&path).unwrap();
    assert_eq!(peer.join().unwrap(), b"a\r\nb\r\n");
    let err = String::from_utf8_lossy(&err.recv_timeout(T).unwrap()).into_owned();
    assert!(
        err.contains("> 00000000  61 0d 0a 62 0d 0a"),
        "the dump shows the converted bytes:\n{err}"
    );
}

#[test]
fn knock_hexdump_shows_the_greeting_it_sends() {
    let srv = server(&["knock", "-x", "127.0.0.1", "0"]);
    let c = TcpStream::connect(loopback(srv.port)).unwrap();
    let me = c.local_addr().unwrap();
    c.set_read_timeout(Some(T)).unwrap();
    let mut first = String::new();
    BufReader::new(&c).read_line(&mut first).unwrap();
    assert_eq!(first.trim_end(), "Knock! Knock!");
    srv.line_with(&format!("> {me}: "));
    let line = srv.line_with("> 00000000");
    assert!(
        line.starts_with("> 00000000  4b 6e 6f 63 6b 21 20 4b  6e 6f 63 6b 21"),
        "{line}"
    );
    assert!(
        line.ends_with("|Knock! Knock!..|") || line.ends_with("|Knock! Knock!.|"),
        "{line}"
    );
}
