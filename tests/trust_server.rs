//! Integration tests for the server-side items of issue 16 ([trust]): what a server does with
//! limits it is given (`--idle-timeout 0`, `--max-conns 0`), what its `listening on` line
//! promises, how it ends a client (one line, then a lingering close: the client reads the
//! line and EOF, never a reset), how the broker treats a client that never reads, and how
//! datagram services refuse to become reflectors. Each runs the real binary over loopback or
//! inside a network namespace of its own; every wait is bounded, every port is port 0.

mod util;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::thread;
use std::time::Duration;

use util::*;

/// The bound on one step of a test (shared machine: generous, yet a hang fails).
const WAIT: Duration = Duration::from_secs(20);

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect_timeout(&loopback_for(addr), WAIT).expect("connect to sockkit");
    s.set_read_timeout(Some(WAIT)).unwrap();
    s.set_write_timeout(Some(WAIT)).unwrap();
    s
}

// ---------------------------------------------------------------------------------------
// Item 14: --idle-timeout 0 is off everywhere; --max-conns 0 is refused

#[test]
fn connect_idle_timeout_zero_means_no_limit() {
    let (addr, server) = serve_once(|mut s| {
        // Silent for a while, then a word and goodbye.
        thread::sleep(Duration::from_millis(700));
        s.write_all(b"late but here").unwrap();
        drop(s);
    });
    let out = run(
        &[
            "connect",
            "--idle-timeout",
            "0",
            "127.0.0.1",
            &addr.port().to_string(),
        ],
        b"",
        WAIT,
    );
    join_timeout(server, WAIT, "server");
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    assert_eq!(out.stdout_text(), "late but here");
}

#[test]
fn listen_idle_timeout_zero_means_no_limit() {
    let mut server = Server::start(&["listen", "--idle-timeout", "0", "127.0.0.1", "0"]);
    let mut out = server.child.stdout();
    let mut c = connect(server.addr);
    thread::sleep(Duration::from_millis(700));
    c.write_all(b"after a silence").unwrap();
    let mut got = vec![0u8; b"after a silence".len()];
    out.read_exact(&mut got).expect("listen relays after a silence");
    assert_eq!(got, b"after a silence");
    assert!(server.child.try_status().is_none(), "{}", server.stderr.text());
}

#[test]
fn max_conns_zero_is_a_usage_error_on_every_server() {
    for args in [
        &["echo", "--max-conns", "0", "127.0.0.1", "0"][..],
        &["knock", "--max-conns", "0", "127.0.0.1", "0"][..],
        &["listen", "--broker", "--max-conns", "0", "127.0.0.1", "0"][..],
    ] {
        let out = run(args, b"", WAIT);
        assert_eq!(out.code(), Some(2), "{args:?}: {}", out.stderr);
        assert!(out.stderr.contains("--max-conns 0"), "{args:?}: {}", out.stderr);
        assert!(out.stderr.contains("refuse everyone"), "{args:?}: {}", out.stderr);
        assert!(!out.stderr.contains("listening on"), "{args:?}: {}", out.stderr);
    }
}

// ---------------------------------------------------------------------------------------
// Item 15: one address form everywhere

#[test]
fn listen_names_an_ipv4_client_of_a_dual_stack_socket_as_echo_does() {
    let mut server = Server::start(&["listen", "-v", "0"]);
    if !server.addr.is_ipv6() {
        eprintln!("SKIPPED: no IPv6 here, listen fell back to {}", server.addr);
        return;
    }
    let to: SocketAddr = format!("127.0.0.1:{}", server.port()).parse().unwrap();
    let c = TcpStream::connect_timeout(&to, WAIT).unwrap();
    let me = c.local_addr().unwrap();
    let line = server
        .stderr
        .wait_for(WAIT, |l| l.contains("accepted"))
        .unwrap();
    assert!(
        line.contains(&format!("accepted {me} on {to}")),
        "{line} (want {me} on {to})"
    );
    assert!(!line.contains("::ffff:"), "{line}");

    let mut echo = Server::start(&["echo", "-v", "0"]);
    let to_echo: SocketAddr = format!("127.0.0.1:{}", echo.port()).parse().unwrap();
    let c = TcpStream::connect_timeout(&to_echo, WAIT).unwrap();
    let me = c.local_addr().unwrap();
    let line = echo.stderr.wait_for(WAIT, |l| l.contains("accepted")).unwrap();
    assert!(line.contains(&format!("accepted {me} on {to_echo}")), "{line}");
}

// ---------------------------------------------------------------------------------------
// Item 11: echo -u answers an empty datagram

#[test]
fn udp_echo_answers_an_empty_datagram_and_the_udp_port_check_sees_it_open() {
    let server = Server::start(&["echo", "-u", "127.0.0.1", "0"]);
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut buf = [0u8; 16];
    let mut answered = None;
    // UDP may drop; on loopback it does not, but retry a couple of times all the same.
    for _ in 0..3 {
        sock.send_to(b"", server.addr).unwrap();
        if let Ok(got) = sock.recv_from(&mut buf) {
            answered = Some(got);
            break;
        }
    }
    assert_eq!(answered, Some((0, server.addr)), "an empty datagram comes back empty");

    let port = server.port().to_string();
    let out = run(&["connect", "-z", "-u", "127.0.0.1", &port], b"", WAIT);
    assert_eq!(out.code(), Some(0), "{}{}", out.stdout_text(), out.stderr);
    let line = out.stdout_text();
    assert!(line.contains("open") && !line.contains("open|filtered"), "{line}");
}

// ---------------------------------------------------------------------------------------
// Item 4: the `listening on` line says who can reach the port

#[test]
fn the_listening_line_says_whether_other_machines_can_reach_the_port() {
    for (args, reach) in [
        (&["echo", "0"][..], "reachable from other machines"),
        (&["echo", "-u", "0"][..], "reachable from other machines"),
        (&["knock", "0"][..], "reachable from other machines"),
        (&["listen", "0"][..], "reachable from other machines"),
        (&["echo", "127.0.0.1", "0"][..], "this machine only"),
        (&["listen", "-u", "127.0.0.1", "0"][..], "this machine only"),
    ] {
        let mut server = Server::start(args);
        let line = server
            .stderr
            .wait_seen(WAIT, |l| l.contains("listening on"))
            .unwrap();
        assert!(line.ends_with(reach), "{args:?}: {line}");
    }
}
