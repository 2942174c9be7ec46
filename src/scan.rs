//! `connect -z`: the port check, over the ports `addr::PortList` parsed (`80`, `8000-8100`,
//! `22,80,8000-8010`): a non-blocking connect per port, several in flight at once (at most
//! `--parallel`), each bounded by `-w`, no data sent. The open ports go to stdout (every port
//! with -v, each as a JSON object with --json),
//! because with `-z` the ports' states are the data the user asked for (nc -zv puts them on
//! stderr only because its stdout belongs to the socket, and here no socket data exists); the
//! summary is status, so it goes to stderr. Socket setup is shared with `socket/`, the words
//! for a failure with `error`; the connect state machine (EINPROGRESS, poll for POLLOUT,
//! SO_ERROR) lives here, narrated with `-vv` so the learner sees how a non-blocking connect
//! completes.

use std::collections::BTreeMap;
use std::fmt;
use std::io::{self, Write};
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow};
use socket2::{Domain, SockAddr, Socket};

use crate::addr::{Family, Source};
use crate::error;
use crate::error::UsageError;
use crate::narrate;
use crate::progress;
use crate::socket;
use crate::socket::Proxy;
use crate::socket::source;
use crate::sockopt::{Plan, SockKind, Stage};

/// How long each port may take to answer when `-w` is not given: long enough for a far host,
/// short enough that a filtered port does not hold the check up for the kernel's ~2 minutes.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(3);

/// Ports checked at once unless `--parallel` says otherwise: fast on a LAN, gentle on a host.
pub const DEFAULT_PARALLEL: usize = 32;

/// What one port said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// The three-way handshake completed, in this long.
    Open(Duration),
    /// RST: nothing listens there.
    Closed,
    /// No answer within `-w` (a firewall dropping packets, a full backlog, a host gone).
    TimedOut(Duration),
    /// Anything else the kernel said (unreachable, permission, ...).
    Failed(String),
    /// UDP: a datagram came back, so something is there.
    Answered(Duration),
    /// Through a proxy: the proxy could not reach the port, in its words.
    Unreached(String),
    /// UDP: no answer and no ICMP port unreachable within `-w`. UDP cannot tell an open port
    /// that ignores an empty datagram from a firewall that drops it.
    OpenFiltered(Duration),
}

impl State {
    /// Something answers there (TCP open; UDP a datagram came back or nothing refused it).
    fn is_open(&self) -> bool {
        matches!(
            self,
            State::Open(_) | State::Answered(_) | State::OpenFiltered(_)
        )
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            State::Open(t) => write!(f, "open in {}", narrate::short(*t)),
            State::Closed => f.write_str("closed"),
            State::TimedOut(t) => write!(f, "timed out (no answer in {})", narrate::short(*t)),
            State::Failed(why) => write!(f, "error: {why}"),
            State::Unreached(why) => write!(f, "not reached by the proxy: {why}"),
            State::Answered(t) => write!(f, "open (answered in {})", narrate::short(*t)),
            State::OpenFiltered(t) => write!(
                f,
                "open|filtered (no answer and no ICMP refusal in {})",
                narrate::short(*t)
            ),
        }
    }
}

/// How the check runs.
pub struct Check<'a> {
    pub parallel: usize,
    pub timeout: Duration,
    /// Bind this before each connect (`-s`; a fixed `-p` is refused earlier).
    pub source: Source,
    pub plan: &'a Plan,
    /// Where each port's line goes.
    pub lines: Lines,
    /// `--progress`: the live line of ports checked (progress.rs).
    pub progress: bool,
}

/// Where a check's per-port lines go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lines {
    /// Every port on stdout (`-z -v`): the check's data.
    All,
    /// Only the ports found open on stdout (plain `-z`): a check of 65,535 ports shows what
    /// answers, and the summary on stderr counts the rest.
    Open,
    /// One JSON object per port on stdout (`--json`): see `json_line` for the schema.
    Json,
    /// Every port on stderr, as OpenBSD `nc -zv` reports (nc mode with -v).
    Stderr,
    /// Nowhere: the exit status is the answer (nc mode's `-z`).
    Silent,
}

/// Writes one port's line where `lines` says.
fn put_line(
    lines: Lines,
    stdout: &mut impl Write,
    addr: SocketAddr,
    udp: bool,
    state: &State,
) -> io::Result<()> {
    put(
        lines,
        stdout,
        &addr.to_string(),
        || json_line(addr, udp, state),
        state,
    )
}

/// Writes one port's line where `lines` says: `shown` (`host:port`) and its state, or the
/// JSON object `json` makes.
fn put(
    lines: Lines,
    stdout: &mut impl Write,
    shown: &str,
    json: impl FnOnce() -> String,
    state: &State,
) -> io::Result<()> {
    let line = match lines {
        Lines::Json => json(),
        Lines::Open if !state.is_open() => return Ok(()),
        Lines::Silent => return Ok(()),
        _ => format!("{shown} {state}\n"),
    };
    if lines == Lines::Stderr {
        narrate::say(&line);
        return Ok(());
    }
    stdout
        .write_all(line.as_bytes())
        .and_then(|()| stdout.flush())
}

/// One port as a JSON object on one line, the stable schema of `connect -z --json`:
/// `host` (the address checked, a string), `port` (a number), `proto` ("tcp" or "udp"),
/// `state` ("open", "closed", "timed_out", "error", "open_filtered", through a proxy
/// "unreached"), `time` (seconds the answer took, a number; null when the state has no
/// time: closed, error, unreached) and `reason` (why
/// the state, in words: "connected", "connection refused", the error...).
pub fn json_line(addr: SocketAddr, udp: bool, state: &State) -> String {
    json_port(&addr.ip().to_string(), addr.port(), udp, state)
}

/// `json_line` for a host as named (through a proxy, which resolves it).
fn json_port(host: &str, port: u16, udp: bool, state: &State) -> String {
    let proto = if udp { "udp" } else { "tcp" };
    let (name, time, reason) = match state {
        State::Open(t) => ("open", Some(*t), "connected".to_string()),
        State::Closed if udp => ("closed", None, "ICMP port unreachable".to_string()),
        State::Closed => ("closed", None, "connection refused".to_string()),
        State::TimedOut(t) => ("timed_out", Some(*t), "no answer within -w".to_string()),
        State::Failed(why) => ("error", None, why.clone()),
        State::Unreached(why) => (
            "unreached",
            None,
            format!("the proxy could not reach it: {why}"),
        ),
        State::Answered(t) => ("open", Some(*t), "a datagram came back".to_string()),
        State::OpenFiltered(t) => (
            "open_filtered",
            Some(*t),
            "no answer and no ICMP port unreachable".to_string(),
        ),
    };
    let time = time.map_or("null".to_string(), |t| format!("{:.6}", t.as_secs_f64()));
    format!(
        "{{\"host\":{},\"port\":{},\"proto\":\"{proto}\",\"state\":\"{name}\",\"time\":{time},\"reason\":{}}}\n",
        crate::json::string(host),
        port,
        crate::json::string(&reason)
    )
}

/// Counts for the summary line.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    pub open: usize,
    /// UDP ports that neither answered nor were refused.
    pub maybe: usize,
    pub closed: usize,
    pub timed_out: usize,
    pub failed: usize,
}

impl Tally {
    fn add(&mut self, s: &State) {
        match s {
            State::Open(_) => self.open += 1,
            State::Closed => self.closed += 1,
            State::TimedOut(_) => self.timed_out += 1,
            State::Failed(_) => self.failed += 1,
            State::Unreached(_) => self.closed += 1,
            State::Answered(_) => self.open += 1,
            State::OpenFiltered(_) => self.maybe += 1,
        }
    }
}

impl fmt::Display for Tally {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} open, {} closed", self.open, self.closed)?;
        if self.maybe > 0 {
            write!(f, ", {} open|filtered", self.maybe)?;
        }
        if self.timed_out > 0 {
            write!(f, ", {} timed out", self.timed_out)?;
        }
        if self.failed > 0 {
            write!(f, ", {} failed", self.failed)?;
        }
        Ok(())
    }
}

/// One connect in flight.
struct Probe {
    index: usize,
    addr: SocketAddr,
    sock: Socket,
    started: Instant,
}

/// Checks every port of `ports` on `ip`, printing each port's line where `check.lines` says, in the order
/// given, and a summary on stderr. Ok when at least one port is open; otherwise the error is
/// the summary (exit status 1).
pub fn run(ip: IpAddr, ports: &[u16], check: &Check) -> Result<Tally> {
    let started = Instant::now();
    let parallel = check.parallel.max(1);
    let mut stdout = io::stdout().lock();
    let mut next = 0usize; // next port to start
    let mut printed = 0usize; // next port to print
    let mut done: BTreeMap<usize, State> = BTreeMap::new();
    let mut inflight: Vec<Probe> = Vec::with_capacity(parallel);
    let mut tally = Tally::default();
    let shown = Shown::start(check.progress, ports.len());
    let mut reader_gone = false;
    while printed < ports.len() {
        // Start connects until `parallel` are in flight (or descriptors run out for now).
        while next < ports.len() && inflight.len() < parallel {
            let addr = SocketAddr::new(ip, ports[next]);
            match start(addr, check) {
                Ok(Started::Pending(sock, started)) => inflight.push(Probe {
                    index: next,
                    addr,
                    sock,
                    started,
                }),
                Ok(Started::Done(state)) => {
                    done.insert(next, state);
                }
                Err(e) if is_out_of_fds(&e) && !inflight.is_empty() => break,
                Err(e) => return Err(e),
            }
            next += 1;
        }
        if !inflight.is_empty() {
            wait(&mut inflight, &mut done, check.timeout)?;
        }
        while let Some(state) = done.remove(&printed) {
            tally.add(&state);
            shown.add(&state);
            let addr = SocketAddr::new(ip, ports[printed]);
            printed += 1;
            if reader_gone {
                continue;
            }
            if let Err(e) = put_line(check.lines, &mut stdout, addr, false, &state) {
                if !error::is_broken_pipe(&e) {
                    return Err(anyhow!("writing to stdout: {}", error::plain(&e)));
                }
                // `| head -3`: the reader has what it wanted; finish quietly.
                reader_gone = true;
            }
        }
        if reader_gone {
            for p in inflight.drain(..) {
                socket::close(p.sock);
            }
            return Ok(tally);
        }
    }
    drop(shown);
    let summary = format!(
        "{} {} on {ip} checked in {}: {tally}",
        ports.len(),
        if ports.len() == 1 { "port" } else { "ports" },
        narrate::short(started.elapsed())
    );
    if tally.open == 0 {
        return Err(anyhow!("no open port: {summary}"));
    }
    narrate::emit(format_args!("{summary}"));
    Ok(tally)
}

/// `-z --proxy`: where the check goes and how long each port may take.
pub struct Via<'a> {
    pub proxy: &'a Proxy,
    pub family: Family,
    pub timeout: Duration,
    pub source: Source,
    pub plan: &'a Plan,
    /// Where each port's line goes.
    pub lines: Lines,
    /// `--progress`: the live line of ports checked (progress.rs).
    pub progress: bool,
}

/// `--progress` over a check: the ports done so far and how many were open, read by the
/// live line's thread; the line is gone once this is dropped (before the summary).
struct Shown {
    checked: Arc<AtomicU64>,
    open: Arc<AtomicU64>,
    _ticker: Option<progress::Ticker>,
}

impl Shown {
    fn start(on: bool, total: usize) -> Shown {
        let (checked, open) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let ticker = on.then(|| progress::ports(Arc::clone(&checked), Arc::clone(&open), total));
        Shown {
            checked,
            open,
            _ticker: ticker,
        }
    }

    fn add(&self, s: &State) {
        self.checked.fetch_add(1, Ordering::Relaxed);
        if s.is_open() {
            self.open.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// `-z --proxy`: for each port, a connection to the proxy and a CONNECT to `host:port`, one
/// after the other (each is a whole handshake), closed as soon as the proxy answers. The
/// proxy's own failure (down, bad credentials, garbage) ends the check: it says nothing about
/// the ports.
pub fn run_via(host: &str, ports: &[u16], via: &Via) -> Result<Tally> {
    if via.timeout.is_zero() {
        return Err(UsageError::new("-w 0 leaves no time for any port to answer").into());
    }
    let started = Instant::now();
    let mut stdout = io::stdout().lock();
    let mut tally = Tally::default();
    let progress = Shown::start(via.progress, ports.len());
    let shown = crate::proxy::Dest::of(host);
    for &port in ports {
        let t0 = Instant::now();
        let (sock, reached) = socket::connect_via(
            via.proxy,
            host,
            port,
            via.family,
            Some(via.timeout),
            via.plan,
            &via.source,
        )?;
        socket::close(sock);
        let state = match reached {
            Ok(()) => State::Open(t0.elapsed()),
            Err(why) => State::Unreached(why),
        };
        tally.add(&state);
        progress.add(&state);
        let host = shown.to_string();
        let line = format!("{host}:{port}");
        let json = || json_port(&host, port, false, &state);
        if let Err(e) = put(via.lines, &mut stdout, &line, json, &state) {
            if error::is_broken_pipe(&e) {
                return Ok(tally);
            }
            return Err(anyhow!("writing to stdout: {}", error::plain(&e)));
        }
    }
    drop(progress);
    let summary = format!(
        "{} {} on {shown} checked through {} in {}: {tally}",
        ports.len(),
        if ports.len() == 1 { "port" } else { "ports" },
        via.proxy.url,
        narrate::short(started.elapsed())
    );
    if tally.open == 0 {
        return Err(anyhow!("no open port: {summary}"));
    }
    narrate::emit(format_args!("{summary}"));
    Ok(tally)
}

/// `-z -u`: one empty datagram per port from a connected UDP socket, `parallel` ports at a
/// time. A closed port answers with ICMP port unreachable, which the kernel reports on the
/// connected socket as ECONNREFUSED; anything else is open|filtered, and said to be. Exit 0
/// when some port is not known closed, 1 when all are.
pub fn run_udp(ip: IpAddr, ports: &[u16], check: &Check) -> Result<Tally> {
    let started = Instant::now();
    let mut out = io::stdout().lock();
    let mut tally = Tally::default();
    let shown = Shown::start(check.progress, ports.len());
    for batch in ports.chunks(check.parallel.max(1)) {
        let mut probes: Vec<(u16, Option<Socket>, Instant, Option<State>)> = Vec::new();
        for &port in batch {
            let addr = SocketAddr::new(ip, port);
            let t0 = Instant::now();
            match udp_probe(addr, check) {
                Ok(sock) => probes.push((port, Some(sock), t0, None)),
                Err(e) => probes.push((port, None, t0, Some(State::Failed(format!("{e:#}"))))),
            }
        }
        let deadline = Instant::now() + check.timeout;
        loop {
            let waiting: Vec<usize> = (0..probes.len())
                .filter(|&i| probes[i].3.is_none() && probes[i].1.is_some())
                .collect();
            let left = deadline.saturating_duration_since(Instant::now());
            if waiting.is_empty() || left.is_zero() {
                break;
            }
            let fds: Vec<Option<i32>> = waiting
                .iter()
                .map(|&i| probes[i].1.as_ref().map(std::os::fd::AsRawFd::as_raw_fd))
                .collect();
            let ready = socket::poll_readable(&fds, Some(left))
                .map_err(|e| anyhow!("poll(): {}", error::plain(&e)))?;
            for (&i, _) in waiting.iter().zip(ready).filter(|(_, r)| *r) {
                let p = &mut probes[i];
                let mut buf = [std::mem::MaybeUninit::<u8>::uninit(); 64];
                p.3 = match p.1.as_ref().map(|s| s.recv(&mut buf)) {
                    Some(Ok(_)) => Some(State::Answered(p.2.elapsed())),
                    Some(Err(e)) => Some(refusal(&e)),
                    None => None,
                };
            }
        }
        for (port, sock, _, state) in probes {
            let state = state.unwrap_or(State::OpenFiltered(check.timeout));
            if let Some(s) = sock {
                socket::close(s);
            }
            tally.add(&state);
            shown.add(&state);
            if let Err(e) = put_line(
                check.lines,
                &mut out,
                SocketAddr::new(ip, port),
                true,
                &state,
            ) {
                if error::is_broken_pipe(&e) {
                    return Ok(tally);
                }
                return Err(anyhow!("writing to stdout: {}", error::plain(&e)));
            }
        }
    }
    drop(shown);
    let summary = format!(
        "{} UDP {} on {ip} checked in {}: {tally}",
        ports.len(),
        if ports.len() == 1 { "port" } else { "ports" },
        narrate::short(started.elapsed())
    );
    if tally.open + tally.maybe == 0 {
        return Err(anyhow!("no UDP port open or unanswered: {summary}"));
    }
    narrate::emit(format_args!("{summary}"));
    Ok(tally)
}

/// A connected, non-blocking UDP socket to `addr` that has sent one empty datagram.
fn udp_probe(addr: SocketAddr, check: &Check) -> Result<Socket> {
    let sock = socket::udp::udp_socket(Domain::for_address(addr))?;
    check
        .plan
        .apply(&sock, socket::target(&addr, SockKind::Udp), Stage::Early)?;
    if let Some(src) = check.source.bind_addr(&addr) {
        source::bind_source(&sock, src)?;
    }
    socket::set_nonblocking(&sock, true)?;
    let fd = socket::fd(&sock);
    narrate::traced(
        || sock.connect(&SockAddr::from(addr)),
        |r| format!("connect(fd {fd}, {addr}) {}", narrate::outcome(r)),
    )?;
    narrate::traced(
        || sock.send(&[]),
        |r| match r {
            // socket2's send() is sendto() with no address and no flags, as strace shows.
            Ok(n) => {
                format!("sendto(fd {fd}, \"\", 0, 0, NULL, 0) = {n} (an empty datagram)")
            }
            Err(e) => format!(
                "sendto(fd {fd}, \"\", 0, 0, NULL, 0) {}",
                narrate::errno_text(e)
            ),
        },
    )?;
    Ok(sock)
}

enum Started {
    /// In flight since this instant (taken just before connect()).
    Pending(Socket, Instant),
    Done(State),
}

fn is_out_of_fds(e: &anyhow::Error) -> bool {
    e.downcast_ref::<io::Error>()
        .is_some_and(error::is_out_of_fds)
}

/// socket, options, optional bind, non-blocking connect: usually EINPROGRESS, sometimes an
/// answer at once (loopback can refuse immediately).
fn start(addr: SocketAddr, check: &Check) -> Result<Started> {
    let sock = socket::tcp_socket(Domain::for_address(addr)).map_err(anyhow::Error::new)?;
    check
        .plan
        .apply(&sock, socket::target(&addr, SockKind::Tcp), Stage::Early)?;
    if let Some(src) = check.source.bind_addr(&addr)
        && let Err(e) = source::bind_source(&sock, src)
    {
        socket::close(sock);
        return Err(e);
    }
    let nonblocking = narrate::traced(
        || sock.set_nonblocking(true),
        |r| {
            format!(
                "fcntl(fd {}, F_SETFL, O_RDWR|O_NONBLOCK) {} (connect will not wait)",
                socket::fd(&sock),
                narrate::outcome(r)
            )
        },
    );
    if let Err(e) = nonblocking {
        socket::close(sock);
        return Err(anyhow!(
            "making a socket non-blocking: {}",
            error::plain(&e)
        ));
    }
    let t0 = Instant::now();
    let result = narrate::traced(
        || sock.connect(&SockAddr::from(addr)),
        |r| {
            format!(
                "connect(fd {}, {addr}) {}{}",
                socket::fd(&sock),
                narrate::outcome(r),
                if r.as_ref()
                    .is_err_and(|e| e.raw_os_error() == Some(libc::EINPROGRESS))
                {
                    socket::after_inprogress(&sock)
                } else {
                    socket::state_suffix(&sock)
                }
            )
        },
    );
    match result {
        Ok(()) => {
            let took = t0.elapsed();
            socket::close(sock);
            Ok(Started::Done(State::Open(took)))
        }
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => Ok(Started::Pending(sock, t0)),
        Err(e) => {
            socket::close(sock);
            Ok(Started::Done(refusal(&e)))
        }
    }
}

/// What a failed connect means for the port.
fn refusal(e: &io::Error) -> State {
    match e.raw_os_error() {
        Some(libc::ECONNREFUSED) => State::Closed,
        _ => State::Failed(error::plain_named(e)),
    }
}

/// One poll(2) over every connect in flight: writable means the handshake ended one way or
/// the other (SO_ERROR says which); past its deadline a probe is given up.
fn wait(
    inflight: &mut Vec<Probe>,
    done: &mut BTreeMap<usize, State>,
    timeout: Duration,
) -> Result<()> {
    let now = Instant::now();
    let soonest = inflight
        .iter()
        .map(|p| p.started + timeout)
        .min()
        .unwrap_or(now);
    let mut fds: Vec<libc::pollfd> = inflight
        .iter()
        .map(|p| libc::pollfd {
            fd: p.sock.as_raw_fd(),
            events: libc::POLLOUT,
            revents: 0,
        })
        .collect();
    // Round up so a deadline is not polled a hair early and spun on.
    let ms =
        i32::try_from(soonest.saturating_duration_since(now).as_millis() + 1).unwrap_or(i32::MAX);
    match crate::sys::poll(&mut fds, ms) {
        Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(()),
        Err(e) => return Err(anyhow!("poll(): {}", error::plain(&e))),
        Ok(_) => {}
    }
    let now = Instant::now();
    let mut keep = Vec::with_capacity(inflight.len());
    for (p, pfd) in inflight.drain(..).zip(&fds) {
        let took = now.saturating_duration_since(p.started);
        let state = if pfd.revents != 0 {
            let err = p.sock.take_error();
            let state = match &err {
                Ok(None) => State::Open(took),
                Ok(Some(e)) | Err(e) => refusal(e),
            };
            narrate::call(
                format_args!(
                    "getsockopt(fd {}, SOL_SOCKET, SO_ERROR) = {}{} (poll said fd {} is \
                     writable: the handshake ended)",
                    socket::fd(&p.sock),
                    match &err {
                        Ok(None) => "0".to_string(),
                        Ok(Some(e)) => e.raw_os_error().map_or_else(
                            || e.to_string(),
                            |c| format!("0, error {}", narrate::errno_name(c)),
                        ),
                        Err(e) => narrate::errno_text(e).trim_start_matches("= ").to_string(),
                    },
                    socket::state_suffix(&p.sock),
                    socket::fd(&p.sock),
                ),
                took,
            );
            state
        } else if took >= timeout {
            narrate::info(format_args!(
                "{}: no answer in {}; giving up",
                p.addr,
                narrate::short(timeout)
            ));
            State::TimedOut(timeout)
        } else {
            keep.push(p);
            continue;
        };
        socket::close(p.sock);
        done.insert(p.index, state);
    }
    *inflight = keep;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_port_object_escapes_its_reason() {
        let line = json_line(
            "[::1]:80".parse().unwrap(),
            false,
            &State::Failed("no \"route\"".into()),
        );
        assert_eq!(
            line,
            "{\"host\":\"::1\",\"port\":80,\"proto\":\"tcp\",\"state\":\"error\",\"time\":null,\"reason\":\"no \\\"route\\\"\"}\n"
        );
    }

    #[test]
    fn states_read_as_words() {
        assert_eq!(
            State::Open(Duration::from_micros(250)).to_string(),
            "open in 250µs"
        );
        assert_eq!(State::Closed.to_string(), "closed");
        assert!(
            State::TimedOut(Duration::from_secs(3))
                .to_string()
                .starts_with("timed out")
        );
        let t = Tally {
            open: 1,
            closed: 2,
            ..Tally::default()
        };
        assert_eq!(t.to_string(), "1 open, 2 closed");
        let udp = Tally {
            closed: 1,
            maybe: 2,
            ..Tally::default()
        };
        assert_eq!(udp.to_string(), "0 open, 1 closed, 2 open|filtered");
        assert!(
            State::OpenFiltered(Duration::from_secs(1))
                .to_string()
                .starts_with("open|filtered")
        );
    }
}
