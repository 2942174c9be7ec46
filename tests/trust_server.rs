//! Integration tests for the server-side items of issue 16 ([trust]): what a server does with
//! limits it is given (`--idle-timeout 0`, `--max-conns 0`), what its `listening on` line
//! promises, how it ends a client (one line, then a lingering close: the client reads the
//! line and EOF, never a reset), how the broker treats a client that never reads, and how
//! datagram services refuse to become reflectors. Each runs the real binary over loopback or
//! inside a network namespace of its own; every wait is bounded, every port is port 0.

mod util;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::ExitStatusExt;
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
    out.read_exact(&mut got)
        .expect("listen relays after a silence");
    assert_eq!(got, b"after a silence");
    assert!(
        server.child.try_status().is_none(),
        "{}",
        server.stderr.text()
    );
}

#[test]
fn max_conns_zero_is_a_usage_error_on_every_server() {
    for args in [
        &["echo", "--max-conns", "0", "127.0.0.1", "0"][..],
        &["knock", "--max-conns", "0", "127.0.0.1", "0"][..],
        &["listen", "--broker", "--max-conns", "0", "127.0.0.1", "0"][..],
        &[
            "forward",
            "--max-conns",
            "0",
            "127.0.0.1",
            "0",
            "127.0.0.1",
            "9",
        ][..],
    ] {
        let out = run(args, b"", WAIT);
        assert_eq!(out.code(), Some(2), "{args:?}: {}", out.stderr);
        assert!(
            out.stderr.contains("--max-conns 0"),
            "{args:?}: {}",
            out.stderr
        );
        assert!(
            out.stderr.contains("refuse everyone"),
            "{args:?}: {}",
            out.stderr
        );
        assert!(
            !out.stderr.contains("listening on"),
            "{args:?}: {}",
            out.stderr
        );
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
    let line = echo
        .stderr
        .wait_for(WAIT, |l| l.contains("accepted"))
        .unwrap();
    assert!(
        line.contains(&format!("accepted {me} on {to_echo}")),
        "{line}"
    );
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
    assert_eq!(
        answered,
        Some((0, server.addr)),
        "an empty datagram comes back empty"
    );

    let port = server.port().to_string();
    let out = run(&["connect", "-z", "-u", "127.0.0.1", &port], b"", WAIT);
    assert_eq!(out.code(), Some(0), "{}{}", out.stdout_text(), out.stderr);
    let line = out.stdout_text();
    assert!(
        line.contains("open") && !line.contains("open|filtered"),
        "{line}"
    );
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

// ---------------------------------------------------------------------------------------
// Item 1: a datagram server cannot be made a reflector or one end of a loop

/// Sends one UDP datagram to 127.0.0.1:`to` that claims to come from 127.0.0.1:`from`,
/// through a raw socket (the kernel adds the IP header; a UDP checksum of 0 means none).
fn spoofed_udp(from: u16, to: u16, payload: &[u8]) {
    let raw = socket2::Socket::new(
        socket2::Domain::IPV4,
        socket2::Type::RAW,
        Some(socket2::Protocol::UDP),
    )
    .expect("a raw socket (we are root in our own namespace)");
    let mut d = Vec::with_capacity(8 + payload.len());
    d.extend_from_slice(&from.to_be_bytes());
    d.extend_from_slice(&to.to_be_bytes());
    d.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    d.extend_from_slice(&[0, 0]);
    d.extend_from_slice(payload);
    let dst: SocketAddr = format!("127.0.0.1:{to}").parse().unwrap();
    raw.send_to(&d, &dst.into())
        .expect("sending the forged datagram");
}

/// SIGINT to a server, then everything it said (its totals line last).
fn stop(server: &mut Server) -> String {
    // SAFETY: kill() on our own child's PID.
    unsafe { libc::kill(server.child.id() as i32, libc::SIGINT) };
    let status = server.child.status_within(WAIT, "the server after SIGINT");
    // Every subcommand ends by the signal that stopped it (EXIT STATUS).
    assert_eq!(status.signal(), Some(libc::SIGINT), "{status:?}");
    server.stderr.finish(WAIT)
}

/// N from a datagram server's `answered N datagram(s)` totals line.
fn answered(log: &str) -> u64 {
    let at = log
        .find("answered ")
        .unwrap_or_else(|| panic!("no totals in:\n{log}"));
    log[at + "answered ".len()..]
        .split(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count in:\n{log}"))
}

#[test]
fn udp_echo_does_not_answer_its_own_port_or_a_service_port() {
    in_netns(|| {
        let mut echo = Server::start(&["echo", "-u", "-v", "127.0.0.1", "0"]);
        let port = echo.port();
        // "From" the server itself: answered, it would answer its own answer forever.
        spoofed_udp(port, port, b"loop");
        let line = echo
            .stderr
            .wait_for(WAIT, |l| l.contains("not answering"))
            .unwrap();
        assert!(
            line.contains(&format!("127.0.0.1:{port}")) && line.contains("own port"),
            "{line}"
        );
        // From chargen's port: the old echo/chargen loop.
        spoofed_udp(19, port, b"loop");
        let line = echo
            .stderr
            .wait_for(WAIT, |l| l.contains("not answering"))
            .unwrap();
        assert!(line.contains("port 19 (chargen)"), "{line}");
        // A client from an ephemeral port is answered as ever.
        let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(WAIT)).unwrap();
        sock.send_to(b"hello", echo.addr).unwrap();
        let mut buf = [0u8; 16];
        let (n, _) = sock.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"hello");
        let log = stop(&mut echo);
        assert_eq!(answered(&log), 1, "{log}");
        assert!(log.contains("2 not answered to stop a loop"), "{log}");
    });
}

#[test]
fn two_udp_echo_servers_aimed_at_each_other_stop_within_a_burst() {
    in_netns(|| {
        let mut a = Server::start(&["echo", "-u", "-v", "127.0.0.1", "0"]);
        let mut b = Server::start(&["echo", "-u", "-v", "127.0.0.1", "0"]);
        // One forged datagram from A to B: each answers the other's answer.
        let started = std::time::Instant::now();
        spoofed_udp(a.port(), b.port(), b"ping-pong");
        // The first server to hold a reply back ends the exchange: there is one datagram
        // in flight, and it is gone.
        let held = |s: &Server| s.stderr.text().contains("replies a second to one address");
        let deadline = started + WAIT;
        while !held(&a) && !held(&b) {
            assert!(
                std::time::Instant::now() < deadline,
                "neither server held a reply back:\n{}",
                a.stderr.text()
            );
            thread::sleep(Duration::from_millis(20));
        }
        // No longer than this did the exchange last (we saw its end only now).
        let lasted = started.elapsed();
        // Once over, it stays over: nothing more is answered after a pause.
        thread::sleep(Duration::from_millis(300));
        let (log_a, log_b) = (stop(&mut a), stop(&mut b));
        let (na, nb) = (answered(&log_a), answered(&log_b));
        // Each answered at most its burst (256) plus what its rate (256 a second) refilled
        // while the exchange lasted, and a few for our polling. The refill is counted from
        // the time measured, not assumed: on a loaded machine 512 hops take hundreds of ms,
        // and a fixed 300 failed there. Still caught: no limit (tens of thousands a second,
        // and no "held" line at all), or an exchange that goes on after the hold (the pause
        // above alone refills 77 at the rate, past the slack).
        let most = 256 + (256.0 * lasted.as_secs_f64()).ceil() as u64 + 16;
        assert!(
            na <= most && nb <= most,
            "A answered {na}, B {nb}, more than {most} in the {lasted:?} the exchange \
             lasted:\n{log_a}\n{log_b}"
        );
        assert!(na + nb >= 256, "the exchange did run: A {na}, B {nb}");
    });
}

// ---------------------------------------------------------------------------------------
// Item 7: a client the server ends is told why (where the protocol has lines), then EOF

/// Everything the server sent until it closed, which must be an orderly close, not a reset.
fn told_then_eof(c: &mut TcpStream) -> String {
    let mut all = Vec::new();
    if let Err(e) = c.read_to_end(&mut all) {
        panic!(
            "the close was not orderly: {e} (got {:?})",
            String::from_utf8_lossy(&all)
        );
    }
    String::from_utf8(all).unwrap()
}

#[test]
fn chat_tells_an_idle_client_and_one_over_max_conns_why_then_eof() {
    let server = Server::start(&[
        "listen",
        "--chat",
        "--idle-timeout",
        "300ms",
        "--max-conns",
        "1",
        "127.0.0.1",
        "0",
    ]);
    let mut quiet = connect(server.addr);
    let mut full = connect(server.addr);
    assert_eq!(
        told_then_eof(&mut full),
        "* sorry, the chat is full (1 here, --max-conns 1)\n"
    );
    let said = told_then_eof(&mut quiet);
    assert!(said.starts_with("* welcome, you are 127.0.0.1:"), "{said}");
    assert!(
        said.ends_with("* closing: you were quiet for 300ms (--idle-timeout)\n"),
        "{said}"
    );
}

// ---------------------------------------------------------------------------------------
// Item 3: one client that never reads does not stall the broker

#[test]
fn a_client_that_never_reads_does_not_hold_up_a_to_b_and_is_dropped_with_its_reason() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    const N: u64 = 4 << 20;
    // A fixed server send buffer per client, so the non-reader fills up soon.
    let mut srv = Server::start(&[
        "listen",
        "--broker",
        "-v",
        "-o",
        "sndbuf=64K",
        "127.0.0.1",
        "0",
    ]);
    let mut accepted = |c: &TcpStream| {
        let me = c.local_addr().unwrap();
        srv.stderr
            .wait_for(WAIT, |l| l.contains(&format!("accepted {me}")))
            .unwrap();
    };
    let mut b = connect(srv.addr);
    accepted(&b);
    // The non-reader: a small receive buffer, and it never calls read().
    let lazy = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    lazy.set_recv_buffer_size(4096).unwrap();
    lazy.connect(&loopback_for(srv.addr).into()).unwrap();
    let lazy: TcpStream = lazy.into();
    accepted(&lazy);
    let mut a = connect(srv.addr);
    accepted(&a);

    let got = Arc::new(AtomicU64::new(0));
    let counted = Arc::clone(&got);
    thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        while let Ok(k) = b.read(&mut buf) {
            if k == 0 {
                break;
            }
            assert!(buf[..k].iter().all(|&x| x == b'z'), "foreign bytes");
            counted.fetch_add(k as u64, Ordering::SeqCst);
        }
    });
    thread::spawn(move || {
        let chunk = vec![b'z'; 64 * 1024];
        for _ in 0..N / chunk.len() as u64 {
            if a.write_all(&chunk).is_err() {
                break;
            }
        }
        a
    });
    // B gets everything (bounded wait): the non-reader is dropped and the senders go on.
    let t0 = std::time::Instant::now();
    while got.load(Ordering::SeqCst) < N && t0.elapsed() < WAIT {
        thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(
        got.load(Ordering::SeqCst),
        N,
        "B got {} of {N} bytes within {WAIT:?}:\n{}",
        got.load(Ordering::SeqCst),
        srv.stderr.text()
    );
    let me = lazy.local_addr().unwrap();
    let line = srv
        .stderr
        .wait_seen(WAIT, |l| l.contains(&format!("dropped {me}: not reading")))
        .unwrap();
    assert!(
        line.contains("waiting to be sent to it, none taken for"),
        "{line}"
    );
    // How long the non-reader held every sender, as the server measured it. The old rule
    // held them until it had taken nothing for 2 s (checked once a second), so it said 2 s
    // or more; now it goes half a second after it stops taking anything (a quarter more at
    // most, the check's step). This reads the server's own figure rather than timing B's
    // 4 MiB here, which on a loaded machine took longer than any bound that told the two
    // rules apart.
    let stalled = line
        .rsplit("none taken for ")
        .next()
        .and_then(parse_short)
        .unwrap_or_else(|| panic!("no duration in {line:?}"));
    assert!(
        stalled >= Duration::from_millis(500) && stalled < Duration::from_millis(1500),
        "the non-reader held the others for {stalled:?}: {line}"
    );
}

/// A duration as `narrate::short` writes it: `512.3ms`, `2.01s` (what the server's lines
/// say), or `None`.
fn parse_short(text: &str) -> Option<Duration> {
    let text = text.split_whitespace().next()?;
    if let Some(ms) = text.strip_suffix("ms") {
        return Some(Duration::from_secs_f64(ms.parse::<f64>().ok()? / 1000.0));
    }
    Some(Duration::from_secs_f64(
        text.strip_suffix('s')?.parse().ok()?,
    ))
}

#[test]
fn forward_u_opens_no_flow_for_its_own_port_or_a_service_port() {
    // The sibling of echo's loop: a forged datagram "from" the forwarder's own port would
    // open a flow whose replies the forwarder sends to itself, forever.
    in_netns(|| {
        let target = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let tport = target.local_addr().unwrap().port().to_string();
        let mut fwd =
            Server::start(&["forward", "-u", "-v", "127.0.0.1", "0", "127.0.0.1", &tport]);
        let port = fwd.port();
        spoofed_udp(port, port, b"loop");
        let line = fwd
            .stderr
            .wait_for(WAIT, |l| l.contains("refused"))
            .unwrap();
        assert!(line.contains("own port"), "{line}");
        // From chargen's port (refusal lines are at most one a second: the totals count it).
        spoofed_udp(19, port, b"loop");
        // A client from an ephemeral port is forwarded as ever, and is all the target sees.
        let client = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        client.send_to(b"hello", fwd.addr).unwrap();
        target.set_read_timeout(Some(WAIT)).unwrap();
        let mut buf = [0u8; 64];
        let (n, _) = target.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"hello", "a refused datagram reached the target");
        let log = stop(&mut fwd);
        assert!(
            log.contains("forwarded 1 client (2 datagrams refused"),
            "{log}"
        );
    });
}
