//! `--report FILE.html` and `sockkit report TRACE`: a real loopback session drawn as one
//! self-contained page with an arrow per captured segment and the four TCP_INFO plots, the
//! same page from the saved trace, a file that is not a trace refused in one line, and the
//! page rendered by a real headless Chromium (its DOM counted, its screenshot decoded and
//! checked not blank). Capture needs CAP_NET_RAW: as root here; skipped without it unless CI.

mod util;
use std::process::Command;
use std::time::Duration;

use util::*;

/// The segment events of a trace file.
fn trace_segments(path: &std::path::Path) -> usize {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["event"] == "segment")
        .count()
}

fn arrows(html: &str) -> usize {
    html.matches("class=\"segment ").count()
}

fn plots(html: &str) -> Vec<&'static str> {
    ["cwnd", "rtt", "inflight", "throughput"]
        .into_iter()
        .filter(|p| html.contains(&format!("class=\"plot {p}\"")))
        .collect()
}

/// A short request/response with `--report` and `--trace`, paced so there are samples.
fn session(dir: &TempDir) -> (std::path::PathBuf, std::path::PathBuf) {
    let server = Server::start(&["echo", "127.0.0.1", "0"]);
    let port = server.port().to_string();
    let (html, trace) = (dir.path("r.html"), dir.path("t.jsonl"));
    let out = run(
        &[
            "connect",
            "--report",
            html.to_str().unwrap(),
            "--trace",
            trace.to_str().unwrap(),
            "127.0.0.1",
            &port,
        ],
        b"GET / HTTP/1.0\r\n\r\n",
        T,
    );
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    assert_eq!(out.stdout, b"GET / HTTP/1.0\r\n\r\n");
    (html, trace)
}

#[test]
fn report_draws_an_arrow_per_captured_segment_and_the_four_plots() {
    if !root_or_skip() {
        return;
    }
    let dir = TempDir::new("report");
    let server = Server::start(&["echo", "127.0.0.1", "0"]);
    let port = server.port().to_string();
    let (html, trace) = (dir.path("r.html"), dir.path("t.jsonl"));
    let out = run(
        &[
            "connect",
            "--report",
            html.to_str().unwrap(),
            "--trace",
            trace.to_str().unwrap(),
            "--tcp-info-every",
            "5ms",
            "127.0.0.1",
            &port,
        ],
        b"hello\n",
        T,
    );
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    assert_eq!(out.stdout, b"hello\n");
    let page = std::fs::read_to_string(&html).unwrap();
    let segs = trace_segments(&trace);
    // Handshake (3), data and its echo with ACKs, two FINs and their ACKs.
    assert!(segs >= 8, "{segs} segments");
    assert_eq!(arrows(&page), segs, "one arrow per segment");
    assert_eq!(page.matches("class=\"segment out syn\"").count(), 1);
    assert_eq!(page.matches("class=\"segment in syn\"").count(), 1);
    assert_eq!(plots(&page).len(), 4, "{:?}", plots(&page));
    assert!(page.contains(">ESTABLISHED<") && page.contains(">TIME_WAIT<"));
    assert!(!page.contains("<script") && !page.contains("src="));

    // The same page from the saved trace (the title aside).
    let again = dir.path("again.html");
    let out = run(
        &[
            "report",
            trace.to_str().unwrap(),
            "-o",
            again.to_str().unwrap(),
        ],
        b"",
        T,
    );
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    assert!(out.stdout.is_empty());
    let redrawn = std::fs::read_to_string(&again).unwrap();
    assert_eq!(arrows(&redrawn), segs);
    assert_eq!(plots(&redrawn).len(), 4);
    let body = |p: &str| p[p.find("<h2>").unwrap()..].to_string();
    assert_eq!(body(&redrawn), body(&page));
}

#[test]
fn report_alone_samples_and_a_trace_without_samples_says_so() {
    if !root_or_skip() {
        return;
    }
    let dir = TempDir::new("report-default");
    let (html, trace) = session(&dir);
    let page = std::fs::read_to_string(&html).unwrap();
    // --report samples by itself at the start and end of the connection at least.
    assert_eq!(plots(&page).len(), 4, "{page}");
    // A trace without tcp_info events: the page says there is nothing to plot.
    let lines: String = std::fs::read_to_string(&trace)
        .unwrap()
        .lines()
        .filter(|l| !l.contains("\"event\":\"tcp_info\""))
        .map(|l| format!("{l}\n"))
        .collect();
    let bare = dir.file("bare.jsonl", &lines);
    let out = run(&["report", bare.to_str().unwrap()], b"", T);
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    let page = out.stdout_text();
    assert!(page.contains("No TCP_INFO samples in this trace"), "{page}");
    assert!(plots(&page).is_empty());
    assert_eq!(arrows(&page), trace_segments(&bare));
}

#[test]
fn report_refuses_a_file_that_is_not_a_trace_in_one_line() {
    let dir = TempDir::new("report-bad");
    let not = dir.file("notes.txt", "hello\nworld\n");
    let out_html = dir.path("out.html");
    let out = run(
        &[
            "report",
            not.to_str().unwrap(),
            "-o",
            out_html.to_str().unwrap(),
        ],
        b"",
        T,
    );
    assert_eq!(out.code(), Some(1), "{}", out.stderr);
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    assert!(
        out.stderr.starts_with(&format!(
            "sockkit: {}: not a sockkit --trace file: line 1 is not a JSON object",
            not.display()
        )),
        "{}",
        out.stderr
    );
    assert!(!out_html.exists(), "nothing written");
    // A file with no newline is refused at the line bound, not read whole into memory.
    let out = run(&["report", "/dev/zero"], b"", T);
    assert_eq!(out.code(), Some(1), "{}", out.stderr);
    assert!(
        out.stderr
            .contains("/dev/zero: not a sockkit --trace file: line 1 is longer than 1.00 MiB"),
        "{}",
        out.stderr
    );
    let empty = dir.file("empty.jsonl", "");
    let out = run(&["report", empty.to_str().unwrap()], b"", T);
    assert_eq!(out.code(), Some(1));
    assert!(out.stderr.contains("it is empty"), "{}", out.stderr);
    let missing = dir.path("missing.jsonl");
    let out = run(&["report", missing.to_str().unwrap()], b"", T);
    assert_eq!(out.code(), Some(1));
    assert!(out.stderr.contains("no such file"), "{}", out.stderr);
}

/// Decodes a PNG (8-bit RGB/RGBA, not interlaced, as Chromium writes) and prints `width
/// height share-of-non-white-pixels distinct-colours`.
const PNG_STATS: &str = r"
import sys, zlib, struct
data = open(sys.argv[1], 'rb').read()
assert data[:8] == b'\x89PNG\r\n\x1a\n', 'not a PNG'
pos, idat, w, h, ctype = 8, b'', 0, 0, 0
while pos < len(data):
    n, kind = struct.unpack('>I4s', data[pos:pos + 8])
    body = data[pos + 8:pos + 8 + n]
    if kind == b'IHDR':
        w, h, depth, ctype, _, _, interlace = struct.unpack('>IIBBBBB', body)
        assert depth == 8 and interlace == 0 and ctype in (2, 6), (depth, ctype, interlace)
    elif kind == b'IDAT':
        idat += body
    pos += 12 + n
bpp = 4 if ctype == 6 else 3
raw = zlib.decompress(idat)
stride = w * bpp
prev = bytearray(stride)
nonwhite, colours = 0, set()
for y in range(h):
    f = raw[y * (stride + 1)]
    line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
    for i in range(stride):
        a = line[i - bpp] if i >= bpp else 0
        b = prev[i]
        c = prev[i - bpp] if i >= bpp else 0
        if f == 1: line[i] = (line[i] + a) & 255
        elif f == 2: line[i] = (line[i] + b) & 255
        elif f == 3: line[i] = (line[i] + (a + b) // 2) & 255
        elif f == 4:
            p = a + b - c
            pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
    for x in range(0, stride, bpp):
        px = bytes(line[x:x + 3])
        if px != b'\xff\xff\xff':
            nonwhite += 1
        if len(colours) < 1000:
            colours.add(px)
    prev = line
print(w, h, nonwhite / (w * h), len(colours))
";

#[test]
fn the_report_renders_in_headless_chromium_with_its_arrows_and_plots() {
    if !root_or_skip() {
        return;
    }
    let Some(chromium) = peer_or_skip("chromium") else {
        return;
    };
    let Some(python) = peer_or_skip("python3") else {
        return;
    };
    let dir = TempDir::new("report-chromium");
    let (html, trace) = session(&dir);
    let segs = trace_segments(&trace);
    let url = format!("file://{}", html.display());
    let browser = |extra: &[String]| {
        let profile = dir.path(&format!("profile{}", extra.len()));
        let mut cmd = Command::new(&chromium);
        cmd.args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--window-size=1200,900",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(&url);
        // Bounded: a browser that hangs fails the test (and is killed), never CI.
        run_cmd(&mut cmd, b"", Duration::from_mins(1))
    };
    let dom = browser(&["--dump-dom".to_string()]);
    assert_eq!(dom.code(), Some(0), "{}", dom.stderr);
    let dom = dom.stdout_text();
    assert_eq!(
        arrows(&dom),
        segs,
        "the browser's DOM has an arrow per segment"
    );
    assert_eq!(plots(&dom).len(), 4, "{:?}", plots(&dom));
    assert!(dom.contains("class=\"sequence\""));

    let png = dir.path("shot.png");
    let shot = browser(&[format!("--screenshot={}", png.display())]);
    assert_eq!(shot.code(), Some(0), "{}", shot.stderr);
    let mut cmd = Command::new(&python);
    cmd.args(["-c", PNG_STATS]).arg(&png);
    let stats = run_cmd(&mut cmd, b"", Duration::from_mins(2));
    assert_eq!(stats.code(), Some(0), "{}", stats.stderr);
    let words: Vec<String> = stats
        .stdout_text()
        .split_whitespace()
        .map(String::from)
        .collect();
    assert_eq!(words[..2], ["1200", "900"], "{words:?}");
    let inked: f64 = words[2].parse().unwrap();
    let colours: usize = words[3].parse().unwrap();
    // A blank page is all white; the report draws text, lanes, arrows and plots.
    assert!(inked > 0.02, "only {inked} of the pixels are not white");
    assert!(colours > 20, "{colours} colours");
}

#[test]
fn a_long_session_is_drawn_in_part_and_the_page_stays_small() {
    if !root_or_skip() {
        return;
    }
    let dir = TempDir::new("report-long");
    let server = Server::start(&["echo", "-o", "rcvbuf=4096", "127.0.0.1", "0"]);
    let port = server.port().to_string();
    let (html, trace) = (dir.path("r.html"), dir.path("t.jsonl"));
    // Small receive buffers at both ends keep each window, so each segment, to a few KiB:
    // 4 MiB make over a thousand segments each way, paced slowly enough for the capture to
    // keep up on a loaded machine, and many more than the page draws.
    let data = random_bytes(7, 4 << 20);
    let out = run(
        &[
            "connect",
            "-o",
            "rcvbuf=4096",
            "--report",
            html.to_str().unwrap(),
            "--trace",
            trace.to_str().unwrap(),
            "127.0.0.1",
            &port,
        ],
        &data,
        T,
    );
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    assert_bytes_eq(&out.stdout, &data, "echoed");
    let segs = trace_segments(&trace);
    let page = std::fs::read_to_string(&html).unwrap();
    let drawn = arrows(&page);
    // The page draws at most 500 rows (calls and states among them).
    assert!(segs > 500, "{segs} segments: the session should be long");
    assert!(drawn < segs, "{drawn} of {segs} drawn");
    assert!(
        page.contains(&format!("... {} segments and ", segs - drawn)),
        "the page says how many were left out"
    );
    assert!(page.len() < 400_000, "{} bytes", page.len());
}

#[test]
fn an_echo_server_writes_its_report_when_stopped() {
    if !root_or_skip() {
        return;
    }
    let dir = TempDir::new("report-echo");
    let (html, trace) = (dir.path("echo.html"), dir.path("echo.jsonl"));
    let mut server = Server::start(&[
        "echo",
        "--report",
        html.to_str().unwrap(),
        "--trace",
        trace.to_str().unwrap(),
        "127.0.0.1",
        "0",
    ]);
    let port = server.port().to_string();
    for _ in 0..2 {
        let out = run(&["connect", "127.0.0.1", &port], b"hello\n", T);
        assert_eq!(out.stdout, b"hello\n", "{}", out.stderr);
    }
    // Both clients' last segments are in before the server is stopped.
    let text = || std::fs::read_to_string(&trace).unwrap_or_default();
    let deadline = std::time::Instant::now() + T;
    while text().matches("\"flags\":\"F.\"").count() < 4 {
        assert!(std::time::Instant::now() < deadline, "{}", text());
        std::thread::sleep(Duration::from_millis(20));
    }
    let kill = Command::new("kill")
        .args(["-INT", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    server.child.status_within(T, "echo after SIGINT");
    let page = std::fs::read_to_string(&html).unwrap();
    let segs = trace_segments(&trace);
    assert!(segs >= 20, "two clients' segments: {segs}");
    assert_eq!(arrows(&page), segs);
    // Two clients: the peer lane says so, and each arrow names its client.
    assert!(
        page.contains(">2 peers<"),
        "the peer lane names both clients"
    );
    assert_eq!(
        plots(&page).len(),
        4,
        "the first client's samples are plotted"
    );
    assert!(page.contains("samples of other clients not plotted"));
}

#[test]
fn a_refused_connection_still_gets_its_page_and_a_refused_command_leaves_the_file_alone() {
    if !root_or_skip() {
        return;
    }
    let dir = TempDir::new("report-fail");
    // A port nobody listens on: the kernel answers the SYN with a RST, and the page shows it.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port().to_string();
    drop(closed);
    let page = dir.path("refused.html");
    let out = run(
        &[
            "connect",
            "--report",
            page.to_str().unwrap(),
            "127.0.0.1",
            &port,
        ],
        b"",
        T,
    );
    assert_eq!(out.code(), Some(1), "{}", out.stderr);
    assert!(out.stderr.contains("connection refused"), "{}", out.stderr);
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(html.contains("class=\"segment out syn"), "no SYN drawn");
    assert!(html.contains("class=\"segment in rst"), "no RST drawn");
    // Refused before any socket (exit 2): an existing file is not touched.
    let kept = dir.file("kept.html", "keep me");
    let out = run(
        &[
            "echo",
            "--report",
            kept.to_str().unwrap(),
            "--max-conns",
            "0",
            "127.0.0.1",
            "0",
        ],
        b"",
        T,
    );
    assert_eq!(out.code(), Some(2), "{}", out.stderr);
    assert_eq!(std::fs::read_to_string(&kept).unwrap(), "keep me");
}
