//! `sockkit forward` driven as a user would: the real binary on loopback, port 0, every wait
//! bounded, with targets written here (so they can half-close, reset or refuse on cue),
//! `sockkit echo`, and python3's HTTP server reached by curl. Covers bytes each way at once,
//! half-close, resets passed on, unreachable targets, many pairs, Unix on either side, the
//! limits, narration and bad input.

mod util;

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;
use std::thread;
use std::time::{Duration, Instant};

use util::{T, TempDir, assert_bytes_eq, peer_or_skip, random_bytes, run, run_cmd, sockkit};

/// `sockkit forward ARGS` started and announced; killed when dropped.
fn forward(args: &[&str]) -> util::Server {
    let mut cmd = sockkit(&[&["forward"], args].concat());
    cmd.stdin(Stdio::null()).stdout(Stdio::null());
    util::Server::start_with(&mut cmd)
}

/// `sockkit echo` on a free loopback port (the target most tests forward to).
fn echo() -> util::Server {
    let mut cmd = sockkit(&["echo", "--idle-timeout", "0", "127.0.0.1", "0"]);
    cmd.stdin(Stdio::null()).stdout(Stdio::null());
    util::Server::start_with(&mut cmd)
}

fn dial(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect_timeout(&addr, T).expect("connecting to forward");
    s.set_read_timeout(Some(T)).unwrap();
    s.set_write_timeout(Some(T)).unwrap();
    s
}

/// A one-shot target written here: accepts one connection and runs `serve` on it.
fn target(serve: impl FnOnce(TcpStream) + Send + 'static) -> (SocketAddr, thread::JoinHandle<()>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let h = thread::spawn(move || {
        let (s, _) = l.accept().unwrap();
        s.set_read_timeout(Some(T)).unwrap();
        serve(s);
    });
    (addr, h)
}

/// A loopback port nothing listens on (bound, then let go).
fn dead_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Writes all of `data`, then shuts the sending side, on a thread of its own.
fn send_then_fin(mut s: TcpStream, data: Vec<u8>) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        s.write_all(&data).unwrap();
        s.shutdown(Shutdown::Write).unwrap();
    })
}

#[test]
fn sixty_four_mib_each_way_at_once_arrive_byte_exact() {
    const N: usize = 64 << 20;
    let (up, down) = (random_bytes(1, N), random_bytes(2, N));
    let (want_up, down2) = (up.clone(), down.clone());
    let (taddr, th) = target(move |s| {
        let w = send_then_fin(s.try_clone().unwrap(), down2);
        let mut got = Vec::with_capacity(N);
        (&s).read_to_end(&mut got).unwrap();
        w.join().unwrap();
        assert_bytes_eq(&got, &want_up, "client -> target");
    });
    let fwd = forward(&["127.0.0.1", "0", "127.0.0.1", &taddr.port().to_string()]);
    let c = dial(fwd.loopback());
    let w = send_then_fin(c.try_clone().unwrap(), up);
    let mut got = Vec::with_capacity(N);
    (&c).read_to_end(&mut got).unwrap();
    w.join().unwrap();
    th.join().unwrap();
    assert_bytes_eq(&got, &down, "target -> client");
}

#[test]
fn request_response_with_half_close_gets_the_whole_reply_and_both_exit_0() {
    // The target answers only after the request's EOF, which forward must pass on.
    let (taddr, th) = target(|mut s| {
        let mut req = Vec::new();
        s.read_to_end(&mut req).unwrap();
        let reply = format!("got {} bytes: {}", req.len(), String::from_utf8_lossy(&req));
        s.write_all(reply.as_bytes()).unwrap();
    });
    let fwd = forward(&["127.0.0.1", "0", "127.0.0.1", &taddr.port().to_string()]);
    let port = fwd.port().to_string();
    let out = run(&["connect", "127.0.0.1", &port], b"hello there", T);
    th.join().unwrap();
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    assert_eq!(out.stdout_text(), "got 11 bytes: hello there");
}

#[test]
fn a_target_that_resets_mid_stream_resets_the_client() {
    let (taddr, th) = target(|mut s| {
        s.write_all(&[7u8; 1000]).unwrap();
        thread::sleep(Duration::from_millis(100));
        socket2::SockRef::from(&s)
            .set_linger(Some(Duration::ZERO))
            .unwrap();
    });
    let mut fwd = forward(&[
        "-v",
        "127.0.0.1",
        "0",
        "127.0.0.1",
        &taddr.port().to_string(),
    ]);
    let mut c = dial(fwd.loopback());
    th.join().unwrap();
    let mut got = Vec::new();
    let e = c.read_to_end(&mut got).expect_err("a reset, not an EOF");
    assert_eq!(e.kind(), ErrorKind::ConnectionReset, "{e}");
    assert_eq!(got.len(), 1000, "the bytes before the reset arrive");
    let line = fwd.stderr.wait_for(T, |l| l.contains("pair ")).unwrap();
    assert!(line.contains("reset: the target"), "{line}");
}

#[test]
fn a_refused_target_resets_the_client_at_once_and_says_why() {
    let held = util::ClosedPort::new();
    let port = held.port().to_string();
    let mut fwd = forward(&["127.0.0.1", "0", "127.0.0.1", &port]);
    let mut c = dial(fwd.loopback());
    let t0 = Instant::now();
    let mut buf = [0u8; 16];
    let e = c.read(&mut buf).expect_err("a reset");
    assert_eq!(e.kind(), ErrorKind::ConnectionReset, "{e}");
    assert!(t0.elapsed() < T, "the client did not wait for a timeout");
    let line = fwd
        .stderr
        .wait_for(T, |l| l.contains("target unreachable"))
        .unwrap();
    assert!(line.contains("refused") && line.contains(&port), "{line}");
}

#[test]
fn two_hundred_pairs_at_once_are_byte_exact() {
    let target = echo();
    let fwd = forward(&[
        "--max-conns",
        "1000",
        "127.0.0.1",
        "0",
        "127.0.0.1",
        &target.port().to_string(),
    ]);
    let addr = fwd.loopback();
    let clients: Vec<_> = (0..200)
        .map(|i| {
            thread::spawn(move || {
                let data = random_bytes(100 + i, 64 * 1024 + i as usize);
                let c = dial(addr);
                let w = send_then_fin(c.try_clone().unwrap(), data.clone());
                let mut got = Vec::new();
                (&c).read_to_end(&mut got).unwrap();
                w.join().unwrap();
                assert_bytes_eq(&got, &data, &format!("pair {i}"));
            })
        })
        .collect();
    for c in clients {
        c.join().unwrap();
    }
}

#[test]
fn a_unix_client_reaches_a_tcp_target_and_a_tcp_client_a_unix_target() {
    let dir = TempDir::new("fwd-unix");
    // Unix -> TCP.
    let tcp_echo = echo();
    let front = dir.path("front.sock");
    let mut cmd = sockkit(&[
        "forward",
        "-U",
        front.to_str().unwrap(),
        "127.0.0.1",
        &tcp_echo.port().to_string(),
    ]);
    cmd.stdin(Stdio::null()).stdout(Stdio::null());
    let mut unix_fwd = util::ChildGuard::spawn(cmd.stderr(Stdio::piped()));
    let mut tap = util::LineTap::new(unix_fwd.stderr());
    tap.wait_for(T, |l| l.contains("listening on")).unwrap();
    let mut u = UnixStream::connect(&front).unwrap();
    u.set_read_timeout(Some(T)).unwrap();
    u.write_all(b"over unix\n").unwrap();
    u.shutdown(Shutdown::Write).unwrap();
    let mut got = String::new();
    u.read_to_string(&mut got).unwrap();
    assert_eq!(got, "over unix\n");

    // TCP -> Unix: an echo on a Unix socket, exposed over TCP.
    let back = dir.path("back.sock");
    let mut cmd = sockkit(&["echo", "-U", back.to_str().unwrap()]);
    cmd.stdin(Stdio::null()).stdout(Stdio::null());
    let mut unix_echo = util::ChildGuard::spawn(cmd.stderr(Stdio::piped()));
    let mut tap = util::LineTap::new(unix_echo.stderr());
    tap.wait_for(T, |l| l.contains("listening on")).unwrap();
    let tcp_fwd = forward(&["127.0.0.1", "0", "--to-unix", back.to_str().unwrap()]);
    let c = dial(tcp_fwd.loopback());
    let w = send_then_fin(c.try_clone().unwrap(), b"over tcp\n".to_vec());
    let mut got = String::new();
    (&c).read_to_string(&mut got).unwrap();
    w.join().unwrap();
    assert_eq!(got, "over tcp\n");
}

#[test]
fn curl_through_forward_to_python_http_server() {
    let Some(curl) = peer_or_skip("curl") else {
        return;
    };
    let Some(python) = peer_or_skip("python3") else {
        return;
    };
    let dir = TempDir::new("fwd-http");
    let body = "forwarded over HTTP\n".repeat(5000);
    dir.file("page.txt", &body);
    let mut cmd = std::process::Command::new(python);
    cmd.args(["-u", "-m", "http.server", "--bind", "127.0.0.1", "0"])
        .current_dir(dir.root())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut http = util::ChildGuard::spawn(&mut cmd);
    let mut tap = util::LineTap::new(http.stdout());
    let line = tap.wait_for(T, |l| l.contains("port ")).unwrap();
    let port = line
        .split("port ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .expect("python's `Serving HTTP on ... port N` line")
        .to_string();
    let fwd = forward(&["127.0.0.1", "0", "127.0.0.1", &port]);
    let url = format!("http://127.0.0.1:{}/page.txt", fwd.port());
    let out = run_cmd(
        std::process::Command::new(curl).args(["-sS", "--max-time", "20", &url]),
        b"",
        T,
    );
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    assert_eq!(out.stdout_text(), body);
}

#[test]
fn clients_over_max_conns_or_denied_are_refused_and_logged() {
    let target = echo();
    let tport = target.port().to_string();
    let mut fwd = forward(&["--max-conns", "1", "127.0.0.1", "0", "127.0.0.1", &tport]);
    let mut first = dial(fwd.loopback());
    first.write_all(b"a").unwrap();
    let mut b = [0u8; 1];
    first.read_exact(&mut b).unwrap();
    let mut second = dial(fwd.loopback());
    let mut rest = Vec::new();
    let _ = second.read_to_end(&mut rest);
    assert!(rest.is_empty(), "a refused client gets nothing");
    let line = fwd.stderr.wait_for(T, |l| l.contains("refused")).unwrap();
    assert!(line.contains("--max-conns 1 reached"), "{line}");

    let mut denied = forward(&[
        "--deny",
        "127.0.0.0/8",
        "127.0.0.1",
        "0",
        "127.0.0.1",
        &tport,
    ]);
    let mut c = dial(denied.loopback());
    let mut rest = Vec::new();
    let _ = c.read_to_end(&mut rest);
    assert!(rest.is_empty());
    let line = denied
        .stderr
        .wait_for(T, |l| l.contains("refused"))
        .unwrap();
    assert!(line.contains("--deny 127.0.0.0/8"), "{line}");
}

#[test]
fn an_idle_pair_is_closed_after_idle_timeout() {
    let target = echo();
    let mut fwd = forward(&[
        "-v",
        "--idle-timeout",
        "300ms",
        "127.0.0.1",
        "0",
        "127.0.0.1",
        &target.port().to_string(),
    ]);
    let mut c = dial(fwd.loopback());
    let mut rest = Vec::new();
    c.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty());
    let line = fwd.stderr.wait_for(T, |l| l.contains("pair ")).unwrap();
    assert!(line.contains("--idle-timeout"), "{line}");
}

#[test]
fn vv_narrates_both_legs_and_v_names_all_four_addresses() {
    let target = echo();
    let tport = target.port().to_string();
    let mut fwd = forward(&["-vv", "127.0.0.1", "0", "127.0.0.1", &tport]);
    let c = dial(fwd.loopback());
    let client_addr = c.local_addr().unwrap().to_string();
    let w = send_then_fin(c.try_clone().unwrap(), b"ping".to_vec());
    let mut got = Vec::new();
    (&c).read_to_end(&mut got).unwrap();
    w.join().unwrap();
    assert_eq!(got, b"ping");
    let line = fwd.stderr.wait_for(T, |l| l.contains("pair ")).unwrap();
    assert!(line.contains(&client_addr), "{line}");
    assert!(
        line.contains(&format!("127.0.0.1:{}", fwd.port())),
        "{line}"
    );
    assert!(line.contains(&format!("-> 127.0.0.1:{tport}")), "{line}");
    assert!(line.contains("4 B to the target, 4 B back"), "{line}");
    for call in [
        "accept4(fd",
        &format!("{tport}) = -1 EINPROGRESS"),
        "completed -> ESTABLISHED",
        "SHUT_WR",
        "close(fd",
    ] {
        fwd.stderr.wait_seen(T, |l| l.contains(call)).unwrap();
    }
    let said = fwd.stderr.text();
    assert_eq!(
        said.matches("SHUT_WR").count(),
        2,
        "a FIN passed on each way:\n{said}"
    );
}

#[test]
fn vvv_narrates_every_splice_of_both_directions() {
    // -vv shows each distinct data call's first few and then sums; -vvv shows every one, so
    // the 4 bytes can be followed into each direction's pipe and out, and each FIN read.
    let target = echo();
    let tport = target.port().to_string();
    let mut fwd = forward(&["-vvv", "127.0.0.1", "0", "127.0.0.1", &tport]);
    let c = dial(fwd.loopback());
    let me = c.local_addr().unwrap().to_string();
    let w = send_then_fin(c.try_clone().unwrap(), b"ping".to_vec());
    let mut got = Vec::new();
    (&c).read_to_end(&mut got).unwrap();
    w.join().unwrap();
    assert_eq!(got, b"ping");
    fwd.stderr.wait_for(T, |l| l.contains("pair ")).unwrap();
    let said = fwd.stderr.text();
    for label in [
        format!("client {me} -> target"),
        format!("client {me} <- target"),
    ] {
        let ours = |l: &&str| l.contains("splice(fd") && l.ends_with(&format!("({label})"));
        let moved = said
            .lines()
            .filter(ours)
            .filter(|l| l.contains(") = 4 "))
            .count();
        assert_eq!(moved, 2, "{label}: into the pipe and out:\n{said}");
        assert!(
            said.lines().filter(ours).any(|l| l.contains(") = 0 ")),
            "{label}: the FIN read as a splice of 0:\n{said}"
        );
    }
}

#[test]
fn x_labels_each_direction_of_a_pair() {
    let target = echo();
    let tport = target.port().to_string();
    let mut fwd = forward(&["-x", "127.0.0.1", "0", "127.0.0.1", &tport]);
    let c = dial(fwd.loopback());
    let me = c.local_addr().unwrap().to_string();
    let w = send_then_fin(c.try_clone().unwrap(), b"hex me".to_vec());
    let mut got = Vec::new();
    (&c).read_to_end(&mut got).unwrap();
    w.join().unwrap();
    assert_eq!(got, b"hex me");
    let to = format!("> {me} to 127.0.0.1:{tport}: 6 bytes");
    let back = format!("< 127.0.0.1:{tport} to {me}: 6 bytes");
    fwd.stderr.wait_seen(T, |l| l == to).unwrap();
    fwd.stderr.wait_seen(T, |l| l == back).unwrap();
    assert!(fwd.stderr.text().contains("|hex me|"));
}

#[test]
fn bad_targets_are_refused_before_listening() {
    let out = run(&["forward", "0", "no-such-host.invalid", "80"], b"", T);
    assert_ne!(out.code(), Some(0));
    assert!(!out.stderr.contains("listening on"), "{}", out.stderr);
    assert!(out.stderr.starts_with("sockkit: ") && out.stderr.contains("no-such-host.invalid"));

    let out = run(&["forward", "0", "127.0.0.1", "0"], b"", T);
    assert_eq!(out.code(), Some(2), "{}", out.stderr);
    assert!(
        out.stderr.contains("port 0 cannot be connected to"),
        "{}",
        out.stderr
    );

    let port = dead_port().to_string();
    let out = run(&["forward", "127.0.0.1", &port, "127.0.0.1", &port], b"", T);
    assert_eq!(out.code(), Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("forwarded to itself"), "{}", out.stderr);
    let out = run(&["forward", &port, "localhost", &port], b"", T);
    assert_eq!(out.code(), Some(2), "{}", out.stderr);

    let out = run(&["forward", "0"], b"", T);
    assert_eq!(out.code(), Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("then HOST PORT"), "{}", out.stderr);
}

#[test]
fn sigterm_stops_gracefully_with_totals() {
    let target = echo();
    let mut fwd = forward(&[
        "-v",
        "127.0.0.1",
        "0",
        "127.0.0.1",
        &target.port().to_string(),
    ]);
    let c = dial(fwd.loopback());
    let w = send_then_fin(c.try_clone().unwrap(), vec![1u8; 5000]);
    let mut got = Vec::new();
    (&c).read_to_end(&mut got).unwrap();
    w.join().unwrap();
    fwd.stderr.wait_for(T, |l| l.contains("pair ")).unwrap();
    let pid = fwd.child.id().to_string();
    let k = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(k.success());
    let status = fwd.child.status_within(T, "forward after SIGTERM");
    // Every subcommand ends by the signal that stopped it (EXIT STATUS: 128 + 15 in a shell).
    assert_eq!(status.signal(), Some(libc::SIGTERM), "exit status {status}");
    let said = fwd.stderr.finish(T);
    assert!(
        said.contains("stopped on SIGTERM: forwarded 1 client")
            && said.contains("4.88 KiB to targets, 4.88 KiB back, 0 B undelivered"),
        "{said}"
    );
}

#[test]
fn udp_flows_keep_two_clients_apart_and_end_after_idle_timeout() {
    use std::net::UdpSocket;
    // The target says who sent each datagram: each client must see its own outbound socket.
    let target = UdpSocket::bind("127.0.0.1:0").unwrap();
    let tport = target.local_addr().unwrap().port().to_string();
    target.set_read_timeout(Some(T)).unwrap();
    let responder = thread::spawn(move || {
        let mut buf = [0u8; 1500];
        for _ in 0..3 {
            let (n, from) = target.recv_from(&mut buf).unwrap();
            let reply = format!("{from} sent {}", String::from_utf8_lossy(&buf[..n]));
            target.send_to(reply.as_bytes(), from).unwrap();
        }
    });
    let mut cmd = sockkit(&[
        "forward",
        "-u",
        "-v",
        "--idle-timeout",
        "300ms",
        "127.0.0.1",
        "0",
        "127.0.0.1",
        &tport,
    ]);
    cmd.stdin(Stdio::null()).stdout(Stdio::null());
    let mut fwd = util::Server::start_with(&mut cmd);
    let ask = |c: &UdpSocket, what: &str| -> String {
        c.send_to(what.as_bytes(), fwd.addr).unwrap();
        let mut buf = [0u8; 1500];
        let (n, from) = c.recv_from(&mut buf).unwrap();
        assert_eq!(
            from, fwd.addr,
            "replies come from the address the client sent to"
        );
        String::from_utf8_lossy(&buf[..n]).to_string()
    };
    let (a, b) = (
        UdpSocket::bind("127.0.0.1:0").unwrap(),
        UdpSocket::bind("127.0.0.1:0").unwrap(),
    );
    a.set_read_timeout(Some(T)).unwrap();
    b.set_read_timeout(Some(T)).unwrap();
    let ra = ask(&a, "alpha");
    let rb = ask(&b, "beta");
    assert!(
        ra.ends_with(" sent alpha") && rb.ends_with(" sent beta"),
        "{ra} / {rb}"
    );
    let (oa, ob) = (ra.split(' ').next().unwrap(), rb.split(' ').next().unwrap());
    assert_ne!(
        oa, ob,
        "each client address has an outbound socket of its own"
    );
    // After --idle-timeout the flow is gone; a new datagram opens a new one.
    fwd.stderr
        .wait_for(T, |l| l.contains("flow ") && l.contains("--idle-timeout"))
        .unwrap();
    let again = ask(&a, "alpha again");
    assert!(again.ends_with(" sent alpha again"), "{again}");
    responder.join().unwrap();
}

#[test]
fn options_that_cannot_apply_are_refused_with_why() {
    for (args, says) in [
        (
            &["forward", "-u", "-w", "1s", "0", "127.0.0.1", "9"][..],
            "-w",
        ),
        (
            &["forward", "-u", "--threads", "2", "0", "127.0.0.1", "9"],
            "--threads",
        ),
        (
            &["forward", "-u", "0", "--to-unix", "/tmp/x.sock"],
            "--to-unix",
        ),
    ] {
        let out = run(args, b"", T);
        assert_eq!(out.code(), Some(2), "{args:?}: {}", out.stderr);
        assert!(out.stderr.contains(says), "{args:?}: {}", out.stderr);
    }
}

#[test]
fn o_sets_the_listener_and_to_opt_the_outbound_sockets_and_show_opts_shows_both() {
    let target = echo();
    let tport = target.port().to_string();
    let mut fwd = forward(&[
        "--show-opts",
        "-o",
        "rcvbuf=128K",
        "--to-opt",
        "sndbuf=256K",
        "127.0.0.1",
        "0",
        "127.0.0.1",
        &tport,
    ]);
    let c = dial(fwd.loopback());
    let w = send_then_fin(c.try_clone().unwrap(), b"x".to_vec());
    let mut got = Vec::new();
    (&c).read_to_end(&mut got).unwrap();
    w.join().unwrap();
    assert_eq!(got, b"x");
    fwd.stderr
        .wait_for(T, |l| l.contains("outbound fd") && l.contains(&tport))
        .unwrap();
    let out_sndbuf = fwd
        .stderr
        .wait_for(T, |l| l.trim_start().starts_with("SO_SNDBUF"))
        .unwrap();
    assert!(out_sndbuf.contains("262144"), "{out_sndbuf}");
    let said = fwd.stderr.text();
    let listening = &said[..said.find("outbound fd").unwrap()];
    let rcv = listening
        .lines()
        .find(|l| l.trim_start().starts_with("SO_RCVBUF"))
        .unwrap();
    assert!(rcv.contains("131072"), "{rcv}");
    let snd = listening
        .lines()
        .find(|l| l.trim_start().starts_with("SO_SNDBUF"))
        .unwrap();
    assert!(
        !snd.contains("262144"),
        "--to-opt is not for the listener: {snd}"
    );
}

#[test]
fn a_target_that_does_not_answer_within_w_has_its_client_reset() {
    // A listener with a full accept queue drops new SYNs: connects to it hang, unanswered.
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    sock.bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
        .unwrap();
    sock.listen(0).unwrap();
    let taddr = sock.local_addr().unwrap().as_socket().unwrap();
    let _filler = TcpStream::connect_timeout(&taddr, T).unwrap();
    let mut fwd = forward(&[
        "-w",
        "300ms",
        "127.0.0.1",
        "0",
        "127.0.0.1",
        &taddr.port().to_string(),
    ]);
    let mut c = dial(fwd.loopback());
    let mut buf = [0u8; 1];
    let e = c.read(&mut buf).expect_err("a reset after -w");
    assert_eq!(e.kind(), ErrorKind::ConnectionReset, "{e}");
    let line = fwd
        .stderr
        .wait_for(T, |l| l.contains("target unreachable"))
        .unwrap();
    assert!(
        line.contains("timed out") || line.contains("did not answer"),
        "{line}"
    );
    drop(sock);
}

#[test]
fn udp_flows_over_max_conns_are_refused_and_logged() {
    use std::net::UdpSocket;
    let target = UdpSocket::bind("127.0.0.1:0").unwrap();
    let tport = target.local_addr().unwrap().port().to_string();
    let echoer = thread::spawn(move || {
        let mut buf = [0u8; 1500];
        let (n, from) = target.recv_from(&mut buf).unwrap();
        target.send_to(&buf[..n], from).unwrap();
    });
    let mut cmd = sockkit(&[
        "forward",
        "-u",
        "--max-conns",
        "1",
        "127.0.0.1",
        "0",
        "127.0.0.1",
        &tport,
    ]);
    cmd.stdin(Stdio::null()).stdout(Stdio::null());
    let mut fwd = util::Server::start_with(&mut cmd);
    let a = UdpSocket::bind("127.0.0.1:0").unwrap();
    a.set_read_timeout(Some(T)).unwrap();
    a.send_to(b"first", fwd.addr).unwrap();
    let mut buf = [0u8; 100];
    let (n, _) = a.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"first");
    echoer.join().unwrap();
    let b = UdpSocket::bind("127.0.0.1:0").unwrap();
    b.send_to(b"second", fwd.addr).unwrap();
    let who = b.local_addr().unwrap().to_string();
    let line = fwd.stderr.wait_for(T, |l| l.contains("refused")).unwrap();
    assert!(
        line.contains(&who) && line.contains("--max-conns 1 reached"),
        "{line}"
    );
}

#[test]
fn bytes_a_reset_strands_are_counted_and_said_without_v() {
    // The target reads nothing and resets: what forward holds for it then is lost, and said.
    let (taddr, th) = target(|s| {
        thread::sleep(Duration::from_millis(300));
        socket2::SockRef::from(&s)
            .set_linger(Some(Duration::ZERO))
            .unwrap();
    });
    let mut fwd = forward(&["127.0.0.1", "0", "127.0.0.1", &taddr.port().to_string()]);
    let c = dial(fwd.loopback());
    let mut w = c.try_clone().unwrap();
    let writer = thread::spawn(move || {
        let chunk = vec![9u8; 64 * 1024];
        // Until the reset reaches us: the error is the point, not a failure.
        while w.write_all(&chunk).is_ok() {}
    });
    th.join().unwrap();
    let line = fwd.stderr.wait_for(T, |l| l.contains("pair ")).unwrap();
    assert!(line.contains("reset: the target"), "{line}");
    assert!(
        line.contains(" undelivered") && !line.contains(" 0 B undelivered"),
        "{line}"
    );
    writer.join().unwrap();
}

/// Waits (bounded) until what waits in `s`'s receive queue stops growing (its sender stalled
/// on the full window): how much it is, peeked, so no room is freed and nothing more comes.
fn queued_once_stalled(s: &TcpStream) -> u64 {
    s.set_nonblocking(true).unwrap();
    let mut buf = vec![0u8; 8 << 20];
    let deadline = Instant::now() + T;
    let (mut last, mut same) = (usize::MAX, 0);
    while same < 10 {
        assert!(Instant::now() < deadline, "the sender never stalled");
        thread::sleep(Duration::from_millis(100));
        let n = match s.peek(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => 0,
            Err(e) => panic!("peek: {e}"),
        };
        if n == last && n > 0 {
            same += 1;
        } else {
            (last, same) = (n, 0);
        }
    }
    last as u64
}

#[test]
fn a_reset_counts_what_the_target_never_received_as_undelivered_to_the_byte() {
    // The target (a small receive buffer) reads nothing and resets once forward is stalled.
    // Its receive queue is what reached it; everything else the client got into the network
    // (in forward's receive queue, its pipe, its send queue) is undelivered, exactly.
    let l = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    l.set_recv_buffer_size(32 * 1024).unwrap();
    l.bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
        .unwrap();
    l.listen(1).unwrap();
    let port = l.local_addr().unwrap().as_socket().unwrap().port();
    let th = thread::spawn(move || {
        let (s, _) = l.accept().unwrap();
        let s: TcpStream = s.into();
        let got = queued_once_stalled(&s);
        socket2::SockRef::from(&s)
            .set_linger(Some(Duration::ZERO))
            .unwrap();
        got
    });
    let mut fwd = forward(&["--json", "127.0.0.1", "0", "127.0.0.1", &port.to_string()]);
    let mut c = dial(fwd.loopback());
    let chunk = vec![9u8; 64 * 1024];
    let mut sent = 0u64;
    while let Ok(n) = c.write(&chunk) {
        sent += n as u64;
        assert!(sent < 1 << 30, "never reset");
    }
    let got = th.join().unwrap();
    let mut outq: libc::c_int = 0;
    // SAFETY: TIOCOUTQ (SIOCOUTQ) writes one int to a live int.
    let rc = unsafe {
        libc::ioctl(
            std::os::fd::AsRawFd::as_raw_fd(&c),
            libc::TIOCOUTQ,
            &raw mut outq,
        )
    };
    assert_eq!(rc, 0, "SIOCOUTQ: {}", std::io::Error::last_os_error());
    // What left the client: written, less what its own kernel still held unacknowledged.
    let left = sent - u64::try_from(outq).unwrap();
    assert!(left > got + (1 << 20), "left {left}, target got {got}");
    let line = fwd
        .stderr
        .wait_for(T, |l| l.contains("\"kind\":\"pair\""))
        .unwrap();
    let o: serde_json::Value = serde_json::from_str(&line).unwrap();
    let counts = |k: &str| o[k].as_u64().unwrap();
    assert_eq!(
        (counts("up"), counts("down"), counts("undelivered")),
        (got, 0, left - got),
        "(up, down, undelivered): {line}"
    );
}
