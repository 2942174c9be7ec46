//! `--json`: on `connect -z` one JSON object per port on stdout, on a relay session one
//! summary object on stderr, every field parsed (by serde_json,
//! a real parser, so the escaping and the types are what any script's parser will see) and
//! checked against what the ports really are: a listener (open), a freed port (closed), a
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
    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
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
    assert_eq!(o["local"], p);
    assert!(o["peer"].is_null(), "an unnamed Unix client: {o:?}");
    assert_eq!(o["received"], 5);
    assert_eq!(o["sent"], 0);
    assert!(o["tcp_info"].is_null());
}

#[test]
fn json_is_refused_where_there_is_no_summary() {
    for args in [
        &["connect", "--json", "-u", "127.0.0.1", "9"][..],
        &["listen", "--json", "--broker", "0"][..],
    ] {
        let out = run(args, b"", T);
        assert_eq!(out.code(), Some(2), "{args:?}: {}", out.stderr);
        assert!(out.stderr.starts_with("sockkit: --json"), "{}", out.stderr);
    }
}
