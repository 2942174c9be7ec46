//! Shared helpers for the integration tests: run the real `sockkit` binary with a bound on
//! every wait, learn a server's port from its `listening on` line, kill what a test started
//! when the test ends (pass or panic), make reproducible test data and temporary directories,
//! and find external peers (nc, ncat, socat, python3, java) or skip without them. Test files include it with
//! `mod util;`; it holds no test of its own.
//!
//! A typical server test:
//!
//! ```ignore
//! mod util;
//! use util::*;
//!
//! let mut server = Server::start(&["echo", "0"]);     // spawns, reads `listening on ...`
//! let addr = server.loopback();                        // 127.0.0.1:PORT or [::1]:PORT
//! let out = run(&["connect", "127.0.0.1", &addr.port().to_string()], b"hi", T);
//! assert_eq!(out.stdout, b"hi");
//! // `server` is killed (by PID) when it goes out of scope.
//! ```
//!
//! A test needing an external program:
//!
//! ```ignore
//! let Some(nc) = peer_or_skip("nc") else { return };  // prints why and skips; panics if CI
//! ```

// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

use std::env;
use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, ChildStdin, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// The default bound for one step of a test (a process run, a line to appear). Generous,
/// because two cores are shared by parallel tests; a hang still fails instead of stalling.
pub const T: Duration = Duration::from_secs(30);

/// The path of the binary under test, built by cargo for integration tests.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_sockkit")
}

/// `sockkit ARGS...` with stdin, stdout and stderr piped, ready to spawn.
pub fn sockkit<S: AsRef<OsStr>>(args: &[S]) -> Command {
    let mut cmd = Command::new(bin());
    cmd.args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// A child process that is killed (SIGKILL, by its own PID) and reaped when dropped, so a
/// failing test never leaves a server behind. Deref gives the `Child` for its pipes.
pub struct ChildGuard {
    child: Option<Child>,
}

impl ChildGuard {
    /// Spawns `cmd`, panicking with the program name if it cannot start.
    pub fn spawn(cmd: &mut Command) -> ChildGuard {
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {}: {e}", cmd.get_program().display()));
        ChildGuard { child: Some(child) }
    }

    pub fn id(&self) -> u32 {
        self.child().id()
    }

    fn child(&self) -> &Child {
        self.child.as_ref().expect("child already reaped")
    }

    fn child_mut(&mut self) -> &mut Child {
        self.child.as_mut().expect("child already reaped")
    }

    /// Takes the child's stdin pipe (dropping it is EOF for the child).
    pub fn stdin(&mut self) -> ChildStdin {
        self.child_mut().stdin.take().expect("stdin not piped")
    }

    pub fn stdout(&mut self) -> ChildStdout {
        self.child_mut().stdout.take().expect("stdout not piped")
    }

    pub fn stderr(&mut self) -> ChildStderr {
        self.child_mut().stderr.take().expect("stderr not piped")
    }

    /// The exit status if the child has ended by now, without waiting.
    pub fn try_status(&mut self) -> Option<ExitStatus> {
        self.child_mut().try_wait().expect("try_wait")
    }

    /// Waits at most `limit` for the child to exit; `None` if it is still running.
    pub fn wait_timeout(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.try_status() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// Waits at most `limit` for the exit status, failing the test (and killing the child)
    /// if it has not exited by then.
    pub fn status_within(&mut self, limit: Duration, what: &str) -> ExitStatus {
        match self.wait_timeout(limit) {
            Some(s) => s,
            None => panic!("{what}: still running after {limit:?} (killed)"),
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            if child.try_wait().ok().flatten().is_none() {
                // Child::kill sends SIGKILL to this child's PID only.
                let _ = child.kill();
            }
            let _ = child.wait();
        }
    }
}

/// Collects a stream (stderr, usually) line by line on a thread, so a test can wait for a
/// line with a deadline and still read everything else the process said afterwards.
pub struct LineTap {
    lines: Arc<Mutex<Vec<String>>>,
    fresh: Receiver<String>,
    reader: Option<JoinHandle<()>>,
}

impl LineTap {
    pub fn new<R: Read + Send + 'static>(stream: R) -> LineTap {
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (tx, fresh) = mpsc::channel();
        let store = lines.clone();
        let reader = thread::spawn(move || {
            let mut r = BufReader::new(stream);
            let mut buf = Vec::new();
            loop {
                buf.clear();
                match r.read_until(b'\n', &mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        let line = String::from_utf8_lossy(&buf)
                            .trim_end_matches('\n')
                            .to_string();
                        store.lock().unwrap().push(line.clone());
                        let _ = tx.send(line);
                    }
                }
            }
        });
        LineTap {
            lines,
            fresh,
            reader: Some(reader),
        }
    }

    /// Waits at most `limit` for a line (not seen by an earlier wait) for which `want` holds.
    pub fn wait_for(
        &mut self,
        limit: Duration,
        mut want: impl FnMut(&str) -> bool,
    ) -> Result<String, String> {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.fresh.recv_timeout(left) {
                Ok(line) if want(&line) => return Ok(line),
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout) => {
                    return Err(format!(
                        "no such line within {limit:?}; got:\n{}",
                        self.text()
                    ));
                }
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(format!("stream ended first; got:\n{}", self.text()));
                }
            }
        }
    }

    /// Waits at most `limit` until some line read so far satisfies `want` and returns the
    /// first such, whether or not an earlier wait already passed it: for log lines whose
    /// order is not the point. Lines it waits through count as seen for `wait_for`.
    pub fn wait_seen(
        &mut self,
        limit: Duration,
        mut want: impl FnMut(&str) -> bool,
    ) -> Result<String, String> {
        let seen = self.lines.lock().unwrap().iter().find(|l| want(l)).cloned();
        match seen {
            Some(line) => Ok(line),
            // Lines stored after that look are still queued for wait_for.
            None => self.wait_for(limit, want),
        }
    }

    /// Everything read so far, one line per line.
    pub fn text(&self) -> String {
        let lines = self.lines.lock().unwrap();
        let mut s = lines.join("\n");
        if !lines.is_empty() {
            s.push('\n');
        }
        s
    }

    /// Waits at most `limit` for the stream to end (the process closed it or exited) and
    /// returns everything it said.
    pub fn finish(&mut self, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        if let Some(h) = self.reader.take() {
            while !h.is_finished() && Instant::now() < deadline {
                thread::sleep(Duration::from_millis(5));
            }
            if h.is_finished() {
                let _ = h.join();
            }
        }
        self.text()
    }
}

/// Parses the address out of a server's `listening on ADDR:PORT (...)` line.
pub fn parse_listening(line: &str) -> Option<SocketAddr> {
    let rest = &line[line.find("listening on ")? + "listening on ".len()..];
    rest.split_whitespace().next()?.parse().ok()
}

/// Reads `stderr` until the `listening on ADDR:PORT (...)` line, at most `limit`, and returns
/// the announced address with the tap (which keeps collecting the rest of stderr).
pub fn read_listening<R: Read + Send + 'static>(
    stderr: R,
    limit: Duration,
) -> (SocketAddr, LineTap) {
    let mut tap = LineTap::new(stderr);
    let line = tap
        .wait_for(limit, |l| l.contains("listening on "))
        .unwrap_or_else(|e| panic!("waiting for `listening on`: {e}"));
    let addr = parse_listening(&line).unwrap_or_else(|| panic!("cannot parse {line:?}"));
    (addr, tap)
}

/// The loopback address of the same family as `addr`, with its port: what a client dials to
/// reach a server that announced `[::]:PORT` or `0.0.0.0:PORT`.
pub fn loopback_for(addr: SocketAddr) -> SocketAddr {
    let ip: IpAddr = match addr.ip() {
        IpAddr::V4(v) if v.is_unspecified() => Ipv4Addr::LOCALHOST.into(),
        IpAddr::V6(v) if v.is_unspecified() => Ipv6Addr::LOCALHOST.into(),
        ip => ip,
    };
    SocketAddr::new(ip, addr.port())
}

/// A sockkit server (listen, echo, knock, ...) started on port 0 and ready: its announced
/// address is known. Killed by PID when dropped.
pub struct Server {
    pub child: ChildGuard,
    /// The address from the `listening on` line (may be `[::]`).
    pub addr: SocketAddr,
    /// The rest of the server's stderr, still being collected.
    pub stderr: LineTap,
}

impl Server {
    /// Spawns `sockkit ARGS` (stdin piped, held open) and waits for its announcement.
    pub fn start<S: AsRef<OsStr>>(args: &[S]) -> Server {
        Server::start_with(&mut sockkit(args))
    }

    /// Like `start`, for a command the test configured itself (stdin, env).
    pub fn start_with(cmd: &mut Command) -> Server {
        cmd.stderr(Stdio::piped());
        let mut child = ChildGuard::spawn(cmd);
        let (addr, stderr) = read_listening(child.stderr(), T);
        Server {
            child,
            addr,
            stderr,
        }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Where a client on this machine reaches the server: 127.0.0.1/::1 for a wildcard bind.
    pub fn loopback(&self) -> SocketAddr {
        loopback_for(self.addr)
    }
}

/// What a finished process left behind.
#[derive(Debug)]
pub struct Output {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: String,
}

impl Output {
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// stdout as text (invalid UTF-8 shown as U+FFFD), for comparing with expected lines.
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
}

/// Runs `sockkit ARGS` with `input` on stdin (then EOF) and waits at most `limit`; fails the
/// test (killing the process) on a hang.
pub fn run<S: AsRef<OsStr>>(args: &[S], input: &[u8], limit: Duration) -> Output {
    run_cmd(&mut sockkit(args), input, limit)
}

/// Runs `cmd` (its stdio are made pipes) with `input` on stdin, bounded by `limit`.
pub fn run_cmd(cmd: &mut Command, input: &[u8], limit: Duration) -> Output {
    cmd.stdin(Stdio::piped());
    run_bounded(cmd, Some(input), limit)
}

/// Runs `cmd` with `stdin` (`Stdio::null()`, a `File`) instead of a pipe the test writes, for
/// a check where what stdin *is* matters (a file read in one go, /dev/null rather than an
/// empty pipe); stdout and stderr are pipes, the run is bounded by `limit`.
pub fn run_cmd_from(cmd: &mut Command, stdin: impl Into<Stdio>, limit: Duration) -> Output {
    cmd.stdin(stdin);
    run_bounded(cmd, None, limit)
}

/// The body of `run_cmd` and `run_cmd_from`: `input` is written when stdin is a pipe.
fn run_bounded(cmd: &mut Command, input: Option<&[u8]>, limit: Duration) -> Output {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = ChildGuard::spawn(cmd);
    let writer = input.map(|input| {
        let stdin = child.stdin();
        let input = input.to_vec();
        // A writer thread, so a child that does not read its stdin cannot block the test.
        thread::spawn(move || {
            let mut stdin = stdin;
            let _ = stdin.write_all(&input);
        })
    });
    let out = collect(child.stdout());
    let err = collect(child.stderr());
    let Some(status) = child.wait_timeout(limit) else {
        drop(child);
        let said = String::from_utf8_lossy(&join_within(err, T)).into_owned();
        panic!("{cmd:?}: still running after {limit:?} (killed); stderr:\n{said}");
    };
    if let Some(writer) = writer {
        let _ = writer.join();
    }
    Output {
        status,
        stdout: join_within(out, T),
        stderr: String::from_utf8_lossy(&join_within(err, T)).into_owned(),
    }
}

/// Reads a stream to its end on a thread; `join_within` gets the bytes.
pub fn collect<R: Read + Send + 'static>(mut r: R) -> JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut v = Vec::new();
        let _ = r.read_to_end(&mut v);
        v
    })
}

/// The bytes a `collect` thread read (or what any stream-reading thread returns), waiting at
/// most `limit` for the stream to end.
pub fn join_within<R>(h: JoinHandle<R>, limit: Duration) -> R {
    join_timeout(
        h,
        limit,
        "a pipe that stayed open after its process ended (a grandchild holds it?)",
    )
}

/// Waits at most `limit` for a thread's result; a hang or a panic fails the test, naming
/// `what` the thread was doing.
pub fn join_timeout<R>(h: JoinHandle<R>, limit: Duration, what: &str) -> R {
    let deadline = Instant::now() + limit;
    while !h.is_finished() {
        assert!(
            Instant::now() < deadline,
            "{what}: not done after {limit:?}"
        );
        thread::sleep(Duration::from_millis(5));
    }
    h.join()
        .unwrap_or_else(|_| panic!("{what}: the thread panicked"))
}

/// `len` reproducible pseudo-random bytes (xorshift64*), different for each `seed`: test data
/// that compresses badly and shows any lost, repeated or reordered chunk.
pub fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
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

/// Where the first difference between two byte strings is, for a readable assertion message
/// instead of a dump of megabytes.
pub fn first_difference(got: &[u8], want: &[u8]) -> Option<String> {
    if got == want {
        return None;
    }
    let at = got
        .iter()
        .zip(want)
        .position(|(a, b)| a != b)
        .unwrap_or(got.len().min(want.len()));
    Some(format!(
        "got {} bytes, want {}; first difference at byte {at}",
        got.len(),
        want.len()
    ))
}

/// Asserts two byte strings are equal, describing the first difference on failure.
#[track_caller]
pub fn assert_bytes_eq(got: &[u8], want: &[u8], what: &str) {
    if let Some(d) = first_difference(got, want) {
        panic!("{what}: {d}");
    }
}

/// A fresh directory under the system temp dir (Unix socket paths, test files), removed with
/// everything in it when dropped. Named by `tag`, the test process and a counter, so tests
/// running in parallel never share one.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicU64 = AtomicU64::new(0);
        let dir = env::temp_dir().join(format!(
            "sockkit-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
        TempDir(dir)
    }

    /// The directory itself.
    pub fn root(&self) -> &Path {
        &self.0
    }

    /// The path of `name` inside the directory (nothing is created).
    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    /// Writes `text` to the file `name` inside the directory and returns its path.
    pub fn file(&self, name: &str, text: &str) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, text).unwrap_or_else(|e| panic!("writing {}: {e}", p.display()));
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// True when the test runs under CI (`CI` set to anything but empty, `0` or `false`): then a
/// missing external peer is a failure, not a skip.
pub fn in_ci() -> bool {
    env::var("CI").is_ok_and(|v| !matches!(v.trim(), "" | "0" | "false"))
}

/// Skips a test for `reason` (printing it), or fails it under CI where skipping would hide
/// that the check never ran. Returns so the caller can `return` after it.
#[track_caller]
pub fn skip_or_fail(reason: &str) {
    assert!(!in_ci(), "CI is set, so this cannot be skipped: {reason}");
    eprintln!("SKIPPED: {reason}");
}

/// Finds the external program `name` on PATH. Missing: prints why and returns `None` so the
/// test can skip (`let Some(nc) = peer_or_skip("nc") else { return };`) — except when CI is
/// set, where it panics, because CI installs every peer (`.ci/run`) and a skip there would
/// be a check that silently never ran.
#[track_caller]
pub fn peer_or_skip(name: &str) -> Option<PathBuf> {
    if let Some(p) = which(name) {
        Some(p)
    } else {
        skip_or_fail(&format!(
            "`{name}` is not installed (on PATH); .ci/run installs it"
        ));
        None
    }
}

/// Packet capture (--wire, --pcap, --report) needs CAP_NET_RAW; as root we have it.
/// Elsewhere: skip (fail under CI=1).
pub fn root_or_skip() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        true
    } else {
        skip_or_fail("capture needs CAP_NET_RAW (run as root)");
        false
    }
}

/// The first executable called `name` on PATH.
pub fn which(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = env::var_os("PATH")?;
    env::split_paths(&path).map(|dir| dir.join(name)).find(|p| {
        p.metadata()
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    })
}

/// A TCP port on 127.0.0.1 that nothing listens on, for a connect that must be refused: a
/// socket bound there that never listens, held until dropped. A port bound, read and let go
/// could be taken by a parallel test before the connect (and answer it); this one cannot be
/// bound by anyone else while held, and a SYN to it still gets a RST.
pub struct ClosedPort {
    _held: socket2::Socket,
    port: u16,
}

impl ClosedPort {
    pub fn new() -> ClosedPort {
        ClosedPort::on(IpAddr::V4(Ipv4Addr::LOCALHOST))
    }

    /// The same on another loopback address (`::1` for the IPv6 tests).
    pub fn on(ip: IpAddr) -> ClosedPort {
        let held = socket2::Socket::new(
            socket2::Domain::for_address((ip, 0).into()),
            socket2::Type::STREAM,
            None,
        )
        .expect("a TCP socket");
        held.bind(&SocketAddr::from((ip, 0)).into())
            .unwrap_or_else(|e| panic!("binding {ip} port 0: {e}"));
        let port = held
            .local_addr()
            .ok()
            .and_then(|a| a.as_socket())
            .expect("the bound address")
            .port();
        ClosedPort { _held: held, port }
    }

    pub fn port(&self) -> u16 {
        self.port
    }
}

/// A UDP port on 127.0.0.1 that nothing is bound to, for a probe that must get the kernel's
/// ICMP port unreachable. A UDP socket held there would take the datagram, so the port cannot
/// be held the way `ClosedPort` holds a TCP one. Instead it is chosen below the ephemeral
/// range (`ip_local_port_range`), where no test's bind to port 0 can land while it is used,
/// and checked free (bound and let go) first.
pub fn closed_udp_port() -> u16 {
    let low: u16 = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next().and_then(|p| p.parse().ok()))
        .unwrap_or(32768);
    let floor = 10_000.min(low / 2);
    let span = u32::from(low.saturating_sub(floor)).max(1);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let mut pick = (nanos ^ std::process::id().wrapping_mul(2_654_435_761)) % span;
    for _ in 0..64 {
        let port = floor + u16::try_from(pick).expect("below the range's low end");
        if std::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, port)).is_ok() {
            return port;
        }
        pick = (pick + 7919) % span;
    }
    panic!("no free UDP port below {low} on 127.0.0.1 in 64 tries");
}

/// True when a socket can be bound on `::1` here; IPv6 tests skip (with a reason) otherwise.
pub fn ipv6_loopback_works() -> bool {
    std::net::TcpListener::bind("[::1]:0").is_ok()
}

/// The TCP port a process listens on, read from /proc (Linux) for servers run with `-q`,
/// which print no announcement. Waits at most `limit` for the socket to appear; `None` when
/// /proc does not tell (no /proc, or the process ended).
pub fn listening_port_of(pid: u32, limit: Duration) -> Option<u16> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(port) = listening_port_now(pid) {
            return Some(port);
        }
        if Instant::now() >= deadline || !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            return None;
        }
        thread::sleep(Duration::from_millis(10));
    }
}

fn listening_port_now(pid: u32) -> Option<u16> {
    // The process's socket inodes: /proc/PID/fd/N -> "socket:[INODE]".
    let inodes: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .ok()?
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter_map(|l| {
            let l = l.to_string_lossy().into_owned();
            Some(l.strip_prefix("socket:[")?.strip_suffix(']')?.to_string())
        })
        .collect();
    for table in ["tcp", "tcp6"] {
        let text = std::fs::read_to_string(format!("/proc/{pid}/net/{table}")).ok()?;
        // Columns: sl local_address rem_address st ... inode (the 10th).
        for cols in text
            .lines()
            .skip(1)
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
        {
            if cols.len() > 9 && cols[3] == "0A" && inodes.iter().any(|i| i == cols[9]) {
                let port = cols[1].rsplit(':').next()?;
                return u16::from_str_radix(port, 16).ok();
            }
        }
    }
    None
}

/// A one-client test server in this process on 127.0.0.1:0: `handle` gets the accepted
/// stream (with read and write timeouts set) and its result comes back through the handle.
/// The accept itself is bounded too, so a client that never comes fails the test.
pub fn serve_once<R: Send + 'static>(
    handle: impl FnOnce(TcpStream) -> R + Send + 'static,
) -> (SocketAddr, JoinHandle<R>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("binding 127.0.0.1:0");
    let addr = listener.local_addr().unwrap();
    listener.set_nonblocking(true).unwrap();
    let h = thread::spawn(move || {
        let deadline = Instant::now() + T;
        let stream = loop {
            match listener.accept() {
                Ok((s, _)) => break s,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    assert!(Instant::now() < deadline, "no client came within {T:?}");
                    thread::sleep(Duration::from_millis(2));
                }
                Err(e) => panic!("accept: {e}"),
            }
        };
        stream.set_nonblocking(false).unwrap();
        stream.set_read_timeout(Some(T)).unwrap();
        stream.set_write_timeout(Some(T)).unwrap();
        handle(stream)
    });
    (addr, h)
}

/// Runs `f` on a thread of its own inside a new network namespace with only loopback, up;
/// the processes it starts live there too (a child inherits its thread's namespace). `None`
/// when this machine gives no namespaces (not root, no CLONE_NEWNET): skipped, or failed in CI.
pub fn in_netns<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> Option<R> {
    let h = thread::spawn(move || {
        // SAFETY: unshare() affects only this thread, which the test owns.
        if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
            return Err(format!(
                "unshare(CLONE_NEWNET): {}",
                std::io::Error::last_os_error()
            ));
        }
        loopback_up()?;
        Ok(f())
    });
    match h.join().expect("the namespace thread") {
        Ok(r) => Some(r),
        Err(why) => {
            skip_or_fail(&format!("no network namespace of our own: {why}"));
            None
        }
    }
}

/// `ip link set lo up`, done with the ioctls it makes (SIOCGIFFLAGS, SIOCSIFFLAGS).
pub fn loopback_up() -> Result<(), String> {
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None)
        .map_err(|e| format!("socket: {e}"))?;
    let fd = std::os::fd::AsRawFd::as_raw_fd(&sock);
    // SAFETY: an all-zero ifreq is valid; the name is NUL-terminated within ifr_name.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *d = *s as libc::c_char;
    }
    // SAFETY: ioctl on our own socket with a valid ifreq.
    if unsafe { libc::ioctl(fd, libc::SIOCGIFFLAGS, &mut req) } != 0 {
        return Err(format!("SIOCGIFFLAGS: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: ifru_flags is the member SIOCGIFFLAGS filled in.
    unsafe { req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short };
    // SAFETY: as above.
    if unsafe { libc::ioctl(fd, libc::SIOCSIFFLAGS, &req) } != 0 {
        return Err(format!("SIOCSIFFLAGS: {}", std::io::Error::last_os_error()));
    }
    Ok(())
}
