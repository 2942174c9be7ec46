//! `sockkit echo` driven as a user would: the real binary on loopback, port 0, every wait
//! bounded. Covers many concurrent clients, backpressure against a client that never reads,
//! half-close, resets, the limits (--max-conns, --idle-timeout, --allow/--deny, descriptors
//! running out), graceful stop, UDP, and clients nobody here wrote (python3, nc, socat).
//! The small helpers below are private until the shared tests/util module lands.

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_sockkit");
/// No single wait in these tests may take longer than this.
const WAIT: Duration = Duration::from_secs(20);

/// A running `sockkit` server: killed (by PID) when dropped; its stderr collected as it comes.
struct Server {
    child: Child,
    addr: SocketAddr,
    stderr: Arc<Mutex<String>>,
}

impl Server {
    fn start(args: &[&str]) -> Server {
        Server::start_with(args, |_| {})
    }

    fn start_with(args: &[&str], setup: impl FnOnce(&mut Command)) -> Server {
        let mut cmd = Command::new(BIN);
        cmd.arg("echo")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        setup(&mut cmd);
        let mut child = cmd.spawn().expect("spawn sockkit");
        let stderr = Arc::new(Mutex::new(String::new()));
        let pipe = child.stderr.take().unwrap();
        let sink = Arc::clone(&stderr);
        thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                let mut s = sink.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
            }
        });
        let mut server = Server {
            child,
            addr: "127.0.0.1:0".parse().unwrap(),
            stderr,
        };
        let line = server.wait_for("listening on ");
        let text = line
            .split("listening on ")
            .nth(1)
            .unwrap()
            .split(' ')
            .next()
            .unwrap();
        server.addr = text.parse().expect("listening address");
        server
    }

    fn port(&self) -> u16 {
        self.addr.port()
    }

    fn log(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// The first stderr line containing `what`, waiting for it (bounded).
    fn wait_for(&mut self, what: &str) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(line) = self.log().lines().find(|l| l.contains(what)) {
                return line.to_string();
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                thread::sleep(Duration::from_millis(50));
                panic!(
                    "sockkit exited ({status}) before saying {what:?}:\n{}",
                    self.log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "no {what:?} on stderr within {WAIT:?}:\n{}",
                self.log()
            );
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// How many stderr lines contain `what` (no waiting).
    fn count(&self, what: &str) -> usize {
        self.log().lines().filter(|l| l.contains(what)).count()
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// VmRSS from /proc, in KiB.
    fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS in /proc/PID/status")
    }

    /// CPU time used so far (user + system), from /proc/PID/stat.
    fn cpu_time(&self) -> Duration {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).unwrap();
        let after = &stat[stat.rfind(')').unwrap() + 2..];
        let f: Vec<&str> = after.split(' ').collect();
        // Fields 14 and 15 of stat(5) (utime, stime) are 12 and 13 after the comm field.
        let ticks: u64 = f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap();
        // SAFETY: sysconf only reads a constant.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
        Duration::from_millis(ticks * 1000 / hz)
    }

    /// Sends `signal` and waits (bounded) for the exit status.
    fn stop(&mut self, signal: i32) -> std::process::ExitStatus {
        // SAFETY: kill() on our own child's PID.
        unsafe { libc::kill(self.pid() as i32, signal) };
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                thread::sleep(Duration::from_millis(50)); // let the stderr thread catch up
                return status;
            }
            assert!(Instant::now() < deadline, "sockkit did not stop on signal");
            thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn connect(server: &Server) -> TcpStream {
    let s = TcpStream::connect_timeout(&server.addr, WAIT).expect("connect to sockkit echo");
    s.set_read_timeout(Some(WAIT)).unwrap();
    s.set_write_timeout(Some(WAIT)).unwrap();
    s
}

/// Connects from a chosen loopback source address (all of 127/8 is local on Linux).
fn connect_from(server: &Server, from: &str) -> TcpStream {
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    let local: SocketAddr = format!("{from}:0").parse().unwrap();
    sock.bind(&local.into()).unwrap();
    sock.connect_timeout(&server.addr.into(), WAIT).unwrap();
    let s: TcpStream = sock.into();
    s.set_read_timeout(Some(WAIT)).unwrap();
    s
}

/// Deterministic, distinct pseudo-random bytes per seed (xorshift64*).
fn stream_of(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Reads until EOF (bounded by the socket's read timeout).
fn read_to_end(s: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    s.read_to_end(&mut got).expect("read until EOF");
    got
}

/// Sends `data` from a second thread while reading the echo; then half-closes and reads to
/// EOF. Returns what came back.
fn echo_through(mut s: TcpStream, data: Arc<Vec<u8>>, chunk: usize) -> Vec<u8> {
    let mut w = s.try_clone().unwrap();
    let writer = thread::spawn(move || {
        for part in data.chunks(chunk) {
            w.write_all(part).expect("write to echo server");
        }
        w.shutdown(Shutdown::Write).unwrap();
    });
    let got = read_to_end(&mut s);
    writer.join().unwrap();
    got
}

/// True when the peer ended the connection: EOF or a reset, within the read timeout.
fn closed_by_peer(s: &mut TcpStream) -> bool {
    let mut b = [0u8; 64];
    match s.read(&mut b) {
        Ok(0) => true,
        Err(e) if e.kind() == ErrorKind::ConnectionReset => true,
        _ => false,
    }
}

fn round_trip(s: &mut TcpStream, msg: &[u8]) {
    s.write_all(msg).unwrap();
    let mut back = vec![0u8; msg.len()];
    s.read_exact(&mut back).expect("echo comes back");
    assert_eq!(back, msg);
}

/// Whether an external peer may be skipped: yes, with a reason, unless CI is set.
fn peer_missing(name: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if found {
        return false;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{name} is required when CI is set"
    );
    eprintln!("skipping: {name} is not installed");
    true
}

/// Runs a program with stdin from `input`, bounded in time; returns its stdout.
fn run_peer(program: &str, args: &[&str], input: &[u8]) -> Vec<u8> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    let feeder = thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let mut stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    thread::spawn(move || {
        let mut out = Vec::new();
        let _ = stdout.read_to_end(&mut out);
        let _ = tx.send(out);
    });
    let out = rx.recv_timeout(WAIT);
    let _ = child.kill();
    let _ = child.wait();
    feeder.join().unwrap();
    out.unwrap_or_else(|_| panic!("{program} did not finish within {WAIT:?}"))
}

#[test]
fn two_hundred_concurrent_clients_each_get_exactly_their_own_bytes() {
    let server = Server::start(&["127.0.0.1", "0"]);
    let clients: Vec<_> = (0..200u64)
        .map(|i| {
            let s = connect(&server);
            // Several hundred KiB each, every stream different, in uneven chunks.
            let data = Arc::new(stream_of(i + 1, 256 * 1024 + (i as usize * 1031) % 65536));
            thread::spawn(move || {
                let got = echo_through(s, Arc::clone(&data), 1000 + (i as usize * 97) % 20000);
                assert_eq!(got.len(), data.len(), "client {i}: length");
                assert!(got == *data, "client {i}: bytes differ");
            })
        })
        .collect();
    for c in clients {
        c.join().expect("client thread");
    }
}

#[test]
fn a_client_that_floods_without_reading_neither_delays_others_nor_grows_the_server() {
    let server = Server::start(&["127.0.0.1", "0"]);
    let rss_before = server.rss_kib();
    let mut flooders = Vec::new();
    for i in 0..4u64 {
        let mut s = connect(&server);
        s.set_write_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        flooders.push(thread::spawn(move || {
            // Write until the kernel buffers on both sides are full and the server has stopped
            // reading (the write times out), at most 256 MiB.
            let block = stream_of(100 + i, 1 << 20);
            let mut sent = 0usize;
            while sent < 256 << 20 {
                match s.write(&block) {
                    Ok(n) => sent += n,
                    Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                        break;
                    }
                    Err(e) => panic!("flooder: {e}"),
                }
            }
            (s, sent)
        }));
    }
    let mut polite = connect(&server);
    let mut worst = Duration::ZERO;
    for i in 0..50u64 {
        let msg = stream_of(7 + i, 64);
        let t0 = Instant::now();
        round_trip(&mut polite, &msg);
        worst = worst.max(t0.elapsed());
        thread::sleep(Duration::from_millis(10));
    }
    let flooded: Vec<(TcpStream, usize)> =
        flooders.into_iter().map(|f| f.join().unwrap()).collect();
    for (_, sent) in &flooded {
        // The server stopped reading: the flooder was held back well before 256 MiB.
        assert!(*sent < 64 << 20, "a flooder got {sent} bytes in");
    }
    let rss_after = server.rss_kib();
    assert!(
        worst < Duration::from_millis(500),
        "a polite client waited {worst:?} for its echo while others flooded"
    );
    assert!(
        rss_after < rss_before + 16 * 1024,
        "server RSS grew from {rss_before} KiB to {rss_after} KiB under flooding"
    );
    // And still echoing afterwards.
    round_trip(&mut polite, b"still here");
}

#[test]
fn half_close_gets_everything_owed_then_eof() {
    let mut server = Server::start(&["-v", "127.0.0.1", "0"]);
    let s = connect(&server);
    // More than the kernel buffers hold, so the server still owes bytes when our EOF arrives.
    let data = Arc::new(stream_of(42, 4 << 20));
    let got = echo_through(s, Arc::clone(&data), 1 << 20);
    assert_eq!(got.len(), data.len());
    assert!(got == *data);
    let line = server.wait_for("closed 127.0.0.1:");
    assert!(line.contains("client finished"), "{line}");
    assert!(line.contains("4.00 MiB in, 4.00 MiB out"), "{line}");
}

#[test]
fn a_reset_mid_stream_ends_only_that_client() {
    let mut server = Server::start(&["-v", "127.0.0.1", "0"]);
    let mut s = connect(&server);
    s.write_all(&stream_of(1, 512 * 1024)).unwrap();
    // SO_LINGER 0: close() sends RST instead of FIN, with echoed data still unread.
    socket2::SockRef::from(&s)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(s);
    let line = server.wait_for("closed 127.0.0.1:");
    assert!(
        line.contains("reset") || line.contains("went away"),
        "the close line names the reset: {line}"
    );
    let mut next = connect(&server);
    round_trip(&mut next, b"after the reset");
}

#[test]
fn max_conns_refuses_the_excess_and_keeps_serving() {
    let mut server = Server::start(&["--max-conns", "2", "127.0.0.1", "0"]);
    let mut a = connect(&server);
    let mut b = connect(&server);
    round_trip(&mut a, b"a");
    round_trip(&mut b, b"b");
    let mut c = connect(&server);
    assert!(closed_by_peer(&mut c), "the third client is closed");
    let line = server.wait_for("refused 127.0.0.1:");
    assert!(line.contains("--max-conns 2"), "{line}");
    round_trip(&mut a, b"a again");
    drop(b);
    // Once a place is free, a new client gets in (the close may take a moment to be seen).
    let deadline = Instant::now() + WAIT;
    loop {
        let mut d = connect(&server);
        d.write_all(b"d").unwrap();
        let mut one = [0u8; 1];
        if matches!(d.read(&mut one), Ok(1)) {
            assert_eq!(&one, b"d");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no place freed after a client left"
        );
        thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn idle_timeout_closes_silent_clients_only() {
    let mut server = Server::start(&["-v", "--idle-timeout", "400ms", "127.0.0.1", "0"]);
    let mut quiet = connect(&server);
    let mut chatty = connect(&server);
    let t0 = Instant::now();
    for i in 0..10u8 {
        round_trip(&mut chatty, &[i; 10]);
        thread::sleep(Duration::from_millis(100));
    }
    assert!(closed_by_peer(&mut quiet), "the quiet client is closed");
    let waited = t0.elapsed();
    assert!(
        waited < Duration::from_secs(5),
        "closed after {waited:?}, not about 400ms"
    );
    round_trip(&mut chatty, b"still served");
    let line = server.wait_for("idle for");
    assert!(line.contains("--idle-timeout 400ms"), "{line}");
}

#[test]
fn idle_timeout_zero_keeps_silent_clients() {
    let server = Server::start(&["--idle-timeout", "0", "127.0.0.1", "0"]);
    let mut quiet = connect(&server);
    thread::sleep(Duration::from_millis(1200));
    round_trip(&mut quiet, b"still here after a silence");
}

#[test]
fn allow_and_deny_are_checked_at_accept() {
    let mut server = Server::start(&[
        "--allow",
        "127.0.0.0/8",
        "--deny",
        "127.0.0.2",
        "127.0.0.1",
        "0",
    ]);
    let mut ok = connect_from(&server, "127.0.0.1");
    round_trip(&mut ok, b"allowed");
    let mut denied = connect_from(&server, "127.0.0.2");
    let _ = denied.write_all(b"let me in");
    assert!(closed_by_peer(&mut denied), "127.0.0.2 is refused");
    let line = server.wait_for("refused 127.0.0.2:");
    assert!(line.contains("--deny 127.0.0.2/32"), "{line}");

    let mut only = Server::start(&["--allow", "127.0.0.1", "127.0.0.1", "0"]);
    let mut outside = connect_from(&only, "127.0.0.3");
    assert!(closed_by_peer(&mut outside), "127.0.0.3 is outside --allow");
    let line = only.wait_for("refused 127.0.0.3:");
    assert!(line.contains("--allow"), "{line}");
    let mut inside = connect_from(&only, "127.0.0.1");
    round_trip(&mut inside, b"inside");
}

#[test]
fn running_out_of_descriptors_pauses_accept_without_spinning() {
    // A hard limit of 40 descriptors: the server cannot raise it, so clients past ~30 wait in
    // the listen backlog until others leave.
    let mut server = Server::start_with(&["-v", "127.0.0.1", "0"], |cmd| {
        use std::os::unix::process::CommandExt;
        // SAFETY: setrlimit is async-signal-safe; it only lowers this child's own limit.
        unsafe {
            cmd.pre_exec(|| {
                let lim = libc::rlimit {
                    rlim_cur: 40,
                    rlim_max: 40,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    });
    let mut clients: Vec<TcpStream> = (0..45).map(|_| connect(&server)).collect();
    server.wait_for("too many open files");
    let cpu0 = server.cpu_time();
    thread::sleep(Duration::from_millis(1000));
    let spent = server.cpu_time() - cpu0;
    assert!(
        spent < Duration::from_millis(300),
        "the server burnt {spent:?} of CPU in 1s while out of descriptors"
    );
    // Twenty of the served leave; the ones waiting in the backlog are served now.
    let served_before = server.count("accepted ");
    assert!(served_before < 45, "all were accepted despite the limit");
    clients.drain(..20);
    for s in clients.iter_mut() {
        round_trip(s, b"my turn");
    }
    assert_eq!(server.count("accepted "), 45);
}

#[test]
fn sigterm_stops_gracefully_with_totals() {
    let mut server = Server::start(&["-v", "127.0.0.1", "0"]);
    let mut a = connect(&server);
    round_trip(&mut a, b"hello");
    let status = server.stop(libc::SIGTERM);
    assert!(status.success(), "exit status {status}");
    assert!(closed_by_peer(&mut a), "the client is closed at stop");
    let log = server.log();
    let totals = log
        .lines()
        .find(|l| l.contains("stopped on SIGTERM"))
        .unwrap_or_else(|| panic!("no totals line:\n{log}"));
    assert!(totals.contains("served 1 clients"), "{totals}");
    assert!(totals.contains("5 B in, 5 B out"), "{totals}");
    assert!(log.contains("server stopping"), "{log}");
}

#[test]
fn udp_sends_each_datagram_back_to_its_sender() {
    let mut server = Server::start(&["-u", "-v", "127.0.0.1", "0"]);
    let line = server.wait_for("listening on");
    assert!(line.contains("UDP"), "{line}");
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut buf = vec![0u8; 65536];
    for (i, len) in [1usize, 100, 1400, 9000, 60000].into_iter().enumerate() {
        let msg = stream_of(i as u64, len);
        // UDP may drop; on loopback it does not, but retry a couple of times all the same.
        let mut got = None;
        for _ in 0..3 {
            sock.send_to(&msg, server.addr).unwrap();
            if let Ok((n, from)) = sock.recv_from(&mut buf) {
                assert_eq!(from, server.addr);
                got = Some(buf[..n].to_vec());
                break;
            }
        }
        assert_eq!(got.as_deref(), Some(&msg[..]), "datagram of {len} bytes");
    }
    let status = server.stop(libc::SIGINT);
    assert!(status.success());
    assert!(server.log().contains("stopped on SIGINT: answered"));
}

#[test]
fn python3_socket_client_gets_its_bytes_back() {
    if peer_missing("python3") {
        return;
    }
    let server = Server::start(&["127.0.0.1", "0"]);
    let script = format!(
        r#"
import socket, hashlib, os
s = socket.create_connection(("127.0.0.1", {port}), timeout=20)
data = os.urandom(300000)
s.sendall(data)
s.shutdown(socket.SHUT_WR)
got = b""
while True:
    b = s.recv(65536)
    if not b:
        break
    got += b
print(len(got), got == data)
"#,
        port = server.port()
    );
    let out = run_peer("python3", &["-c", &script], b"");
    assert_eq!(String::from_utf8_lossy(&out).trim(), "300000 True");
}

#[test]
fn nc_gets_its_bytes_back() {
    if peer_missing("nc") {
        return;
    }
    let server = Server::start(&["127.0.0.1", "0"]);
    let data = stream_of(9, 200_000);
    // -N: shut the socket down at stdin EOF (OpenBSD nc), so the echo ends with ours.
    let out = run_peer(
        "nc",
        &["-N", "127.0.0.1", &server.port().to_string()],
        &data,
    );
    assert_eq!(out.len(), data.len());
    assert!(out == data);
}

#[test]
fn socat_gets_its_bytes_back() {
    if peer_missing("socat") {
        return;
    }
    let server = Server::start(&["127.0.0.1", "0"]);
    let data = stream_of(10, 200_000);
    let target = format!("TCP:127.0.0.1:{}", server.port());
    let out = run_peer("socat", &["-t", "10", "-", &target], &data);
    assert_eq!(out.len(), data.len());
    assert!(out == data);
}
