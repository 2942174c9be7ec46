//! What sockkit tells the learner on stderr: `-v` lifecycle lines and `-vv` narration of each
//! socket call with its arguments, result and time. One formatter for every subcommand, so the
//! sockets API reads the same wherever it happens; the calls themselves live in `socket.rs`.

use std::fmt;
use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::time::{Duration, Instant};

use crate::trace;

static LEVEL: AtomicU8 = AtomicU8::new(0);
static EXPLAIN: AtomicBool = AtomicBool::new(false);
static JSON: AtomicBool = AtomicBool::new(false);

/// `--json`: end-of-session and end-of-client reports are JSON objects (their writers build
/// them) instead of `-v`'s lines. Set once by `cmd`, read by whoever reports.
pub fn set_json(on: bool) {
    JSON.store(on, Ordering::Relaxed);
}

/// True when `--json` asked for the reports as JSON objects.
pub fn json() -> bool {
    JSON.load(Ordering::Relaxed)
}

/// One JSON object (already JSON text) as one line on stderr.
pub fn json_line(object: &str) {
    say(&format!("{object}\n"));
}

/// `--explain`: a plain sentence after each narrated step.
pub fn set_explain(on: bool) {
    EXPLAIN.store(on, Ordering::Relaxed);
}

/// True when `--explain` asked for the sentences.
pub fn explaining() -> bool {
    EXPLAIN.load(Ordering::Relaxed)
}

/// `--explain`'s sentence after a step: what the call did and why it matters, in a learner's
/// words, under the line it explains.
pub fn explain(what: fmt::Arguments) {
    if explaining() {
        emit(format_args!("          = {what}"));
    }
}

/// How much to say: 0 silent, 1 `-v` lifecycle, 2 `-vv` every setup call and the first data
/// calls of each kind, 3 `-vvv` every call.
pub fn set_level(level: u8) {
    LEVEL.store(level, Ordering::Relaxed);
    crate::clock::start();
}

pub fn level() -> u8 {
    LEVEL.load(Ordering::Relaxed)
}

/// True when `-v` lifecycle lines are wanted.
pub fn verbose() -> bool {
    level() >= 1
}

/// True when `-vv` narration of each call is wanted.
pub fn narrating() -> bool {
    level() >= 2
}

/// True when `-vvv` asked for every call, data calls and sockkit's own look-ups included.
pub fn every_call() -> bool {
    level() >= 3
}

/// Time since the program started, the left margin of narration lines.
fn since_start() -> Duration {
    crate::clock::since_start()
}

/// The session clock as narration's left margin shows it (`+1.2ms`), for something told by
/// others on the same clock that happened `ago` before now (a packet the kernel timestamped
/// before the capture thread read it).
pub fn stamp_ago(ago: Duration) -> String {
    format!("+{}", short(since_start().saturating_sub(ago)))
}

/// One line on stderr, whole: a single write so lines of concurrent threads never interleave.
pub fn emit(args: fmt::Arguments) {
    say(&format!("sockkit: {args}\n"));
}

/// Writes `text` to stderr as one write, ignoring failure: a closed or broken stderr
/// (`2>&-`, `2>&1 | true`) must neither panic (as `eprint!` does) nor change the exit status,
/// and there is nowhere left to report it. Every word sockkit says goes through here.
pub fn say(text: &str) {
    let mut err = io::stderr().lock();
    // A live `--progress` line is erased first, so what is said starts at the margin and
    // the line is redrawn under it (progress.rs) at its next tick.
    if LIVE_LINE.swap(false, Ordering::Relaxed) {
        let _ = err.write_all(ERASE.as_bytes());
    }
    let _ = err.write_all(text.as_bytes());
}

/// Carriage return and erase to the end of the line (ANSI EL): the live line gone.
const ERASE: &str = "\r\x1b[K";

/// A `--progress` line is on stderr now, with no newline after it.
static LIVE_LINE: AtomicBool = AtomicBool::new(false);

/// Draws `line` as the live `--progress` line, over the one before (progress.rs calls it at
/// most a few times a second).
pub fn live_line(line: &str) {
    let mut err = io::stderr().lock();
    let _ = err.write_all(format!("{ERASE}{line}").as_bytes());
    LIVE_LINE.store(true, Ordering::Relaxed);
}

/// Erases the live `--progress` line, if one is shown.
pub fn clear_live_line() {
    let mut err = io::stderr().lock();
    if LIVE_LINE.swap(false, Ordering::Relaxed) {
        let _ = err.write_all(ERASE.as_bytes());
    }
}

/// A `-v` line.
pub fn info(args: fmt::Arguments) {
    if verbose() {
        emit(args);
    }
}

/// A `-vv` line for one socket call that has returned: `what` is the call as C would spell it,
/// `took` its duration.
pub fn call(what: fmt::Arguments, took: Duration) {
    if trace::on() {
        let text = what.to_string();
        let (name, args, result) = trace::split_call(&text);
        trace::record("call", |f| {
            f.str("name", name)
                .str("args", args)
                .str("result", result)
                .num("duration_ns", took.as_nanos() as i128);
        });
    }
    if narrating() {
        emit(format_args!(
            "{:>9} {what} [{}]",
            format!("+{}", short(since_start())),
            short(took)
        ));
    }
}

/// A `-vv` line that is no call of ours: what the kernel did, told when sockkit saw it.
pub fn seen(what: fmt::Arguments) {
    if trace::on() {
        trace::record("kernel", |f| {
            f.str("text", &what.to_string());
        });
    }
    if narrating() {
        emit(format_args!(
            "{:>9} {what}",
            format!("+{}", short(since_start()))
        ));
    }
}

/// Runs `f` and narrates it with `describe`, which sees the result (so it can show `= fd 3`
/// or the errno). Nothing is formatted unless `-vv` asked for it.
pub fn traced<T>(
    f: impl FnOnce() -> io::Result<T>,
    describe: impl FnOnce(&io::Result<T>) -> String,
) -> io::Result<T> {
    if !narrating() && !trace::on() {
        return f();
    }
    let t0 = Instant::now();
    let result = f();
    let took = t0.elapsed();
    call(format_args!("{}", describe(&result)), took);
    result
}

/// How many times each distinct data call is narrated in full at `-vv` before it is only
/// counted in the once-a-second summary.
const SHOWN_IN_FULL: u32 = 3;

/// The data calls (read/write, recv/send, splice, sendfile) of one direction of a relay, as
/// narration tells them: each distinct call in full its first few times, then one summary line
/// per second (`splice(fd 3 -> fd 9) x812 53.20 MiB in 1.00s`), and every call at `-vvv`.
/// Made only when narrating (`Flow::new` is `None` otherwise), so a relay that is not
/// narrated pays one branch per call: no formatting, no clock read.
pub struct Flow {
    direction: String,
    /// Whose calls these are, said after each line (`client 127.0.0.1:5555`) when several
    /// flows interleave, as a server's clients do.
    tag: bool,
    /// Each distinct call (name and descriptors) and how often it has been seen.
    seen: Vec<(Key, u32)>,
    /// Calls counted but not shown since `window_start`: per key, calls and bytes.
    window: Vec<(Key, u64, u64)>,
    window_start: Instant,
    every: bool,
    /// `--explain` has told what an EOF (a 0 from read) means.
    eof_explained: bool,
}

/// A data call's identity for counting: its name and the descriptors it moves between.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Key {
    pub name: &'static str,
    pub from: i32,
    pub to: Option<i32>,
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.to {
            Some(to) => write!(f, "{}(fd {} -> fd {})", self.name, self.from, to),
            None => write!(f, "{}(fd {})", self.name, self.from),
        }
    }
}

impl Flow {
    /// A flow for `direction` (`stdin -> socket`, `client 127.0.0.1:5555`), or `None` when
    /// `-vv` is off.
    pub fn new(direction: &str) -> Option<Flow> {
        (narrating() || trace::on()).then(|| Flow {
            direction: direction.to_string(),
            tag: false,
            seen: Vec::new(),
            window: Vec::new(),
            window_start: Instant::now(),
            every: every_call(),
            eof_explained: false,
        })
    }

    /// A server's flow for one client, both directions, each line tagged with `who`
    /// (formatted only when narrating).
    pub fn for_client(who: &dyn fmt::Display) -> Option<Flow> {
        let mut flow = Flow::new("")?;
        flow.direction = format!("client {who}");
        flow.tag = true;
        Some(flow)
    }

    /// One data call has returned `result`; `full` spells it as strace would (without the
    /// result), and is only called when the line is shown.
    pub fn call(&mut self, key: Key, full: impl FnOnce() -> String, result: &io::Result<usize>) {
        if trace::on() {
            let text = full();
            let (name, args, _) = trace::split_call(&text);
            let res = match result {
                Ok(n) => format!("{n}"),
                Err(e) => errno_text(e).trim_start_matches("= ").to_string(),
            };
            trace::record("call", |f| {
                f.str("name", name).str("args", args).str("result", &res);
                if let Ok(n) = result {
                    f.num("bytes", *n as i128);
                }
            });
            if !narrating() {
                return;
            }
            return self.shown(key, || text, result);
        }
        self.shown(key, full, result);
    }

    /// The narration of one data call (shown, or counted for the summary).
    fn shown(&mut self, key: Key, full: impl FnOnce() -> String, result: &io::Result<usize>) {
        let n = if let Some((_, n)) = self.seen.iter_mut().find(|(k, _)| *k == key) {
            *n += 1;
            *n
        } else {
            self.seen.push((key, 1));
            1
        };
        if self.every || n <= SHOWN_IN_FULL || result.is_err() {
            let res = match result {
                Ok(n) => format!("= {n}"),
                Err(e) => errno_text(e),
            };
            let more = if !self.every && n == SHOWN_IN_FULL {
                " (more of these are summed once a second)"
            } else {
                ""
            };
            let tag = if self.tag {
                format!(" ({})", self.direction)
            } else {
                String::new()
            };
            emit(format_args!(
                "{:>9} {} {res}{more}{tag}",
                format!("+{}", short(since_start())),
                full()
            ));
            self.explain(key, n, result);
            if let Err(e) = result {
                reset_told(key, e);
            }
            return;
        }
        let bytes = result.as_ref().map_or(0, |n| *n as u64);
        match self.window.iter_mut().find(|(k, _, _)| *k == key) {
            Some((_, calls, b)) => {
                *calls += 1;
                *b += bytes;
            }
            None => self.window.push((key, 1, bytes)),
        }
        if self.window_start.elapsed() >= Duration::from_secs(1) {
            self.summarise();
        }
    }

    /// `--explain`: what the first call of each kind did, and what an EOF means.
    fn explain(&mut self, key: Key, n: u32, result: &io::Result<usize>) {
        if !explaining() {
            return;
        }
        let reads = matches!(key.name, "read" | "recvfrom" | "splice");
        if reads && matches!(result, Ok(0)) && !self.eof_explained {
            self.eof_explained = true;
            explain(format_args!(
                "{}() returned 0: the other side is done sending (its FIN, or stdin's end). \
                 In Java, in.readLine() returns null here.",
                key.name
            ));
            return;
        }
        if n != 1 {
            return;
        }
        let Ok(moved) = result else { return };
        match key.name {
            "read" | "recvfrom" => explain(format_args!(
                "{}() returned the {moved} bytes that had arrived, whatever their size: it does \
                 not wait for a whole line. Java's in.readLine() is read() again and again until \
                 a newline.",
                key.name
            )),
            "write" | "sendto" => explain(format_args!(
                "{}() copied {moved} bytes into the kernel's send buffer and returned; TCP puts \
                 them on the wire when it can. Java's out.println(...) is one write() of the \
                 line and its newline.",
                key.name
            )),
            "splice" | "sendfile" => explain(format_args!(
                "{}() moved {moved} bytes inside the kernel, between the socket and a pipe or \
                 file, without copying them through sockkit: what read() + write() would do, \
                 with one copy less.",
                key.name
            )),
            _ => {}
        }
    }

    /// The summary line of the calls counted since the last one, if any: said when a
    /// direction ends (a flow that lives on, as the stdin side does across `listen -k`
    /// sessions, is flushed at each session's end).
    pub fn summarise(&mut self) {
        if self.window.is_empty() {
            self.window_start = Instant::now();
            return;
        }
        let parts: Vec<String> = self
            .window
            .iter()
            .map(|(k, calls, b)| format!("{k} x{calls} {}", bytes(*b)))
            .collect();
        emit(format_args!(
            "{:>9} {}: {} in {}",
            format!("+{}", short(since_start())),
            self.direction,
            parts.join(", "),
            short(self.window_start.elapsed())
        ));
        self.window.clear();
        self.window_start = Instant::now();
    }
}

/// A data call that failed because the peer reset the connection: the reset named as a RST,
/// the segment that made it, which no call of ours sent.
fn reset_told(key: Key, e: &io::Error) {
    let why = match e.raw_os_error() {
        Some(libc::ECONNRESET) => {
            "the peer sent a RST: the connection is gone at once, \
                                   and whatever it had not read is lost"
        }
        // EPIPE from a pipe (stdout closed) is no reset: only a socket's EPIPE is.
        Some(libc::EPIPE) if is_socket(key.to.unwrap_or(key.from)) => {
            "the connection was reset (a RST came earlier): nothing more can be sent"
        }
        _ => return,
    };
    seen(format_args!(
        "kernel: fd {} got a RST, no call of ours: {why} ({}() said {})",
        key.from,
        key.name,
        errno_name(e.raw_os_error().unwrap_or(0))
    ));
}

/// Whether `fd` is a socket (fstat), asked only after a call failed.
fn is_socket(fd: i32) -> bool {
    crate::sys::fstat(fd).is_ok_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFSOCK)
}

impl Drop for Flow {
    /// The calls counted since the last summary are told when the direction ends.
    fn drop(&mut self) {
        self.summarise();
    }
}

/// `= 0` or `= -1 ECONNREFUSED (Connection refused)`: the C way of saying how a call went.
pub fn outcome<T>(result: &io::Result<T>) -> String {
    match result {
        Ok(_) => "= 0".to_string(),
        Err(e) => errno_text(e),
    }
}

/// `= -1 EADDRINUSE (Address already in use)`.
pub fn errno_text(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(code) => format!("= -1 {} ({})", errno_name(code), strerror(code)),
        None => format!("failed: {e}"),
    }
}

fn strerror(code: i32) -> String {
    let text = io::Error::from_raw_os_error(code).to_string();
    // std appends " (os error N)"; the errno name already says which.
    match text.find(" (os error") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

/// The symbolic errno a C programmer would look up in `man 2 connect`.
pub fn errno_name(code: i32) -> &'static str {
    match code {
        libc::EACCES => "EACCES",
        libc::EADDRINUSE => "EADDRINUSE",
        libc::EADDRNOTAVAIL => "EADDRNOTAVAIL",
        libc::EAFNOSUPPORT => "EAFNOSUPPORT",
        libc::EAGAIN => "EAGAIN",
        libc::EALREADY => "EALREADY",
        libc::EBADF => "EBADF",
        libc::ECONNABORTED => "ECONNABORTED",
        libc::ECONNREFUSED => "ECONNREFUSED",
        libc::ECONNRESET => "ECONNRESET",
        libc::EHOSTUNREACH => "EHOSTUNREACH",
        libc::EINPROGRESS => "EINPROGRESS",
        libc::EINTR => "EINTR",
        libc::EINVAL => "EINVAL",
        libc::EISCONN => "EISCONN",
        libc::EMFILE => "EMFILE",
        libc::EMSGSIZE => "EMSGSIZE",
        libc::ENETUNREACH => "ENETUNREACH",
        libc::ENFILE => "ENFILE",
        libc::ENOBUFS => "ENOBUFS",
        libc::ENODEV => "ENODEV",
        libc::ENOMEM => "ENOMEM",
        libc::ENOENT => "ENOENT",
        libc::ENOPROTOOPT => "ENOPROTOOPT",
        libc::ENOTCONN => "ENOTCONN",
        libc::ENOTSOCK => "ENOTSOCK",
        libc::EOPNOTSUPP => "EOPNOTSUPP",
        libc::EPERM => "EPERM",
        libc::EPIPE => "EPIPE",
        libc::EPROTONOSUPPORT => "EPROTONOSUPPORT",
        libc::ETIMEDOUT => "ETIMEDOUT",
        _ => "E?",
    }
}

/// Durations as a person reads them at a glance: `850ns`, `12µs`, `3.4ms`, `1.25s`, `2m 5s`.
pub fn short(d: Duration) -> String {
    let ns = d.as_nanos();
    if ns < 1_000 {
        format!("{ns}ns")
    } else if ns < 1_000_000 {
        format!("{}µs", ns / 1_000)
    } else if ns < 1_000_000_000 {
        format!("{:.1}ms", ns as f64 / 1e6)
    } else if d.as_secs() < 60 {
        format!("{:.2}s", d.as_secs_f64())
    } else {
        humantime::format_duration(Duration::from_secs(d.as_secs())).to_string()
    }
}

/// A byte count with a binary unit: `512 B`, `64.0 KiB`, `1.50 GiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.2} {}", UNITS[unit])
}

/// A rate in bytes/s as `ss` prints it: bits per second, `12.3Mbps`.
pub fn bits_per_second(bytes_per_sec: u64) -> String {
    let bits = bytes_per_sec as f64 * 8.0;
    if bits >= 1e9 {
        format!("{:.1}Gbps", bits / 1e9)
    } else if bits >= 1e6 {
        format!("{:.1}Mbps", bits / 1e6)
    } else if bits >= 1e3 {
        format!("{:.1}Kbps", bits / 1e3)
    } else {
        format!("{bits}bps")
    }
}

/// Transfer rate for the `-v` summary: bytes over the time they took.
pub fn rate(n: u64, d: Duration) -> String {
    let secs = d.as_secs_f64();
    if secs <= 0.0 || n == 0 {
        return "-".to_string();
    }
    // A float-to-int `as` saturates (never wraps); the rate is positive and shown rounded.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let per_sec = (n as f64 / secs) as u64;
    format!("{}/s", bytes(per_sec))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_durations_read_at_a_glance() {
        assert_eq!(short(Duration::from_nanos(850)), "850ns");
        assert_eq!(short(Duration::from_micros(12)), "12µs");
        assert_eq!(short(Duration::from_micros(3400)), "3.4ms");
        assert_eq!(short(Duration::from_millis(1250)), "1.25s");
        assert_eq!(short(Duration::from_secs(125)), "2m 5s");
    }

    #[test]
    fn byte_counts_use_binary_units() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(64 * 1024), "64.00 KiB");
        assert_eq!(bytes(3 * 1024 * 1024 * 1024 / 2), "1.50 GiB");
    }

    #[test]
    fn errno_text_names_the_errno() {
        let e = io::Error::from_raw_os_error(libc::ECONNREFUSED);
        assert_eq!(errno_text(&e), "= -1 ECONNREFUSED (Connection refused)");
        let e = io::Error::from_raw_os_error(libc::ENOMEM);
        assert_eq!(errno_text(&e), "= -1 ENOMEM (Cannot allocate memory)");
    }
}
