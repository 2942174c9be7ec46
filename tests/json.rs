//! `--json`: on `connect -z` one JSON object per port on stdout, on a relay session (byte
//! stream or datagrams) one summary object on stderr, on the servers one object per client
//! (or forwarded pair) and a totals object at the stop; every field of each kind parsed (by
//! serde_json,
//! a real parser, so the escaping and the types are what any script's parser will see) and
//! checked against what the ports really are: a listener (open), a held port nothing listens on (closed), a
//! silent UDP socket (open_filtered), and byte counts the peer confirms.

mod util;

use std::net::{TcpListener, UdpSocket};

use serde_json::Value;
use util::{T, run};

/// The objects of a `--json` run's stdout, one per line.
fn objects(stdout: &[u8]) -> Vec<serde_json::Map<String, Value>> {
    String::from_utf8(stdout.to_vec())
        .unwrap()
        .lines()
        .map(|l| match serde_json::from_str(l) {
            Ok(Value::Object(m)) => m,
            other => panic!("not a JSON object: {l} ({other:?})"),
        })
        .collect()
}

const FIELDS: &[&str] = &["host", "port", "proto", "state", "time", "reason"];

#[test]
fn port_check_json_has_every_field_for_every_port() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let open = l.local_addr().unwrap().port();
    let held = util::ClosedPort::new();
    let closed = held.port();
    let ports = format!("{open},{closed}");
    let out = run(&["connect", "-z", "--json", "127.0.0.1", &ports], b"", T);
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    let objs = objects(&out.stdout);
    assert_eq!(objs.len(), 2, "one object per port, open or not");
    for o in &objs {
        let mut keys: Vec<&str> = o.keys().map(String::as_str).collect();
        keys.sort_unstable();
        let mut want = FIELDS.to_vec();
        want.sort_unstable();
        assert_eq!(keys, want, "the schema's fields, no more: {o:?}");
        assert_eq!(o["host"], "127.0.0.1");
        assert_eq!(o["proto"], "tcp");
    }
    assert_eq!(objs[0]["port"], u64::from(open));
    assert_eq!(objs[0]["state"], "open");
    let t = objs[0]["time"]
        .as_f64()
        .expect("an open port's time is a number");
    assert!((0.0..30.0).contains(&t), "{t}");
    assert_eq!(objs[0]["reason"], "connected");
    assert_eq!(objs[1]["port"], u64::from(closed));
    assert_eq!(objs[1]["state"], "closed");
    assert!(objs[1]["time"].is_null());
    assert_eq!(objs[1]["reason"], "connection refused");
    // The summary stays on stderr.
    assert!(out.stderr.contains("1 open, 1 closed"), "{}", out.stderr);
}

#[test]
fn udp_port_check_json_says_open_filtered() {
    let quiet = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = quiet.local_addr().unwrap().port().to_string();
    let out = run(
        &[
            "connect",
            "-z",
            "-u",
            "--json",
            "-w",
            "200ms",
            "127.0.0.1",
            &port,
        ],
        b"",
        T,
    );
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    let objs = objects(&out.stdout);
    assert_eq!(objs.len(), 1);
    assert_eq!(objs[0]["proto"], "udp");
    assert_eq!(objs[0]["state"], "open_filtered");
    assert!(objs[0]["time"].as_f64().is_some_and(|t| t > 0.0));
    assert!(objs[0]["reason"].as_str().unwrap().contains("ICMP"));
}

/// The last line of stderr as a JSON object.
fn summary_of(stderr: &str) -> serde_json::Map<String, Value> {
    let line = stderr.lines().last().unwrap_or_default();
    match serde_json::from_str(line) {
        Ok(Value::Object(m)) => m,
        other => panic!("not a JSON object: {line} ({other:?})"),
    }
}

const SUMMARY: &[&str] = &[
    "kind",
    "proto",
    "local",
    "peer",
    "sent",
    "received",
    "duration",
    "rate_up",
    "rate_down",
    "end",
    "tcp_info",
];
const TCP_INFO: &[&str] = &[
    "rtt_ms",
    "rttvar_ms",
    "retrans",
    "total_retrans",
    "cwnd",
    "mss",
    "bytes_sent",
    "bytes_acked",
    "bytes_received",
    "delivery_rate",
];

fn keys_are(o: &serde_json::Map<String, Value>, want: &[&str]) {
    let mut keys: Vec<&str> = o.keys().map(String::as_str).collect();
    keys.sort_unstable();
    let mut want = want.to_vec();
    want.sort_unstable();
    assert_eq!(keys, want, "{o:?}");
}

#[test]
fn connect_json_summary_has_every_field_and_the_true_counts() {
    use std::io::{Read, Write};
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        let (mut s, from) = l.accept().unwrap();
        s.set_read_timeout(Some(T)).unwrap();
        let mut got = Vec::new();
        s.read_to_end(&mut got).unwrap();
        s.write_all(b"reply of 20 bytes..\n").unwrap();
        (got.len(), from)
    });
    let sent: Vec<u8> = (0..50_000u32).map(|i| i as u8).collect();
    let out = run(
        &["connect", "--json", "127.0.0.1", &port.to_string()],
        &sent,
        T,
    );
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    assert_eq!(out.stdout, b"reply of 20 bytes..\n");
    let (server_got, from) = server.join().unwrap();
    assert_eq!(server_got, sent.len());
    let o = summary_of(&out.stderr);
    keys_are(&o, SUMMARY);
    assert_eq!(o["kind"], "session");
    assert_eq!(o["proto"], "tcp");
    assert_eq!(
        o["local"],
        from.to_string(),
        "local is where the server saw us come from"
    );
    assert_eq!(o["peer"], format!("127.0.0.1:{port}"));
    assert_eq!(o["sent"], 50_000);
    assert_eq!(o["received"], 20);
    let secs = o["duration"].as_f64().unwrap();
    assert!(secs >= 0.0);
    for rate in ["rate_up", "rate_down"] {
        assert!(o[rate].as_f64().is_some_and(|r| r >= 0.0), "{rate}: {o:?}");
    }
    assert_eq!(o["end"], "closed");
    let Value::Object(info) = &o["tcp_info"] else {
        panic!("tcp_info is an object on TCP: {o:?}");
    };
    keys_are(info, TCP_INFO);
    assert_eq!(info["bytes_sent"], 50_000, "the kernel's count agrees");
    assert!(info["mss"].as_u64().is_some_and(|m| m > 0));
    for k in TCP_INFO {
        assert!(info[*k].is_number(), "{k}: {info:?}");
    }
}

#[test]
fn listen_json_summary_names_the_client_and_unix_has_no_tcp_info() {
    use std::io::Write;
    use std::os::unix::net::UnixStream;
    let dir = util::TempDir::new("json-unix");
    let path = dir.root().join("s.sock");
    let p = path.to_string_lossy().into_owned();
    let mut server = util::ChildGuard::spawn(&mut util::sockkit(&["listen", "--json", "-U", &p]));
    drop(server.stdin());
    let mut stderr = util::LineTap::new(server.stderr());
    stderr.wait_for(T, |l| l.contains("listening on")).unwrap();
    let mut c = UnixStream::connect(&path).unwrap();
    c.write_all(b"12345").unwrap();
    drop(c);
    let status = server.status_within(T, "listen --json -U");
    assert!(status.success());
    let line = stderr.wait_for(T, |l| l.contains("\"sent\"")).unwrap();
    let o = summary_of(&line);
    keys_are(&o, SUMMARY);
    assert_eq!(o["proto"], "unix");
    assert_eq!(o["local"], p);
    assert!(o["peer"].is_null(), "an unnamed Unix client: {o:?}");
    assert_eq!(o["received"], 5);
    assert_eq!(o["sent"], 0);
    assert!(o["tcp_info"].is_null());
}

/// Every JSON object a server said on stderr, in order (its other lines are not JSON).
fn json_lines(text: &str) -> Vec<serde_json::Map<String, Value>> {
    text.lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| match serde_json::from_str(l) {
            Ok(Value::Object(m)) => m,
            other => panic!("not a JSON object: {l} ({other:?})"),
        })
        .collect()
}

/// The objects of one kind.
fn of_kind<'a>(
    objs: &'a [serde_json::Map<String, Value>],
    kind: &str,
) -> Vec<&'a serde_json::Map<String, Value>> {
    objs.iter().filter(|o| o["kind"] == kind).collect()
}

/// SIGINT to a server, its exit by that signal, and everything it said.
fn interrupt(server: &mut util::Server) -> String {
    interrupt_child(&mut server.child, &mut server.stderr)
}

fn interrupt_child(child: &mut util::ChildGuard, stderr: &mut util::LineTap) -> String {
    use std::os::unix::process::ExitStatusExt;
    // SAFETY: kill() on our own child's PID.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let status = child.status_within(T, "the server after SIGINT");
    assert_eq!(status.signal(), Some(libc::SIGINT), "{status}");
    stderr.finish(T)
}

const DGRAM_SUMMARY: &[&str] = &[
    "datagrams_sent",
    "datagrams_received",
    "truncated",
    "dropped",
];

fn with(base: &[&'static str], more: &[&'static str]) -> Vec<&'static str> {
    base.iter().chain(more).copied().collect()
}

#[test]
fn udp_session_json_counts_datagrams_and_bytes_each_way() {
    let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
    peer.set_read_timeout(Some(T)).unwrap();
    let port = peer.local_addr().unwrap().port();
    let h = std::thread::spawn(move || {
        let mut buf = [0u8; 100];
        let (n, from) = peer.recv_from(&mut buf).unwrap();
        peer.send_to(b"a", from).unwrap();
        peer.send_to(b"bb", from).unwrap();
        (n, from)
    });
    let out = run(
        &[
            "connect",
            "--json",
            "-u",
            "--idle-timeout",
            "500ms",
            "127.0.0.1",
            &port.to_string(),
        ],
        b"ping\n",
        T,
    );
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    assert_eq!(out.stdout, b"abb");
    let (got, from) = h.join().unwrap();
    assert_eq!(got, 5);
    let o = summary_of(&out.stderr);
    keys_are(&o, &with(SUMMARY, DGRAM_SUMMARY));
    assert_eq!(o["kind"], "session");
    assert_eq!(o["proto"], "udp");
    assert_eq!(o["local"], from.to_string());
    assert_eq!(o["peer"], format!("127.0.0.1:{port}"));
    assert_eq!(o["sent"], 5);
    assert_eq!(o["received"], 3);
    assert_eq!(o["datagrams_sent"], 1);
    assert_eq!(o["datagrams_received"], 2);
    assert_eq!(o["truncated"], 0);
    assert_eq!(o["dropped"], 0);
    assert_eq!(o["end"], "closed");
    assert!(o["tcp_info"].is_null());
    assert!(o["duration"].as_f64().is_some_and(|d| d >= 0.5), "{o:?}");
    for rate in ["rate_up", "rate_down"] {
        assert!(o[rate].as_f64().is_some_and(|r| r > 0.0), "{rate}: {o:?}");
    }
}

#[test]
fn listen_udp_json_at_ctrl_c_reports_the_session_cut_short() {
    let mut server = util::Server::start(&["listen", "--json", "-u", "127.0.0.1", "0"]);
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client.send_to(b"hello", server.loopback()).unwrap();
    server
        .stderr
        .wait_for(T, |l| l.contains("new peer"))
        .unwrap();
    let text = interrupt(&mut server);
    let objs = json_lines(&text);
    assert_eq!(objs.len(), 1, "{text}");
    let o = &objs[0];
    keys_are(o, &with(SUMMARY, DGRAM_SUMMARY));
    assert_eq!(o["kind"], "session");
    assert_eq!(o["proto"], "udp");
    assert_eq!(o["end"], "signal");
    assert_eq!(o["local"], server.addr.to_string());
    assert_eq!(o["peer"], client.local_addr().unwrap().to_string());
    assert_eq!(o["received"], 5);
    assert_eq!(o["datagrams_received"], 1);
    assert_eq!(o["sent"], 0);
    assert_eq!(o["datagrams_sent"], 0);
    assert_eq!(o["truncated"], 0);
    assert_eq!(o["dropped"], 0);
    assert!(o["tcp_info"].is_null());
    assert!(o["duration"].as_f64().is_some_and(|d| d > 0.0));
}

const CLIENT: &[&str] = &[
    "kind",
    "proto",
    "local",
    "peer",
    "who",
    "sent",
    "received",
    "duration",
    "rate_up",
    "rate_down",
    "reason",
    "tcp_info",
    "tls",
];
const TOTALS: &[&str] = &[
    "kind",
    "served",
    "refused_filter",
    "refused_full",
    "peak",
    "sent",
    "received",
    "duration",
    "stopped_by",
];

/// A TCP client that sends `data`, half-closes and reads until the server closes.
fn exchange(to: std::net::SocketAddr, data: &[u8]) -> (Vec<u8>, std::net::SocketAddr) {
    use std::io::{Read, Write};
    let mut c = std::net::TcpStream::connect(to).unwrap();
    c.set_read_timeout(Some(T)).unwrap();
    c.write_all(data).unwrap();
    c.shutdown(std::net::Shutdown::Write).unwrap();
    let mut got = Vec::new();
    c.read_to_end(&mut got).unwrap();
    (got, c.local_addr().unwrap())
}

#[test]
fn echo_json_has_one_object_per_client_and_the_totals() {
    let mut server = util::Server::start(&["echo", "--json", "127.0.0.1", "0"]);
    let (got1, from1) = exchange(server.loopback(), b"hello");
    let (got2, from2) = exchange(server.loopback(), b"abc");
    assert_eq!(got1, b"hello");
    assert_eq!(got2, b"abc");
    for _ in 0..2 {
        server
            .stderr
            .wait_for(T, |l| l.contains("\"kind\":\"client\""))
            .unwrap();
    }
    let text = interrupt(&mut server);
    let objs = json_lines(&text);
    let clients = of_kind(&objs, "client");
    assert_eq!(clients.len(), 2, "{text}");
    for (o, from, n) in [(clients[0], from1, 5), (clients[1], from2, 3)] {
        keys_are(o, CLIENT);
        assert_eq!(o["proto"], "tcp");
        assert_eq!(o["local"], server.addr.to_string());
        assert_eq!(o["peer"], from.to_string());
        assert!(o["who"].is_null());
        assert_eq!(o["sent"], n);
        assert_eq!(o["received"], n);
        assert!(o["duration"].as_f64().is_some_and(|d| d >= 0.0));
        for rate in ["rate_up", "rate_down"] {
            assert!(o[rate].as_f64().is_some(), "{rate}: {o:?}");
        }
        assert!(!o["reason"].as_str().unwrap().is_empty());
        let Value::Object(info) = &o["tcp_info"] else {
            panic!("tcp_info is an object on TCP: {o:?}");
        };
        keys_are(info, TCP_INFO);
        assert_eq!(info["bytes_sent"], n, "the kernel's count agrees");
    }
    let totals = of_kind(&objs, "totals");
    assert_eq!(totals.len(), 1, "{text}");
    let t = totals[0];
    keys_are(t, TOTALS);
    assert_eq!(t["served"], 2);
    assert_eq!(t["refused_filter"], 0);
    assert_eq!(t["refused_full"], 0);
    assert!(t["peak"].as_u64().is_some_and(|p| (1..=2).contains(&p)));
    assert_eq!(t["sent"], 8);
    assert_eq!(t["received"], 8);
    assert!(t["duration"].as_f64().is_some_and(|d| d > 0.0));
    assert_eq!(t["stopped_by"], "SIGINT");
    assert!(
        !text.contains("closed 127.0.0.1"),
        "no -v lines besides: {text}"
    );
}

#[test]
fn knock_json_on_a_unix_socket_names_the_client_by_its_credentials() {
    use std::io::Read;
    use std::os::unix::net::UnixStream;
    let dir = util::TempDir::new("json-knock");
    let path = dir.path("k.sock");
    let p = path.to_string_lossy().into_owned();
    let mut child = util::ChildGuard::spawn(&mut util::sockkit(&["knock", "--json", "-U", &p]));
    let mut stderr = util::LineTap::new(child.stderr());
    stderr.wait_for(T, |l| l.contains("listening on")).unwrap();
    let mut c = UnixStream::connect(&path).unwrap();
    c.set_read_timeout(Some(T)).unwrap();
    c.shutdown(std::net::Shutdown::Write).unwrap();
    let mut got = Vec::new();
    c.read_to_end(&mut got).unwrap();
    assert!(got.starts_with(b"Knock! Knock!"), "{got:?}");
    stderr
        .wait_for(T, |l| l.contains("\"kind\":\"client\""))
        .unwrap();
    let text = interrupt_child(&mut child, &mut stderr);
    let objs = json_lines(&text);
    let clients = of_kind(&objs, "client");
    assert_eq!(clients.len(), 1, "{text}");
    let o = clients[0];
    keys_are(o, CLIENT);
    assert_eq!(o["proto"], "unix");
    assert_eq!(o["local"], p);
    assert!(o["peer"].is_null(), "a Unix client has no address: {o:?}");
    let who = o["who"].as_str().unwrap();
    assert!(
        who.contains(&format!("pid {}", std::process::id())),
        "{who}"
    );
    assert_eq!(o["sent"], got.len() as u64);
    assert_eq!(o["received"], 0);
    assert!(o["tcp_info"].is_null());
    let t = of_kind(&objs, "totals");
    assert_eq!(t.len(), 1);
    keys_are(t[0], TOTALS);
    assert_eq!(t[0]["served"], 1);
    assert_eq!(t[0]["sent"], got.len() as u64);
}

#[test]
fn broker_json_counts_what_each_client_sent_and_was_given() {
    use std::io::{Read, Write};
    let mut server = util::Server::start(&["listen", "--broker", "--json", "-v", "127.0.0.1", "0"]);
    let mut a = std::net::TcpStream::connect(server.loopback()).unwrap();
    server
        .stderr
        .wait_for(T, |l| l.contains("accepted"))
        .unwrap();
    let mut b = std::net::TcpStream::connect(server.loopback()).unwrap();
    server
        .stderr
        .wait_for(T, |l| l.contains("accepted"))
        .unwrap();
    b.set_read_timeout(Some(T)).unwrap();
    a.write_all(b"hi there\n").unwrap();
    let mut got = [0u8; 9];
    b.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"hi there\n");
    let (a_from, b_from) = (a.local_addr().unwrap(), b.local_addr().unwrap());
    drop(a);
    server
        .stderr
        .wait_for(T, |l| l.contains("\"kind\":\"client\""))
        .unwrap();
    drop(b);
    server
        .stderr
        .wait_for(T, |l| l.contains("\"kind\":\"client\""))
        .unwrap();
    let text = interrupt(&mut server);
    let objs = json_lines(&text);
    let clients = of_kind(&objs, "client");
    assert_eq!(clients.len(), 2, "{text}");
    keys_are(clients[0], CLIENT);
    keys_are(clients[1], CLIENT);
    assert_eq!(clients[0]["peer"], a_from.to_string());
    assert_eq!(clients[0]["received"], 9);
    assert_eq!(clients[0]["sent"], 0);
    assert_eq!(clients[1]["peer"], b_from.to_string());
    assert_eq!(clients[1]["received"], 0);
    assert_eq!(clients[1]["sent"], 9);
    let t = of_kind(&objs, "totals");
    assert_eq!(t.len(), 1);
    keys_are(t[0], TOTALS);
    assert_eq!(t[0]["served"], 2);
    assert_eq!(t[0]["peak"], 2);
    assert_eq!(t[0]["sent"], 9);
    assert_eq!(t[0]["received"], 9);
}

const PAIR: &[&str] = &[
    "kind",
    "proto",
    "peer",
    "who",
    "local",
    "target",
    "up",
    "down",
    "duration",
    "rate_up",
    "rate_down",
    "reason",
];

#[test]
fn forward_json_has_one_object_per_pair_and_the_totals() {
    use std::io::{Read, Write};
    let target = TcpListener::bind("127.0.0.1:0").unwrap();
    let tport = target.local_addr().unwrap().port();
    let t = std::thread::spawn(move || {
        let (mut s, _) = target.accept().unwrap();
        s.set_read_timeout(Some(T)).unwrap();
        let mut got = Vec::new();
        s.read_to_end(&mut got).unwrap();
        s.write_all(b"a reply").unwrap();
        got
    });
    let mut server = util::Server::start(&[
        "forward",
        "--json",
        "127.0.0.1",
        "0",
        "127.0.0.1",
        &tport.to_string(),
    ]);
    let (got, from) = exchange(server.loopback(), b"12345");
    assert_eq!(got, b"a reply");
    assert_eq!(t.join().unwrap(), b"12345");
    server
        .stderr
        .wait_for(T, |l| l.contains("\"kind\":\"pair\""))
        .unwrap();
    let text = interrupt(&mut server);
    let objs = json_lines(&text);
    let pairs = of_kind(&objs, "pair");
    assert_eq!(pairs.len(), 1, "{text}");
    let o = pairs[0];
    keys_are(o, &with(PAIR, &["undelivered", "client_tls", "target_tls"]));
    assert!(
        o["client_tls"].is_null() && o["target_tls"].is_null(),
        "{o:?}"
    );
    assert_eq!(o["proto"], "tcp");
    assert_eq!(o["peer"], from.to_string());
    assert!(o["who"].is_null());
    assert_eq!(o["local"], server.addr.to_string());
    assert_eq!(o["target"], format!("127.0.0.1:{tport}"));
    assert_eq!(o["up"], 5);
    assert_eq!(o["down"], 7);
    assert_eq!(o["undelivered"], 0);
    assert!(o["duration"].as_f64().is_some_and(|d| d >= 0.0));
    assert!(o["rate_up"].as_f64().is_some() && o["rate_down"].as_f64().is_some());
    assert_eq!(o["reason"], "both sides done");
    let t = of_kind(&objs, "totals");
    assert_eq!(t.len(), 1);
    keys_are(
        t[0],
        &[
            "kind",
            "served",
            "refused_filter",
            "refused_full",
            "peak",
            "failed",
            "reset",
            "truncated",
            "up",
            "down",
            "undelivered",
            "duration",
            "stopped_by",
        ],
    );
    assert_eq!(t[0]["served"], 1);
    assert_eq!(t[0]["failed"], 0);
    assert_eq!(t[0]["reset"], 0);
    assert_eq!(t[0]["truncated"], 0);
    assert_eq!(t[0]["up"], 5);
    assert_eq!(t[0]["down"], 7);
    assert_eq!(t[0]["undelivered"], 0);
    assert_eq!(t[0]["stopped_by"], "SIGINT");
}

#[test]
fn udp_forward_and_udp_echo_json_count_datagrams() {
    let target = UdpSocket::bind("127.0.0.1:0").unwrap();
    target.set_read_timeout(Some(T)).unwrap();
    let tport = target.local_addr().unwrap().port();
    let t = std::thread::spawn(move || {
        let mut buf = [0u8; 64];
        let (n, from) = target.recv_from(&mut buf).unwrap();
        target.send_to(&buf[..n], from).unwrap();
        n
    });
    let mut fwd = util::Server::start(&[
        "forward",
        "-u",
        "--json",
        "127.0.0.1",
        "0",
        "127.0.0.1",
        &tport.to_string(),
    ]);
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client.set_read_timeout(Some(T)).unwrap();
    client.send_to(b"ping", fwd.loopback()).unwrap();
    let mut buf = [0u8; 64];
    let (n, _) = client.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"ping");
    assert_eq!(t.join().unwrap(), 4);
    let text = interrupt(&mut fwd);
    let objs = json_lines(&text);
    let pairs = of_kind(&objs, "pair");
    assert_eq!(pairs.len(), 1, "{text}");
    let o = pairs[0];
    keys_are(
        o,
        &with(PAIR, &["datagrams_up", "datagrams_down", "dropped"]),
    );
    assert_eq!(o["proto"], "udp");
    assert_eq!(o["peer"], client.local_addr().unwrap().to_string());
    assert_eq!(o["target"], format!("127.0.0.1:{tport}"));
    assert_eq!((o["up"].clone(), o["down"].clone()), (4.into(), 4.into()));
    assert_eq!(o["datagrams_up"], 1);
    assert_eq!(o["datagrams_down"], 1);
    assert_eq!(o["dropped"], 0);
    assert_eq!(o["reason"], "server stopping");
    let t = of_kind(&objs, "totals");
    assert_eq!(t.len(), 1);
    keys_are(
        t[0],
        &[
            "kind",
            "served",
            "refused",
            "dropped",
            "up",
            "down",
            "datagrams_up",
            "datagrams_down",
            "duration",
            "stopped_by",
        ],
    );
    assert_eq!(t[0]["served"], 1);
    assert_eq!(t[0]["up"], 4);
    assert_eq!(t[0]["datagrams_down"], 1);

    let mut echo = util::Server::start(&["echo", "-u", "--json", "127.0.0.1", "0"]);
    for d in [&b"one"[..], b"three"] {
        client.send_to(d, echo.loopback()).unwrap();
        let (n, _) = client.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], d);
    }
    let text = interrupt(&mut echo);
    let objs = json_lines(&text);
    assert_eq!(
        objs.len(),
        1,
        "a datagram server has no clients to end: {text}"
    );
    keys_are(
        &objs[0],
        &[
            "kind",
            "answered",
            "refused",
            "looping",
            "limited",
            "unanswerable",
            "dropped",
            "sent",
            "received",
            "duration",
            "stopped_by",
        ],
    );
    let o = &objs[0];
    assert_eq!(o["kind"], "totals");
    assert_eq!(o["answered"], 2);
    for k in ["refused", "looping", "limited", "unanswerable", "dropped"] {
        assert_eq!(o[k], 0, "{k}");
    }
    assert_eq!(o["sent"], 8);
    assert_eq!(o["received"], 8);
    assert_eq!(o["stopped_by"], "SIGINT");
}

#[test]
fn listen_keep_open_json_ends_with_the_totals_at_ctrl_c() {
    use std::io::Write;
    let mut server = util::Server::start_with(
        util::sockkit(&["listen", "--json", "-k", "127.0.0.1", "0"])
            .stdin(std::process::Stdio::null()),
    );
    for data in [&b"a\n"[..], b"bbb\n"] {
        let mut c = std::net::TcpStream::connect(server.loopback()).unwrap();
        c.write_all(data).unwrap();
        drop(c);
        server
            .stderr
            .wait_for(T, |l| l.contains("\"kind\":\"session\""))
            .unwrap();
    }
    let text = interrupt(&mut server);
    let objs = json_lines(&text);
    let sessions = of_kind(&objs, "session");
    assert_eq!(sessions.len(), 2, "{text}");
    assert_eq!(sessions[0]["received"], 2);
    assert_eq!(sessions[1]["received"], 4);
    let t = of_kind(&objs, "totals");
    assert_eq!(t.len(), 1, "{text}");
    keys_are(
        t[0],
        &[
            "kind",
            "served",
            "sent",
            "received",
            "duration",
            "stopped_by",
        ],
    );
    assert_eq!(t[0]["served"], 2);
    assert_eq!(t[0]["sent"], 0);
    assert_eq!(t[0]["received"], 6);
    assert!(t[0]["duration"].as_f64().is_some_and(|d| d > 0.0));
    assert_eq!(t[0]["stopped_by"], "SIGINT");
}

/// The fields of `--json`'s `tls` object on a relay session.
const TLS: &[&str] = &[
    "version",
    "suite",
    "group",
    "alpn",
    "resumed",
    "peer_certificates",
    "close_notify",
];

#[test]
fn tls_sessions_json_add_what_the_handshake_settled_and_the_peers_chain() {
    use std::io::{Read, Write};
    let mut cmd = util::sockkit(&["listen", "--tls", "--json", "127.0.0.1", "0"]);
    let mut server = util::Server::start_with(&mut cmd);
    let port = server.port().to_string();
    let fingerprint = server
        .stderr
        .wait_for(T, |l| l.contains("SHA-256 fingerprint"))
        .unwrap();
    let fingerprint = fingerprint.rsplit(' ').next().unwrap().to_string();
    let mut stdin = server.child.stdin();
    stdin.write_all(b"pong").unwrap();
    drop(stdin);
    let client = run(
        &[
            "connect",
            "--tls",
            "--insecure",
            "--json",
            "127.0.0.1",
            &port,
        ],
        b"ping",
        T,
    );
    assert_eq!(client.code(), Some(0), "{}", client.stderr);
    assert_eq!(client.stdout, b"pong");
    let status = server
        .child
        .status_within(T, "listen --tls after its client");
    assert_eq!(status.code(), Some(0));
    let mut got = Vec::new();
    server.child.stdout().read_to_end(&mut got).unwrap();
    assert_eq!(got, b"ping");
    let server_text = server.stderr.finish(T);
    for (text, sent, received, certs) in [
        (client.stderr.as_str(), 4, 4, 1),
        (server_text.as_str(), 4, 4, 0),
    ] {
        let objs = json_lines(text);
        assert_eq!(objs.len(), 1, "{text}");
        let o = &objs[0];
        keys_are(o, &with(SUMMARY, &["tls"]));
        assert_eq!(o["kind"], "session");
        assert_eq!(o["proto"], "tcp");
        assert_eq!(o["sent"], sent, "{o:?}");
        assert_eq!(o["received"], received, "{o:?}");
        assert_eq!(o["end"], "closed");
        assert!(o["tcp_info"].is_object(), "{o:?}");
        let t = o["tls"].as_object().expect("a tls object");
        keys_are(t, TLS);
        assert_eq!(t["version"], "TLSv1.3");
        assert!(
            t["suite"].as_str().is_some_and(|s| s.starts_with("TLS13_")),
            "{t:?}"
        );
        assert!(t["group"].is_string(), "{t:?}");
        assert!(t["alpn"].is_null(), "{t:?}");
        assert_eq!(t["resumed"], false);
        assert_eq!(t["close_notify"], true, "{t:?}");
        // The client sees the server's self-signed certificate; the server asked for none.
        let chain = t["peer_certificates"].as_array().unwrap();
        assert_eq!(chain.len(), certs, "{t:?}");
        if let Some(c) = chain.first() {
            assert_eq!(c["sha256"], fingerprint.as_str());
            for k in ["subject", "issuer", "not_before", "not_after"] {
                assert!(c[k].is_string(), "{k}: {c:?}");
            }
            let names = c["names"].as_array().unwrap();
            assert!(names.iter().any(|n| n == "IP:127.0.0.1"), "{c:?}");
        }
    }
}

/// The fields of the `tls` object on a server's client or a forwarded pair's legs.
const SERVER_TLS: &[&str] = &[
    "version",
    "suite",
    "group",
    "alpn",
    "resumed",
    "peer_certificates",
    "truncated",
];

#[test]
fn tls_on_the_servers_json_client_and_pair_objects() {
    // connect --tls -> forward --tls --to-tls -> echo --tls: TLS on each leg, and each
    // server's object says what its leg settled.
    let mut echo = util::Server::start(&["echo", "--tls", "--json", "127.0.0.1", "0"]);
    let eport = echo.port().to_string();
    let mut fwd = util::Server::start(&[
        "forward",
        "--tls",
        "--to-tls",
        "--insecure",
        "--json",
        "127.0.0.1",
        "0",
        "127.0.0.1",
        &eport,
    ]);
    let fport = fwd.port().to_string();
    let client = run(
        &["connect", "--tls", "--insecure", "127.0.0.1", &fport],
        b"through three TLS sessions",
        T,
    );
    assert_eq!(client.code(), Some(0), "{}", client.stderr);
    assert_eq!(client.stdout, b"through three TLS sessions");
    for s in [&mut echo, &mut fwd] {
        s.stderr
            .wait_for(T, |l| {
                l.contains("\"kind\":\"client\"") || l.contains("\"kind\":\"pair\"")
            })
            .unwrap();
    }
    let settled = |t: &Value, what: &str| {
        let t = t
            .as_object()
            .unwrap_or_else(|| panic!("{what}: no tls object: {t:?}"));
        keys_are(t, SERVER_TLS);
        assert_eq!(t["version"], "TLSv1.3", "{what}");
        assert!(
            t["suite"].is_string() && t["group"].is_string(),
            "{what}: {t:?}"
        );
        assert_eq!(t["truncated"], false, "{what}");
        t["peer_certificates"].as_array().unwrap().len()
    };
    let text = interrupt(&mut echo);
    let objs = json_lines(&text);
    let clients = of_kind(&objs, "client");
    assert_eq!(clients.len(), 1, "{text}");
    keys_are(clients[0], CLIENT);
    assert_eq!(clients[0]["received"], 26);
    assert_eq!(clients[0]["sent"], 26);
    // echo asked its client (the forwarder) for no certificate.
    assert_eq!(settled(&clients[0]["tls"], "echo's client"), 0);
    let text = interrupt(&mut fwd);
    let objs = json_lines(&text);
    let pairs = of_kind(&objs, "pair");
    assert_eq!(pairs.len(), 1, "{text}");
    let p = pairs[0];
    keys_are(p, &with(PAIR, &["undelivered", "client_tls", "target_tls"]));
    assert_eq!(p["up"], 26);
    assert_eq!(p["down"], 26);
    assert_eq!(settled(&p["client_tls"], "forward's client leg"), 0);
    // Toward the target the forwarder is the client: it saw echo's self-signed certificate.
    assert_eq!(settled(&p["target_tls"], "forward's target leg"), 1);
}
