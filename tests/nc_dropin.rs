//! The drop-in nc: real-world nc one-liners run once with OpenBSD nc (netcat-openbsd, from
//! .ci/run) and once with sockkit invoked as `nc` (a symlink named nc to the binary), each
//! against a fresh loopback peer of the same kind. Both runs must give the same stdout bytes,
//! the same exit status, and the peer must see the same bytes. Deliberate differences are not
//! in this table and are listed in README (Coming from nc). The proxy one-liners (`-x`, `-X`)
//! go through a real microsocks (SOCKS5) and tinyproxy (HTTP CONNECT), started once for both
//! runs, as tests/proxy.rs starts them.

mod util;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::unix::net::{UnixListener, UnixStream};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use util::{ChildGuard, ClosedPort, T, TempDir, bin, peer_or_skip, skip_or_fail};

/// How long a peer waits on a read before it gives up (a hang fails the test, never stalls it).
const PEER_WAIT: Duration = Duration::from_secs(15);

const BANNER: &[u8] = b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n";
const HTTP_REPLY: &[u8] = b"HTTP/1.0 200 OK\r\nContent-Length: 6\r\n\r\nhello\n";

/// The other end of a one-liner, run by the test.
#[derive(Clone, Copy, Debug)]
enum Peer {
    /// TCP server: writes BANNER, closes.
    Banner,
    /// TCP server: reads a request up to the blank line, answers HTTP_REPLY, closes.
    Http,
    /// TCP server: reads to EOF (what it read is compared), closes.
    Sink,
    /// TCP server: echoes until EOF, closes.
    Echo,
    /// TCP server: accepts and says nothing for 3 s (nc's -w idle timeout ends first).
    Silent,
    /// A port nobody listens on.
    Refused,
    /// UDP socket: records the first datagram.
    UdpSink,
    /// UDP socket: echoes the first datagram.
    UdpEcho,
    /// Unix stream servers, as their TCP namesakes.
    UnixBanner,
    UnixSink,
    UnixEcho,
    /// nc listens (TCP): the test connects, sends these bytes, shuts down, reads to EOF.
    Sends(&'static [u8]),
    /// nc listens (TCP): the test connects and reads to EOF without sending, then closes.
    Receives,
    /// nc listens with -k: two clients in turn send these bytes; then nc is stopped (SIGTERM).
    SendsTwice(&'static [u8]),
    /// nc listens (UDP): the test sends one datagram.
    UdpSends(&'static [u8]),
    /// nc listens (Unix stream): the test connects, sends, shuts down, reads to EOF.
    UnixSends(&'static [u8]),
}

/// One one-liner: nc's arguments (`{P}` the peer's port or the port nc listens on, `{Q}` the
/// next port, `{C}` a closed port, `{U}` a Unix socket path; `{S}` and `{H}` the SOCKS5 and
/// HTTP proxies' `127.0.0.1:PORT`), its stdin, and its peer.
struct Case {
    args: &'static str,
    stdin: Input,
    peer: Peer,
}

#[derive(Clone, Copy)]
enum Input {
    Bytes(&'static [u8]),
    /// This many pseudo-random bytes (a file transfer).
    Big(usize),
}

const fn case(args: &'static str, stdin: &'static [u8], peer: Peer) -> Case {
    Case {
        args,
        stdin: Input::Bytes(stdin),
        peer,
    }
}

const REQUEST: &[u8] = b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n";

const CASES: &[Case] = &[
    // Banner grabs.
    case("127.0.0.1 {P}", b"", Peer::Banner),
    case("-w 2 127.0.0.1 {P}", b"", Peer::Banner),
    case("-v 127.0.0.1 {P}", b"", Peer::Banner),
    case("-vn 127.0.0.1 {P}", b"", Peer::Banner),
    case("-4 localhost {P}", b"", Peer::Banner),
    case("-d 127.0.0.1 {P}", b"ignored\n", Peer::Banner),
    // HTTP by hand.
    case("127.0.0.1 {P}", REQUEST, Peer::Http),
    case("-N 127.0.0.1 {P}", REQUEST, Peer::Http),
    case("-q 5 127.0.0.1 {P}", REQUEST, Peer::Http),
    case(
        "-C 127.0.0.1 {P}",
        b"GET / HTTP/1.0\nHost: localhost\n\n",
        Peer::Http,
    ),
    case("-w 5 -N localhost {P}", REQUEST, Peer::Http),
    // File transfers to a receiver.
    Case {
        args: "-N 127.0.0.1 {P}",
        stdin: Input::Big(1 << 20),
        peer: Peer::Sink,
    },
    Case {
        args: "-q 0 127.0.0.1 {P}",
        stdin: Input::Big(300_000),
        peer: Peer::Sink,
    },
    case(
        "-N -v -s 127.0.0.1 127.0.0.1 {P}",
        b"report.txt\n",
        Peer::Sink,
    ),
    // Round trips through an echo server.
    case("-N 127.0.0.1 {P}", b"hello\n", Peer::Echo),
    Case {
        args: "-N 127.0.0.1 {P}",
        stdin: Input::Big(200_000),
        peer: Peer::Echo,
    },
    case(
        "-N -I 65536 -O 65536 127.0.0.1 {P}",
        b"buffers\n",
        Peer::Echo,
    ),
    case("-N -T lowdelay 127.0.0.1 {P}", b"tos\n", Peer::Echo),
    case("-N -T 0x10 -M 32 127.0.0.1 {P}", b"ttl\n", Peer::Echo),
    // Idle timeout: nc's -w ends a silent connection, exit 0.
    case("-w 1 127.0.0.1 {P}", b"", Peer::Silent),
    // Port checks: nothing on stdout, the exit status is the answer.
    case("-z 127.0.0.1 {P}", b"", Peer::Echo),
    case("-zv 127.0.0.1 {P}", b"", Peer::Echo),
    case("-z 127.0.0.1 {C}", b"", Peer::Refused),
    case("-zv -w 1 127.0.0.1 {C}", b"", Peer::Refused),
    case("-z -w 1 127.0.0.1 {P}-{Q}", b"", Peer::Echo),
    case("-z 127.0.0.1 {C} {P}", b"", Peer::Echo),
    // Refused connections.
    case("127.0.0.1 {C}", b"data\n", Peer::Refused),
    // UDP.
    case("-u -w 1 127.0.0.1 {P}", b"ping\n", Peer::UdpSink),
    case("-u -w 1 127.0.0.1 {P}", b"ping\n", Peer::UdpEcho),
    case("-u -q 1 127.0.0.1 {P}", b"metric:1|c", Peer::UdpSink),
    // Unix sockets.
    case("-U {U}", b"", Peer::UnixBanner),
    case("-N -U {U}", b"to unix\n", Peer::UnixSink),
    case("-N -U {U}", b"echo me\n", Peer::UnixEcho),
    // Servers: receive a file, serve one, keep open.
    case("-l {P}", b"", Peer::Sends(b"uploaded file\n")),
    case("-l -p {P}", b"", Peer::Sends(b"with -p\n")),
    case("-l 127.0.0.1 {P}", b"", Peer::Sends(b"bound to loopback\n")),
    case(
        "-l -s 127.0.0.1 -p {P}",
        b"",
        Peer::Sends(b"with -s and -p\n"),
    ),
    case("-lvn {P}", b"", Peer::Sends(b"verbose\n")),
    case("-N -l {P}", b"served file\n", Peer::Receives),
    case("-lk {P}", b"", Peer::SendsTwice(b"one client of two\n")),
    case("-lu -w 1 {P}", b"", Peer::UdpSends(b"datagram\n")),
    case("-lU {U}", b"", Peer::UnixSends(b"over unix\n")),
];

/// What one run showed: nc's stdout, how it exited, and what the peer saw.
#[derive(Debug, PartialEq, Eq)]
struct Seen {
    stdout: Vec<u8>,
    code: Option<i32>,
    signal: Option<i32>,
    peer: Vec<u8>,
}

fn input(i: Input) -> Vec<u8> {
    match i {
        Input::Bytes(b) => b.to_vec(),
        Input::Big(n) => {
            let mut x: u32 = 0x2545_f491;
            (0..n)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    x as u8
                })
                .collect()
        }
    }
}

/// A port the kernel just handed out and nobody holds now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn read_to_end(mut r: impl Read) -> Vec<u8> {
    let mut v = Vec::new();
    let _ = r.read_to_end(&mut v);
    v
}

/// Serves one connection of a TCP or Unix peer; returns what the peer read.
fn serve<S: Read + Write>(peer: Peer, mut s: S, shut: impl FnOnce(&S)) -> Vec<u8> {
    match peer {
        Peer::Banner | Peer::UnixBanner => {
            let _ = s.write_all(BANNER);
            Vec::new()
        }
        Peer::Http => {
            let mut got = Vec::new();
            let mut b = [0u8; 1];
            while !got.ends_with(b"\r\n\r\n") && s.read(&mut b).is_ok_and(|n| n == 1) {
                got.push(b[0]);
            }
            let _ = s.write_all(HTTP_REPLY);
            got
        }
        Peer::Sink | Peer::UnixSink => read_to_end(&mut s),
        Peer::Echo | Peer::UnixEcho => {
            let mut got = Vec::new();
            let mut buf = vec![0u8; 65536];
            while let Ok(n) = s.read(&mut buf) {
                if n == 0 || s.write_all(&buf[..n]).is_err() {
                    break;
                }
                got.extend_from_slice(&buf[..n]);
            }
            shut(&s);
            got
        }
        Peer::Silent => {
            thread::sleep(Duration::from_secs(3));
            Vec::new()
        }
        _ => unreachable!("not a server peer"),
    }
}

/// Starts a server peer; returns the values for the placeholders and the peer's thread.
fn start_server(peer: Peer, dir: &Path) -> (u16, PathBuf, JoinHandle<Vec<u8>>) {
    let path = dir.join("peer.sock");
    match peer {
        Peer::UdpSink | Peer::UdpEcho => {
            let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
            sock.set_read_timeout(Some(PEER_WAIT)).unwrap();
            let port = sock.local_addr().unwrap().port();
            let h = thread::spawn(move || {
                let mut buf = vec![0u8; 65536];
                match sock.recv_from(&mut buf) {
                    Ok((n, from)) => {
                        if matches!(peer, Peer::UdpEcho) {
                            let _ = sock.send_to(&buf[..n], from);
                        }
                        buf[..n].to_vec()
                    }
                    Err(_) => Vec::new(),
                }
            });
            (port, path, h)
        }
        Peer::UnixBanner | Peer::UnixSink | Peer::UnixEcho => {
            let l = UnixListener::bind(&path).unwrap();
            let h = thread::spawn(move || {
                let Ok((s, _)) = l.accept() else {
                    return Vec::new();
                };
                s.set_read_timeout(Some(PEER_WAIT)).unwrap();
                serve(peer, s, |s| drop(s.shutdown(Shutdown::Write)))
            });
            (0, path, h)
        }
        _ => {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            let port = l.local_addr().unwrap().port();
            let h = thread::spawn(move || {
                let Ok((s, _)) = l.accept() else {
                    return Vec::new();
                };
                s.set_read_timeout(Some(PEER_WAIT)).unwrap();
                serve(peer, s, |s| drop(s.shutdown(Shutdown::Write)))
            });
            (port, path, h)
        }
    }
}

/// True once something listens on (or, for UDP, is bound to) local `port`.
fn bound(port: u16, udp: bool) -> bool {
    let files: &[&str] = if udp {
        &["/proc/net/udp", "/proc/net/udp6"]
    } else {
        &["/proc/net/tcp", "/proc/net/tcp6"]
    };
    let want = format!(":{port:04X}");
    files.iter().any(|f| {
        std::fs::read_to_string(f)
            .unwrap_or_default()
            .lines()
            .skip(1)
            .any(|l| {
                let cols: Vec<&str> = l.split_whitespace().collect();
                cols.len() > 3 && cols[1].ends_with(&want) && (udp || cols[3] == "0A")
            })
    })
}

/// Waits (bounded) until `ready` holds.
fn wait_until(what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + T;
    while !ready() {
        assert!(Instant::now() < deadline, "{what}: not ready within {T:?}");
        thread::sleep(Duration::from_millis(10));
    }
}

/// Plays the client of a listening nc; returns what the client received.
fn play_client(peer: Peer, port: u16, path: &Path, child: &mut ChildGuard) -> Vec<u8> {
    let tcp = |send: &[u8]| {
        let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(PEER_WAIT)).unwrap();
        (&s).write_all(send).unwrap();
        if !send.is_empty() {
            s.shutdown(Shutdown::Write).unwrap();
        }
        read_to_end(&s)
    };
    match peer {
        Peer::Sends(b) => {
            wait_until("nc -l", || bound(port, false));
            tcp(b)
        }
        Peer::Receives => {
            wait_until("nc -l", || bound(port, false));
            tcp(b"")
        }
        Peer::SendsTwice(b) => {
            wait_until("nc -lk", || bound(port, false));
            let mut got = tcp(b);
            // The second client may arrive before the first session has ended; it waits in
            // the backlog either way.
            got.extend(tcp(b));
            // Each session ended (our read saw EOF) after nc wrote what it got to stdout;
            // now stop the server as a person would (SIGTERM).
            let pid = child.id().to_string();
            let _ = Command::new("kill").args(["-TERM", &pid]).status();
            got
        }
        Peer::UdpSends(b) => {
            wait_until("nc -lu", || bound(port, true));
            let s = UdpSocket::bind("127.0.0.1:0").unwrap();
            s.send_to(b, SocketAddr::from(([127, 0, 0, 1], port)))
                .unwrap();
            Vec::new()
        }
        Peer::UnixSends(b) => {
            let deadline = Instant::now() + T;
            let s = loop {
                match UnixStream::connect(path) {
                    Ok(s) => break s,
                    Err(e) => {
                        assert!(Instant::now() < deadline, "nc -lU: {e}");
                        thread::sleep(Duration::from_millis(10));
                    }
                }
            };
            s.set_read_timeout(Some(PEER_WAIT)).unwrap();
            (&s).write_all(b).unwrap();
            s.shutdown(Shutdown::Write).unwrap();
            read_to_end(&s)
        }
        _ => unreachable!(),
    }
}

fn is_listen(peer: Peer) -> bool {
    matches!(
        peer,
        Peer::Sends(_)
            | Peer::Receives
            | Peer::SendsTwice(_)
            | Peer::UdpSends(_)
            | Peer::UnixSends(_)
    )
}

/// Runs one case with the nc at `program`.
fn run_case(program: &Path, c: &Case, dir: &Path) -> Seen {
    run_case_via(program, c, dir, &Proxies::default())
}

/// The proxies' `127.0.0.1:PORT`, for `{S}` (SOCKS5) and `{H}` (HTTP CONNECT).
#[derive(Default)]
struct Proxies {
    socks: String,
    http: String,
}

/// Runs one case with the nc at `program`, its proxies at `via`.
fn run_case_via(program: &Path, c: &Case, dir: &Path, via: &Proxies) -> Seen {
    let _ = std::fs::remove_file(dir.join("peer.sock"));
    // The closed port ({C}, and {P} of a refused peer) is held, bound and not listening, so
    // no parallel test can take it and answer before nc tries it.
    let held = ClosedPort::new();
    let closed = held.port();
    let (port, path, server) = if is_listen(c.peer) {
        (free_port(), dir.join("peer.sock"), None)
    } else if matches!(c.peer, Peer::Refused) {
        (closed, dir.join("peer.sock"), None)
    } else {
        let (p, path, h) = start_server(c.peer, dir);
        (p, path, Some(h))
    };
    let args: Vec<String> = c
        .args
        .split_whitespace()
        .map(|w| {
            w.replace("{P}", &port.to_string())
                .replace("{Q}", &(port.wrapping_add(1)).to_string())
                .replace("{C}", &closed.to_string())
                .replace("{U}", &path.to_string_lossy())
                .replace("{S}", &via.socks)
                .replace("{H}", &via.http)
        })
        .collect();
    let mut child = ChildGuard::spawn(
        Command::new(program)
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null()),
    );
    let data = input(c.stdin);
    let mut stdin = child.stdin();
    let writer = thread::spawn(move || {
        let _ = stdin.write_all(&data);
    });
    let stdout = child.stdout();
    let reader = thread::spawn(move || read_to_end(stdout));
    let peer = if is_listen(c.peer) {
        play_client(c.peer, port, &path, &mut child)
    } else {
        Vec::new()
    };
    let status = child.status_within(T, &format!("nc {}", c.args));
    let _ = writer.join();
    let stdout = reader.join().unwrap();
    let peer = match server {
        Some(h) => h.join().unwrap(),
        None => peer,
    };
    Seen {
        stdout,
        code: status.code(),
        signal: status.signal(),
        peer,
    }
}

#[test]
fn sockkit_as_nc_matches_openbsd_nc() {
    assert!(
        CASES.len() >= 30,
        "the table promises at least 30 one-liners"
    );
    let Some(nc) = peer_or_skip("nc") else {
        return;
    };
    let help = Command::new(&nc).arg("-h").output().unwrap();
    if !String::from_utf8_lossy(&help.stderr).contains("OpenBSD netcat") {
        skip_or_fail("the nc on PATH is not OpenBSD netcat (netcat-openbsd)");
        return;
    }
    let dir = TempDir::new("nc-dropin");
    let ours = dir.root().join("nc");
    std::os::unix::fs::symlink(bin(), &ours).unwrap();
    let mut failures = Vec::new();
    for c in CASES {
        let theirs = run_case(&nc, c, dir.root());
        let mine = run_case(&ours, c, dir.root());
        if theirs != mine {
            failures.push(format!(
                "nc {} (peer {:?}):\n  OpenBSD nc: {}\n  sockkit:    {}",
                c.args,
                c.peer,
                show(&theirs),
                show(&mine)
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} differ:\n{}",
        failures.len(),
        CASES.len(),
        failures.join("\n")
    );
}

fn show(s: &Seen) -> String {
    let cut = |b: &[u8]| {
        let t = String::from_utf8_lossy(&b[..b.len().min(60)]).into_owned();
        format!("{t:?} ({} bytes)", b.len())
    };
    format!(
        "exit {:?} signal {:?}, stdout {}, peer {}",
        s.code,
        s.signal,
        cut(&s.stdout),
        cut(&s.peer)
    )
}

/// One-liners through a proxy: `-x` alone is SOCKS5, `-X 5` says so, `-X connect` is HTTP
/// CONNECT; the peer is reached through the proxy, so it sees the proxy's connection.
const PROXY_CASES: &[Case] = &[
    case("-x {S} 127.0.0.1 {P}", b"", Peer::Banner),
    case("-X 5 -x {S} 127.0.0.1 {P}", REQUEST, Peer::Http),
    Case {
        args: "-X 5 -x {S} -N 127.0.0.1 {P}",
        stdin: Input::Big(300_000),
        peer: Peer::Sink,
    },
    case("-x {S} -zv 127.0.0.1 {P}", b"", Peer::Echo),
    case("-x {S} 127.0.0.1 {C}", b"data\n", Peer::Refused),
    case("-X connect -x {H} 127.0.0.1 {P}", b"", Peer::Banner),
    case("-X connect -x {H} 127.0.0.1 {P}", REQUEST, Peer::Http),
    case(
        "-X connect -x {H} -N 127.0.0.1 {P}",
        b"a file\n",
        Peer::Sink,
    ),
];

/// A microsocks on 127.0.0.1, port 0, its port read from /proc.
fn microsocks() -> Option<(ChildGuard, u16)> {
    let bin = peer_or_skip("microsocks")?;
    let mut cmd = Command::new(bin);
    cmd.args(["-i", "127.0.0.1", "-p", "0"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let child = ChildGuard::spawn(&mut cmd);
    let port = util::listening_port_of(child.id(), T).expect("microsocks never listened");
    Some((child, port))
}

/// A tinyproxy on 127.0.0.1 at a free port (it cannot take port 0); the temp dir holds its
/// config while it runs.
fn tinyproxy() -> Option<(ChildGuard, u16, TempDir)> {
    let bin = peer_or_skip("tinyproxy")?;
    let dir = TempDir::new("nc-tinyproxy");
    let port = free_port();
    let conf = format!(
        "Port {port}\nListen 127.0.0.1\nTimeout 30\nAllow 127.0.0.1\nLogLevel Critical\n\
         MaxClients 10\n"
    );
    let path = dir.file("tinyproxy.conf", &conf);
    let mut cmd = Command::new(bin);
    cmd.arg("-d")
        .arg("-c")
        .arg(&path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let child = ChildGuard::spawn(&mut cmd);
    wait_until("tinyproxy", || bound(port, false));
    Some((child, port, dir))
}

#[test]
fn sockkit_as_nc_matches_openbsd_nc_through_proxies() {
    let Some(nc) = peer_or_skip("nc") else {
        return;
    };
    let help = Command::new(&nc).arg("-h").output().unwrap();
    if !String::from_utf8_lossy(&help.stderr).contains("OpenBSD netcat") {
        skip_or_fail("the nc on PATH is not OpenBSD netcat (netcat-openbsd)");
        return;
    }
    let Some((_socks, socks)) = microsocks() else {
        return;
    };
    let Some((_http, http, _conf)) = tinyproxy() else {
        return;
    };
    let via = Proxies {
        socks: format!("127.0.0.1:{socks}"),
        http: format!("127.0.0.1:{http}"),
    };
    let dir = TempDir::new("nc-dropin-proxy");
    let ours = dir.root().join("nc");
    std::os::unix::fs::symlink(bin(), &ours).unwrap();
    let mut failures = Vec::new();
    for c in PROXY_CASES {
        let theirs = run_case_via(&nc, c, dir.root(), &via);
        let mine = run_case_via(&ours, c, dir.root(), &via);
        if theirs != mine {
            failures.push(format!(
                "nc {} (peer {:?}):\n  OpenBSD nc: {}\n  sockkit:    {}",
                c.args,
                c.peer,
                show(&theirs),
                show(&mine)
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} differ:\n{}",
        failures.len(),
        PROXY_CASES.len(),
        failures.join("\n")
    );
}
