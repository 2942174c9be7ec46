//! `connect -z --json`: one JSON object per port on stdout, every field parsed (by serde_json,
//! a real parser, so the escaping and the types are what any script's parser will see) and
//! checked against what the ports really are: a listener (open), a freed port (closed), a
//! silent UDP socket (open_filtered).

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

#[test]
fn json_without_a_port_check_is_refused() {
    let out = run(&["connect", "--json", "127.0.0.1", "1"], b"", T);
    assert_eq!(out.code(), Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("--scan"), "{}", out.stderr);
    assert!(out.stdout.is_empty());
}
