//! The relay's data paths (src/zerocopy.rs), each driven through the real binary over
//! loopback: sendfile from a file on stdin, read/write from a pipe or a terminal, splice into
//! a stdout pipe, splice through sockkit's own pipe into a file or /dev/null, the run-time
//! fallback for an O_APPEND file, a terminal on stdout, and `--send-only`'s discard. Each path
//! carries sizes around the buffer and pipe boundaries byte-exactly, and the ending rules
//! (half-close at stdin EOF, the peer's half and full close) hold the same on every path.
//! `-vv` tells which path a run took, and every test checks it took the one it is about.
//! Speed is measured by benches/relay.sh, not here.

mod util;

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use socket2::SockRef;
use util::*;

/// Sizes around the boundaries: nothing, one byte, the 64 KiB default pipe, and more than the
/// 1 MiB pipes and 256 KiB buffer many times over with an odd tail.
const SIZES: [usize; 6] = [0, 1, 65_535, 65_536, 65_537, (16 << 20) + 7];

/// sockkit's read/write buffer (src/zerocopy.rs): the most one write can carry.
const CHUNK: u64 = 256 * 1024;

/// A file in the temp directory, removed when dropped.
struct TempFile(PathBuf);

impl TempFile {
    fn new(tag: &str) -> TempFile {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let name = format!("sockkit-throughput-{}-{tag}-{n}", std::process::id());
        TempFile(std::env::temp_dir().join(name))
    }

    fn with(tag: &str, data: &[u8]) -> TempFile {
        let f = TempFile::new(tag);
        fs::write(&f.0, data).expect("writing a temp file");
        f
    }

    fn read(&self) -> Vec<u8> {
        fs::read(&self.0).expect("reading a temp file")
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

/// A pseudo-terminal in raw mode (no echo, no line editing, no CR/LF translation), so bytes
/// pass through it unchanged; `None` (after skip_or_fail) where there is none.
fn raw_pty() -> Option<(OwnedFd, OwnedFd)> {
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
    let (master, slave) = unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
    // SAFETY: a zeroed termios is overwritten by tcgetattr before use.
    let mut t: libc::termios = unsafe { std::mem::zeroed() };
    // SAFETY: t is a valid termios; slave is an open terminal.
    unsafe {
        assert_eq!(libc::tcgetattr(slave.as_raw_fd(), &raw mut t), 0);
        libc::cfmakeraw(&raw mut t);
        assert_eq!(
            libc::tcsetattr(slave.as_raw_fd(), libc::TCSANOW, &raw const t),
            0
        );
    }
    Some((master, slave))
}

/// What sockkit's stdin is.
enum Input {
    /// A regular file: sendfile(2).
    File(Vec<u8>),
    /// A pipe this test writes into and then closes: read/write.
    Pipe(Vec<u8>),
    /// /dev/null: EOF at once.
    Null,
}

/// What sockkit's stdout is.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Output {
    Pipe,
    File,
    /// A file opened with O_APPEND that already holds some bytes: splice refuses it (EINVAL)
    /// and the path falls back to write(2) at run time.
    Append,
    DevNull,
    Terminal,
}

/// The narration that says which path a direction took.
fn stdin_path(input: &Input) -> &'static str {
    match input {
        Input::File(_) => "stdin -> socket by sendfile(2)",
        Input::Pipe(_) | Input::Null => "stdin -> socket by read(2)/write(2)",
    }
}

/// `bytes`: how many arrive; the O_APPEND fallback shows only once splice has been refused.
fn stdout_path(output: Output, bytes: usize) -> &'static str {
    match output {
        Output::Pipe => "socket -> stdout by splice(2), no copy",
        Output::Append if bytes > 0 => "socket -> stdout falls back to read(2)/write(2)",
        Output::File | Output::DevNull | Output::Append => {
            "socket -> stdout by splice(2) through a pipe"
        }
        Output::Terminal => "socket -> stdout by read(2)/write(2)",
    }
}

/// What one relay run left behind.
struct Run {
    code: Option<i32>,
    stdout: Vec<u8>,
    stderr: String,
}

const APPENDED_TO: &[u8] = b"already here\n";

/// Runs `sockkit connect -vv EXTRA 127.0.0.1 PORT` with the given stdin and stdout against a
/// peer, and collects what it wrote to stdout (whatever stdout was) and stderr.
fn relay(addr: SocketAddr, extra: &[&str], input: Input, output: Output) -> Run {
    let mut args: Vec<String> = vec!["connect".into(), "-vv".into()];
    args.extend(extra.iter().map(std::string::ToString::to_string));
    args.push(addr.ip().to_string());
    args.push(addr.port().to_string());
    let mut cmd = Command::new(bin());
    cmd.args(&args).stderr(Stdio::piped());

    let mut pipe_data = None;
    match input {
        Input::File(data) => {
            // Removed at once: the open descriptor keeps the bytes for sockkit.
            let file = TempFile::with("in", &data);
            cmd.stdin(File::open(&file.0).unwrap());
        }
        Input::Pipe(data) => {
            cmd.stdin(Stdio::piped());
            pipe_data = Some(data);
        }
        Input::Null => {
            cmd.stdin(Stdio::null());
        }
    }
    let out_file = TempFile::new("out");
    let mut pty_master = None;
    match output {
        Output::Pipe => {
            cmd.stdout(Stdio::piped());
        }
        Output::File => {
            cmd.stdout(File::create(&out_file.0).unwrap());
        }
        Output::Append => {
            fs::write(&out_file.0, APPENDED_TO).unwrap();
            let f = OpenOptions::new().append(true).open(&out_file.0).unwrap();
            cmd.stdout(f);
        }
        Output::DevNull => {
            cmd.stdout(File::create("/dev/null").unwrap());
        }
        Output::Terminal => {
            let (master, slave) = raw_pty().expect("a pseudo-terminal");
            cmd.stdout(Stdio::from(slave));
            pty_master = Some(master);
        }
    }
    let mut child = ChildGuard::spawn(&mut cmd);
    // Our copy of the pty's slave went into `cmd`; drop it so the master sees the end.
    drop(cmd);
    let writer = pipe_data.map(|data| {
        let mut stdin = child.stdin();
        // A peer that closes early makes this write fail (EPIPE): that is the test's point.
        thread::spawn(move || {
            let _ = stdin.write_all(&data);
        })
    });
    let out = match (output, pty_master) {
        (Output::Pipe, _) => Some(collect(child.stdout())),
        (Output::Terminal, Some(master)) => Some(collect(File::from(master))),
        _ => None,
    };
    let err = collect(child.stderr());
    let status = child.status_within(Duration::from_mins(1), "sockkit connect");
    if let Some(w) = writer {
        join_timeout(w, T, "writing stdin");
    }
    let stdout = match (output, out) {
        (_, Some(h)) => join_within(h, T),
        (Output::File, None) => out_file.read(),
        (Output::Append, None) => {
            let all = out_file.read();
            assert!(
                all.starts_with(APPENDED_TO),
                "the O_APPEND file lost what it held"
            );
            all[APPENDED_TO.len()..].to_vec()
        }
        _ => Vec::new(),
    };
    Run {
        code: status.code(),
        stdout,
        stderr: String::from_utf8_lossy(&join_within(err, T)).into_owned(),
    }
}

/// The byte counts of `-v`'s `closed: sent X, received Y` line.
fn counts(stderr: &str) -> (u64, u64) {
    let line = stderr
        .lines()
        .find(|l| l.contains("closed: sent "))
        .unwrap_or_else(|| panic!("no `closed:` line in:\n{stderr}"));
    let field = |key: &str| -> u64 {
        // `512 B`, or `64.00 KiB (65536 B)` where the unit rounds.
        let rest = &line[line.find(key).unwrap() + key.len()..];
        let words: Vec<&str> = rest.split_whitespace().take(3).collect();
        let n = match words.as_slice() {
            [n, "B" | "B,", ..] => n,
            [_, _, exact, ..] => exact.trim_start_matches('('),
            _ => "",
        };
        n.parse()
            .unwrap_or_else(|_| panic!("cannot read a count in {line:?}"))
    };
    (field("sent "), field("received "))
}

#[track_caller]
fn assert_path(stderr: &str, path: &str) {
    assert!(
        stderr.contains(path),
        "expected the path `{path}`; -vv said:\n{stderr}"
    );
}

/// One request/response exchange: sockkit sends `input` (its stdin) until EOF and half-closes;
/// the peer reads that to EOF, then sends `reply` and closes; sockkit writes the reply to
/// `output` and exits 0. Checks both directions byte for byte and the -v counts.
fn exchange(input: Input, output: Output, reply: Vec<u8>, extra: &[&str]) {
    let request: Vec<u8> = match &input {
        Input::File(d) | Input::Pipe(d) => d.clone(),
        Input::Null => Vec::new(),
    };
    let path_in = stdin_path(&input);
    let sent_reply = reply.clone();
    let (addr, server) = serve_once(move |mut s| {
        let mut got = Vec::new();
        s.read_to_end(&mut got).expect("reading to sockkit's EOF");
        // sockkit's half-close: it still reads what we send after its EOF.
        s.write_all(&sent_reply)
            .expect("replying after sockkit's EOF");
        got
    });
    let run = relay(addr, extra, input, output);
    let got = join_timeout(server, T, "peer");
    let what = format!(
        "{} bytes up, {} down, {output:?}",
        request.len(),
        reply.len()
    );
    assert_eq!(run.code, Some(0), "{what}: {}", run.stderr);
    assert_bytes_eq(&got, &request, &format!("{what}: what the peer received"));
    assert_path(&run.stderr, path_in);
    assert_path(&run.stderr, stdout_path(output, reply.len()));
    let (sent, received) = counts(&run.stderr);
    assert_eq!(sent, request.len() as u64, "{what}: -v sent");
    assert_eq!(received, reply.len() as u64, "{what}: -v received");
    if output != Output::DevNull {
        assert_bytes_eq(&run.stdout, &reply, &format!("{what}: sockkit's stdout"));
    }
}

// ---------------------------------------------------------------------------------------
// stdin -> socket

#[test]
fn file_to_socket_by_sendfile_every_size() {
    for (i, &n) in SIZES.iter().enumerate() {
        let data = random_bytes(100 + i as u64, n);
        exchange(Input::File(data), Output::Pipe, b"ok\n".to_vec(), &[]);
    }
}

#[test]
fn pipe_to_socket_every_size() {
    for (i, &n) in SIZES.iter().enumerate() {
        let data = random_bytes(200 + i as u64, n);
        exchange(Input::Pipe(data), Output::Pipe, b"ok\n".to_vec(), &[]);
    }
}

#[test]
fn terminal_to_socket_by_read_write_every_size() {
    // A terminal never says EOF here: the peer reads exactly n bytes, then closes, which ends
    // a session whose stdin is a terminal.
    for (i, &n) in SIZES.iter().enumerate() {
        let Some((master, slave)) = raw_pty() else {
            return;
        };
        let data = random_bytes(300 + i as u64, n);
        let (addr, server) = serve_once(move |mut s| {
            let mut got = vec![0u8; n];
            s.read_exact(&mut got).expect("reading what was typed");
            got
        });
        let mut cmd = sockkit(&["connect", "-vv", "127.0.0.1", &addr.port().to_string()]);
        cmd.stdin(Stdio::from(slave));
        let mut child = ChildGuard::spawn(&mut cmd);
        drop(cmd);
        let out = collect(child.stdout());
        let err = collect(child.stderr());
        let typed = data.clone();
        let mut keyboard = File::from(master);
        let writer = thread::spawn(move || {
            keyboard
                .write_all(&typed)
                .expect("typing into the terminal");
            keyboard // held open until the end: closing it would hang up the terminal
        });
        let got = join_timeout(server, Duration::from_mins(1), "peer");
        let status = child.status_within(T, "connect with a terminal on stdin");
        let _keyboard = join_timeout(writer, T, "typing");
        let stderr = String::from_utf8_lossy(&join_within(err, T)).into_owned();
        assert_eq!(status.code(), Some(0), "{n} bytes: {stderr}");
        assert_bytes_eq(&got, &data, &format!("{n} bytes typed"));
        assert_eq!(join_within(out, T), b"");
        if n > 0 {
            // With nothing typed the session can end (the peer closed) before the stdin
            // thread has looked at stdin; with bytes, they had to pass through it.
            assert_path(
                &stderr,
                "fstat(fd 0) = terminal: stdin -> socket by read(2)/write(2)",
            );
        }
        // With a terminal on stdin the session ends at the peer's close without waiting for
        // the stdin thread, which may not yet have counted its last write (its bytes had
        // reached the peer): -v may be short by that write, never over.
        let sent = counts(&stderr).0;
        assert!(
            sent <= n as u64 && sent + CHUNK >= n as u64,
            "-v sent {sent} of {n}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// socket -> stdout

fn socket_to(output: Output, seed: u64) {
    for (i, &n) in SIZES.iter().enumerate() {
        let reply = random_bytes(seed + i as u64, n);
        exchange(Input::Null, output, reply, &[]);
    }
}

#[test]
fn socket_to_pipe_by_splice_every_size() {
    socket_to(Output::Pipe, 400);
}

#[test]
fn socket_to_file_by_splice_every_size() {
    socket_to(Output::File, 500);
}

#[test]
fn socket_to_dev_null_by_splice_counts_every_byte() {
    socket_to(Output::DevNull, 600);
}

#[test]
fn socket_to_an_append_only_file_falls_back_without_losing_a_byte() {
    socket_to(Output::Append, 700);
}

#[test]
fn socket_to_terminal_by_read_write_every_size() {
    if raw_pty().is_none() {
        return;
    }
    socket_to(Output::Terminal, 800);
}

#[test]
fn send_only_drops_what_arrives_and_counts_it() {
    for (i, &n) in SIZES.iter().enumerate() {
        let reply = random_bytes(900 + i as u64, n);
        let request = random_bytes(950 + i as u64, 1000);
        let (addr, server) = serve_once(move |mut s| {
            s.write_all(&reply).unwrap();
            s.shutdown(Shutdown::Write).unwrap();
            let mut got = Vec::new();
            s.read_to_end(&mut got).unwrap();
            got
        });
        let port = addr.port().to_string();
        let mut child = ChildGuard::spawn(&mut sockkit(&[
            "connect",
            "-vv",
            "--send-only",
            "127.0.0.1",
            &port,
        ]));
        let mut stdin = child.stdin();
        let out = collect(child.stdout());
        let mut err = LineTap::new(child.stderr());
        // Everything the peer sends is dropped before stdin ends, so all of it is counted.
        err.wait_for(T, |l| l.contains("the peer closed its sending side"))
            .unwrap_or_else(|e| panic!("{n} bytes: {e}"));
        stdin.write_all(&request).unwrap();
        drop(stdin);
        let status = child.status_within(T, "connect --send-only");
        let stderr = err.finish(T);
        let got = join_timeout(server, T, "peer");
        assert_eq!(status.code(), Some(0), "{stderr}");
        assert_eq!(join_within(out, T), b"", "--send-only printed what arrived");
        assert_bytes_eq(&got, &request, "what the peer received");
        assert_path(&stderr, "recv(2, MSG_TRUNC)");
        assert_eq!(counts(&stderr), (request.len() as u64, n as u64));
    }
}

// ---------------------------------------------------------------------------------------
// The ending rules, the same on every path

const ALL_OUTPUTS: [Output; 5] = [
    Output::Pipe,
    Output::File,
    Output::Append,
    Output::DevNull,
    Output::Terminal,
];

#[test]
fn stdin_eof_half_closes_on_every_path() {
    // The peer sees sockkit's EOF and then still gets its reply through: every stdin kind
    // against every stdout kind.
    let have_pty = raw_pty().is_some();
    for (i, output) in ALL_OUTPUTS.into_iter().enumerate() {
        if output == Output::Terminal && !have_pty {
            continue;
        }
        let seed = 1000 + 10 * i as u64;
        let request = random_bytes(seed, (1 << 20) + 3);
        let reply = random_bytes(seed + 1, (2 << 20) + 5);
        exchange(Input::File(request.clone()), output, reply.clone(), &[]);
        exchange(Input::Pipe(request), output, reply, &[]);
    }
}

#[test]
fn peer_half_close_first_keeps_sending_stdin_on_every_path() {
    // The peer sends everything and half-closes before reading: sockkit must print it all and
    // keep sending its stdin (a file or a pipe, not a terminal) to the end, then exit 0.
    let have_pty = raw_pty().is_some();
    for (i, output) in ALL_OUTPUTS.into_iter().enumerate() {
        if output == Output::Terminal && !have_pty {
            continue;
        }
        for file in [true, false] {
            let seed = 2000 + 10 * i as u64 + u64::from(file);
            let request = random_bytes(seed, (4 << 20) + 1);
            let reply = random_bytes(seed + 5, (1 << 20) + 9);
            let sent_reply = reply.clone();
            let (addr, server) = serve_once(move |mut s| {
                s.write_all(&sent_reply).unwrap();
                s.shutdown(Shutdown::Write).unwrap();
                let mut got = Vec::new();
                s.read_to_end(&mut got)
                    .expect("reading after our half-close");
                got
            });
            let input = if file {
                Input::File(request.clone())
            } else {
                Input::Pipe(request.clone())
            };
            let path_in = stdin_path(&input);
            let run = relay(addr, &[], input, output);
            let got = join_timeout(server, T, "peer");
            let what = format!("{output:?}, stdin a {}", if file { "file" } else { "pipe" });
            assert_eq!(run.code, Some(0), "{what}: {}", run.stderr);
            assert_bytes_eq(
                &got,
                &request,
                &format!("{what}: stdin after the peer's EOF"),
            );
            assert_path(&run.stderr, path_in);
            assert_path(&run.stderr, stdout_path(output, reply.len()));
            assert!(run.stderr.contains("the peer closed its sending side"));
            if output != Output::DevNull {
                assert_bytes_eq(&run.stdout, &reply, &format!("{what}: stdout"));
            }
            assert_eq!(
                counts(&run.stderr),
                (request.len() as u64, reply.len() as u64)
            );
        }
    }
}

#[test]
fn peer_full_close_ends_with_1_and_says_what_was_not_delivered_on_every_path() {
    // The peer says goodbye and closes while sockkit still has 32 MiB to send: the writes
    // fail, and sockkit exits 1 with one line that counts what did not arrive (or, when the
    // reset reaches the reading side first, says the connection was reset).
    for output in [Output::Pipe, Output::File, Output::DevNull] {
        for file in [true, false] {
            let (addr, server) = serve_once(|mut s| {
                s.write_all(b"bye\n").unwrap();
                // Unread data in our receive queue makes the close an RST.
            });
            let data = random_bytes(3000, 32 << 20);
            let input = if file {
                Input::File(data)
            } else {
                Input::Pipe(data)
            };
            let path_in = stdin_path(&input);
            let run = relay(addr, &[], input, output);
            join_timeout(server, T, "peer");
            let what = format!("{output:?}, stdin a {}", if file { "file" } else { "pipe" });
            assert_eq!(run.code, Some(1), "{what}: {}", run.stderr);
            assert_path(&run.stderr, path_in);
            let errors: Vec<&str> = run
                .stderr
                .lines()
                .filter(|l| l.contains("not delivered") || l.contains("connection reset by peer"))
                .collect();
            assert_eq!(errors.len(), 1, "{what}: one error line:\n{}", run.stderr);
            assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
            if errors[0].contains("not delivered") && file {
                assert!(
                    errors[0].contains("left in the stdin file"),
                    "{}",
                    errors[0]
                );
            }
            // The reset may overtake the goodbye; what arrives is never more or other.
            assert!(
                b"bye\n".starts_with(&run.stdout),
                "{what}: {:?}",
                run.stdout
            );
        }
    }
}

#[test]
fn keep_open_hands_the_rest_of_a_file_to_the_next_client() {
    // listen -k with a file on stdin (sendfile): the first client resets the connection after
    // 64 KiB; what it never read is lost in flight, and the next client gets the rest of the
    // file from where sendfile stopped: an exact suffix, no byte twice, no gap.
    let data = random_bytes(4000, 32 << 20);
    let file = TempFile::with("keep-open", &data);
    let mut cmd = sockkit(&["listen", "-k", "-vv", "127.0.0.1", "0"]);
    cmd.stdin(File::open(&file.0).unwrap())
        .stdout(Stdio::null());
    let mut server = Server::start_with(&mut cmd);
    let port = server.port();

    let mut first = TcpStream::connect(("127.0.0.1", port)).unwrap();
    first.set_read_timeout(Some(T)).unwrap();
    let mut head = vec![0u8; 64 << 10];
    first.read_exact(&mut head).unwrap();
    assert_bytes_eq(&head, &data[..head.len()], "the first client's 64 KiB");
    SockRef::from(&first)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(first);
    server
        .stderr
        .wait_for(T, |l| l.contains("client 127.0.0.1:"))
        .expect("the first client's failure is reported");

    let mut second = TcpStream::connect(("127.0.0.1", port)).unwrap();
    second.set_read_timeout(Some(T)).unwrap();
    let mut rest = Vec::new();
    second.read_to_end(&mut rest).expect("reading to EOF");
    let stderr = server.stderr.text();
    assert_path(&stderr, "stdin -> socket by sendfile(2)");
    assert!(
        !rest.is_empty() && rest.len() <= data.len() - head.len(),
        "the second client got {} of {} bytes:\n{stderr}",
        rest.len(),
        data.len()
    );
    assert_bytes_eq(
        &rest,
        &data[data.len() - rest.len()..],
        "the second client's bytes are the file's tail",
    );
}

#[test]
fn buffered_override_carries_a_file_both_ways() {
    // SOCKKIT_RELAY=buffered (what the benchmark compares against) turns both zero-copy
    // paths off and still moves every byte.
    let request = random_bytes(5000, (16 << 20) + 7);
    let reply = random_bytes(5001, (16 << 20) + 7);
    let sent_reply = reply.clone();
    let (addr, server) = serve_once(move |mut s| {
        let mut got = Vec::new();
        s.read_to_end(&mut got).unwrap();
        s.write_all(&sent_reply).unwrap();
        got
    });
    let input = TempFile::with("buffered-in", &request);
    let output = TempFile::new("buffered-out");
    let mut cmd = sockkit(&["connect", "-vv", "127.0.0.1", &addr.port().to_string()]);
    cmd.env("SOCKKIT_RELAY", "buffered")
        .stdin(File::open(&input.0).unwrap())
        .stdout(File::create(&output.0).unwrap());
    let out = run_cmd_keep_stdio(&mut cmd);
    let got = join_timeout(server, T, "peer");
    assert_eq!(out.0, Some(0), "{}", out.1);
    assert_path(
        &out.1,
        "regular file, 16.00 MiB: stdin -> socket by read(2)/write(2)",
    );
    assert_path(
        &out.1,
        "regular file, 0 B: socket -> stdout by read(2)/write(2)",
    );
    assert_bytes_eq(&got, &request, "what the peer received");
    assert_bytes_eq(&output.read(), &reply, "what landed in the file");
}

/// Runs `cmd` with the stdin and stdout it was given (stderr piped), bounded.
fn run_cmd_keep_stdio(cmd: &mut Command) -> (Option<i32>, String) {
    cmd.stderr(Stdio::piped());
    let mut child = ChildGuard::spawn(cmd);
    let err = collect(child.stderr());
    let status = child.status_within(Duration::from_mins(1), "sockkit");
    (
        status.code(),
        String::from_utf8_lossy(&join_within(err, T)).into_owned(),
    )
}

/// A pipe whose read end (for sockkit's stdin) or write end (for its stdout) is O_NONBLOCK,
/// as when another process shares the descriptor and set the flag: (read end, write end).
fn pipe_nonblocking_at(read_end: bool) -> (OwnedFd, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: fds has room for the two descriptors pipe2 writes.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: both were just created and are owned only here.
    let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    let fd = if read_end {
        r.as_raw_fd()
    } else {
        w.as_raw_fd()
    };
    // SAFETY: F_GETFL/F_SETFL on a descriptor we own.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        assert_eq!(libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK), 0);
    }
    (r, w)
}

#[test]
fn non_blocking_stdin_and_stdout_pipes_wait_instead_of_failing() {
    // EAGAIN from stdin (nothing typed yet) or stdout (its reader is slow) means wait, not
    // "resource temporarily unavailable".
    let request = random_bytes(6000, (4 << 20) + 11);
    let sent = request.clone();
    let (addr, server) = serve_once(move |mut s| {
        let mut got = Vec::new();
        s.read_to_end(&mut got).unwrap();
        s.write_all(&sent).unwrap(); // the same bytes back
        got
    });
    let (stdin_r, stdin_w) = pipe_nonblocking_at(true);
    let (stdout_r, stdout_w) = pipe_nonblocking_at(false);
    let mut cmd = sockkit(&["connect", "-v", "127.0.0.1", &addr.port().to_string()]);
    cmd.stdin(Stdio::from(stdin_r))
        .stdout(Stdio::from(stdout_w));
    let mut child = ChildGuard::spawn(&mut cmd);
    drop(cmd);
    let err = collect(child.stderr());
    let data = request.clone();
    let writer = thread::spawn(move || {
        let mut w = File::from(stdin_w);
        thread::sleep(Duration::from_millis(200)); // sockkit meets an empty stdin first
        w.write_all(&data)
    });
    let reader = thread::spawn(move || {
        let mut r = File::from(stdout_r);
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            // A slow reader: sockkit's writes to stdout meet a full pipe.
            thread::sleep(Duration::from_micros(200));
            match r.read(&mut buf) {
                Ok(0) | Err(_) => return got,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    });
    let status = child.status_within(Duration::from_mins(1), "connect");
    let stderr = String::from_utf8_lossy(&join_within(err, T)).into_owned();
    join_timeout(writer, T, "writing stdin").expect("writing stdin");
    let got = join_timeout(server, T, "peer");
    let out = join_timeout(reader, T, "reading stdout");
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert_bytes_eq(&got, &request, "what the peer received");
    assert_bytes_eq(&out, &request, "what came back on stdout");
}

#[test]
fn small_writes_cross_at_once_on_the_zero_copy_paths() {
    // Interactive traffic: one byte typed reaches the peer, and one byte from the peer reaches
    // stdout (a pipe: splice; a file: splice through sockkit's pipe), while both stay open.
    for output in [Output::Pipe, Output::File] {
        let (addr, server) = serve_once(|mut s| {
            for round in 0..20u8 {
                let mut b = [0u8; 1];
                s.read_exact(&mut b).expect("a byte from sockkit");
                assert_eq!(b[0], round);
                s.write_all(&[round ^ 0xff]).unwrap();
            }
        });
        let out_file = TempFile::new("interactive");
        let mut cmd = sockkit(&["connect", "-vv", "127.0.0.1", &addr.port().to_string()]);
        if output == Output::File {
            cmd.stdout(File::create(&out_file.0).unwrap());
        }
        let mut child = ChildGuard::spawn(&mut cmd);
        let mut stdin = child.stdin();
        // Bytes from a stdout pipe come through a thread, so each wait can be bounded.
        let stdout = (output == Output::Pipe).then(|| {
            let (tx, rx) = std::sync::mpsc::channel();
            let mut out = child.stdout();
            thread::spawn(move || {
                let mut b = [0u8; 1];
                while out.read_exact(&mut b).is_ok() && tx.send(b[0]).is_ok() {}
            });
            rx
        });
        let err = collect(child.stderr());
        for round in 0..20u8 {
            stdin.write_all(&[round]).unwrap();
            let deadline = Instant::now() + T;
            let got = loop {
                if let Some(rx) = &stdout {
                    break rx.recv_timeout(T).expect("a byte on stdout within T");
                }
                let now = fs::read(&out_file.0).unwrap();
                if now.len() > round as usize {
                    break now[round as usize];
                }
                assert!(
                    Instant::now() < deadline,
                    "round {round}: nothing on stdout"
                );
                thread::sleep(Duration::from_millis(1));
            };
            assert_eq!(got, round ^ 0xff, "{output:?}, round {round}");
        }
        join_timeout(server, T, "peer");
        drop(stdin);
        let status = child.status_within(T, "connect");
        let stderr = String::from_utf8_lossy(&join_within(err, T)).into_owned();
        assert_eq!(status.code(), Some(0), "{stderr}");
        assert_path(&stderr, stdout_path(output, 1));
        assert!(
            !stderr.contains("F_SETPIPE_SZ"),
            "one byte at a time is not bulk; no pipe should grow:\n{stderr}"
        );
    }
}
