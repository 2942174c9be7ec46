//! The socket option table against a real kernel: every settable row round-trips on a real
//! socket (read, set a different value, read back, compare allowing the kernel's documented
//! adjustment, as socket2's tests/socket.rs does), and the real binary shows requested and
//! effective values (`--show-opts`), narrates its calls in order (`-vv`), reports TCP_INFO
//! (`-v`) and refuses bad options before any data moves. Loopback only, port 0, every wait
//! bounded; the process plumbing comes from tests/util.

mod util;

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::process::Stdio;
use std::sync::mpsc;
use std::thread;

use socket2::{Domain, Protocol, SockRef, Socket, Type};
use sockkit::sockopt::{self, Probe, SockKind, Stage, TABLE, Value};
use util::{Output, Server, T, join_within, run_cmd_from, sockkit};

/// Runs `sockkit ARGS` with stdin at /dev/null (EOF at once), bounded by `T`.
fn run(args: &[&str]) -> Output {
    run_cmd_from(&mut sockkit(args), Stdio::null(), T)
}

/// A loopback listener in the test process that accepts one client, reads to EOF, sends
/// `reply`, and closes. Returns its address and what it read.
fn peer(reply: &'static [u8]) -> (SocketAddr, mpsc::Receiver<Vec<u8>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let Ok((mut conn, _)) = listener.accept() else {
            return;
        };
        conn.set_read_timeout(Some(T)).unwrap();
        let _ = conn.write_all(reply);
        let mut got = Vec::new();
        let _ = conn.read_to_end(&mut got);
        let _ = tx.send(got);
    });
    (addr, rx)
}

/// The `--show-opts` line for an option: its whitespace-separated columns.
fn show_line<'a>(stderr: &'a str, name: &str) -> Vec<&'a str> {
    stderr
        .lines()
        .map(str::split_whitespace)
        .map(Iterator::collect::<Vec<_>>)
        .find(|cols| cols.first() == Some(&name))
        .unwrap_or_else(|| panic!("no --show-opts line for {name} in:\n{stderr}"))
}

/// A socket of the kind and stage a row needs for its round trip.
fn socket_for(row: &sockopt::Row) -> Option<(Socket, Option<(TcpListener, Socket)>)> {
    let v4 = |kind| sockopt::Target {
        kind,
        family: sockopt::Fam::V4,
    };
    let v6 = |kind| sockopt::Target {
        kind,
        family: sockopt::Fam::V6,
    };
    if row.stage == Stage::Connected {
        // A connected pair: connect() on our side, the listener's accepted socket kept open.
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let s = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).unwrap();
        s.connect_timeout(&l.local_addr().unwrap().into(), T)
            .unwrap();
        let (accepted, _) = l.accept().unwrap();
        return Some((s, Some((l, Socket::from(accepted)))));
    }
    let unix = sockopt::Target {
        kind: SockKind::Unix,
        family: sockopt::Fam::Unix,
    };
    let (domain, ty, proto) = if row.applies.admits(v4(SockKind::Tcp)) {
        (Domain::IPV4, Type::STREAM, Some(Protocol::TCP))
    } else if row.applies.admits(v6(SockKind::Tcp)) {
        (Domain::IPV6, Type::STREAM, Some(Protocol::TCP))
    } else if row.applies.admits(v4(SockKind::Udp)) {
        (Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))
    } else if row.applies.admits(unix) {
        (Domain::UNIX, Type::STREAM, None)
    } else {
        panic!("{}: no socket kind to round-trip it on", row.name);
    };
    match Socket::new(domain, ty, proto) {
        Ok(s) => Some((s, None)),
        Err(e) if domain == Domain::IPV6 => {
            println!("{}: skipped, no IPv6 socket here ({e})", row.name);
            None
        }
        Err(e) => panic!("{}: socket(): {e}", row.name),
    }
}

#[test]
fn every_settable_row_round_trips_on_a_real_socket() {
    let mut failures = Vec::new();
    let mut tried = 0;
    for row in TABLE {
        let Probe::Set(text) = row.probe else {
            continue;
        };
        let set = row.set.expect("a probed row has a setter");
        let value = sockopt::parse_value(row.kind, Some(text)).unwrap();
        let Some((sock, _pair)) = socket_for(row) else {
            continue;
        };
        let expected = row.adjust.expected(&value);
        let before = (row.get)(SockRef::from(&sock));
        match &before {
            Ok(b) if *b == expected => {
                failures.push(format!(
                    "{}: the kernel default {b} equals the probe, so the test proves nothing",
                    row.name
                ));
                continue;
            }
            Ok(_) => {}
            Err(e) => {
                failures.push(format!("{}: reading before set: {e}", row.name));
                continue;
            }
        }
        if let Err(e) = set(SockRef::from(&sock), &value) {
            failures.push(format!("{}={text}: set: {e}", row.name));
            continue;
        }
        match (row.get)(SockRef::from(&sock)) {
            Ok(got) if got == expected => tried += 1,
            Ok(got) => failures.push(format!(
                "{}={text}: read back {got}, expected {expected} (was {})",
                row.name,
                before.unwrap()
            )),
            Err(e) => failures.push(format!("{}: reading back: {e}", row.name)),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    let probes = TABLE
        .iter()
        .filter(|r| matches!(r.probe, Probe::Set(_)))
        .count();
    assert!(tried >= probes - 3, "only {tried} of {probes} rows ran");
}

/// Starts `sockkit listen ARGS` (stdin at /dev/null) and waits for its `listening on` line.
fn start_listen(args: &[&str]) -> Server {
    let mut argv = vec!["listen"];
    argv.extend(args);
    Server::start_with(sockkit(&argv).stdin(Stdio::null()))
}

/// `stderr` split after its `listening on` line: what the server said up to and including
/// its announcement (its calls, the listening socket's table), and what came after.
fn split_at_listening(stderr: &str) -> (&str, &str) {
    let at = stderr
        .find("listening on ")
        .unwrap_or_else(|| panic!("no `listening on` line in:\n{stderr}"));
    let end = stderr[at..].find('\n').map_or(stderr.len(), |i| at + i + 1);
    stderr.split_at(end)
}

#[test]
fn listen_shows_the_backlog_it_asked_for_and_the_defaults_it_added() {
    let server = start_listen(&["--show-opts", "-o", "backlog=7", "127.0.0.1", "0"]);
    let said = server.stderr.text();
    let (text, _) = split_at_listening(&said);
    assert_eq!(show_line(text, "backlog")[2..4], ["7", "7"], "{text}");
    assert_eq!(
        show_line(text, "SO_REUSEADDR")[2..5],
        ["on", "(default)", "on"],
        "{text}"
    );
    drop(server);
}

#[test]
fn connect_show_opts_has_requested_and_kernel_values() {
    let (addr, got) = peer(b"");
    let port = addr.port().to_string();
    let out = run(&[
        "connect",
        "--show-opts",
        "-o",
        "rcvbuf=64K",
        "-o",
        "nodelay",
        "-o",
        "keepalive=30s",
        "127.0.0.1",
        &port,
    ]);
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    let peer_read = got.recv_timeout(T).expect("the peer saw the connection");
    assert!(peer_read.is_empty());
    let rcvbuf = show_line(&out.stderr, "SO_RCVBUF");
    assert_eq!(rcvbuf[1..3], ["SOL_SOCKET", "65536"], "{}", out.stderr);
    let max = sockopt::read_sysctl("net.core.rmem_max").unwrap_or(u64::MAX);
    let want = if cfg!(target_os = "linux") {
        (65536u64.min(max) * 2).to_string()
    } else {
        "65536".to_string()
    };
    assert_eq!(rcvbuf[3], want, "{}", out.stderr);
    if want == "131072" {
        assert!(rcvbuf[4..].join(" ").contains("doubles"), "{}", out.stderr);
    }
    assert_eq!(
        show_line(&out.stderr, "TCP_NODELAY")[1..4],
        ["IPPROTO_TCP", "on", "on"]
    );
    assert_eq!(
        show_line(&out.stderr, "SO_KEEPALIVE")[1..4],
        ["SOL_SOCKET", "on", "on"]
    );
    if cfg!(target_os = "linux") {
        assert_eq!(
            show_line(&out.stderr, "TCP_KEEPIDLE")[1..4],
            ["IPPROTO_TCP", "30s", "30s"]
        );
    }
    // An option nobody asked for shows "-" as requested and the kernel's value.
    assert_eq!(show_line(&out.stderr, "SO_LINGER")[2..4], ["-", "off"]);
    assert!(out.stdout.is_empty(), "stdout carries data only");
}

/// The C call names of `-vv` lines, in order: `socket`, `setsockopt`, `connect`, ...
fn calls(stderr: &str) -> Vec<String> {
    stderr
        .lines()
        .filter_map(|l| l.strip_prefix("sockkit:"))
        .filter_map(|l| {
            let l = l.trim_start();
            let (first, rest) = l.split_once(' ')?;
            // Narration lines start with the elapsed time (`+139µs`).
            first.starts_with('+').then(|| {
                let call = rest.split('(').next().unwrap_or("");
                match rest.split(", ").nth(2) {
                    Some(opt) if call == "setsockopt" => format!("setsockopt {opt}"),
                    _ => call.to_string(),
                }
            })
        })
        .collect()
}

#[test]
fn connect_narrates_its_calls_in_order() {
    let (addr, got) = peer(b"pong");
    let port = addr.port().to_string();
    let out = run(&["connect", "-vv", "-o", "nodelay", "127.0.0.1", &port]);
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    assert_eq!(out.stdout, b"pong");
    got.recv_timeout(T).unwrap();
    let seq = calls(&out.stderr);
    let want = [
        "socket",
        "setsockopt TCP_NODELAY",
        "connect",
        "getsockname",
        "getpeername",
        "shutdown",
        "close",
    ];
    assert_in_order(&seq, &want, &out.stderr);
    assert!(
        out.stderr
            .contains("socket(AF_INET, SOCK_STREAM|SOCK_CLOEXEC, IPPROTO_TCP) = fd"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("setsockopt(fd 3, IPPROTO_TCP, TCP_NODELAY, 1) = 0"),
        "{}",
        out.stderr
    );
}

/// Every call of `want` appears in `seq`, in this order (other calls may come between).
fn assert_in_order(seq: &[String], want: &[&str], context: &str) {
    let mut at = 0;
    for w in want {
        match seq[at..].iter().position(|c| c == w) {
            Some(i) => at += i + 1,
            None => panic!("{w} missing or out of order in {seq:?}\n{context}"),
        }
    }
}

#[test]
fn listen_narrates_its_calls_in_order() {
    let mut server = start_listen(&["-vv", "0"]);
    let port = server.port();
    let stdout = util::collect(server.child.stdout());
    let mut client = TcpStream::connect(("127.0.0.1", port)).expect("connect to sockkit");
    client.set_read_timeout(Some(T)).unwrap();
    client.write_all(b"ping").unwrap();
    client.shutdown(Shutdown::Write).unwrap();
    let mut reply = Vec::new();
    client.read_to_end(&mut reply).unwrap();
    let text = server.stderr.finish(T);
    let lines: Vec<&str> = text.lines().collect();
    let status = server.child.status_within(T, "sockkit listen");
    assert_eq!(status.code(), Some(0), "{lines:#?}");
    assert_eq!(join_within(stdout, T), b"ping");
    let seq = calls(&text);
    let dual = text.contains("AF_INET6");
    let mut want = vec!["socket", "setsockopt SO_REUSEADDR"];
    if dual {
        want.push("setsockopt IPV6_V6ONLY");
    }
    want.extend([
        "bind",
        "listen",
        "getsockname",
        "accept4",
        "close",
        "getsockname",
        "shutdown",
        "close",
    ]);
    assert_in_order(&seq, &want, &text);
    if dual {
        assert!(
            text.contains("IPV6_V6ONLY, 0) = 0"),
            "dual stack turns IPV6_V6ONLY off: {text}"
        );
    }
    // The announcement comes after listen() and before accept().
    let announce = lines
        .iter()
        .position(|l| l.contains("listening on"))
        .unwrap();
    let listen = lines.iter().position(|l| l.contains(" listen(fd")).unwrap();
    let accept = lines
        .iter()
        .position(|l| l.contains(" accept4(fd"))
        .unwrap();
    assert!(listen < announce && announce < accept, "{text}");
}

#[test]
fn a_user_v6only_replaces_the_dual_stack_default() {
    if Socket::new(Domain::IPV6, Type::STREAM, None).is_err() {
        println!("skipped: no IPv6 sockets here");
        return;
    }
    let server = start_listen(&["-vv", "-o", "v6only", "0"]);
    let said = server.stderr.text();
    let (text, _) = split_at_listening(&said);
    let sets: Vec<&str> = text.lines().filter(|l| l.contains("IPV6_V6ONLY")).collect();
    assert_eq!(sets.len(), 1, "one setsockopt, the user's: {text}");
    assert!(sets[0].contains("IPV6_V6ONLY, 1) = 0"), "{text}");
    assert!(text.contains("(IPv6 only)"), "{text}");
    drop(server);
}

#[cfg(target_os = "linux")]
#[test]
fn verbose_end_of_connection_reports_tcp_info() {
    let (addr, got) = peer(b"0123456789");
    let port = addr.port().to_string();
    let out = run(&["connect", "-v", "127.0.0.1", &port]);
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    assert_eq!(out.stdout, b"0123456789");
    got.recv_timeout(T).unwrap();
    let line = out
        .stderr
        .lines()
        .find(|l| l.contains("tcp_info:"))
        .unwrap_or_else(|| panic!("no tcp_info line: {}", out.stderr));
    for field in ["rtt:", "retrans:", "cwnd:", "bytes_acked:", "delivery_rate"] {
        assert!(line.contains(field), "{field} missing: {line}");
    }
    // The kernel counts the peer's FIN as a received byte once it has arrived.
    let received: u64 = line
        .split("bytes_received:")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no bytes_received in {line}"));
    assert!((10..=11).contains(&received), "{line}");
}

/// A bad option is refused before any connection is made: the in-test listener must see none.
fn refused_before_connecting(opt: &str, code: i32, words: &[&str]) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let out = run(&["connect", "-o", opt, "127.0.0.1", &port]);
    assert_eq!(out.code(), Some(code), "-o {opt}: {}", out.stderr);
    assert_eq!(out.stderr.lines().count(), 1, "one line: {}", out.stderr);
    for w in words {
        assert!(
            out.stderr.contains(w),
            "-o {opt}: {w:?} missing: {}",
            out.stderr
        );
    }
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    match listener.accept() {
        Err(e) if e.kind() == ErrorKind::WouldBlock => {}
        other => panic!("-o {opt}: a connection was made: {other:?}"),
    }
    out.stderr
}

#[test]
fn an_unknown_option_is_a_usage_error_with_suggestions() {
    let out = run(&["connect", "-o", "rcvbfu=64K", "127.0.0.1", "9"]);
    assert_eq!(out.code(), Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("'rcvbfu'"), "{}", out.stderr);
    assert!(
        out.stderr.contains("did you mean SO_RCVBUF"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_wrong_value_type_is_a_usage_error_naming_option_and_value() {
    for (opt, words) in [
        ("nodelay=maybe", &["TCP_NODELAY", "'maybe'", "on|off"][..]),
        ("rcvbuf=lots", &["SO_RCVBUF", "'lots'"][..]),
        ("ttl", &["IP_TTL", "needs a value"][..]),
        (
            "linger=1.5s",
            &["SO_LINGER", "'1.5s'", "whole number of seconds"][..],
        ),
    ] {
        let out = run(&["connect", "-o", opt, "127.0.0.1", "9"]);
        assert_eq!(out.code(), Some(2), "-o {opt}: {}", out.stderr);
        for w in words {
            assert!(
                out.stderr.contains(w),
                "-o {opt}: {w:?} missing: {}",
                out.stderr
            );
        }
    }
}

#[test]
fn an_option_for_another_socket_kind_is_refused() {
    refused_before_connecting(
        "broadcast",
        1,
        &[
            "sockkit: ",
            "SO_BROADCAST=on",
            "does not apply to a TCP IPv4 socket",
            "UDP",
        ],
    );
    refused_before_connecting(
        "tclass=0x20",
        1,
        &[
            "IPV6_TCLASS=32",
            "does not apply to a TCP IPv4 socket",
            "IPv6",
        ],
    );
}

#[test]
fn a_value_outside_what_the_kernel_keeps_is_refused_when_parsed_with_the_range() {
    // IP_TOS keeps one byte: 256 would have been stored as 0 without a word.
    refused_before_connecting("tos=256", 2, &["IP_TOS: 256 is outside 0-255"]);
    refused_before_connecting("ttl=300", 2, &["IP_TTL: 300 is outside -1-255"]);
    refused_before_connecting("keepcnt=128", 2, &["TCP_KEEPCNT: 128 is outside 1-127"]);
}

#[test]
fn a_value_the_kernel_refuses_is_named_with_the_errno() {
    // 0 is inside what an int carries but not a TTL: the kernel says EINVAL.
    refused_before_connecting(
        "ttl=0",
        1,
        &["sockkit: setting IP_TTL=0", "EINVAL", "1-255"],
    );
    refused_before_connecting(
        "maxseg=10",
        1,
        &["setting TCP_MAXSEG=10", "EINVAL", "88-32767"],
    );
}

#[cfg(target_os = "linux")]
#[test]
fn an_unloaded_congestion_control_names_the_available_ones() {
    let err = refused_before_connecting(
        "TCP_CONGESTION=nosuchcc",
        1,
        &[
            "setting TCP_CONGESTION=nosuchcc",
            "ENOENT",
            "'nosuchcc'",
            "available:",
        ],
    );
    let avail =
        std::fs::read_to_string("/proc/sys/net/ipv4/tcp_available_congestion_control").unwrap();
    for name in avail.split_whitespace() {
        assert!(err.contains(name), "{name} not listed: {err}");
    }
}

#[cfg(target_os = "linux")]
#[test]
fn an_unknown_interface_is_named() {
    refused_before_connecting(
        "SO_BINDTODEVICE=nosuchif0",
        1,
        &["setting SO_BINDTODEVICE=nosuchif0", "ENODEV", "ip link"],
    );
}

#[test]
fn option_help_lists_every_row_without_host_or_port() {
    for args in [
        &["connect", "-o", "help"][..],
        &["listen", "-o", "help"][..],
    ] {
        let out = run(args);
        assert_eq!(out.code(), Some(0), "{args:?}: {}", out.stderr);
        let stdout = out.stdout_text();
        for row in TABLE {
            assert!(stdout.contains(row.name), "{args:?}: {} missing", row.name);
            assert!(stdout.contains(row.doc.split_whitespace().next().unwrap()));
        }
        assert!(stdout.contains("SO_RCVTIMEO"), "the decision is explained");
    }
}

#[test]
fn requested_values_are_applied_to_accepted_sockets() {
    let mut server = start_listen(&[
        "--show-opts",
        "-o",
        "sndbuf=96K",
        "-o",
        "quickack=0",
        "127.0.0.1",
        "0",
    ]);
    let mut client = TcpStream::connect(("127.0.0.1", server.port())).unwrap();
    client.shutdown(Shutdown::Write).unwrap();
    client.set_read_timeout(Some(T)).unwrap();
    let _ = client.read_to_end(&mut Vec::new());
    let said = server.stderr.finish(T);
    drop(server);
    let (_, text) = split_at_listening(&said);
    // The accepted socket's table comes after `accept`; SO_SNDBUF was inherited from the
    // listener, TCP_QUICKACK set after accept (Stage::Connected).
    let (_, accepted) = text
        .split_once("socket options of fd")
        .unwrap_or_else(|| panic!("no table for the accepted socket: {text}"));
    assert!(
        accepted.contains(" <- "),
        "not the accepted socket's table: {text}"
    );
    let want = Value::Bytes(96 * 1024);
    let row = sockopt::find("sndbuf").unwrap();
    assert_eq!(
        show_line(accepted, "SO_SNDBUF")[3],
        row.adjust.expected(&want).to_string(),
        "{text}"
    );
    if cfg!(target_os = "linux") {
        assert_eq!(show_line(accepted, "TCP_QUICKACK")[2], "off", "{text}");
        assert_eq!(
            sockopt::find("TCP_QUICKACK").unwrap().stage,
            Stage::Connected
        );
    }
}

#[cfg(target_os = "linux")]
#[test]
fn show_opts_explains_what_the_kernel_changed() {
    let Some(max) = sockopt::read_sysctl("net.core.rmem_max") else {
        println!("skipped: /proc/sys/net/core/rmem_max is not readable");
        return;
    };
    let (addr, got) = peer(b"");
    let port = addr.port().to_string();
    let big = (max * 4).min(1 << 30).to_string();
    let rcvbuf = format!("rcvbuf={big}");
    let out = run(&[
        "connect",
        "--show-opts",
        "-o",
        &rcvbuf,
        "-o",
        "mss=1000",
        "-o",
        "tos=0x13",
        "127.0.0.1",
        &port,
    ]);
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    got.recv_timeout(T).unwrap();
    let line = show_line(&out.stderr, "SO_RCVBUF").join(" ");
    if max * 4 <= 1 << 30 {
        // The note quotes the sysctl's actual value, read from /proc.
        assert!(
            line.contains(&format!("clamped to net.core.rmem_max = {max}"))
                && line.contains(&(max * 2).to_string()),
            "{line}"
        );
    }
    let mss = show_line(&out.stderr, "TCP_MAXSEG");
    let negotiated: u32 = mss[3].parse().unwrap();
    assert!(
        mss[2] == "1000" && (536..1000).contains(&negotiated),
        "{mss:?}"
    );
    assert!(mss.join(" ").contains("negotiated"), "{mss:?}");
    let tos = show_line(&out.stderr, "IP_TOS");
    assert_eq!(tos[2..4], ["19", "16"], "{tos:?}");
    assert!(tos.join(" ").contains("ECN"), "{tos:?}");
}

#[test]
fn show_opts_names_ip_tos_as_what_changed_so_priority() {
    let (addr, got) = peer(b"");
    let port = addr.port().to_string();
    let out = run(&[
        "connect",
        "--show-opts",
        "-o",
        "priority=3",
        "-o",
        "tos=0x10",
        "127.0.0.1",
        &port,
    ]);
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    got.recv_timeout(T).expect("the peer saw the connection");
    let line = show_line(&out.stderr, "SO_PRIORITY");
    assert_eq!(line[2], "3", "{}", out.stderr);
    // 0x10 is IPTOS_LOWDELAY, which Linux maps to TC_PRIO_INTERACTIVE (6).
    assert_eq!(line[3], "6", "{}", out.stderr);
    let note = line[4..].join(" ");
    assert!(note.starts_with("set by IP_TOS=16"), "{}", out.stderr);
}
