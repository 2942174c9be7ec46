//! `--tcp-info-every DURATION`: TCP_INFO read through each connection's life, told as one
//! compact stderr line per connection and sample on the session clock, and as a `tcp_info`
//! event in the trace. One sampler thread serves the whole process however many connections
//! it has: a command registers a connection's socket with [`watch`] and drops the [`Watch`]
//! before it closes the socket; a server's loop calls [`begin`] and [`end`]. The thread reads
//! every registered socket under the registry's lock, so a socket is never read after its
//! registration is gone (and its descriptor number never read once reused). Off (no
//! `--tcp-info-every` or `--report`), each call costs one relaxed atomic load and no thread
//! runs.
//!
//! The reading itself is `crate::sys::tcp_info`; the rate spelling is narrate's.

use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::narrate;
use crate::sys;
use crate::trace;

/// One sample: the fields `--tcp-info-every` tells, in the kernel's units made plain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Sample {
    /// Smoothed round-trip time and its variation, microseconds.
    pub rtt_us: u32,
    pub rttvar_us: u32,
    /// Congestion window, in segments of `mss` bytes.
    pub cwnd: u32,
    /// Slow-start threshold in segments; `None` while still "infinite" (no loss yet).
    pub ssthresh: Option<u32>,
    pub mss: u32,
    /// Segments sent and not yet acknowledged.
    pub unacked: u32,
    /// Segments the kernel counts as in the network: unacked - sacked - lost + retransmitted.
    pub in_flight: u32,
    /// The kernel's estimate of the delivery rate, bytes per second.
    pub delivery_rate: u64,
    /// Retransmissions of the current segment, and over the connection's life.
    pub retrans: u32,
    pub total_retrans: u32,
    /// The window the peer last advertised (bytes this end may send unacknowledged).
    pub snd_wnd: u32,
    /// This end's receive space (what it is prepared to advertise), bytes.
    pub rcv_space: u32,
    pub bytes_acked: u64,
    pub bytes_received: u64,
}

/// The kernel's "no slow-start threshold yet" (TCP_INFINITE_SSTHRESH).
const INFINITE_SSTHRESH: u32 = 0x7fff_ffff;

impl Sample {
    /// The fields of `i`.
    #[cfg(target_os = "linux")]
    pub fn of(i: &libc::tcp_info) -> Sample {
        Sample {
            rtt_us: i.tcpi_rtt,
            rttvar_us: i.tcpi_rttvar,
            cwnd: i.tcpi_snd_cwnd,
            ssthresh: (i.tcpi_snd_ssthresh < INFINITE_SSTHRESH).then_some(i.tcpi_snd_ssthresh),
            mss: i.tcpi_snd_mss,
            unacked: i.tcpi_unacked,
            in_flight: (i.tcpi_unacked + i.tcpi_retrans)
                .saturating_sub(i.tcpi_sacked + i.tcpi_lost),
            delivery_rate: i.tcpi_delivery_rate,
            retrans: u32::from(i.tcpi_retransmits),
            total_retrans: i.tcpi_total_retrans,
            snd_wnd: i.tcpi_snd_wnd,
            rcv_space: i.tcpi_rcv_space,
            bytes_acked: i.tcpi_bytes_acked,
            bytes_received: i.tcpi_bytes_received,
        }
    }

    /// The stderr line: `tcp_info: rtt 0.05/0.02 ms cwnd 10 ssthresh - in_flight 0/0 ...`.
    pub fn line(&self) -> String {
        let ssthresh = self
            .ssthresh
            .map_or_else(|| "-".to_string(), |s| s.to_string());
        format!(
            "tcp_info: rtt {}/{} ms cwnd {} ssthresh {ssthresh} in_flight {} (unacked {}) \
             delivery {} retrans {}/{} rwnd {} rcv_space {} acked {} received {}",
            f64::from(self.rtt_us) / 1000.0,
            f64::from(self.rttvar_us) / 1000.0,
            self.cwnd,
            self.in_flight,
            self.unacked,
            narrate::bits_per_second(self.delivery_rate),
            self.retrans,
            self.total_retrans,
            narrate::bytes(u64::from(self.snd_wnd)),
            narrate::bytes(u64::from(self.rcv_space)),
            self.bytes_acked,
            self.bytes_received,
        )
    }

    /// The trace event's fields (documented with --trace's schema in cli.rs).
    fn record(&self, f: &mut trace::Fields) {
        f.num("rtt_us", self.rtt_us)
            .num("rttvar_us", self.rttvar_us)
            .num("cwnd", self.cwnd)
            .num("mss", self.mss);
        match self.ssthresh {
            Some(s) => f.num("ssthresh", s),
            None => f.raw("ssthresh", "null"),
        };
        f.num("unacked", self.unacked)
            .num("in_flight", self.in_flight)
            .num("delivery_rate", self.delivery_rate)
            .num("retrans", self.retrans)
            .num("total_retrans", self.total_retrans)
            .num("snd_wnd", self.snd_wnd)
            .num("rcv_space", self.rcv_space)
            .num("bytes_acked", self.bytes_acked)
            .num("bytes_received", self.bytes_received);
    }
}

/// Whose connection a server's sample is, for its line and its trace event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Who {
    /// A server's client (echo, knock, the broker, listen).
    Client(String),
    /// forward: a pair's leg to its client (named by the client's address, as the pair is).
    ClientLeg(String),
    /// forward: a pair's leg to its target (the proxy's address through --proxy), from our
    /// local port, for the pair of `client`.
    TargetLeg {
        target: String,
        port: u16,
        client: String,
    },
}

impl Who {
    /// The tag at the end of the stderr line, as --wire tags the same leg's segments.
    fn tag(&self) -> String {
        match self {
            Who::Client(c) | Who::ClientLeg(c) => format!("(client {c})"),
            Who::TargetLeg {
                target,
                port,
                client,
            } => format!("(target {target} from port {port}, client {client})"),
        }
    }

    /// The trace fields (documented with --trace's schema in cli.rs): "remote", the leg's
    /// peer, as before; on forward also "leg" and "pair" (the client naming the pair).
    fn record(&self, f: &mut trace::Fields) {
        match self {
            Who::Client(c) => {
                f.str("remote", c);
            }
            Who::ClientLeg(c) => {
                f.str("remote", c).str("leg", "client").str("pair", c);
            }
            Who::TargetLeg {
                target,
                port,
                client,
            } => {
                f.str("remote", target)
                    .str("leg", "target")
                    .num("local_port", *port)
                    .str("pair", client);
            }
        }
    }
}

/// A registered connection: its socket (one entry per open descriptor: it is removed before
/// the descriptor is closed, so a number is never two connections) and, on a server, whose
/// connection it is.
struct Entry {
    fd: RawFd,
    label: Option<Who>,
}

struct Sampler {
    every: Duration,
    /// Tell each sample on stderr (`--tcp-info-every`), or only record it (`--report` alone).
    tell: bool,
    entries: Mutex<Vec<Entry>>,
    /// Rung to end the thread early (at [`stop`]).
    wake: Condvar,
    stopping: AtomicBool,
    thread: Mutex<Option<JoinHandle<()>>>,
}

static ON: AtomicBool = AtomicBool::new(false);
static SAMPLER: OnceLock<Sampler> = OnceLock::new();

/// Starts the one sampler thread, reading every watched connection each `every`; `tell`
/// puts each sample on stderr too.
pub fn start(every: Duration, tell: bool) {
    let sampler = SAMPLER.get_or_init(|| Sampler {
        every,
        tell,
        entries: Mutex::new(Vec::new()),
        wake: Condvar::new(),
        stopping: AtomicBool::new(false),
        thread: Mutex::new(None),
    });
    let Ok(mut slot) = sampler.thread.lock() else {
        return;
    };
    if slot.is_some() {
        return;
    }
    if let Ok(t) = std::thread::Builder::new()
        .name("tcp_info".into())
        .spawn(move || run(sampler))
    {
        *slot = Some(t);
        ON.store(true, Ordering::Release);
    }
}

/// Ends the sampler thread (at the session's end); connections still watched are not read
/// again.
pub fn stop() {
    let Some(s) = SAMPLER.get() else { return };
    s.stopping.store(true, Ordering::Release);
    s.wake.notify_all();
    let thread = s.thread.lock().ok().and_then(|mut t| t.take());
    if let Some(t) = thread {
        let _ = t.join();
    }
}

/// True when `--tcp-info-every` is on.
pub fn on() -> bool {
    ON.load(Ordering::Relaxed)
}

/// While this lives, the sampler reads its socket. Drop it before the socket is closed.
#[must_use = "the socket is sampled only while its Watch lives"]
pub struct Watch {
    fd: RawFd,
}

/// Watches the TCP socket `fd` (labelled with its client on a server) until the [`Watch`]
/// is dropped; `None` when sampling is off.
pub fn watch(fd: RawFd, label: Option<Who>) -> Option<Watch> {
    if !on() {
        return None;
    }
    begin(fd, || label);
    Some(Watch { fd })
}

impl Drop for Watch {
    fn drop(&mut self) {
        end(self.fd);
    }
}

/// For a server's loop, which holds no guard per client: starts sampling the TCP socket `fd`
/// (one sample now), labelled by `label` (called only when sampling is on). [`end`] must be
/// called before the socket is closed.
pub fn begin(fd: RawFd, label: impl FnOnce() -> Option<Who>) {
    if !on() {
        return;
    }
    let Some(s) = SAMPLER.get() else { return };
    let entry = Entry { fd, label: label() };
    let Ok(mut entries) = s.entries.lock() else {
        return;
    };
    sample(&entry, s.tell);
    entries.push(entry);
}

/// Stops sampling `fd`, with a last sample as the connection ends (its socket still open).
pub fn end(fd: RawFd) {
    if !on() {
        return;
    }
    if let Some(s) = SAMPLER.get()
        && let Ok(mut entries) = s.entries.lock()
        && let Some(i) = entries.iter().position(|e| e.fd == fd)
    {
        let entry = entries.swap_remove(i);
        if !s.stopping.load(Ordering::Acquire) {
            sample(&entry, s.tell);
        }
    }
}

fn run(s: &Sampler) {
    let Ok(mut entries) = s.entries.lock() else {
        return;
    };
    loop {
        // Sleep with the lock released; wake at the interval or at stop.
        entries = match s.wake.wait_timeout(entries, s.every) {
            Ok((e, _)) => e,
            Err(_) => return,
        };
        if s.stopping.load(Ordering::Acquire) {
            return;
        }
        for e in entries.iter() {
            sample(e, s.tell);
        }
    }
}

#[cfg(target_os = "linux")]
fn sample(e: &Entry, tell: bool) {
    let Some(info) = sys::tcp_info(e.fd) else {
        return;
    };
    let s = Sample::of(&info);
    let line = match &e.label {
        Some(who) => format!("{} {}", s.line(), who.tag()),
        None => s.line(),
    };
    if tell {
        narrate::emit(format_args!(
            "{:>9} {line}",
            narrate::stamp_ago(Duration::ZERO)
        ));
    }
    trace::record("tcp_info", |f| {
        if let Some(who) = &e.label {
            who.record(f);
        }
        s.record(f);
    });
}

#[cfg(not(target_os = "linux"))]
fn sample(_e: &Entry, _tell: bool) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sample_line_names_each_field_and_an_infinite_ssthresh_is_a_dash() {
        let s = Sample {
            rtt_us: 50,
            rttvar_us: 25,
            cwnd: 10,
            ssthresh: None,
            mss: 32768,
            unacked: 2,
            in_flight: 2,
            delivery_rate: 1_000_000,
            retrans: 0,
            total_retrans: 1,
            snd_wnd: 65536,
            rcv_space: 65483,
            bytes_acked: 7,
            bytes_received: 1,
        };
        let line = s.line();
        assert!(
            line.starts_with("tcp_info: rtt 0.05/0.025 ms cwnd 10 ssthresh - in_flight 2"),
            "{line}"
        );
        assert!(line.contains("delivery 8.0Mbps retrans 0/1"), "{line}");
        let mut f = trace::Fields::default();
        s.record(&mut f);
        let text = f.text();
        assert!(text.contains(",\"ssthresh\":null,"), "{text}");
        assert!(text.contains(",\"cwnd\":10,"), "{text}");
    }

    #[test]
    fn a_forwarders_legs_are_tagged_as_their_segments_are_and_named_in_the_trace() {
        let target = Who::TargetLeg {
            target: "127.0.0.1:7107".into(),
            port: 40112,
            client: "127.0.0.1:5000".into(),
        };
        assert_eq!(
            target.tag(),
            "(target 127.0.0.1:7107 from port 40112, client 127.0.0.1:5000)"
        );
        let mut f = trace::Fields::default();
        target.record(&mut f);
        let text = f.text();
        assert!(text.contains("\"remote\":\"127.0.0.1:7107\""), "{text}");
        assert!(text.contains("\"leg\":\"target\""), "{text}");
        assert!(text.contains("\"pair\":\"127.0.0.1:5000\""), "{text}");
        let client = Who::ClientLeg("127.0.0.1:5000".into());
        assert_eq!(client.tag(), "(client 127.0.0.1:5000)");
        let mut f = trace::Fields::default();
        client.record(&mut f);
        assert!(f.text().contains("\"leg\":\"client\""), "{}", f.text());
    }
}
