//! `-vvv` narration against the kernel's own record: sockkit runs under `strace -f -tt`, and
//! for every socket descriptor the calls narrated on it must be the calls strace saw on it, in
//! the same order, with the same result and the same flags, save a short list of exclusions
//! (`EXCLUDED`, each checked to really occur so the list cannot hide more than it says). Then
//! the TCP states the kernel reaches by itself (TIME_WAIT, CLOSE_WAIT, FIN_WAIT2) and a RST
//! from linger 0 are checked against `ss -tan`. Loopback only, port 0, every wait bounded.

mod util;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream, UdpSocket};
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread;

use util::{LineTap, Output, Server, T, TempDir, bin, peer_or_skip, run_cmd, serve_once};

/// The system calls the check looks at. Anything else strace may see (mmap, futex, ...) is no
/// socket call.
const TRACED: &str = "socket,socketpair,connect,accept,accept4,bind,listen,setsockopt,\
                      getsockopt,getsockname,getpeername,shutdown,close,read,write,splice,\
                      sendfile,sendto,recvfrom,sendmsg,recvmsg,fcntl,ioctl,poll,ppoll,\
                      epoll_wait,epoll_ctl,pipe2";

/// Socket calls sockkit makes but does not narrate, and why. Each is asserted to occur in at
/// least one of the runs below.
const EXCLUDED: &[(&str, &str)] = &[
    (
        "poll",
        "waiting for readiness is the relay's rhythm, not a step of the API",
    ),
    (
        "epoll_ctl",
        "a server's event loop registering each client (and epoll_wait, its waiting)",
    ),
    (
        "fcntl F_GETFL",
        "socket2 reads the flags before the narrated F_SETFL",
    ),
    (
        "getsockopt TCP_INFO",
        "narration's own look at the TCP state (the ` -> ESTABLISHED` after a call)",
    ),
    (
        "getsockopt SO_LINGER",
        "narration's look at what close() will send",
    ),
    (
        "ioctl FIONREAD",
        "narration's look at unread bytes (a RST at close)",
    ),
    (
        "socketpair",
        "the relay's wake-up channel between its threads, no network socket",
    ),
    (
        "stdout report",
        "connect -z prints its findings on stdout: program output, not a connection's data",
    ),
    (
        "netlink",
        "the sock_diag look-up after close(), narrated as one sock_diag(...) line",
    ),
];

/// One call: its name, the descriptor it is about, its result (`3`, `0`, `-1 EINPROGRESS`),
/// and its arguments as written (for the flags).
#[derive(Debug, Clone)]
struct Call {
    name: String,
    fd: i64,
    result: String,
    args: String,
}

/// What one traced run left: sockkit's output, strace's record, the exclusions it hit.
struct Traced {
    out: Output,
    strace: Vec<Call>,
    excluded: Vec<&'static str>,
}

/// `strace -f -tt -o FILE sockkit ARGS` with `input` on stdin.
fn strace_cmd(dir: &TempDir, args: &[&str]) -> (Command, std::path::PathBuf) {
    let log = dir.path("strace.log");
    let mut cmd = Command::new("strace");
    cmd.args(["-f", "-tt", "-qq", "-e", &format!("trace={TRACED}"), "-o"])
        .arg(&log)
        .arg(bin())
        .args(args);
    (cmd, log)
}

fn traced_run(args: &[&str], input: &[u8]) -> Option<Traced> {
    peer_or_skip("strace")?;
    let dir = TempDir::new("narration");
    let (mut cmd, log) = strace_cmd(&dir, args);
    let out = run_cmd(&mut cmd, input, T);
    // Only a relay moves data through stdio; connect -z writes its report there.
    let relay = !args.contains(&"-z");
    Some(read_trace(out, &log, relay))
}

fn read_trace(out: Output, log: &Path, relay: bool) -> Traced {
    let text = std::fs::read_to_string(log).expect("reading strace's log");
    let (strace, excluded) = socket_calls(&text, relay);
    Traced {
        out,
        strace,
        excluded,
    }
}

/// `name(args) = result` split; `None` when the line is no completed call.
fn split_call(text: &str) -> Option<(String, String, String)> {
    let open = text.find('(')?;
    let name = &text[..open];
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return None;
    }
    // strace pads short calls before ` = `: `close(3)            = 0`.
    let eq = text.rfind(" = ")?;
    let args = text[open + 1..eq].trim_end().strip_suffix(')')?.to_string();
    let rest = &text[eq + 3..];
    let mut words = rest.split_whitespace();
    let first = words.next()?;
    let result = if first == "-1" {
        format!("-1 {}", words.next().unwrap_or(""))
    } else {
        first.to_string()
    };
    Some((name.to_string(), args, result))
}

/// The first argument as a descriptor, when it is one.
fn first_fd(args: &str) -> Option<i64> {
    args.split(',').next()?.trim().parse().ok()
}

/// strace's log, as the socket calls on socket descriptors (and stdio data calls), with the
/// exclusions that were hit. Unfinished calls (`<unfinished ...>`) are joined with their
/// `<... name resumed>` line and placed where they returned, as narration places them.
fn socket_calls(log: &str, relay: bool) -> (Vec<Call>, Vec<&'static str>) {
    let mut pending: BTreeMap<String, String> = BTreeMap::new();
    let mut sockets: Vec<i64> = Vec::new();
    let mut hidden: Vec<i64> = Vec::new();
    let mut calls = Vec::new();
    let mut excluded = Vec::new();
    for line in log.lines() {
        // `PID  HH:MM:SS.micros call(...) = result`, the PID padded with spaces.
        let Some((pid, after)) = line.trim_start().split_once(' ') else {
            continue;
        };
        let Some((_time, rest)) = after.trim_start().split_once(' ') else {
            continue;
        };
        let rest = rest.trim_start();
        let text = if let Some(start) = rest.strip_suffix(" <unfinished ...>") {
            pending.insert(pid.to_string(), start.to_string());
            continue;
        } else if rest.starts_with("<... ") {
            let Some(start) = pending.remove(pid) else {
                continue;
            };
            let tail = rest.split_once("resumed>").map_or("", |(_, t)| t);
            format!("{start}{tail}")
        } else {
            rest.to_string()
        };
        let Some((name, args, result)) = split_call(&text) else {
            continue;
        };
        let res_fd: Option<i64> = result.parse().ok();
        match name.as_str() {
            "socket" => {
                if let Some(fd) = res_fd.filter(|fd| *fd >= 0) {
                    if args.starts_with("AF_NETLINK") {
                        hidden.push(fd);
                        excluded.push("netlink");
                        continue;
                    }
                    sockets.push(fd);
                    calls.push(Call {
                        name,
                        fd,
                        result,
                        args,
                    });
                }
                continue;
            }
            "socketpair" | "pipe2" => {
                if name == "socketpair" {
                    excluded.push("socketpair");
                    // [4, 5]: both ends are the wake-up channel.
                    if let Some(pair) = args.rsplit('[').next() {
                        for n in pair.trim_end_matches(']').split(',') {
                            if let Ok(fd) = n.trim().parse() {
                                hidden.push(fd);
                            }
                        }
                    }
                }
                continue;
            }
            "poll" | "ppoll" => {
                excluded.push("poll");
                continue;
            }
            "epoll_wait" | "epoll_ctl" => {
                excluded.push("epoll_ctl");
                continue;
            }
            _ => {}
        }
        let Some(fd) = first_fd(&args) else { continue };
        if hidden.contains(&fd) {
            if name == "close" {
                hidden.retain(|h| *h != fd);
            }
            continue;
        }
        let is_socket = sockets.contains(&fd);
        let stdio = matches!((name.as_str(), fd), ("read", 0) | ("write", 1));
        if stdio && !relay {
            excluded.push("stdout report");
            continue;
        }
        let stdio_data = stdio;
        let splice_or_sendfile = matches!(name.as_str(), "splice" | "sendfile");
        if !(is_socket || stdio_data || splice_or_sendfile) {
            continue;
        }
        if splice_or_sendfile && !is_socket && !stdio_data {
            // splice(pipe -> stdout) belongs to the relay's socket -> stdout direction.
            let touches_socket_or_stdio = args
                .split(',')
                .filter_map(|a| a.trim().parse::<i64>().ok())
                .any(|n| sockets.contains(&n) || n == 0 || n == 1);
            if !touches_socket_or_stdio {
                continue;
            }
        }
        if name == "fcntl" && (args.contains("F_GETFL") || args.contains("F_GETFD")) {
            excluded.push("fcntl F_GETFL");
            continue;
        }
        if name == "getsockopt" && args.contains("TCP_INFO") {
            excluded.push("getsockopt TCP_INFO");
            continue;
        }
        if name == "getsockopt" && args.contains("SO_LINGER") {
            excluded.push("getsockopt SO_LINGER");
            continue;
        }
        if name == "ioctl" && args.contains("FIONREAD") {
            excluded.push("ioctl FIONREAD");
            continue;
        }
        if name == "ioctl" {
            continue; // TCGETS on stdio and the like: no socket call
        }
        let new_socket = (name == "fcntl" && args.contains("F_DUPFD_CLOEXEC") && is_socket)
            || name == "accept4"
            || name == "accept";
        if new_socket && let Some(new) = res_fd.filter(|n| *n >= 0) {
            sockets.push(new);
        }
        if name == "close" {
            sockets.retain(|s| *s != fd);
        }
        calls.push(Call {
            name,
            fd,
            result,
            args,
        });
    }
    (calls, excluded)
}

/// The calls sockkit narrated, from its stderr, in the same shape (only the names strace was
/// asked to trace, less the excluded poll).
fn narrated_calls(stderr: &str) -> Vec<Call> {
    let traced: Vec<&str> = TRACED.split(',').collect();
    let mut calls = Vec::new();
    for line in stderr.lines() {
        let Some(rest) = line.strip_prefix("sockkit:") else {
            continue;
        };
        let rest = rest.trim_start();
        let Some(text) = rest.strip_prefix('+').and_then(|r| r.split_once(' ')) else {
            continue;
        };
        let text = text.1;
        let Some(open) = text.find('(') else { continue };
        let name = &text[..open];
        if !traced.contains(&name) || name == "poll" {
            continue;
        }
        let Some(eq) = text.find(" = ") else { continue };
        let args = text[open + 1..eq].trim_end_matches(')').to_string();
        let res_text = &text[eq + 3..];
        let mut words = res_text.split_whitespace();
        let first = words.next().unwrap_or("");
        let result = match first {
            "fd" => words.next().unwrap_or("").to_string(),
            "-1" => format!("-1 {}", words.next().unwrap_or("")),
            n if n.trim_end_matches(',').parse::<i64>().is_ok() => {
                n.trim_end_matches(',').to_string()
            }
            // getsockname(fd 3) = 127.0.0.1:5555: the call returned 0.
            _ => "0".to_string(),
        };
        let fd = if name == "socket" {
            result.parse().unwrap_or(-1)
        } else {
            args.split(',')
                .next()
                .and_then(|a| a.trim().strip_prefix("fd "))
                .and_then(|n| n.parse().ok())
                .unwrap_or(-1)
        };
        calls.push(Call {
            name: name.to_string(),
            fd,
            result,
            args,
        });
    }
    calls
}

/// The flag names (`SOCK_CLOEXEC`, `SHUT_WR`, `MSG_NOSIGNAL`, ...) in a call's arguments.
fn flags(args: &str) -> Vec<String> {
    args.split(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
        .filter(|w| w.contains('_') && w.starts_with(|c: char| c.is_ascii_uppercase()))
        .map(str::to_string)
        .collect()
}

/// Per descriptor, the narrated calls are exactly strace's: same names in the same order,
/// same results, and every flag narration names is one strace shows.
fn assert_matches(t: &Traced) {
    let narrated = narrated_calls(&t.out.stderr);
    let per_fd = |calls: &[Call]| {
        let mut m: BTreeMap<i64, Vec<Call>> = BTreeMap::new();
        for c in calls {
            m.entry(c.fd).or_default().push(c.clone());
        }
        m
    };
    let said = per_fd(&narrated);
    let seen = per_fd(&t.strace);
    let show = |v: &[Call]| {
        v.iter()
            .map(|c| format!("{}={}", c.name, c.result))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let context = format!(
        "narrated:\n{}\nstrace:\n{:#?}",
        t.out.stderr,
        t.strace
            .iter()
            .map(|c| format!("{}({}) = {}", c.name, c.args, c.result))
            .collect::<Vec<_>>()
    );
    for fd in said.keys().chain(seen.keys()) {
        let a = said.get(fd).map_or(&[][..], Vec::as_slice);
        let b = seen.get(fd).map_or(&[][..], Vec::as_slice);
        assert_eq!(
            show(a),
            show(b),
            "fd {fd}: narrated calls differ from strace's\n{context}"
        );
        for (n, s) in a.iter().zip(b) {
            for flag in flags(&n.args) {
                assert!(
                    s.args.contains(&flag),
                    "fd {fd}: {}() narrated with {flag}, strace shows ({})\n{context}",
                    n.name,
                    s.args
                );
            }
        }
    }
    assert!(!narrated.is_empty(), "nothing narrated:\n{context}");
}

/// A TCP peer that reads to EOF, answers `reply` and closes: the half-close the relay makes.
fn half_close_peer(reply: &'static [u8]) -> (std::net::SocketAddr, thread::JoinHandle<Vec<u8>>) {
    serve_once(move |mut s| {
        let mut got = Vec::new();
        s.read_to_end(&mut got).unwrap();
        s.write_all(reply).unwrap();
        got
    })
}

#[test]
fn connect_with_half_close_narrates_every_call_strace_sees() {
    let (addr, peer) = half_close_peer(b"pong");
    let port = addr.port().to_string();
    let Some(t) = traced_run(&["connect", "-vvv", "127.0.0.1", &port], b"hi\n") else {
        return;
    };
    assert_eq!(t.out.code(), Some(0), "{}", t.out.stderr);
    assert_eq!(t.out.stdout, b"pong");
    assert_eq!(util::join_within(peer, T), b"hi\n");
    assert_matches(&t);
    for want in ["shutdown", "read", "write", "close", "socket"] {
        assert!(
            t.strace.iter().any(|c| c.name == want),
            "strace saw no {want}: {:?}",
            t.strace
        );
    }
    assert!(t.excluded.contains(&"getsockopt TCP_INFO"));
}

#[test]
fn connect_with_timeout_narrates_the_non_blocking_connect() {
    let (addr, peer) = half_close_peer(b"ok");
    let port = addr.port().to_string();
    let Some(t) = traced_run(&["connect", "-vvv", "-w", "5", "127.0.0.1", &port], b"x") else {
        return;
    };
    assert_eq!(t.out.code(), Some(0), "{}", t.out.stderr);
    assert_eq!(util::join_within(peer, T), b"x");
    assert_matches(&t);
    let e = &t.out.stderr;
    assert!(e.contains("F_SETFL, O_RDWR|O_NONBLOCK) = 0"), "{e}");
    assert!(e.contains("= -1 EINPROGRESS"), "{e}");
    assert!(
        e.contains("getsockopt(fd 3, SOL_SOCKET, SO_ERROR) = 0"),
        "{e}"
    );
    assert!(t.excluded.contains(&"fcntl F_GETFL"));
    assert!(t.excluded.contains(&"poll"));
}

#[test]
fn listen_with_accept_narrates_every_call_strace_sees() {
    if peer_or_skip("strace").is_none() {
        return;
    }
    let dir = TempDir::new("narration-listen");
    let (mut cmd, log) = strace_cmd(&dir, &["listen", "-vvv", "127.0.0.1", "0"]);
    cmd.stdin(Stdio::piped()).stdout(Stdio::piped());
    let mut server = Server::start_with(&mut cmd);
    let mut c = TcpStream::connect(server.loopback()).unwrap();
    c.set_read_timeout(Some(T)).unwrap();
    c.write_all(b"hello").unwrap();
    c.shutdown(Shutdown::Write).unwrap();
    let out = util::collect(server.child.stdout());
    let mut stdin = server.child.stdin();
    stdin.write_all(b"back").unwrap();
    drop(stdin);
    let mut got = Vec::new();
    c.read_to_end(&mut got).unwrap();
    assert_eq!(got, b"back");
    let status = server.child.status_within(T, "listen under strace");
    let stderr = server.stderr.finish(T);
    let t = read_trace(
        Output {
            status,
            stdout: util::join_within(out, T),
            stderr,
        },
        &log,
        true,
    );
    assert_eq!(t.out.stdout, b"hello");
    assert_matches(&t);
    assert!(
        t.out
            .stderr
            .contains("accept4(fd 3, ..., SOCK_CLOEXEC) = fd 4"),
        "{}",
        t.out.stderr
    );
    assert!(t.excluded.contains(&"socketpair"));
}

/// The PID of the one child of process `pid` (sockkit under strace).
fn child_of(pid: u32) -> i32 {
    let deadline = std::time::Instant::now() + T;
    loop {
        let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).unwrap();
        for task in tasks.flatten() {
            let kids = std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
            if let Some(k) = kids.split_whitespace().next() {
                return k.parse().unwrap();
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "strace started no child"
        );
        thread::sleep(std::time::Duration::from_millis(5));
    }
}

#[test]
fn echo_with_two_clients_narrates_every_call_strace_sees() {
    if peer_or_skip("strace").is_none() {
        return;
    }
    let dir = TempDir::new("narration-echo");
    let (mut cmd, log) = strace_cmd(&dir, &["echo", "-vvv", "--threads", "1", "127.0.0.1", "0"]);
    cmd.stdin(Stdio::null()).stdout(Stdio::piped());
    let mut server = Server::start_with(&mut cmd);
    // Both open at once, so neither reuses the other's descriptor.
    let mut a = TcpStream::connect(server.loopback()).unwrap();
    let mut b = TcpStream::connect(server.loopback()).unwrap();
    for (c, word) in [(&mut a, &b"alpha"[..]), (&mut b, &b"beta"[..])] {
        c.set_read_timeout(Some(T)).unwrap();
        c.write_all(word).unwrap();
        let mut back = vec![0u8; word.len()];
        c.read_exact(&mut back).unwrap();
        assert_eq!(back, word);
    }
    for c in [&mut a, &mut b] {
        c.shutdown(Shutdown::Write).unwrap();
        let mut rest = Vec::new();
        c.read_to_end(&mut rest).unwrap();
        assert!(rest.is_empty());
    }
    server
        .stderr
        .wait_seen(T, |l| {
            l.contains("sock_diag(") && l.contains(&format!("{}", b.local_addr().unwrap()))
        })
        .unwrap_or_else(|e| panic!("{e}"));
    let sockkit = child_of(server.child.id());
    // SAFETY: a plain kill(2) of the sockkit process this test started (under strace).
    assert_eq!(unsafe { libc::kill(sockkit, libc::SIGINT) }, 0);
    let status = server.child.status_within(T, "echo under strace");
    let stderr = server.stderr.finish(T);
    let t = read_trace(
        Output {
            status,
            stdout: Vec::new(),
            stderr,
        },
        &log,
        true,
    );
    assert_matches(&t);
    for who in [a.local_addr().unwrap(), b.local_addr().unwrap()] {
        let tag = format!("(client {who})");
        assert!(
            t.out
                .stderr
                .lines()
                .any(|l| l.contains("recvfrom(fd") && l.ends_with(&tag)),
            "no read narrated for {who}:\n{}",
            t.out.stderr
        );
    }
    assert!(t.excluded.contains(&"epoll_ctl"));
}

#[test]
fn connect_udp_narrates_every_call_strace_sees() {
    let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
    peer.set_read_timeout(Some(T)).unwrap();
    let port = peer.local_addr().unwrap().port().to_string();
    let echo = thread::spawn(move || {
        let mut buf = [0u8; 64];
        let (n, from) = peer.recv_from(&mut buf).unwrap();
        peer.send_to(b"back", from).unwrap();
        buf[..n].to_vec()
    });
    let Some(t) = traced_run(
        &[
            "connect",
            "-u",
            "-vvv",
            "--quit-after",
            "1s",
            "127.0.0.1",
            &port,
        ],
        b"hi",
    ) else {
        return;
    };
    assert_eq!(t.out.code(), Some(0), "{}", t.out.stderr);
    assert_eq!(util::join_within(echo, T), b"hi");
    assert_eq!(t.out.stdout, b"back");
    assert_matches(&t);
    assert!(t.strace.iter().any(|c| c.name == "sendto"));
    assert!(t.strace.iter().any(|c| c.name == "recvfrom"));
}

#[test]
fn connect_unix_narrates_every_call_strace_sees() {
    let dir = TempDir::new("narration-unix");
    let path = dir.path("s");
    let listener = UnixListener::bind(&path).unwrap();
    let server = thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(T)).unwrap();
        let mut got = Vec::new();
        s.read_to_end(&mut got).unwrap();
        s.write_all(b"unix").unwrap();
        got
    });
    let p = path.to_str().unwrap();
    let Some(t) = traced_run(&["connect", "-vvv", "-U", p], b"hi") else {
        return;
    };
    assert_eq!(t.out.code(), Some(0), "{}", t.out.stderr);
    assert_eq!(util::join_within(server, T), b"hi");
    assert_eq!(t.out.stdout, b"unix");
    assert_matches(&t);
}

#[test]
fn connect_z_narrates_every_call_strace_sees() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let Some(t) = traced_run(&["connect", "-z", "-vvv", "127.0.0.1", &port], b"") else {
        return;
    };
    assert_eq!(t.out.code(), Some(0), "{}", t.out.stderr);
    assert_matches(&t);
    let e = &t.out.stderr;
    assert!(e.contains("= -1 EINPROGRESS"), "{e}");
    assert!(e.contains("SO_ERROR) = 0"), "{e}");
    drop(listener);
}

#[test]
fn every_exclusion_is_seen_in_some_run() {
    // A bounded connect and a port check between them hit every exclusion: the list cannot
    // grow an entry that hides nothing.
    let (addr, _peer) = half_close_peer(b"pong");
    let port = addr.port().to_string();
    let Some(a) = traced_run(&["connect", "-vvv", "-w", "5", "127.0.0.1", &port], b"hi") else {
        return;
    };
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let zport = listener.local_addr().unwrap().port().to_string();
    let Some(z) = traced_run(&["connect", "-z", "-vvv", "127.0.0.1", &zport], b"") else {
        return;
    };
    let mut seen: Vec<&str> = a.excluded.iter().chain(&z.excluded).copied().collect();
    seen.sort_unstable();
    seen.dedup();
    // epoll_ctl is the event loop's: the echo test, the one run with a server, asserts it.
    for (name, why) in EXCLUDED.iter().filter(|(n, _)| *n != "epoll_ctl") {
        assert!(
            seen.contains(name),
            "exclusion {name:?} ({why}) never occurred; seen: {seen:?}\n{}",
            a.out.stderr
        );
    }
}

// ---------------------------------------------------------------------------------------------
// What the kernel does on its own, cross-checked with `ss -tan`.

/// `ss -tan` lines for the connection from 127.0.0.1:`local` to `peer`, as (state, local,
/// peer) words.
fn ss_states(local: u16, peer: u16) -> Vec<String> {
    let out = Command::new("ss")
        .args(["-tan"])
        .output()
        .expect("running ss -tan");
    let text = String::from_utf8_lossy(&out.stdout);
    let (l, p) = (format!("127.0.0.1:{local}"), format!("127.0.0.1:{peer}"));
    text.lines()
        .filter(|line| {
            let w: Vec<&str> = line.split_whitespace().collect();
            w.len() >= 5 && w[3] == l && w[4] == p
        })
        .map(|line| line.split_whitespace().next().unwrap_or("").to_string())
        .collect()
}

/// sockkit's own port, from its `connected: 127.0.0.1:L -> ...` line.
fn local_port(stderr: &str) -> u16 {
    let line = stderr
        .lines()
        .find(|l| l.starts_with("sockkit: connected: "))
        .unwrap_or_else(|| panic!("no connected line in:\n{stderr}"));
    let local = line["sockkit: connected: ".len()..]
        .split_whitespace()
        .next()
        .unwrap();
    local.rsplit(':').next().unwrap().parse().unwrap()
}

/// `sockkit connect -vv ARGS 127.0.0.1 PORT` with stdin piped and stderr tapped.
fn connect_tapped(args: &[&str], port: u16) -> (util::ChildGuard, LineTap) {
    let port = port.to_string();
    let mut all = vec!["connect", "-vv"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["127.0.0.1", &port]);
    let mut cmd = util::sockkit(&all);
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = util::ChildGuard::spawn(&mut cmd);
    let tap = LineTap::new(child.stderr());
    (child, tap)
}

#[test]
fn fin_wait2_then_time_wait_after_an_active_close_match_ss() {
    if peer_or_skip("ss").is_none() {
        return;
    }
    // The peer reads to EOF, then holds its side open until told: sockkit sits in FIN_WAIT2.
    let (release_tx, release) = std::sync::mpsc::channel::<()>();
    let (addr, peer) = serve_once(move |mut s| {
        let mut got = Vec::new();
        s.read_to_end(&mut got).unwrap();
        let _ = release.recv_timeout(T);
        got
    });
    let (mut child, mut tap) = connect_tapped(&[], addr.port());
    let mut stdin = child.stdin();
    stdin.write_all(b"bye\n").unwrap();
    drop(stdin);
    let fin_wait2 = tap
        .wait_seen(T, |l| l.contains("-> FIN_WAIT2"))
        .unwrap_or_else(|e| panic!("{e}"));
    let stderr = tap.text();
    let local = local_port(&stderr);
    assert_eq!(
        ss_states(local, addr.port()),
        ["FIN-WAIT-2"],
        "sockkit said {fin_wait2:?}"
    );
    release_tx.send(()).unwrap();
    assert_eq!(util::join_within(peer, T), b"bye\n");
    assert!(child.status_within(T, "connect").success());
    let stderr = tap.finish(T);
    let want = format!("= TIME_WAIT (the kernel holds 127.0.0.1:{local} for ");
    assert!(stderr.contains(&want), "no {want:?} in:\n{stderr}");
    assert!(
        stderr.contains("FIN_WAIT2 -> CLOSE, no call of ours"),
        "{stderr}"
    );
    assert_eq!(ss_states(local, addr.port()), ["TIME-WAIT"], "{stderr}");
}

#[test]
fn close_wait_after_the_peers_fin_matches_ss() {
    if peer_or_skip("ss").is_none() {
        return;
    }
    // The peer sends and half-closes at once; sockkit's stdin stays open, so it stays in
    // CLOSE_WAIT until the test ends stdin.
    // It waits for sockkit to be connected and narrating, so the FIN lands on a relay.
    let (go_tx, go) = std::sync::mpsc::channel::<()>();
    let (addr, peer) = serve_once(move |mut s| {
        let _ = go.recv_timeout(T);
        s.write_all(b"from peer").unwrap();
        s.shutdown(Shutdown::Write).unwrap();
        let mut got = Vec::new();
        s.read_to_end(&mut got).unwrap();
        got
    });
    let (mut child, mut tap) = connect_tapped(&[], addr.port());
    tap.wait_seen(T, |l| l.contains("F_DUPFD_CLOEXEC"))
        .unwrap_or_else(|e| panic!("{e}"));
    go_tx.send(()).unwrap();
    let line = tap
        .wait_seen(T, |l| {
            l.contains("ESTABLISHED -> CLOSE_WAIT, no call of ours")
        })
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(line.contains("the peer's FIN arrived"), "{line}");
    let local = local_port(&tap.text());
    assert_eq!(
        ss_states(local, addr.port()),
        ["CLOSE-WAIT"],
        "{}",
        tap.text()
    );
    let mut stdin = child.stdin();
    stdin.write_all(b"late").unwrap();
    drop(stdin);
    assert!(child.status_within(T, "connect").success());
    assert_eq!(util::join_within(peer, T), b"late");
    let stderr = tap.finish(T);
    // Our FIN went last: the TIME_WAIT is the peer's, and nothing is left on our side.
    assert!(
        stderr.contains("= nothing: the kernel has forgotten the connection"),
        "{stderr}"
    );
    assert!(ss_states(local, addr.port()).is_empty(), "{stderr}");
}

#[test]
fn linger_zero_with_no_shutdown_sends_a_rst_said_before_close_and_seen_by_ss() {
    if peer_or_skip("ss").is_none() {
        return;
    }
    // The peer reads what comes, then closes first. Without linger it would keep TIME_WAIT;
    // sockkit's RST (linger 0, no FIN of ours) removes it.
    let (addr, peer) = serve_once(|mut s| {
        let mut buf = [0u8; 2];
        s.read_exact(&mut buf).unwrap();
        buf.to_vec()
    });
    let (mut child, mut tap) = connect_tapped(&["-o", "linger=0", "--no-shutdown"], addr.port());
    let mut stdin = child.stdin();
    stdin.write_all(b"hi").unwrap();
    drop(stdin);
    assert_eq!(util::join_within(peer, T), b"hi");
    assert!(child.status_within(T, "connect").success());
    let stderr = tap.finish(T);
    let local = local_port(&stderr);
    assert!(
        stderr.contains(
            "(was CLOSE_WAIT, sends a RST, not a FIN: SO_LINGER is on with a 0 s timeout)"
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains("= nothing: the kernel has forgotten the connection"),
        "{stderr}"
    );
    // Both directions: the peer's TIME_WAIT went with the RST, and nothing is on ours.
    assert!(ss_states(local, addr.port()).is_empty(), "{stderr}");
    assert!(ss_states(addr.port(), local).is_empty(), "{stderr}");
}

#[test]
fn linger_zero_after_both_fins_is_said_to_be_moot() {
    if peer_or_skip("ss").is_none() {
        return;
    }
    let (addr, peer) = half_close_peer(b"");
    let port = addr.port().to_string();
    let out = run_cmd(
        &mut util::sockkit(&["connect", "-vv", "-o", "linger=0", "127.0.0.1", &port]),
        b"x",
        T,
    );
    assert_eq!(util::join_within(peer, T), b"x");
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    let local = local_port(&out.stderr);
    let moot = "SO_LINGER 0 has nothing to reset (it is moot here)";
    assert_eq!(out.stderr.matches(moot).count(), 1, "{}", out.stderr);
    assert_eq!(
        ss_states(local, addr.port()),
        ["TIME-WAIT"],
        "{}",
        out.stderr
    );
}

// ---------------------------------------------------------------------------------------------
// --explain: a sentence after each step, with the Java tutorial's equivalents.

/// Every one of `java` is in `text`.
fn assert_java(text: &str, java: &[&str]) {
    for j in java {
        assert!(text.contains(j), "--explain never said {j:?}:\n{text}");
    }
}

#[test]
fn explain_on_connect_names_new_socket_println_and_readline() {
    let (addr, peer) = half_close_peer(b"pong");
    let port = addr.port().to_string();
    let out = run_cmd(
        &mut util::sockkit(&["connect", "--explain", "127.0.0.1", &port]),
        b"hi\n",
        T,
    );
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    assert_eq!(util::join_within(peer, T), b"hi\n");
    assert_eq!(out.stdout, b"pong");
    assert_java(
        &out.stderr,
        &["new Socket(host, port)", "out.println", "in.readLine()"],
    );
    // --explain implies -vv: the calls it explains are narrated.
    assert!(out.stderr.contains("connect(fd 3, "), "{}", out.stderr);
}

#[test]
fn explain_on_listen_names_new_server_socket_and_accept() {
    let mut server = Server::start(&["listen", "--explain", "127.0.0.1", "0"]);
    let mut c = TcpStream::connect(server.loopback()).unwrap();
    c.set_read_timeout(Some(T)).unwrap();
    c.write_all(b"hello\n").unwrap();
    c.shutdown(Shutdown::Write).unwrap();
    drop(server.child.stdin());
    let mut rest = Vec::new();
    c.read_to_end(&mut rest).unwrap();
    assert!(server.child.status_within(T, "listen").success());
    let stderr = server.stderr.finish(T);
    assert_java(
        &stderr,
        &[
            "new ServerSocket(4444) is socket + setsockopt(SO_REUSEADDR) + bind + listen",
            "serverSocket.accept()",
            "in.readLine()",
        ],
    );
}

/// A server (`echo`, `knock`) run with --explain, one client talking to it: its stderr once
/// every Java equivalent in `java` has been said.
fn explained_server(args: &[&str], talk: impl FnOnce(&mut TcpStream), java: &[&str]) {
    let mut server = Server::start(args);
    let mut c = TcpStream::connect(server.loopback()).unwrap();
    c.set_read_timeout(Some(T)).unwrap();
    talk(&mut c);
    for j in java {
        server
            .stderr
            .wait_seen(T, |l| l.contains(j))
            .unwrap_or_else(|e| panic!("--explain never said {j:?}: {e}"));
    }
}

#[test]
fn explain_on_echo_names_new_server_socket_accept_println_and_readline() {
    explained_server(
        &["echo", "--explain", "--threads", "1", "127.0.0.1", "0"],
        |c| {
            c.write_all(b"hi\n").unwrap();
            let mut back = [0u8; 3];
            c.read_exact(&mut back).unwrap();
            assert_eq!(&back, b"hi\n");
        },
        &[
            "new ServerSocket(4444)",
            "serverSocket.accept()",
            "in.readLine()",
            "out.println",
        ],
    );
}

#[test]
fn explain_on_knock_names_new_server_socket_accept_println_and_readline() {
    explained_server(
        &["knock", "--explain", "--threads", "1", "127.0.0.1", "0"],
        |c| {
            let mut greeting = [0u8; 5];
            c.read_exact(&mut greeting).unwrap();
            c.write_all(b"Who's there?\n").unwrap();
        },
        &[
            "new ServerSocket(4444)",
            "serverSocket.accept()",
            "out.println",
            "in.readLine()",
        ],
    );
}

#[test]
fn echo_udp_narrates_every_call_strace_sees() {
    if peer_or_skip("strace").is_none() {
        return;
    }
    let dir = TempDir::new("narration-echo-udp");
    let (mut cmd, log) = strace_cmd(&dir, &["echo", "-u", "-vvv", "127.0.0.1", "0"]);
    cmd.stdin(Stdio::null()).stdout(Stdio::piped());
    let mut server = Server::start_with(&mut cmd);
    let c = UdpSocket::bind("127.0.0.1:0").unwrap();
    c.set_read_timeout(Some(T)).unwrap();
    c.send_to(b"ping", server.loopback()).unwrap();
    let mut buf = [0u8; 16];
    let (n, _) = c.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"ping");
    let me = c.local_addr().unwrap().to_string();
    server
        .stderr
        .wait_seen(T, |l| l.contains("sendto(fd") && l.contains(&me))
        .unwrap_or_else(|e| panic!("{e}"));
    let sockkit = child_of(server.child.id());
    // SAFETY: a plain kill(2) of the sockkit process this test started (under strace).
    assert_eq!(unsafe { libc::kill(sockkit, libc::SIGINT) }, 0);
    let status = server.child.status_within(T, "echo -u under strace");
    let stderr = server.stderr.finish(T);
    let t = read_trace(
        Output {
            status,
            stdout: Vec::new(),
            stderr,
        },
        &log,
        true,
    );
    assert_matches(&t);
    assert!(t.strace.iter().any(|c| c.name == "recvfrom"));
}

#[test]
fn a_reset_from_the_peer_is_told_as_a_rst() {
    let mut server = Server::start(&["listen", "-vv", "127.0.0.1", "0"]);
    let c = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    c.connect(&server.loopback().into()).unwrap();
    server
        .stderr
        .wait_seen(T, |l| l.contains("F_DUPFD_CLOEXEC"))
        .unwrap_or_else(|e| panic!("{e}"));
    // SO_LINGER 0: close() sends a RST instead of a FIN.
    c.set_linger(Some(std::time::Duration::ZERO)).unwrap();
    drop(c);
    let status = server.child.status_within(T, "listen");
    let stderr = server.stderr.finish(T);
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("= -1 ECONNRESET (Connection reset by peer)"),
        "{stderr}"
    );
    assert!(
        stderr.contains("got a RST, no call of ours: the peer sent a RST"),
        "{stderr}"
    );
}

#[test]
fn bulk_data_calls_are_shown_three_times_then_summed() {
    // 8 MiB through a pipe: 32 reads of 256 KiB at least, far more than three.
    let data = util::random_bytes(7, 8 << 20);
    let (addr, peer) = half_close_peer(b"");
    let port = addr.port().to_string();
    let out = run_cmd(
        &mut util::sockkit(&["connect", "-vv", "127.0.0.1", &port]),
        &data,
        T,
    );
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    util::assert_bytes_eq(&util::join_within(peer, T), &data, "what the peer got");
    let full = |name: &str| {
        out.stderr
            .lines()
            .filter(|l| l.contains(&format!(" {name}(fd 0, buf, ")))
            .count()
    };
    assert_eq!(full("read"), 3, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("(more of these are summed once a second)"),
        "{}",
        out.stderr
    );
    // The summaries count the rest: the reads shown plus summed make up all the data. All
    // of them: a transfer that takes over a second (a loaded machine) is summed once a
    // second, so the first summary may hold only some of the reads.
    let summaries: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.contains("stdin -> socket: ") && l.contains("read(fd 0) x"))
        .collect();
    assert!(!summaries.is_empty(), "no summary line in:\n{}", out.stderr);
    let calls: u64 = summaries
        .iter()
        .map(|summary| {
            summary
                .split("read(fd 0) x")
                .nth(1)
                .and_then(|s| s.split_whitespace().next())
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or_else(|| panic!("no count in {summary:?}"))
        })
        .sum();
    assert!(calls >= 29, "{summaries:#?}");
    // -vvv: every call in full, none summed.
    let (addr, peer) = half_close_peer(b"");
    let port = addr.port().to_string();
    let all = run_cmd(
        &mut util::sockkit(&["connect", "-vvv", "127.0.0.1", &port]),
        &data,
        T,
    );
    assert_eq!(all.code(), Some(0), "{}", all.stderr);
    util::join_within(peer, T);
    let reads = all
        .stderr
        .lines()
        .filter(|l| l.contains(" read(fd 0, buf, "))
        .count();
    assert!(reads >= 33, "{}", all.stderr);
    assert!(
        !all.stderr.contains("summed once a second"),
        "{}",
        all.stderr
    );
}

#[test]
fn unread_data_at_close_is_said_to_send_a_rst_and_the_peer_sees_one() {
    // The peer sends far more than sockkit will read: its stdout closes after a few bytes.
    let (addr, peer) = serve_once(|mut s| {
        let chunk = vec![b'z'; 64 * 1024];
        let mut sent = 0usize;
        let err = loop {
            match s.write(&chunk) {
                Ok(n) => sent += n,
                Err(e) => break e,
            }
            assert!(sent < 1 << 30, "sockkit never closed");
        };
        err.kind()
    });
    let (mut child, mut tap) = connect_tapped(&[], addr.port());
    drop(child.stdin());
    let mut out = child.stdout();
    let mut first = [0u8; 10];
    out.read_exact(&mut first).unwrap();
    drop(out);
    child.status_within(T, "connect");
    let stderr = tap.finish(T);
    // Which call meets the unread bytes depends on timing: close() when the relay has
    // ended (it sends the RST itself), or the relay's shutdown(SHUT_RDWR) when stdin's end
    // had not been read yet (the peer's next bytes meet a RST). Either is said, with why.
    let by_close =
        stderr.contains("sends a RST, not a FIN: ") && stderr.contains("arrived that nobody read");
    let by_shutdown = stderr.lines().any(|l| {
        l.contains("shutdown(fd")
            && l.contains("SHUT_RDWR")
            && l.contains("arrived that nobody read")
            && l.contains("answered with a RST")
    });
    assert!(by_close || by_shutdown, "{stderr}");
    // What the peer's next write met: the reset.
    let kind = util::join_within(peer, T);
    assert!(
        matches!(
            kind,
            std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
        ),
        "{kind:?}\n{stderr}"
    );
}
