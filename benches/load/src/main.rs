//! The echo benchmark driver and load generator: starts `sockkit echo` and the tokio reference
//! server (`tokio-echo`) on loopback port 0, drives each with the same client load, checks every
//! echoed byte, and prints msgs/s, p50/p99 latency, MB/s and server RSS side by side, with
//! sockkit/tokio ratios. Scenarios: 64-byte ping-pong over 100 and 1000 connections, 16 KiB
//! ping-pong, and 10,000 idle connections that must each still echo at the end.
//!
//! Usage (from the repository root, after `cargo build --release` here and in benches/load,
//! which builds tokio-echo beside this program):
//!   benches/load/target/release/echo-bench [OPTIONS]
//! Options: --secs S (measured window per run, 3), --rounds R (3; medians are reported),
//! --client-threads T (load generator threads, 1), --idle N (10000), --scenarios 1,2,3
//! (64 B x 100, 64 B x 1000, 16 KiB x 50), --servers a,b,...
//! (from: sockkit, sockkit-1t, tokio, tokio-64k, tokio-nodelay), --skip-idle, --sockkit PATH, --addr HOST:PORT
//! (drive a server started by hand, e.g. under perf; implies --skip-idle).

use std::collections::BTreeMap;
use std::io::{self, BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mio::{Events, Interest, Poll, Token};

struct Opts {
    secs: f64,
    rounds: usize,
    client_threads: usize,
    idle: usize,
    skip_idle: bool,
    servers: Vec<String>,
    /// Which ping-pong scenarios to run, by number (1-3).
    scenarios: Vec<usize>,
    sockkit: PathBuf,
    tokio: PathBuf,
    /// Drive a server started elsewhere (for profiling), under the name `external`.
    external: Option<SocketAddr>,
}

fn opts() -> Opts {
    let here = std::env::current_exe().expect("current exe");
    let dir = here.parent().expect("exe dir").to_path_buf();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut o = Opts {
        secs: 3.0,
        rounds: 3,
        client_threads: 1,
        idle: 10_000,
        skip_idle: false,
        servers: vec!["sockkit".into(), "tokio".into()],
        scenarios: vec![1, 2, 3],
        sockkit: root.join("target/release/sockkit"),
        tokio: dir.join("tokio-echo"),
        external: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || {
            args.next()
                .unwrap_or_else(|| die(&format!("{a} needs a value")))
        };
        match a.as_str() {
            "--secs" => o.secs = val().parse().unwrap_or_else(|_| die("--secs: a number")),
            "--rounds" => o.rounds = val().parse().unwrap_or_else(|_| die("--rounds: a number")),
            "--client-threads" => {
                o.client_threads = val().parse().unwrap_or_else(|_| die("--client-threads"))
            }
            "--idle" => o.idle = val().parse().unwrap_or_else(|_| die("--idle: a number")),
            "--skip-idle" => o.skip_idle = true,
            "--servers" => o.servers = val().split(',').map(str::to_string).collect(),
            "--scenarios" => {
                o.scenarios = val()
                    .split(',')
                    .map(|n| {
                        n.parse()
                            .unwrap_or_else(|_| die("--scenarios: numbers 1-3"))
                    })
                    .collect()
            }
            "--sockkit" => o.sockkit = PathBuf::from(val()),
            "--addr" => {
                o.external = Some(val().parse().unwrap_or_else(|_| die("--addr: HOST:PORT")));
                o.servers = vec!["external".into()];
                o.skip_idle = true;
            }
            other => die(&format!("unknown option {other}")),
        }
    }
    o
}

fn die(msg: &str) -> ! {
    eprintln!("echo-bench: {msg}");
    std::process::exit(2);
}

/// A server under test, killed when dropped.
struct Server {
    name: String,
    child: Child,
    addr: SocketAddr,
}

impl Server {
    fn start(name: &str, o: &Opts) -> Server {
        let mut cmd = match name {
            "sockkit" => {
                let mut c = Command::new(&o.sockkit);
                c.args(["echo", "127.0.0.1", "0"]);
                c
            }
            "sockkit-1t" => {
                let mut c = Command::new(&o.sockkit);
                c.args(["echo", "--threads", "1", "127.0.0.1", "0"]);
                c
            }
            "tokio" => {
                let mut c = Command::new(&o.tokio);
                c.arg("127.0.0.1:0");
                c
            }
            "tokio-64k" => {
                let mut c = Command::new(&o.tokio);
                c.args(["--buf", "65536", "127.0.0.1:0"]);
                c
            }
            "tokio-nodelay" => {
                let mut c = Command::new(&o.tokio);
                c.args(["--nodelay", "127.0.0.1:0"]);
                c
            }
            "external" => {
                let mut c = Command::new("sh");
                let addr = o.external.unwrap_or_else(|| die("external needs --addr"));
                c.args([
                    "-c",
                    &format!("echo 'listening on {addr}' >&2; exec sleep 100000"),
                ]);
                c
            }
            other => die(&format!("unknown server {other}")),
        };
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| {
                die(&format!(
                    "starting {name}: {e} (cargo build --release first?)"
                ))
            });
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let addr = loop {
            match lines.next() {
                Some(Ok(l)) if l.contains("listening on ") => {
                    let a = l.split("listening on ").nth(1).unwrap();
                    break a.split(' ').next().unwrap().parse().expect("address");
                }
                Some(Ok(_)) => continue,
                _ => die(&format!("{name} did not announce itself")),
            }
        };
        // Keep draining stderr so the server never blocks on it.
        std::thread::spawn(move || for _ in lines {});
        Server {
            name: name.to_string(),
            child,
            addr,
        }
    }

    fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One ping-pong run's results.
#[derive(Clone, Debug)]
struct Run {
    msgs_per_s: f64,
    mb_per_s: f64,
    p50_us: f64,
    p99_us: f64,
}

/// A client connection of the load generator: one message outstanding at a time.
struct Client {
    sock: mio::net::TcpStream,
    id: u64,
    seq: u64,
    msg: Vec<u8>,
    wpos: usize,
    back: Vec<u8>,
    rpos: usize,
    sent_at: Instant,
}

impl Client {
    fn next_message(&mut self) {
        self.seq += 1;
        self.msg[..8].copy_from_slice(&self.id.to_le_bytes());
        self.msg[8..16].copy_from_slice(&self.seq.to_le_bytes());
        self.wpos = 0;
        self.rpos = 0;
        self.sent_at = Instant::now();
    }

    fn write(&mut self) -> io::Result<()> {
        while self.wpos < self.msg.len() {
            match self.sock.write(&self.msg[self.wpos..]) {
                Ok(n) => self.wpos += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 56) as u8
        })
        .collect()
}

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect_timeout(&addr, Duration::from_secs(10))
        .unwrap_or_else(|e| die(&format!("connect {addr}: {e}")));
    s.set_nodelay(true).unwrap();
    s
}

/// `conns` connections, each sending `size`-byte messages and waiting for each echo, for a
/// warm-up then `secs` measured. Every echoed byte is compared with what was sent.
fn pingpong(addr: SocketAddr, conns: usize, size: usize, secs: f64, threads: usize) -> Run {
    let socks: Vec<TcpStream> = (0..conns).map(|_| connect(addr)).collect();
    let mut per_thread: Vec<Vec<(u64, TcpStream)>> = (0..threads).map(|_| Vec::new()).collect();
    for (i, s) in socks.into_iter().enumerate() {
        per_thread[i % threads].push((i as u64 + 1, s));
    }
    let warm = Duration::from_millis(500);
    let start = Instant::now() + Duration::from_millis(50);
    let from = start + warm;
    let until = from + Duration::from_secs_f64(secs);
    let handles: Vec<_> = per_thread
        .into_iter()
        .map(|mine| std::thread::spawn(move || drive(mine, size, start, from, until)))
        .collect();
    let mut lat: Vec<u32> = Vec::new();
    let mut msgs = 0u64;
    for h in handles {
        let (m, l) = h.join().expect("load thread");
        msgs += m;
        lat.extend(l);
    }
    lat.sort_unstable();
    let pct = |p: f64| {
        if lat.is_empty() {
            0.0
        } else {
            f64::from(lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)]) / 10.0
        }
    };
    Run {
        msgs_per_s: msgs as f64 / secs,
        mb_per_s: msgs as f64 * size as f64 / secs / 1e6,
        p50_us: pct(0.50),
        p99_us: pct(0.99),
    }
}

/// One load thread: its connections on its own epoll. Returns messages completed in the
/// measured window and their latencies (in tenths of a microsecond).
fn drive(
    mine: Vec<(u64, TcpStream)>,
    size: usize,
    start: Instant,
    from: Instant,
    until: Instant,
) -> (u64, Vec<u32>) {
    let mut poll = Poll::new().unwrap();
    let mut clients: Vec<Client> = mine
        .into_iter()
        .map(|(id, s)| {
            s.set_nonblocking(true).unwrap();
            Client {
                sock: mio::net::TcpStream::from_std(s),
                id,
                seq: 0,
                msg: pattern(id, size.max(16)),
                wpos: 0,
                back: vec![0; size.max(16)],
                rpos: 0,
                sent_at: start,
            }
        })
        .collect();
    for (i, c) in clients.iter_mut().enumerate() {
        poll.registry()
            .register(
                &mut c.sock,
                Token(i),
                Interest::READABLE | Interest::WRITABLE,
            )
            .unwrap();
    }
    while Instant::now() < start {
        std::thread::yield_now();
    }
    for c in clients.iter_mut() {
        c.next_message();
        c.write().unwrap_or_else(|e| die(&format!("write: {e}")));
    }
    let mut events = Events::with_capacity(1024);
    let mut msgs = 0u64;
    let mut lat = Vec::with_capacity(1 << 20);
    loop {
        let now = Instant::now();
        if now >= until {
            break;
        }
        poll.poll(&mut events, Some(until - now)).unwrap();
        for ev in events.iter() {
            let c = &mut clients[ev.token().0];
            if ev.is_writable() && c.wpos < c.msg.len() {
                c.write().unwrap_or_else(|e| die(&format!("write: {e}")));
            }
            loop {
                match c.sock.read(&mut c.back[c.rpos..]) {
                    Ok(0) => die(&format!("connection {} closed by the server", c.id)),
                    Ok(n) => {
                        c.rpos += n;
                        if c.rpos == c.msg.len() {
                            if c.back != c.msg {
                                die(&format!(
                                    "connection {}: message {} came back altered",
                                    c.id, c.seq
                                ));
                            }
                            let done = Instant::now();
                            if done >= from && done < until {
                                msgs += 1;
                                let t = done.duration_since(c.sent_at).as_nanos() / 100;
                                lat.push(t.min(u128::from(u32::MAX)) as u32);
                            }
                            c.next_message();
                            c.write().unwrap_or_else(|e| die(&format!("write: {e}")));
                            break;
                        }
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(e) => die(&format!("read: {e}")),
                }
            }
        }
    }
    (msgs, lat)
}

/// Opens `n` connections to a fresh server and holds them idle; measures its RSS before, while
/// they are held, and after each has echoed one message (all checked).
fn idle(server: &Server, n: usize) -> (u64, u64, u64) {
    std::thread::sleep(Duration::from_millis(300));
    let base = server.rss_kib();
    let mut socks: Vec<TcpStream> = Vec::with_capacity(n);
    for _ in 0..n {
        socks.push(connect(server.addr));
    }
    // Let the server finish accepting, then read its RSS while all are idle.
    std::thread::sleep(Duration::from_millis(1500));
    let held = server.rss_kib();
    for (i, s) in socks.iter_mut().enumerate() {
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let msg = pattern(i as u64 + 7, 64);
        s.write_all(&msg).unwrap();
        let mut back = [0u8; 64];
        s.read_exact(&mut back).unwrap_or_else(|e| {
            die(&format!(
                "{}: idle connection {i} did not echo: {e}",
                server.name
            ))
        });
        if back[..] != msg[..] {
            die(&format!(
                "{}: idle connection {i} echoed other bytes",
                server.name
            ));
        }
    }
    let after = server.rss_kib();
    (base, held, after)
}

fn raise_fd_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain getrlimit/setrlimit on a local struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split(' ').take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    let o = opts();
    raise_fd_limit();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "echo-bench: {cores} cores, load average {} at start; {} s measured per run, {} rounds (medians), {} load-generator thread(s)",
        loadavg(),
        o.secs,
        o.rounds,
        o.client_threads
    );
    let scenarios: [(&str, usize, usize); 3] = [
        ("64 B ping-pong, 100 conns", 100, 64),
        ("64 B ping-pong, 1000 conns", 1000, 64),
        ("16 KiB ping-pong, 50 conns", 50, 16 * 1024),
    ];
    let servers: Vec<Server> = o.servers.iter().map(|n| Server::start(n, &o)).collect();
    let mut results: BTreeMap<(usize, String), Vec<Run>> = BTreeMap::new();
    for round in 0..o.rounds {
        for (si, (_, conns, size)) in scenarios.iter().enumerate() {
            if !o.scenarios.contains(&(si + 1)) {
                continue;
            }
            for s in &servers {
                let r = pingpong(s.addr, *conns, *size, o.secs, o.client_threads);
                eprintln!(
                    "  round {} {:<28} {:<14} {:>10.0} msgs/s {:>8.1} MB/s p99 {:>8.1} us",
                    round + 1,
                    scenarios[si].0,
                    s.name,
                    r.msgs_per_s,
                    r.mb_per_s,
                    r.p99_us
                );
                results.entry((si, s.name.clone())).or_default().push(r);
                // Let the closed connections drain before the next run.
                std::thread::sleep(Duration::from_millis(300));
            }
        }
    }
    for (si, (title, _, size)) in scenarios.iter().enumerate() {
        if !o.scenarios.contains(&(si + 1)) {
            continue;
        }
        println!("\n{title}:");
        println!(
            "  {:<14} {:>12} {:>10} {:>10} {:>10} {:>8}",
            "server", "msgs/s", "MB/s", "p50 us", "p99 us", "RSS MiB"
        );
        let mut med: BTreeMap<String, (f64, f64, f64, f64)> = BTreeMap::new();
        for s in &servers {
            let runs = &results[&(si, s.name.clone())];
            let m = (
                median(runs.iter().map(|r| r.msgs_per_s).collect()),
                median(runs.iter().map(|r| r.mb_per_s).collect()),
                median(runs.iter().map(|r| r.p50_us).collect()),
                median(runs.iter().map(|r| r.p99_us).collect()),
            );
            println!(
                "  {:<14} {:>12.0} {:>10.1} {:>10.1} {:>10.1} {:>8.1}",
                s.name,
                m.0,
                m.1,
                m.2,
                m.3,
                s.rss_kib() as f64 / 1024.0
            );
            med.insert(s.name.clone(), m);
        }
        // The target is against the tokio reference; where a tuned tokio variant (64 KiB
        // buffer) does better, the ratio against it is shown as well.
        if let Some(a) = med.get("sockkit") {
            let metric = |m: &(f64, f64, f64, f64)| if *size >= 1024 { m.1 } else { m.0 };
            let unit = if *size >= 1024 { "MB/s" } else { "msgs/s" };
            for (name, b) in med.iter().filter(|(n, _)| n.starts_with("tokio")) {
                println!(
                    "  ratio sockkit/{name}: {unit} {:.2}x, p99 latency {:.2}x",
                    metric(a) / metric(b),
                    a.3 / b.3
                );
            }
        }
    }
    drop(servers);
    if !o.skip_idle {
        println!(
            "\n{} idle connections (fresh servers), each echoing once at the end:",
            o.idle
        );
        println!(
            "  {:<14} {:>12} {:>12} {:>14} {:>14}",
            "server", "RSS base MiB", "RSS held MiB", "KiB/idle conn", "after echo MiB"
        );
        let mut held_of: BTreeMap<String, u64> = BTreeMap::new();
        for name in &o.servers {
            let server = Server::start(name, &o);
            let (base, held, after) = idle(&server, o.idle);
            println!(
                "  {:<14} {:>12.1} {:>12.1} {:>14.2} {:>14.1}",
                name,
                base as f64 / 1024.0,
                held as f64 / 1024.0,
                (held.saturating_sub(base)) as f64 / o.idle as f64,
                after as f64 / 1024.0
            );
            held_of.insert(name.clone(), held);
            drop(server);
            std::thread::sleep(Duration::from_millis(500));
        }
        if let (Some(a), Some(b)) = (held_of.get("sockkit"), held_of.get("tokio")) {
            println!(
                "  ratio sockkit/tokio RSS held: {:.2}x",
                *a as f64 / *b as f64
            );
        }
    }
    println!("\nload average {} at end", loadavg());
}
