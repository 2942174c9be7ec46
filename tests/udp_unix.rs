//! UDP (`-u`) and Unix-domain sockets (`-U`, `-U -u`) driven through the real binary: datagram
//! boundaries, several peers on one `listen -u`, the size limit, ICMP refusals, byte-exact
//! Unix relays through a path and an abstract name, the stale-file rules, echo over `-U`,
//! SO_PEERCRED, narration, and python3 and socat on the other end of each socket type.
//! Loopback and temporary directories only; every wait is bounded. Process plumbing comes from
//! tests/util; `Proc` (a server the test feeds while it runs) and the UDP peer are this file's.

mod util;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, UdpSocket};
use std::os::unix::net::{UnixDatagram, UnixListener, UnixStream};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use util::{
    ChildGuard, LineTap, T, TempDir, join_within, parse_listening, peer_or_skip, random_bytes,
    run_cmd, run_cmd_from, sockkit,
};

/// A running `sockkit` the test talks to while it runs: stdin stays open for `send`, stdout
/// is collected as it comes (for `wait_out`), stderr through a `LineTap`. Killed by PID when
/// dropped.
struct Proc {
    child: ChildGuard,
    stdin: Option<ChildStdin>,
    stdout: Arc<Mutex<Vec<u8>>>,
    stdout_reader: Option<JoinHandle<()>>,
    stderr: LineTap,
}

impl Proc {
    fn start(args: &[&str]) -> Proc {
        let mut child = ChildGuard::spawn(&mut sockkit(args));
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let mut out = child.stdout();
        let sink = Arc::clone(&stdout);
        let stdout_reader = thread::spawn(move || {
            let mut buf = vec![0u8; 64 * 1024];
            while let Ok(n) = out.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        Proc {
            stdin: Some(child.stdin()),
            stderr: LineTap::new(child.stderr()),
            child,
            stdout,
            stdout_reader: Some(stdout_reader),
        }
    }

    fn log(&self) -> String {
        self.stderr.text()
    }

    fn out(&self) -> Vec<u8> {
        self.stdout.lock().unwrap().clone()
    }

    /// The first stderr line containing `what`, waiting for it (bounded; fails at once if
    /// sockkit closes stderr, that is exits, without saying it).
    fn wait_for(&mut self, what: &str) -> String {
        self.stderr
            .wait_seen(T, |l| l.contains(what))
            .unwrap_or_else(|e| panic!("no {what:?} on stderr: {e}"))
    }

    /// Waits (bounded) until stdout holds at least `n` bytes.
    fn wait_out(&self, n: usize) -> Vec<u8> {
        let deadline = Instant::now() + T;
        loop {
            let out = self.out();
            if out.len() >= n {
                return out;
            }
            assert!(
                Instant::now() < deadline,
                "stdout has {} of {n} bytes after {T:?}; stderr:\n{}",
                out.len(),
                self.log()
            );
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// The UDP port of a `listening on ADDR:PORT (...)` line.
    fn port(&mut self) -> u16 {
        let line = self.wait_for("listening on ");
        parse_listening(&line)
            .unwrap_or_else(|| panic!("no ADDR:PORT in {line:?}"))
            .port()
    }

    fn send(&mut self, data: &[u8]) {
        self.stdin.as_mut().unwrap().write_all(data).unwrap();
        self.stdin.as_mut().unwrap().flush().unwrap();
    }

    fn close_stdin(&mut self) {
        self.stdin.take();
    }

    /// Closes stdin and waits (bounded) for the exit status and for stdout and stderr to be
    /// read to their end, so `out` and `log` are complete afterwards.
    fn wait(&mut self) -> ExitStatus {
        self.close_stdin();
        let Some(status) = self.child.wait_timeout(T) else {
            panic!("sockkit did not end within {T:?}; stderr:\n{}", self.log());
        };
        self.stderr.finish(T);
        if let Some(h) = self.stdout_reader.take() {
            join_within(h, T);
        }
        status
    }

    fn signal(&mut self, sig: i32) -> ExitStatus {
        // SAFETY: kill() on our own child's PID.
        unsafe { libc::kill(self.child.id() as i32, sig) };
        self.wait()
    }
}

/// A unique abstract-namespace name for this test run.
fn abstract_name(tag: &str) -> String {
    format!("@sockkit-test-{}-{tag}", std::process::id())
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn udp_peer() -> UdpSocket {
    let u = UdpSocket::bind("127.0.0.1:0").unwrap();
    u.set_read_timeout(Some(T)).unwrap();
    u
}

fn recv(u: &UdpSocket) -> (Vec<u8>, std::net::SocketAddr) {
    let mut buf = vec![0u8; 70_000];
    let (n, from) = u.recv_from(&mut buf).expect("a datagram within the wait");
    buf.truncate(n);
    (buf, from)
}

/// `util::run` bounded by `T`, as (status, stdout, stderr) for destructuring. sockkit may
/// stop reading early on purpose (an oversized datagram ends it): a broken pipe is no failure.
fn run(args: &[&str], input: &[u8]) -> (ExitStatus, Vec<u8>, String) {
    let out = util::run(args, input, T);
    (out.status, out.stdout, out.stderr)
}

/// Runs an external program with `input` on stdin, bounded; it must succeed. Its stdout.
fn run_peer(program: &str, args: &[&str], input: &[u8]) -> Vec<u8> {
    let out = run_cmd(Command::new(program).args(args), input, T);
    assert!(
        out.status.success(),
        "{program} failed ({}): {}",
        out.status,
        out.stderr
    );
    out.stdout
}

/// Starts `python3 -c SCRIPT PATH` and waits (bounded) for the script's `ready` line, which
/// it prints once its socket is bound. Killed by PID when dropped.
fn python3_server(script: &str, path: &Path) -> ChildGuard {
    let mut py = ChildGuard::spawn(
        Command::new("python3")
            .args(["-c", script, s(path)])
            .stdout(Stdio::piped()),
    );
    let ready = LineTap::new(py.stdout())
        .wait_for(T, |_| true)
        .unwrap_or_else(|e| panic!("python3's first line: {e}"));
    assert_eq!(ready.trim(), "ready");
    py
}

// ---------------------------------------------------------------- UDP

#[test]
fn udp_connect_keeps_datagram_boundaries_both_ways() {
    let peer = udp_peer();
    let port = peer.local_addr().unwrap().port().to_string();
    let mut p = Proc::start(&[
        "connect",
        "-u",
        "--lines",
        "-v",
        "--quit-after",
        "3s",
        "127.0.0.1",
        &port,
    ]);
    p.send(b"one\ntwo\nthree\n");
    let (a, from) = recv(&peer);
    let (b, _) = recv(&peer);
    let (c, _) = recv(&peer);
    assert_eq!(
        [a, b, c],
        [b"one\n".to_vec(), b"two\n".to_vec(), b"three\n".to_vec()]
    );
    // Two datagrams back: stdout gets both, -v shows them as two, of their own sizes.
    peer.send_to(b"abc", from).unwrap();
    peer.send_to(b"defgh", from).unwrap();
    let out = p.wait_out(8);
    assert_eq!(out, b"abcdefgh");
    p.close_stdin();
    let status = p.wait();
    assert!(status.success(), "{status}: {}", p.log());
    let log = p.log();
    assert!(log.contains("datagram of 3 B from 127.0.0.1"), "{log}");
    assert!(log.contains("datagram of 5 B from 127.0.0.1"), "{log}");
    assert!(log.contains("--quit-after"), "{log}");
}

#[test]
fn udp_without_lines_sends_each_read_as_one_datagram() {
    let peer = udp_peer();
    let port = peer.local_addr().unwrap().port().to_string();
    let mut p = Proc::start(&["connect", "-u", "--quit-after", "1s", "127.0.0.1", &port]);
    p.send(b"first");
    assert_eq!(recv(&peer).0, b"first");
    p.send(b"second\nwith a newline inside\n");
    assert_eq!(recv(&peer).0, b"second\nwith a newline inside\n");
    assert!(p.wait().success(), "{}", p.log());
}

#[test]
fn listen_udp_sees_two_peers_and_answers_the_last() {
    let mut l = Proc::start(&[
        "listen",
        "-u",
        "-v",
        "--quit-after",
        "300ms",
        "127.0.0.1",
        "0",
    ]);
    let port = l.port();
    let to = format!("127.0.0.1:{port}");
    let a = udp_peer();
    let b = udp_peer();
    let (pa, pb) = (a.local_addr().unwrap(), b.local_addr().unwrap());

    a.send_to(b"from a\n", &to).unwrap();
    l.wait_for(&format!("new peer {pa}"));
    l.send(b"to a\n");
    assert_eq!(recv(&a).0, b"to a\n");

    b.send_to(b"from b\n", &to).unwrap();
    l.wait_for(&format!("new peer {pb}"));
    l.send(b"to b\n");
    assert_eq!(recv(&b).0, b"to b\n");

    a.send_to(b"a again\n", &to).unwrap();
    l.wait_for(&format!("stdin now goes to {pa} again"));
    l.send(b"to a again\n");
    assert_eq!(recv(&a).0, b"to a again\n");

    // b got only its own: nothing meant for a leaked to it.
    b.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut buf = [0u8; 64];
    assert!(b.recv_from(&mut buf).is_err(), "b received a's datagram");

    l.close_stdin();
    let status = l.wait();
    assert!(status.success(), "{status}: {}", l.log());
    assert_eq!(l.out(), b"from a\nfrom b\na again\n");
    assert!(l.log().contains(&format!("datagram of 7 B from {pb}")));
}

#[test]
fn oversized_datagram_explains_the_limit() {
    let peer = udp_peer();
    let port = peer.local_addr().unwrap().port().to_string();
    let big = vec![b'x'; 70_000];
    let dir = TempDir::new("uu");
    let file = dir.path("big");
    std::fs::write(&file, &big).unwrap();
    // One read of a file bigger than any datagram.
    let out = run_cmd_from(
        &mut sockkit(&["connect", "-u", "127.0.0.1", &port]),
        std::fs::File::open(&file).unwrap(),
        T,
    );
    let err = &out.stderr;
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("too big") && err.contains("65,507"), "{err}");
    assert!(err.contains("IPv4"), "{err}");
    // A line too long for one datagram, with --lines.
    let mut line = big.clone();
    line.push(b'\n');
    let (status, _, err) = run(&["connect", "-u", "--lines", "127.0.0.1", &port], &line);
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(
        err.contains("65,507") && err.contains("shorten the line"),
        "{err}"
    );
    // The largest legal datagram goes through whole.
    let max = vec![b'y'; 65_507];
    let mut p = Proc::start(&["connect", "-u", "--quit-after", "1s", "127.0.0.1", &port]);
    p.send(&max);
    assert_eq!(recv(&peer).0.len(), 65_507);
    assert!(p.wait().success(), "{}", p.log());
    // Over IPv6 the limit is 20 bytes higher (no IPv4 header), where ::1 exists.
    if let Ok(v6) = UdpSocket::bind("[::1]:0") {
        let port6 = v6.local_addr().unwrap().port().to_string();
        let (status, _, err) = run(&["connect", "-u", "--lines", "::1", &port6], &line);
        assert_eq!(status.code(), Some(1), "{err}");
        assert!(err.contains("65,527") && err.contains("IPv6"), "{err}");
    } else {
        println!("IPv6 part skipped: ::1 cannot be bound here");
    }
}

#[test]
fn connected_udp_reports_icmp_port_unreachable() {
    let port = util::closed_udp_port().to_string();
    // No --quit-after: only the refusal can end it (the wait is bounded).
    let (status, _, err) = run(&["connect", "-u", "127.0.0.1", &port], b"anyone?\n");
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(
        err.contains("connection refused") && err.contains("ICMP port unreachable"),
        "{err}"
    );
    assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
}

#[test]
fn udp_echo_answers_a_python3_client() {
    if peer_or_skip("python3").is_none() {
        return;
    }
    let mut e = Proc::start(&["echo", "-u", "127.0.0.1", "0"]);
    let port = e.port().to_string();
    let script = r#"
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(10)
for msg in [b"one", b"two two", b"x" * 60000]:
    s.sendto(msg, ("127.0.0.1", int(sys.argv[1])))
    data, _ = s.recvfrom(70000)
    assert data == msg, (len(data), len(msg))
    sys.stdout.write("%d\n" % len(data))
"#;
    let out = run_peer("python3", &["-c", script, &port], b"");
    assert_eq!(out, b"3\n7\n60000\n");
}

#[test]
fn python3_talks_to_listen_udp() {
    if peer_or_skip("python3").is_none() {
        return;
    }
    let mut l = Proc::start(&["listen", "-u", "127.0.0.1", "0"]);
    let port = l.port().to_string();
    let script = r#"
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(10)
s.sendto(b"hello from python\n", ("127.0.0.1", int(sys.argv[1])))
sys.stdout.write(s.recvfrom(1000)[0].decode())
"#;
    let py = thread::spawn(move || run_peer("python3", &["-c", script, &port], b""));
    l.wait_for("new peer 127.0.0.1:");
    l.send(b"hello from sockkit\n");
    assert_eq!(py.join().unwrap(), b"hello from sockkit\n");
    assert_eq!(l.wait_out(18), b"hello from python\n");
}

#[test]
fn socat_talks_to_listen_udp() {
    if peer_or_skip("socat").is_none() {
        return;
    }
    let mut l = Proc::start(&["listen", "-u", "127.0.0.1", "0"]);
    let port = l.port();
    let target = format!("UDP:127.0.0.1:{port}");
    let peer = thread::spawn(move || run_peer("socat", &["-t", "2", "-", &target], b"ping\n"));
    l.wait_for("new peer 127.0.0.1:");
    l.send(b"pong\n");
    assert_eq!(peer.join().unwrap(), b"pong\n");
    assert_eq!(l.wait_out(5), b"ping\n");
}

#[test]
fn udp_narration_shows_the_datagram_calls() {
    let peer = udp_peer();
    let port = peer.local_addr().unwrap().port().to_string();
    let mut p = Proc::start(&[
        "connect",
        "-u",
        "-vv",
        "--quit-after",
        "2s",
        "127.0.0.1",
        &port,
    ]);
    p.send(b"hi");
    let (_, from) = recv(&peer);
    peer.send_to(b"back", from).unwrap();
    p.wait_out(4);
    assert!(p.wait().success());
    let log = p.log();
    for want in [
        "socket(AF_INET, SOCK_DGRAM|SOCK_CLOEXEC, IPPROTO_UDP) = fd",
        "connect(fd",
        "sendto(fd",
        "buf, 2, 0, NULL, 0) = 2",
        "recvfrom(fd",
        "close(fd",
    ] {
        assert!(log.contains(want), "no {want:?} in:\n{log}");
    }
    let so = log.find("socket(AF_INET").unwrap();
    let co = log.find("connect(fd").unwrap();
    let se = log.find("sendto(fd").unwrap();
    assert!(so < co && co < se, "calls out of order:\n{log}");
}

#[test]
fn show_opts_on_udp_lists_so_broadcast() {
    let peer = udp_peer();
    let port = peer.local_addr().unwrap().port().to_string();
    let (status, _, err) = run(
        &[
            "connect",
            "-u",
            "-o",
            "broadcast",
            "--show-opts",
            "--send-only",
            "127.0.0.1",
            &port,
        ],
        b"",
    );
    assert!(status.success(), "{err}");
    let line = err
        .lines()
        .find(|l| l.trim_start().starts_with("SO_BROADCAST"))
        .unwrap_or_else(|| panic!("no SO_BROADCAST row:\n{err}"));
    let cols: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(cols[2..4], ["on", "on"], "{line}");
    assert!(
        !err.contains("TCP_NODELAY"),
        "a TCP row on a UDP socket:\n{err}"
    );
}

// ---------------------------------------------------------------- Unix stream

/// `listen -U ADDR` and `connect -U ADDR` with different data each way: both arrive exactly.
fn unix_relay_round_trip(addr: &str) {
    let up = random_bytes(7, 1 << 20);
    let down = random_bytes(11, 300_000);
    let mut l = Proc::start(&["listen", "-U", addr]);
    let line = l.wait_for("listening on ");
    assert!(line.contains(addr), "the announcement names {addr}: {line}");
    // The listener reads stdin only once a client is there: feed it from a thread.
    let mut stdin = l.stdin.take().unwrap();
    let feed = down.clone();
    let feeder = thread::spawn(move || stdin.write_all(&feed).is_ok());
    let (status, got_down, err) = run(&["connect", "-U", addr], &up);
    assert!(feeder.join().unwrap(), "feeding the listener's stdin");
    assert!(status.success(), "{err}");
    assert!(got_down == down, "connect got {} bytes", got_down.len());
    let status = l.wait();
    assert!(status.success(), "{}", l.log());
    assert!(
        l.out() == up,
        "listen got {} of {} bytes",
        l.out().len(),
        up.len()
    );
}

#[test]
fn unix_relay_is_byte_exact_through_a_path() {
    let dir = TempDir::new("uu");
    let path = dir.path("relay.sock");
    unix_relay_round_trip(s(&path));
    assert!(
        !path.exists(),
        "the listener removes its socket file when done"
    );
}

#[test]
fn unix_relay_is_byte_exact_through_an_abstract_name() {
    if !cfg!(target_os = "linux") {
        println!("skipped: the abstract namespace is Linux-only");
        return;
    }
    unix_relay_round_trip(&abstract_name("relay"));
}

#[test]
fn a_stale_socket_file_is_replaced_only_with_unlink() {
    let dir = TempDir::new("uu");
    let path = dir.path("stale.sock");
    // std does not unlink on drop: a stale socket file, as a killed server leaves.
    drop(UnixListener::bind(&path).unwrap());
    let (status, _, err) = run(&["listen", "-U", s(&path)], b"");
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(err.contains("stale") && err.contains("--unlink"), "{err}");
    assert!(
        path.exists(),
        "the stale file is left alone without --unlink"
    );

    let mut l = Proc::start(&["listen", "-U", s(&path), "--unlink", "-v"]);
    l.wait_for("listening on ");
    assert!(l.log().contains("replacing it (--unlink)"), "{}", l.log());
    l.close_stdin();
    let (status, _, err) = run(&["connect", "-U", s(&path)], b"after unlink\n");
    assert!(status.success(), "{err}");
    assert!(l.wait().success(), "{}", l.log());
    assert_eq!(l.out(), b"after unlink\n");
}

#[test]
fn a_file_that_is_not_a_socket_is_never_deleted() {
    let dir = TempDir::new("uu");
    let path = dir.path("precious.txt");
    std::fs::write(&path, b"keep me").unwrap();
    for args in [
        vec!["listen", "-U", s(&path), "--unlink"],
        vec!["listen", "-U", s(&path), "-u", "--unlink"],
        vec!["echo", "-U", s(&path), "--unlink"],
    ] {
        let (status, _, err) = run(&args, b"");
        assert_eq!(status.code(), Some(1), "{args:?}: {err}");
        assert!(
            err.contains("regular file") && err.contains("never deletes"),
            "{args:?}: {err}"
        );
        assert_eq!(std::fs::read(&path).unwrap(), b"keep me", "{args:?}");
    }
}

#[test]
fn a_live_listener_keeps_its_path_even_against_unlink() {
    let dir = TempDir::new("uu");
    let path = dir.path("live.sock");
    let mut first = Proc::start(&["listen", "-U", s(&path)]);
    first.wait_for("listening on ");
    let (status, _, err) = run(&["listen", "-U", s(&path), "--unlink"], b"");
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(err.contains("already in use"), "{err}");
    // The first listener was not disturbed: its one client is still to come.
    first.close_stdin();
    let (status, _, err) = run(&["connect", "-U", s(&path)], b"still here\n");
    assert!(status.success(), "{err}");
    assert!(first.wait().success());
    assert_eq!(first.out(), b"still here\n");
}

#[test]
fn connecting_to_nothing_says_why() {
    let dir = TempDir::new("uu");
    let missing = dir.path("missing.sock");
    let (status, _, err) = run(&["connect", "-U", s(&missing)], b"");
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(err.contains("no socket at"), "{err}");
    let stale = dir.path("stale.sock");
    drop(UnixListener::bind(&stale).unwrap());
    let (status, _, err) = run(&["connect", "-U", s(&stale)], b"");
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(
        err.contains("connection refused") && err.contains("stale"),
        "{err}"
    );
}

#[test]
fn echo_serves_unix_clients_and_removes_its_socket() {
    let dir = TempDir::new("uu");
    let path = dir.path("echo.sock");
    let mut e = Proc::start(&["echo", "-U", s(&path), "-v"]);
    let line = e.wait_for("listening on ");
    assert!(line.contains(s(&path)), "{line}");
    let clients: Vec<_> = (0..8u64)
        .map(|i| {
            let path = path.clone();
            thread::spawn(move || {
                let data = random_bytes(i + 1, 200_000 + i as usize * 1000);
                let mut c = UnixStream::connect(&path).unwrap();
                c.set_read_timeout(Some(T)).unwrap();
                let mut w = c.try_clone().unwrap();
                let sent = data.clone();
                let writer = thread::spawn(move || {
                    w.write_all(&sent).unwrap();
                    w.shutdown(Shutdown::Write).unwrap();
                });
                let mut got = Vec::new();
                c.read_to_end(&mut got).unwrap();
                writer.join().unwrap();
                got == data
            })
        })
        .collect();
    for c in clients {
        assert!(c.join().unwrap(), "a client did not get its bytes back");
    }
    e.wait_for("closed Unix client pid");
    assert!(
        e.log()
            .contains(&format!("accepted Unix client pid {}", std::process::id())),
        "{}",
        e.log()
    );
    let status = e.signal(libc::SIGTERM);
    assert_eq!(
        status.signal(),
        Some(libc::SIGTERM),
        "{status}: {}",
        e.log()
    );
    assert!(!path.exists(), "echo removes its socket file when it stops");
}

#[test]
fn unix_servers_refuse_ip_filters() {
    let dir = TempDir::new("uu");
    let path = dir.path("x.sock");
    let (status, _, err) = run(&["echo", "-U", s(&path), "--allow", "127.0.0.1"], b"");
    assert_eq!(status.code(), Some(2), "{err}");
    assert!(err.contains("no IP address"), "{err}");
    let (status, _, err) = run(&["echo", "-U", s(&path), "-u", "--deny", "::1"], b"");
    assert_eq!(status.code(), Some(2), "{err}");
    let (status, _, err) = run(&["connect", "-U", s(&path), "127.0.0.1", "80"], b"");
    assert_eq!(status.code(), Some(2), "{err}");
    assert!(!path.exists());
}

#[test]
fn show_opts_on_unix_shows_peercred_of_the_client() {
    let dir = TempDir::new("uu");
    let path = dir.path("cred.sock");
    let mut l = Proc::start(&["listen", "-U", s(&path), "--show-opts", "-o", "passcred"]);
    l.wait_for("listening on ");
    l.close_stdin();
    let mut c = UnixStream::connect(&path).unwrap();
    c.write_all(b"who am i").unwrap();
    c.shutdown(Shutdown::Write).unwrap();
    assert!(l.wait().success(), "{}", l.log());
    let log = l.log();
    let me = format!("pid {}, uid ", std::process::id());
    let peercred: Vec<&str> = log.lines().filter(|l| l.contains("SO_PEERCRED")).collect();
    // The listening socket's table and the accepted one's; the accepted one names us.
    assert!(
        peercred.iter().any(|l| l.contains(&me)),
        "no SO_PEERCRED row with {me:?}:\n{log}"
    );
    assert!(
        log.lines()
            .any(|l| l.contains("SO_PASSCRED") && l.split_whitespace().nth(2) == Some("on")),
        "{log}"
    );
    assert!(
        !log.contains("TCP_NODELAY") && !log.contains("IP_TTL"),
        "{log}"
    );
    // SO_PEERCRED cannot be set.
    let (status, _, err) = run(&["connect", "-U", s(&path), "-o", "peercred"], b"");
    assert_eq!(status.code(), Some(2), "{err}");
    assert!(err.contains("read-only"), "{err}");
}

#[test]
fn unix_narration_shows_the_calls() {
    let dir = TempDir::new("uu");
    let path = dir.path("n.sock");
    let mut l = Proc::start(&["listen", "-U", s(&path), "-vv"]);
    l.wait_for("listening on ");
    l.close_stdin();
    let (status, _, err) = run(&["connect", "-U", s(&path), "-vv"], b"x");
    assert!(status.success(), "{err}");
    assert!(l.wait().success());
    let p = s(&path);
    for want in [
        "socket(AF_UNIX, SOCK_STREAM|SOCK_CLOEXEC, 0) = fd".to_string(),
        format!("bind(fd 3, {p}) = 0"),
        "listen(fd 3, backlog".to_string(),
        "accept4(fd 3, ..., SOCK_CLOEXEC) = fd".to_string(),
        format!("unlink(\"{p}\") = 0"),
    ] {
        assert!(l.log().contains(&want), "no {want:?} in:\n{}", l.log());
    }
    assert!(err.contains(&format!("connect(fd 3, {p}) = 0")), "{err}");
    assert!(err.contains("SHUT_WR) = 0"), "{err}");
}

#[test]
fn python3_and_socat_on_the_other_end_of_unix_stream_sockets() {
    if peer_or_skip("python3").is_none() {
        return;
    }
    let dir = TempDir::new("uu");
    // python3 serves, sockkit connects.
    let path = dir.path("py.sock");
    let script = r#"
import socket, sys, os
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(sys.argv[1]); s.listen(1)
print("ready", flush=True)
s.settimeout(10)
c, _ = s.accept()
data = b""
while True:
    chunk = c.recv(65536)
    if not chunk: break
    data += chunk
c.sendall(data[::-1]); c.close()
"#;
    let mut py = python3_server(script, &path);
    let (status, out, err) = run(&["connect", "-U", s(&path)], b"abcdef");
    py.wait_timeout(T);
    assert!(status.success(), "{err}");
    assert_eq!(out, b"fedcba");

    // sockkit listens, python3 connects.
    let path = dir.path("sk.sock");
    let mut l = Proc::start(&["listen", "-U", s(&path)]);
    l.wait_for("listening on ");
    l.send(b"from sockkit");
    l.close_stdin();
    let client = r#"
import socket, sys
c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
c.settimeout(10); c.connect(sys.argv[1])
c.sendall(b"from python"); c.shutdown(socket.SHUT_WR)
data = b""
while True:
    chunk = c.recv(65536)
    if not chunk: break
    data += chunk
sys.stdout.write(data.decode())
"#;
    let out = run_peer("python3", &["-c", client, s(&path)], b"");
    assert_eq!(out, b"from sockkit");
    assert!(l.wait().success());
    assert_eq!(l.out(), b"from python");

    if peer_or_skip("socat").is_none() {
        return;
    }
    // socat connects to a path and to an abstract name.
    let path = dir.path("socat.sock");
    let name = abstract_name("socat");
    for (listen_at, socat_addr) in [
        (s(&path).to_string(), format!("UNIX-CONNECT:{}", s(&path))),
        (name.clone(), format!("ABSTRACT-CONNECT:{}", &name[1..])),
    ] {
        let mut l = Proc::start(&["listen", "-U", &listen_at]);
        l.wait_for("listening on ");
        l.send(b"hello socat\n");
        l.close_stdin();
        let out = run_peer("socat", &["-t", "5", "-", &socat_addr], b"hello sockkit\n");
        assert_eq!(out, b"hello socat\n", "{socat_addr}");
        assert!(l.wait().success(), "{}", l.log());
        assert_eq!(l.out(), b"hello sockkit\n", "{socat_addr}");
    }
}

// ---------------------------------------------------------------- Unix datagram

#[test]
fn unix_datagrams_keep_boundaries_and_answer_the_last_sender() {
    let dir = TempDir::new("uu");
    let path = dir.path("dgram.sock");
    let mut l = Proc::start(&[
        "listen",
        "-U",
        s(&path),
        "-u",
        "-v",
        "--quit-after",
        "300ms",
    ]);
    let line = l.wait_for("listening on ");
    assert!(line.contains("datagrams"), "{line}");
    let me_path = dir.path("client.sock");
    let me = UnixDatagram::bind(&me_path).unwrap();
    me.set_read_timeout(Some(T)).unwrap();
    me.send_to(b"one", &path).unwrap();
    me.send_to(b"two two", &path).unwrap();
    l.wait_for(&format!("new peer {}", s(&me_path)));
    l.wait_for("datagram of 7 B");
    l.send(b"reply");
    let mut buf = [0u8; 100];
    let n = me.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"reply");
    l.close_stdin();
    assert!(l.wait().success(), "{}", l.log());
    assert_eq!(l.out(), b"onetwo two");
    assert!(l.log().contains("datagram of 3 B"), "{}", l.log());
    assert!(!path.exists(), "the socket file is removed at the end");
}

#[test]
fn connect_unix_datagram_to_python3() {
    if peer_or_skip("python3").is_none() {
        return;
    }
    let dir = TempDir::new("uu");
    let path = dir.path("pyd.sock");
    let script = r#"
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
print("ready", flush=True)
s.settimeout(10)
for _ in range(2):
    data, addr = s.recvfrom(1000)
    s.sendto(data.upper(), addr)
"#;
    let mut py = python3_server(script, &path);
    let (status, out, err) = run(
        &[
            "connect",
            "-U",
            s(&path),
            "-u",
            "--lines",
            "--quit-after",
            "2s",
        ],
        b"abc\ndef\n",
    );
    py.wait_timeout(T);
    assert!(status.success(), "{err}");
    assert_eq!(out, b"ABC\nDEF\n");
}

#[test]
fn dual_stack_listen_udp_answers_an_ipv4_peer_by_its_plain_address() {
    let mut l = Proc::start(&["listen", "-u", "--quit-after", "300ms", "0"]);
    let line = l.wait_for("listening on ");
    let port = l.port();
    if !line.contains("IPv4 and IPv6") {
        println!("skipped: no dual-stack socket here ({line})");
        return;
    }
    let a = udp_peer();
    a.send_to(b"v4 here\n", format!("127.0.0.1:{port}"))
        .unwrap();
    // Shown as 127.0.0.1:PORT, not [::ffff:127.0.0.1]:PORT.
    l.wait_for(&format!("new peer {}", a.local_addr().unwrap()));
    l.send(b"hello v4\n");
    assert_eq!(recv(&a).0, b"hello v4\n");
    assert!(l.wait().success(), "{}", l.log());
    assert_eq!(l.out(), b"v4 here\n");
}

#[test]
fn ctrl_c_on_listen_unix_removes_the_socket_file() {
    let dir = TempDir::new("uu");
    for extra in [None, Some("-u")] {
        let path = dir.path("sigint.sock");
        let mut args = vec!["listen", "-U", s(&path)];
        args.extend(extra);
        let mut l = Proc::start(&args);
        l.wait_for("listening on ");
        assert!(path.exists());
        let status = l.signal(libc::SIGINT);
        assert_eq!(status.signal(), Some(libc::SIGINT), "{extra:?}: {status}");
        assert!(!path.exists(), "{extra:?}: the socket file outlived Ctrl-C");
        // So the next run needs no --unlink.
        let mut again = Proc::start(&args);
        again.wait_for("listening on ");
        again.signal(libc::SIGTERM);
        assert!(!path.exists());
    }
}

#[test]
fn socat_on_the_other_end_of_a_unix_datagram_socket() {
    if peer_or_skip("socat").is_none() {
        return;
    }
    let dir = TempDir::new("uu");
    let path = dir.path("sd.sock");
    let client = dir.path("socat-client.sock");
    let mut l = Proc::start(&["listen", "-U", s(&path), "-u"]);
    l.wait_for("listening on ");
    let target = format!("UNIX-SENDTO:{},bind={}", s(&path), s(&client));
    let peer = thread::spawn(move || run_peer("socat", &["-t", "3", "-", &target], b"hi\n"));
    l.wait_for(&format!("new peer {}", s(&client)));
    l.send(b"reply\n");
    assert_eq!(peer.join().unwrap(), b"reply\n");
    assert_eq!(l.wait_out(3), b"hi\n");
}

#[test]
fn a_udp_port_in_use_is_named_as_udp() {
    let holder = udp_peer();
    let port = holder.local_addr().unwrap().port().to_string();
    let (status, _, err) = run(&["listen", "-u", "127.0.0.1", &port], b"");
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(
        err.contains("already in use") && err.contains("UDP port") && err.contains("ss -lunp"),
        "{err}"
    );
}

#[test]
fn echo_answers_unix_datagrams_to_bound_senders_only() {
    let dir = TempDir::new("uu");
    let path = dir.path("echo-d.sock");
    let mut e = Proc::start(&["echo", "-U", s(&path), "-u", "-v"]);
    let line = e.wait_for("listening on ");
    assert!(line.contains("datagrams"), "{line}");
    // sockkit's own datagram client (autobound, abstract) gets each line back whole.
    let (status, out, err) = run(
        &[
            "connect",
            "-U",
            s(&path),
            "-u",
            "--lines",
            "--quit-after",
            "1s",
        ],
        b"one\ntwo two\n",
    );
    assert!(status.success(), "{err}");
    assert_eq!(out, b"one\ntwo two\n");
    // A client bound to a path.
    let me = UnixDatagram::bind(dir.path("c.sock")).unwrap();
    me.set_read_timeout(Some(T)).unwrap();
    let big = random_bytes(5, 100_000);
    me.send_to(&big, &path).unwrap();
    let mut buf = vec![0u8; 200_000];
    let n = me.recv(&mut buf).unwrap();
    assert!(buf[..n] == big[..], "got {n} bytes back");
    // An unbound sender cannot be answered: said, not silently lost.
    let anon = UnixDatagram::unbound().unwrap();
    anon.send_to(b"who?", &path).unwrap();
    e.wait_for("from an unbound socket");
    let status = e.signal(libc::SIGTERM);
    assert_eq!(status.signal(), Some(libc::SIGTERM), "{}", e.log());
    assert!(
        e.log().contains("answered 3 datagrams (1 from unbound"),
        "{}",
        e.log()
    );
    assert!(!path.exists());
}

#[test]
fn idle_timeout_ends_a_udp_session_normally() {
    let started = Instant::now();
    let mut l = Proc::start(&[
        "listen",
        "-u",
        "-v",
        "--idle-timeout",
        "300ms",
        "127.0.0.1",
        "0",
    ]);
    l.port();
    l.close_stdin();
    let status = l.wait();
    assert!(status.success(), "{status}: {}", l.log());
    assert!(l.log().contains("(--idle-timeout): ending"), "{}", l.log());
    assert!(started.elapsed() >= Duration::from_millis(300));
}

/// Whether this build has the `knock` subcommand (it comes from another branch).
fn has_knock() -> bool {
    run(&["knock", "--help"], b"").0.success()
}

#[test]
fn knock_tells_a_joke_over_a_unix_socket() {
    if !has_knock() {
        println!("skipped: this build has no knock subcommand yet (it lands from its branch)");
        return;
    }
    let dir = TempDir::new("uu");
    let path = dir.path("knock.sock");
    let mut k = Proc::start(&["knock", "-U", s(&path)]);
    let line = k.wait_for("listening on ");
    assert!(line.contains(s(&path)), "{line}");
    let c = UnixStream::connect(&path).unwrap();
    c.set_read_timeout(Some(T)).unwrap();
    let mut w = c.try_clone().unwrap();
    let mut r = BufReader::new(c);
    let mut next = || {
        let mut l = String::new();
        r.read_line(&mut l).unwrap();
        l.trim_end().to_string()
    };
    assert_eq!(next(), "Knock! Knock!");
    w.write_all(b"Who's there?\n").unwrap();
    let clue = next();
    assert!(!clue.is_empty());
    w.write_all(format!("{clue} who?\n").as_bytes()).unwrap();
    assert!(next().ends_with("(y/n)"));
    w.write_all(b"n\n").unwrap();
    assert_eq!(next(), "Bye.");
    assert_eq!(next(), "", "the server closes after Bye.");
    assert_eq!(
        k.signal(libc::SIGTERM).signal(),
        Some(libc::SIGTERM),
        "{}",
        k.log()
    );
    assert!(!path.exists());
}

#[test]
fn a_port_check_refuses_a_unix_socket() {
    let out = util::run(&["connect", "-z", "-U", "/nonexistent/sock"], b"", util::T);
    assert_eq!(out.code(), Some(2), "{}", out.stderr);
    assert!(
        out.stderr.contains("a Unix socket has none"),
        "{}",
        out.stderr
    );
    assert_eq!(out.stdout, b"");
}

#[test]
fn a_udp_port_check_says_closed_or_open_filtered_and_never_open_without_an_answer() {
    // A bound UDP socket that never answers, and a port nobody holds (below the ephemeral
    // range, so no parallel test's bind to port 0 takes it meanwhile).
    let quiet = UdpSocket::bind("127.0.0.1:0").unwrap();
    let open = quiet.local_addr().unwrap().port();
    let closed = util::closed_udp_port();
    let list = format!("{open},{closed}");
    let out = util::run(
        &[
            "connect",
            "-z",
            "-v",
            "-u",
            "-w",
            "300ms",
            "127.0.0.1",
            &list,
        ],
        b"",
        util::T,
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(
        lines[0].starts_with(&format!("127.0.0.1:{open} open|filtered")),
        "{text}"
    );
    assert_eq!(lines[1], format!("127.0.0.1:{closed} closed"), "{text}");
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    // The empty datagram carried no payload: what the quiet socket got is zero bytes.
    quiet.set_read_timeout(Some(util::T)).unwrap();
    let mut buf = [0u8; 16];
    let (n, _) = quiet.recv_from(&mut buf).expect("the probe datagram");
    assert_eq!(n, 0);
    // All closed: exit 1, the summary as the error.
    let only = closed.to_string();
    let out = util::run(
        &["connect", "-z", "-u", "-w", "300ms", "127.0.0.1", &only],
        b"",
        util::T,
    );
    assert_eq!(out.code(), Some(1), "{}", out.stderr);
    assert!(out.stderr.contains("1 closed"), "{}", out.stderr);
}

#[test]
fn udp_loss_in_the_kernel_is_counted_under_v() {
    // An unpaced burst into a small receive buffer: the kernel drops what does not fit, and
    // sockkit says how many (SO_MEMINFO's drop count) with the way out. Loopback loses a
    // datagram nowhere else, so the count is exactly sent - received.
    const SENT: usize = 20_000;
    const SIZE: usize = 100;
    let mut l = ChildGuard::spawn(&mut util::sockkit(&[
        "listen",
        "-u",
        "-v",
        "--idle-timeout",
        "1s",
        "-o",
        "rcvbuf=4K",
        "127.0.0.1",
        "0",
    ]));
    drop(l.stdin());
    let out = util::collect(l.stdout());
    let (addr, mut err) = util::read_listening(l.stderr(), T);
    let u = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut datagram = vec![b'x'; SIZE];
    datagram[SIZE - 1] = b'\n';
    for _ in 0..SENT {
        u.send_to(&datagram, addr).unwrap();
    }
    let status = l.status_within(T, "listen -u after its idle timeout");
    assert!(status.success(), "{status}");
    let got = util::join_within(out, T);
    assert_eq!(got.len() % SIZE, 0, "a datagram was cut");
    let received = got.len() / SIZE;
    let said = err.finish(T);
    let lost = SENT - received;
    assert!(
        lost > 0,
        "nothing was dropped: the test proves nothing\n{said}"
    );
    assert!(
        said.contains(&format!("the kernel dropped {lost} datagrams"))
            && said.contains("-o rcvbuf="),
        "{SENT} sent, {received} received:\n{}",
        said.lines()
            .filter(|l| !l.contains("datagram of"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}
