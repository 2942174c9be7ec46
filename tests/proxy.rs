//! `connect --proxy` against real proxies: microsocks (SOCKS5, with and without -u/-P), Dante
//! (`danted`: SOCKS4, and SOCKS5 with half-close and a refusing rule) and tinyproxy (HTTP
//! CONNECT), each configured here in a temp dir; `forward --socks5` with sockkit and curl as
//! clients; plus in-test fake proxies for the failures no real proxy makes on demand (garbage,
//! closing mid-handshake, silence). Targets are `sockkit echo` and python3 servers on
//! loopback; every port is the kernel's choice, or a free one it gave for a proxy that cannot
//! take port 0.

mod util;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use util::*;

/// A microsocks on 127.0.0.1, port 0, its port read from /proc; `auth` adds -u/-P.
fn microsocks(auth: Option<(&str, &str)>) -> Option<(ChildGuard, u16)> {
    let bin = peer_or_skip("microsocks")?;
    let mut cmd = Command::new(bin);
    cmd.args(["-i", "127.0.0.1", "-p", "0"]);
    if let Some((u, p)) = auth {
        cmd.args(["-u", u, "-P", p]);
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let child = ChildGuard::spawn(&mut cmd);
    let port = listening_port_of(child.id(), T).expect("microsocks never listened");
    Some((child, port))
}

/// A port the kernel just gave and took back, for a proxy to listen on.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts a proxy that cannot take port 0 (`start` spawns it told to listen on PORT) on a
/// port the kernel just gave back, and waits (bounded) until that very process listens there
/// (/proc). A connect alone would be answered by whatever else took the port in between (the
/// other tests run in parallel and bind ports all the time); then the proxy, which could not
/// bind, exits, and this tries another port, a few times.
/// `said` is what the proxy logged, for the failure message.
fn on_a_free_port(
    what: &str,
    said: impl Fn() -> String,
    mut start: impl FnMut(u16) -> ChildGuard,
) -> (ChildGuard, u16) {
    for _ in 0..3 {
        let port = free_port();
        let mut child = start(port);
        let deadline = Instant::now() + T;
        loop {
            if listening_port_of(child.id(), Duration::ZERO) == Some(port) {
                return (child, port);
            }
            if child.try_status().is_some() {
                break; // it could not bind: someone took the port first
            }
            assert!(
                Instant::now() < deadline,
                "{what} never listened on {port}: {}",
                said()
            );
            thread::sleep(Duration::from_millis(20));
        }
    }
    panic!(
        "{what} could not listen on any of three free ports: {}",
        said()
    );
}

/// A tinyproxy on 127.0.0.1 at a free port (it cannot take port 0), with Basic auth when
/// `auth` is given. The temp dir holds its config for as long as it runs.
fn tinyproxy(auth: Option<(&str, &str)>) -> Option<(ChildGuard, u16, TempDir)> {
    let bin = peer_or_skip("tinyproxy")?;
    let dir = TempDir::new("tinyproxy");
    let (child, port) = on_a_free_port("tinyproxy", String::new, |port| {
        let mut conf = format!(
            "Port {port}\nListen 127.0.0.1\nTimeout 30\nAllow 127.0.0.1\nLogLevel Critical\nMaxClients 10\n"
        );
        if let Some((u, p)) = auth {
            conf.push_str(&format!("BasicAuth {u} {p}\n"));
        }
        let path = dir.file("tinyproxy.conf", &conf);
        let mut cmd = Command::new(&bin);
        cmd.arg("-d").arg("-c").arg(&path);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        ChildGuard::spawn(&mut cmd)
    });
    Some((child, port, dir))
}

/// Sends `data` through `sockkit connect ARGS`, reading the echo until it is all back, then
/// ends stdin; returns what came back and the exit status. stdin stays open until the echo
/// is whole because some proxies (microsocks) end both directions at the first EOF.
fn echo_through(args: &[&str], data: &[u8]) -> (Vec<u8>, Option<i32>, String) {
    let mut child = ChildGuard::spawn(&mut sockkit(args));
    let mut stdin = child.stdin();
    let mut stdout = child.stdout();
    let err = LineTap::new(child.stderr());
    let want = data.len();
    let reader = thread::spawn(move || {
        let mut got = Vec::new();
        let mut buf = vec![0u8; 65536];
        while got.len() < want {
            match stdout.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
        got
    });
    let payload = data.to_vec();
    let writer = thread::spawn(move || {
        let _ = stdin.write_all(&payload);
        stdin
    });
    let stdin = join_timeout(writer, T, "writing stdin");
    let got = join_timeout(reader, T, "reading the echo");
    drop(stdin);
    let status = child.status_within(T, "sockkit connect --proxy");
    let mut err = err;
    (got, status.code(), err.finish(T))
}

#[test]
fn socks5_relays_bytes_exactly_and_the_proxy_resolves_the_name() {
    let Some((_proxy, port)) = microsocks(None) else {
        return;
    };
    let echo = Server::start(&["echo", "127.0.0.1", "0"]);
    let url = format!("socks5://127.0.0.1:{port}");
    let data = random_bytes(15, 300_000);
    let target = echo.port().to_string();
    let (got, code, err) = echo_through(
        &["connect", "-vv", "--proxy", &url, "localhost", &target],
        &data,
    );
    assert_bytes_eq(&got, &data, "echo through microsocks");
    assert_eq!(code, Some(0), "{err}");
    // -vv tells the handshake: the greeting, the method, the request with the name, the reply.
    for want in [
        "SOCKS5 greeting: version 5, methods offered: no authentication",
        "SOCKS5 method chosen: 0x00 (no authentication)",
        &format!("request: CONNECT localhost:{target} (the proxy resolves the name)"),
        "SOCKS5 reply: 0 (succeeded)",
        "sendto(fd 3, buf, 3, 0, NULL, 0) = 3",
        "recvfrom(fd 3, buf, 2, 0, NULL, NULL) = 2",
    ] {
        assert!(err.contains(want), "no `{want}` in:\n{err}");
    }
}

#[test]
fn socks5_local_dns_sends_an_address() {
    let Some((_proxy, port)) = microsocks(None) else {
        return;
    };
    let echo = Server::start(&["echo", "127.0.0.1", "0"]);
    let url = format!("socks5://127.0.0.1:{port}");
    let target = echo.port().to_string();
    let args = [
        "connect",
        "-vv",
        "-4",
        "--proxy",
        &url,
        "--proxy-dns",
        "local",
        "localhost",
        &target,
    ];
    let (got, code, err) = echo_through(&args, b"ping\n");
    assert_eq!((got.as_slice(), code), (&b"ping\n"[..], Some(0)), "{err}");
    assert!(
        err.contains(&format!("CONNECT 127.0.0.1:{target} (an address)")),
        "{err}"
    );
}

#[test]
fn socks5_credentials_accepted_and_refused() {
    let Some((_proxy, port)) = microsocks(Some(("alice", "s3cret"))) else {
        return;
    };
    let echo = Server::start(&["echo", "127.0.0.1", "0"]);
    let target = echo.port().to_string();
    let good = format!("socks5://alice:s3cret@127.0.0.1:{port}");
    let (got, code, err) = echo_through(
        &["connect", "--proxy", &good, "127.0.0.1", &target],
        b"authed\n",
    );
    assert_eq!((got.as_slice(), code), (&b"authed\n"[..], Some(0)), "{err}");

    let bad = format!("socks5://alice:wrong@127.0.0.1:{port}");
    let out = run(&["connect", "--proxy", &bad, "127.0.0.1", &target], b"", T);
    assert_eq!(out.code(), Some(1));
    let err = out.stderr.clone();
    assert!(err.contains("refused the username and password"), "{err}");
    assert!(!err.contains("wrong"), "the password reached stderr: {err}");

    let none = format!("socks5://127.0.0.1:{port}");
    let out = run(&["connect", "--proxy", &none, "127.0.0.1", &target], b"", T);
    assert_eq!(out.code(), Some(1));
    let err = out.stderr.clone();
    assert!(err.contains("accepts none of the methods offered"), "{err}");
}

#[test]
fn socks5_target_refused_is_named_and_z_tells_each_port() {
    let Some((_proxy, port)) = microsocks(None) else {
        return;
    };
    let url = format!("socks5://127.0.0.1:{port}");
    let closed = ClosedPort::new();
    let shut = closed.port().to_string();
    let out = run(&["connect", "--proxy", &url, "127.0.0.1", &shut], b"", T);
    assert_eq!(out.code(), Some(1));
    let err = out.stderr.clone();
    assert!(
        err.contains(&format!(
            "could not connect to 127.0.0.1:{shut}: connection refused (SOCKS5 reply 5)"
        )),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");

    let echo = Server::start(&["echo", "127.0.0.1", "0"]);
    let open = echo.port().to_string();
    let ports = format!("{open},{shut}");
    // Plain -z shows the open ports (the summary counts the rest), as without a proxy.
    let out = run(
        &["connect", "-z", "--proxy", &url, "127.0.0.1", &ports],
        b"",
        T,
    );
    assert_eq!(out.code(), Some(0), "{}", out.stderr.clone());
    let text = out.stdout_text();
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(
        text.starts_with(&format!("127.0.0.1:{open} open in ")),
        "{text}"
    );
    assert!(out.stderr.contains("1 open, 1 closed"), "{}", out.stderr);
    // -v shows every port.
    let out = run(
        &["connect", "-z", "-v", "--proxy", &url, "127.0.0.1", &ports],
        b"",
        T,
    );
    assert_eq!(out.code(), Some(0), "{}", out.stderr.clone());
    let text = out.stdout_text();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(
        lines[0].starts_with(&format!("127.0.0.1:{open} open in ")),
        "{text}"
    );
    assert_eq!(
        lines[1],
        format!("127.0.0.1:{shut} not reached by the proxy: connection refused (SOCKS5 reply 5)")
    );
}

#[test]
fn http_connect_relays_bytes_exactly_with_basic_auth() {
    let Some((_proxy, port, _dir)) = tinyproxy(Some(("bob", "pa55"))) else {
        return;
    };
    let echo = Server::start(&["echo", "127.0.0.1", "0"]);
    let target = echo.port().to_string();
    let url = format!("http://bob:pa55@127.0.0.1:{port}");
    let data = random_bytes(16, 200_000);
    let (got, code, err) = echo_through(
        &["connect", "-vv", "--proxy", &url, "127.0.0.1", &target],
        &data,
    );
    assert_bytes_eq(&got, &data, "echo through tinyproxy");
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.contains(&format!(
            "HTTP request: CONNECT 127.0.0.1:{target} HTTP/1.1 (with Proxy-Authorization: Basic)"
        )),
        "{err}"
    );
    assert!(err.contains("HTTP status: 200 "), "{err}");

    let bad = format!("http://bob:nope@127.0.0.1:{port}");
    let out = run(&["connect", "--proxy", &bad, "127.0.0.1", &target], b"", T);
    assert_eq!(out.code(), Some(1));
    let err = out.stderr.clone();
    assert!(
        err.contains("refused the username and password (HTTP 40"),
        "{err}"
    );
}

#[test]
fn http_connect_target_refused_is_named() {
    let Some((_proxy, port, _dir)) = tinyproxy(None) else {
        return;
    };
    let url = format!("http://127.0.0.1:{port}");
    let closed = ClosedPort::new();
    let shut = closed.port().to_string();
    let out = run(&["connect", "--proxy", &url, "127.0.0.1", &shut], b"", T);
    assert_eq!(out.code(), Some(1));
    let err = out.stderr.clone();
    assert!(
        err.contains(&format!("could not connect to 127.0.0.1:{shut}: ")),
        "{err}"
    );
    assert!(
        err.contains("(HTTP 5"),
        "tinyproxy answers a refused target with a 5xx: {err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn an_unparsable_proxy_url_is_a_usage_error() {
    for bad in ["ftp://h:1", "127.0.0.1:1080", "socks5://h:0", "http://h"] {
        let out = run(&["connect", "--proxy", bad, "127.0.0.1", "9"], b"", T);
        assert_eq!(out.code(), Some(2), "{bad}");
        let err = out.stderr.clone();
        assert!(err.starts_with("sockkit: "), "{err}");
    }
    let out = run(
        &["connect", "-u", "--proxy", "socks5://h:1", "127.0.0.1", "9"],
        b"",
        T,
    );
    assert_eq!(out.code(), Some(2));
}

/// A fake proxy that reads what the client sends first, then does `then` with the stream.
fn fake_proxy(then: fn(&mut TcpStream)) -> (String, thread::JoinHandle<()>) {
    let (addr, h) = serve_once(move |mut s| {
        let mut hello = [0u8; 3];
        let _ = s.read_exact(&mut hello);
        then(&mut s);
    });
    (format!("socks5://{addr}"), h)
}

#[test]
fn a_proxy_that_sends_garbage_or_closes_or_says_nothing_is_one_line_exit_1() {
    let (url, h) = fake_proxy(|s| {
        let _ = s.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n");
    });
    let out = run(&["connect", "--proxy", &url, "example.org", "80"], b"", T);
    join_timeout(h, T, "the garbage proxy");
    assert_eq!(out.code(), Some(1));
    let err = out.stderr.clone();
    assert!(
        err.contains("is not speaking SOCKS5: its answer to the greeting starts with version 72"),
        "{err}"
    );

    let (url, h) = fake_proxy(|s| {
        let _ = s.write_all(&[5]);
    });
    let out = run(&["connect", "--proxy", &url, "example.org", "80"], b"", T);
    join_timeout(h, T, "the closing proxy");
    assert_eq!(out.code(), Some(1));
    let err = out.stderr.clone();
    assert!(
        err.contains("closed the connection before sending its method choice (1 B of it came)"),
        "{err}"
    );

    let (url, h) = fake_proxy(|s| {
        let mut rest = Vec::new();
        let _ = s.read_to_end(&mut rest);
    });
    let out = run(
        &[
            "connect",
            "-w",
            "300ms",
            "--proxy",
            &url,
            "example.org",
            "80",
        ],
        b"",
        T,
    );
    join_timeout(h, T, "the silent proxy");
    assert_eq!(out.code(), Some(1));
    let err = out.stderr.clone();
    assert!(
        err.contains("no method choice before the handshake's deadline (-w)"),
        "{err}"
    );
}

/// A python3 server standing in for sshd: it reads until the client's EOF (as a protocol
/// peer that waits for the half-close would), then answers with the bytes reversed and
/// closes. Its port is printed on its first line.
fn reversing_server() -> Option<(ChildGuard, u16)> {
    let py = peer_or_skip("python3")?;
    let mut cmd = Command::new(py);
    cmd.args([
        "-u",
        "-c",
        "import socket\n\
         s = socket.socket()\n\
         s.bind(('127.0.0.1', 0))\n\
         s.listen(1)\n\
         print(s.getsockname()[1])\n\
         c, _ = s.accept()\n\
         data = b''\n\
         while True:\n    \
             b = c.recv(65536)\n    \
             if not b: break\n    \
             data += b\n\
         c.sendall(data[::-1])\n\
         c.close()\n",
    ]);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut child = ChildGuard::spawn(&mut cmd);
    let mut tap = LineTap::new(child.stdout());
    let line = tap
        .wait_for(T, |l| l.trim().parse::<u16>().is_ok())
        .expect("the python3 server's port");
    Some((child, line.trim().parse().unwrap()))
}

#[test]
fn forward_socks5_carries_a_proxycommand_session_with_half_close() {
    let Some((_target, port)) = reversing_server() else {
        return;
    };
    let fwd = Server::start(&["forward", "--socks5", "127.0.0.1", "0"]);
    let url = format!("socks5://127.0.0.1:{}", fwd.port());
    let data = random_bytes(17, 250_000);
    // As ssh runs it: ProxyCommand='sockkit connect --proxy socks5://... %h %p', stdin and
    // stdout being ssh's pipes; the answer comes only after our EOF reached the target.
    let out = run(
        &["connect", "--proxy", &url, "localhost", &port.to_string()],
        &data,
        T,
    );
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    let want: Vec<u8> = data.iter().rev().copied().collect();
    assert_bytes_eq(
        &out.stdout,
        &want,
        "the reversed bytes through forward --socks5",
    );
}

#[test]
fn curl_socks5_hostname_through_forward_socks5() {
    let Some(curl) = peer_or_skip("curl") else {
        return;
    };
    let body = random_bytes(18, 40_000);
    let sent = body.clone();
    let (web, h) = serve_once(move |mut s| {
        let mut req = Vec::new();
        let mut b = [0u8; 1];
        while !req.ends_with(b"\r\n\r\n") && s.read(&mut b).unwrap_or(0) == 1 {
            req.push(b[0]);
        }
        let head = format!("HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n", sent.len());
        s.write_all(head.as_bytes()).unwrap();
        s.write_all(&sent).unwrap();
        String::from_utf8_lossy(&req).into_owned()
    });
    let fwd = Server::start(&["forward", "-vv", "--socks5", "127.0.0.1", "0"]);
    let mut cmd = Command::new(curl);
    cmd.args([
        "-sS",
        "--max-time",
        "20",
        "--socks5-hostname",
        &format!("127.0.0.1:{}", fwd.port()),
        &format!("http://localhost:{}/page", web.port()),
    ]);
    let out = run_cmd(&mut cmd, b"", T);
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    assert_bytes_eq(&out.stdout, &body, "curl's page through forward --socks5");
    let req = join_timeout(h, T, "the web server");
    assert!(req.starts_with("GET /page HTTP/1.1\r\n"), "{req}");
}

#[test]
fn forward_socks5_auth_and_target_rules() {
    let echo = Server::start(&["echo", "127.0.0.1", "0"]);
    let target = echo.port().to_string();
    let fwd = Server::start(&[
        "forward",
        "--socks5",
        "--proxy-auth",
        "carol:pw:with:colons",
        "--deny",
        "127.0.0.3/32",
        "127.0.0.1",
        "0",
    ]);
    let p = fwd.port();
    let good = format!("socks5://carol:pw%3Awith%3Acolons@127.0.0.1:{p}");
    let (got, code, err) = echo_through(
        &["connect", "--proxy", &good, "127.0.0.1", &target],
        b"ok\n",
    );
    assert_eq!((got.as_slice(), code), (&b"ok\n"[..], Some(0)), "{err}");

    let bad = format!("socks5://carol:nope@127.0.0.1:{p}");
    let out = run(&["connect", "--proxy", &bad, "127.0.0.1", &target], b"", T);
    assert_eq!(out.code(), Some(1));
    assert!(
        out.stderr.contains("refused the username and password"),
        "{}",
        out.stderr
    );

    let none = format!("socks5://127.0.0.1:{p}");
    let out = run(&["connect", "--proxy", &none, "127.0.0.1", &target], b"", T);
    assert_eq!(out.code(), Some(1));
    assert!(
        out.stderr.contains("accepts none of the methods offered"),
        "{}",
        out.stderr
    );

    // --deny applies to where the client asks to go, answered with reply 2.
    let out = run(&["connect", "--proxy", &good, "127.0.0.3", &target], b"", T);
    assert_eq!(out.code(), Some(1));
    assert!(
        out.stderr
            .contains("connection not allowed by ruleset (SOCKS5 reply 2)"),
        "{}",
        out.stderr
    );
    // A target nothing listens on: reply 5.
    let closed = ClosedPort::new();
    let shut = closed.port().to_string();
    let out = run(&["connect", "--proxy", &good, "127.0.0.1", &shut], b"", T);
    assert_eq!(out.code(), Some(1));
    assert!(
        out.stderr.contains("connection refused (SOCKS5 reply 5)"),
        "{}",
        out.stderr
    );
}

#[test]
fn forward_socks5_bounds_a_silent_client_and_refuses_a_target_word() {
    let mut fwd = Server::start(&["forward", "-v", "-w", "300ms", "--socks5", "127.0.0.1", "0"]);
    let mut s = TcpStream::connect(("127.0.0.1", fwd.port())).unwrap();
    s.set_read_timeout(Some(T)).unwrap();
    let mut rest = Vec::new();
    // Closed by the server once -w passes without a greeting: EOF, not a hang.
    let n = s.read_to_end(&mut rest).unwrap_or(0);
    assert_eq!(n, 0);
    let said = fwd
        .stderr
        .wait_for(T, |l| l.contains("did not finish"))
        .expect("forward -v says why the client was closed");
    assert!(
        said.contains("the SOCKS5 handshake did not finish in 300.0ms (-w)"),
        "{said}"
    );
    let out = run(
        &["forward", "--socks5", "127.0.0.1", "0", "example.org", "80"],
        b"",
        T,
    );
    assert_eq!(out.code(), Some(2), "{}", out.stderr);
    assert!(
        out.stderr
            .contains("with --socks5 each client names its target"),
        "{}",
        out.stderr
    );
}

/// A Dante server (`danted`) on 127.0.0.1 at a free port, SOCKS4 and SOCKS5 without
/// authentication, refusing targets in 127.0.0.3/32 by rule. Its config and log live in the
/// temp dir.
fn danted() -> Option<(ChildGuard, u16, TempDir)> {
    let bin = peer_or_skip("danted")?;
    let dir = TempDir::new("danted");
    let log = dir.path("danted.log");
    let said = || std::fs::read_to_string(&log).unwrap_or_default();
    let (child, port) = on_a_free_port("danted", said, |port| {
        let conf = format!(
            "logoutput: {}\n\
         internal: 127.0.0.1 port = {port}\n\
         external: 127.0.0.1\n\
         clientmethod: none\n\
         socksmethod: none\n\
         user.privileged: root\n\
         user.unprivileged: nobody\n\
         client pass {{ from: 127.0.0.0/8 to: 0.0.0.0/0 }}\n\
         socks block {{ from: 0.0.0.0/0 to: 127.0.0.3/32 }}\n\
         socks pass {{ from: 127.0.0.0/8 to: 0.0.0.0/0 command: connect }}\n",
            log.display()
        );
        let path = dir.file("danted.conf", &conf);
        let mut cmd = Command::new(&bin);
        cmd.arg("-f")
            .arg(&path)
            .arg("-p")
            .arg(dir.path("danted.pid"));
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        ChildGuard::spawn(&mut cmd)
    });
    Some((child, port, dir))
}

#[test]
fn socks4_through_dante_relays_bytes_exactly_and_names_a_rejection() {
    let Some((_proxy, port, _dir)) = danted() else {
        return;
    };
    let echo = Server::start(&["echo", "127.0.0.1", "0"]);
    let target = echo.port().to_string();
    let url = format!("socks4://127.0.0.1:{port}");
    let data = random_bytes(19, 200_000);
    // SOCKS4 carries an address: localhost is resolved here (-v says so).
    let (got, code, err) = echo_through(
        &["connect", "-v", "--proxy", &url, "localhost", &target],
        &data,
    );
    assert_bytes_eq(&got, &data, "echo through danted over SOCKS4");
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.contains("localhost resolves here to 127.0.0.1"),
        "{err}"
    );

    let closed = ClosedPort::new();
    let shut = closed.port().to_string();
    let out = run(&["connect", "--proxy", &url, "127.0.0.1", &shut], b"", T);
    assert_eq!(out.code(), Some(1));
    assert!(
        out.stderr
            .contains("request rejected or failed (SOCKS4 reply 91)"),
        "{}",
        out.stderr
    );
}

#[test]
fn socks5_through_dante_keeps_half_close_and_names_a_ruleset_refusal() {
    let Some((_proxy, port, _dir)) = danted() else {
        return;
    };
    let Some((_target, tport)) = reversing_server() else {
        return;
    };
    let url = format!("socks5://127.0.0.1:{port}");
    let data = random_bytes(20, 100_000);
    let out = run(
        &["connect", "--proxy", &url, "127.0.0.1", &tport.to_string()],
        &data,
        T,
    );
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    let want: Vec<u8> = data.iter().rev().copied().collect();
    assert_bytes_eq(
        &out.stdout,
        &want,
        "the answer after our EOF, through danted",
    );

    let out = run(&["connect", "--proxy", &url, "127.0.0.3", "9"], b"", T);
    assert_eq!(out.code(), Some(1));
    assert!(
        out.stderr
            .contains("connection not allowed by ruleset (SOCKS5 reply 2)"),
        "{}",
        out.stderr
    );
}

#[test]
fn bytes_a_proxy_sends_right_after_its_answer_belong_to_the_target() {
    // The answer and the target's first bytes (an SSH banner, say) in one write: sockkit must
    // read only the answer's header (MSG_PEEK finds its end) and relay the rest.
    let (addr, h) = serve_once(|mut s| {
        let mut req = Vec::new();
        let mut b = [0u8; 1];
        while !req.ends_with(b"\r\n\r\n") && s.read(&mut b).unwrap_or(0) == 1 {
            req.push(b[0]);
        }
        s.write_all(b"HTTP/1.1 200 Connection established\r\nVia: fake\r\n\r\nSSH-2.0-fake\r\n")
            .unwrap();
        let mut rest = Vec::new();
        let _ = s.read_to_end(&mut rest);
        (String::from_utf8_lossy(&req).into_owned(), rest)
    });
    let url = format!("http://{addr}");
    let out = run(
        &["connect", "--proxy", &url, "::1", "22"],
        b"client bytes",
        T,
    );
    let (req, rest) = join_timeout(h, T, "the fake HTTP proxy");
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    assert_eq!(out.stdout, b"SSH-2.0-fake\r\n");
    assert_eq!(req, "CONNECT [::1]:22 HTTP/1.1\r\nHost: [::1]:22\r\n\r\n");
    assert_eq!(rest, b"client bytes");
}

#[test]
fn forward_proxy_makes_each_outbound_connection_through_the_proxy() {
    let Some((_proxy, port)) = microsocks(None) else {
        return;
    };
    let echo = Server::start(&["echo", "127.0.0.1", "0"]);
    let target = echo.port().to_string();
    let url = format!("socks5://127.0.0.1:{port}");
    let mut fwd = Server::start(&[
        "forward",
        "-vv",
        "--proxy",
        &url,
        "127.0.0.1",
        "0",
        "localhost",
        &target,
    ]);
    let data = random_bytes(21, 150_000);
    let fport = fwd.port().to_string();
    let (got, code, err) = echo_through(&["connect", "127.0.0.1", &fport], &data);
    assert_bytes_eq(&got, &data, "echo through forward --proxy and microsocks");
    assert_eq!(code, Some(0), "{err}");
    let said = fwd
        .stderr
        .wait_for(T, |l| l.contains("SOCKS5 reply: 0 (succeeded)"))
        .expect("forward -vv tells the proxy's answer");
    assert!(said.contains("SOCKS5 reply"), "{said}");
    assert!(
        fwd.stderr.text().contains(&format!(
            "request: CONNECT localhost:{target} (the proxy resolves the name)"
        )),
        "{}",
        fwd.stderr.text()
    );

    // A target the proxy cannot reach: the client is reset, the proxy's words said.
    let closed = ClosedPort::new();
    let shut = closed.port().to_string();
    let mut fwd = Server::start(&[
        "forward",
        "--proxy",
        &url,
        "127.0.0.1",
        "0",
        "127.0.0.1",
        &shut,
    ]);
    let fport = fwd.port().to_string();
    let out = run(&["connect", "127.0.0.1", &fport], b"", T);
    assert_eq!(out.code(), Some(1), "{}", out.stderr);
    let said = fwd
        .stderr
        .wait_for(T, |l| l.contains("target unreachable"))
        .expect("forward says why");
    assert!(
        said.contains("could not reach the target: connection refused (SOCKS5 reply 5)"),
        "{said}"
    );
}

#[test]
fn forward_socks5_chains_to_an_http_proxy() {
    let Some((_proxy, port, _dir)) = tinyproxy(None) else {
        return;
    };
    let echo = Server::start(&["echo", "127.0.0.1", "0"]);
    let target = echo.port().to_string();
    let url = format!("http://127.0.0.1:{port}");
    let fwd = Server::start(&["forward", "--socks5", "--proxy", &url, "127.0.0.1", "0"]);
    let socks = format!("socks5://127.0.0.1:{}", fwd.port());
    let data = random_bytes(22, 100_000);
    let (got, code, err) =
        echo_through(&["connect", "--proxy", &socks, "127.0.0.1", &target], &data);
    assert_bytes_eq(
        &got,
        &data,
        "echo through forward --socks5 and then tinyproxy",
    );
    assert_eq!(code, Some(0), "{err}");
}

#[test]
fn forward_proxy_bounds_a_silent_proxy_by_w() {
    let (addr, h) = serve_once(|mut s| {
        let mut rest = Vec::new();
        let _ = s.read_to_end(&mut rest);
        rest
    });
    let url = format!("socks5://{addr}");
    let mut fwd = Server::start(&[
        "forward",
        "-w",
        "300ms",
        "--proxy",
        &url,
        "127.0.0.1",
        "0",
        "example.org",
        "80",
    ]);
    let fport = fwd.port().to_string();
    let out = run(&["connect", "127.0.0.1", &fport], b"", T);
    assert_eq!(out.code(), Some(1), "{}", out.stderr);
    let said = fwd
        .stderr
        .wait_for(T, |l| l.contains("target unreachable"))
        .expect("forward says why");
    assert!(
        said.contains("the proxy's handshake did not finish in 300.0ms (-w)"),
        "{said}"
    );
    drop(fwd);
    // What the silent proxy was sent: the SOCKS5 greeting, nothing more.
    assert_eq!(join_timeout(h, T, "the silent proxy"), [5, 1, 0]);
}
