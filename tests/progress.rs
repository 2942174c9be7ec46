//! `--progress`: the live line on stderr, seen as a person sees it, under a pseudo-terminal
//! (python3's pty module runs sockkit with its stderr on the pty and hands back every byte
//! written there): redrawn with `\r` and erased before the summary, which is left whole as
//! the last line. Off when stderr is not a terminal unless `--progress` asks, off with
//! `--no-progress`; over a port check, ports checked of the total. Timing is never asserted:
//! a transfer only has to outlast a few redraws, which a slow reader guarantees.

mod util;

use std::io::Read;
use std::net::{TcpListener, UdpSocket};
use std::process::Command;
use std::time::Duration;

use util::{T, TempDir, peer_or_skip, run_cmd};

/// Runs `sockkit ARGS` with stdin from `stdin`, stdout discarded and stderr on a pty; prints
/// every byte the pty got to stdout and exits with sockkit's status.
const UNDER_PTY: &str = r"
import os, pty, subprocess, sys
m, s = pty.openpty()
with open(sys.argv[1], 'rb') as stdin:
    p = subprocess.Popen(sys.argv[2:], stdin=stdin, stdout=subprocess.DEVNULL, stderr=s)
os.close(s)
out = b''
while True:
    try:
        d = os.read(m, 65536)
    except OSError:
        break
    if not d:
        break
    out += d
sys.stdout.buffer.write(out)
sys.exit(p.wait())
";

const ERASE: &str = "\r\x1b[K";

/// A server that takes everything slowly (at most 128 KiB per 20ms, so 4 MiB takes at least
/// 640ms: a transfer outlasts several redraws) and says how many bytes it got.
fn slow_reader() -> (u16, std::thread::JoinHandle<usize>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let h = std::thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        s.set_read_timeout(Some(T)).unwrap();
        let mut buf = vec![0u8; 128 * 1024];
        let mut n = 0;
        loop {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(k) => n += k,
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        n
    });
    (port, h)
}

/// A file of `len` bytes in `dir`, for stdin.
fn file_of(dir: &TempDir, len: usize) -> std::path::PathBuf {
    let path = dir.path("data");
    std::fs::write(&path, util::random_bytes(7, len)).unwrap();
    path
}

/// What sockkit wrote to the pty, and its exit status.
fn under_pty(stdin: &std::path::Path, args: &[&str]) -> Option<(String, Option<i32>)> {
    let python = peer_or_skip("python3")?;
    let mut cmd = Command::new(python);
    cmd.arg("-c")
        .arg(UNDER_PTY)
        .arg(stdin)
        .arg(util::bin())
        .args(args);
    let out = run_cmd(&mut cmd, b"", T);
    Some((
        String::from_utf8_lossy(&out.stdout).into_owned(),
        out.code(),
    ))
}

#[test]
fn the_live_line_redraws_at_a_terminal_with_v_and_leaves_the_summary_clean() {
    const LEN: usize = 8 * 1024 * 1024;
    let dir = TempDir::new("progress-pty");
    let data = file_of(&dir, LEN);
    let (port, server) = slow_reader();
    let Some((tty, code)) = under_pty(&data, &["connect", "-v", "127.0.0.1", &port.to_string()])
    else {
        return;
    };
    assert_eq!(code, Some(0), "{tty}");
    assert_eq!(server.join().unwrap(), LEN, "every byte arrived");
    let redraws = tty.matches(&format!("{ERASE}sent ")).count();
    assert!(redraws >= 2, "the line is redrawn in place: {tty:?}");
    // A regular file on stdin: the percent of it and the time left.
    assert!(tty.contains("% of 8.00 MiB"), "{tty:?}");
    assert!(tty.contains(" left") || tty.contains("done"), "{tty:?}");
    assert!(tty.contains("| received 0 B"), "{tty:?}");
    // After the last erase nothing of the line is left: the summary lines, each whole.
    let after = &tty[tty.rfind(ERASE).unwrap() + ERASE.len()..];
    assert!(
        !after.contains("| received"),
        "a redraw after the end: {after:?}"
    );
    assert!(!after.contains('\x1b'), "{after:?}");
    let last = after.trim_end().lines().last().unwrap_or_default();
    let summary = after
        .lines()
        .find(|l| l.contains("closed: sent"))
        .unwrap_or_else(|| panic!("no summary after the line: {after:?}"));
    assert!(
        summary.starts_with("sockkit: closed: sent 8.00 MiB"),
        "{summary:?}"
    );
    assert!(
        last.starts_with("sockkit: "),
        "the last line is sockkit's, whole: {last:?}"
    );
}

#[test]
fn no_progress_turns_it_off_at_a_terminal() {
    let dir = TempDir::new("progress-off");
    let data = file_of(&dir, 4 * 1024 * 1024);
    let (port, server) = slow_reader();
    let Some((tty, code)) = under_pty(
        &data,
        &[
            "connect",
            "-v",
            "--no-progress",
            "127.0.0.1",
            &port.to_string(),
        ],
    ) else {
        return;
    };
    assert_eq!(code, Some(0), "{tty}");
    assert_eq!(server.join().unwrap(), 4 * 1024 * 1024);
    assert!(
        !tty.contains('\x1b') && !tty.contains("| received"),
        "{tty:?}"
    );
    assert!(tty.contains("closed: sent 4.00 MiB"), "{tty:?}");
}

#[test]
fn not_a_terminal_means_no_line_unless_asked() {
    let dir = TempDir::new("progress-pipe");
    let data = file_of(&dir, 4 * 1024 * 1024);
    for (flag, want) in [(None, false), (Some("--progress"), true)] {
        let (port, server) = slow_reader();
        let p = port.to_string();
        let mut args = vec!["connect", "-v", "127.0.0.1", &p];
        args.extend(flag);
        let mut cmd = util::sockkit(&args);
        let out = util::run_cmd_from(&mut cmd, std::fs::File::open(&data).unwrap(), T);
        assert_eq!(out.code(), Some(0), "{flag:?}: {}", out.stderr);
        assert_eq!(server.join().unwrap(), 4 * 1024 * 1024);
        assert_eq!(
            out.stderr.contains(&format!("{ERASE}sent ")),
            want,
            "{flag:?}: {:?}",
            out.stderr
        );
        // Either way the summary ends stderr, whole, on its own line.
        let tail = out.stderr.rsplit(ERASE).next().unwrap();
        assert!(tail.contains("closed: sent 4.00 MiB"), "{:?}", out.stderr);
        assert!(!tail.contains("| received"), "{:?}", out.stderr);
    }
}

#[test]
fn a_port_check_shows_ports_checked_of_the_total() {
    // Silent UDP ports: each check waits out -w, so the check outlasts a few redraws.
    let quiet: Vec<UdpSocket> = (0..4)
        .map(|_| UdpSocket::bind("127.0.0.1:0").unwrap())
        .collect();
    let ports: Vec<String> = quiet
        .iter()
        .map(|s| s.local_addr().unwrap().port().to_string())
        .collect();
    let list = ports.join(",");
    let out = util::run(
        &[
            "connect",
            "-z",
            "-u",
            "--progress",
            "--parallel",
            "1",
            "-w",
            "300ms",
            "127.0.0.1",
            &list,
        ],
        b"",
        T,
    );
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    assert!(
        out.stderr.contains(&format!("{ERASE}checked ")) && out.stderr.contains(" of 4 ports"),
        "{:?}",
        out.stderr
    );
    let tail = out.stderr.rsplit(ERASE).next().unwrap();
    assert!(
        tail.starts_with("sockkit: 4 UDP ports on 127.0.0.1 checked in"),
        "the summary is whole: {tail:?}"
    );
    // stdout is the check's data, untouched by the line.
    let lines = out.stdout_text();
    assert_eq!(lines.lines().count(), 4, "{lines}");
    assert!(
        lines.lines().all(|l| l.contains("open|filtered")),
        "{lines}"
    );
}

#[test]
fn progress_is_refused_on_a_broker_and_with_its_opposite() {
    for args in [
        &["listen", "--broker", "--progress", "0"][..],
        &["connect", "--progress", "--no-progress", "127.0.0.1", "9"][..],
    ] {
        let out = util::run(args, b"", T);
        assert_eq!(out.code(), Some(2), "{args:?}: {}", out.stderr);
        assert!(out.stderr.contains("--progress"), "{}", out.stderr);
    }
}

#[test]
fn a_tls_transfer_keeps_the_line_too() {
    // listen --tls's stdout read slowly, so the 16 MiB (past what the
    // socket buffers hold) take long enough for a few redraws.
    let dir = TempDir::new("progress-tls");
    let data = file_of(&dir, 16 * 1024 * 1024);
    let mut cmd = util::sockkit(&["listen", "--tls", "127.0.0.1", "0"]);
    cmd.stdin(std::process::Stdio::null());
    let mut server = util::Server::start_with(&mut cmd);
    let mut stdout = server.child.stdout();
    let reader = std::thread::spawn(move || {
        let (mut n, mut buf) = (0, vec![0u8; 64 * 1024]);
        loop {
            match stdout.read(&mut buf).unwrap() {
                0 => return n,
                k => n += k,
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    });
    let port = server.port().to_string();
    let mut cmd = util::sockkit(&[
        "connect",
        "-v",
        "--progress",
        "--tls",
        "--insecure",
        "127.0.0.1",
        &port,
    ]);
    let out = util::run_cmd_from(&mut cmd, std::fs::File::open(&data).unwrap(), T);
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    assert_eq!(reader.join().unwrap(), 16 * 1024 * 1024);
    assert!(
        out.stderr.contains(&format!("{ERASE}sent ")),
        "{:?}",
        out.stderr
    );
    let tail = out.stderr.rsplit(ERASE).next().unwrap();
    assert!(tail.contains("closed: sent 16.00 MiB"), "{:?}", out.stderr);
    assert!(!tail.contains("| received"), "{:?}", out.stderr);
    server
        .child
        .status_within(T, "listen --tls after its client");
}
