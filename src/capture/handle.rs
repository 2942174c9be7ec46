//! The small handle the commands hold: [`Capture::start`] opens the packet socket (only when
//! `--wire` or `--pcap` asked: off, nothing is opened), attaches the filter, and runs one
//! reader thread that decodes each packet and tells it (format.rs) on stderr through narrate,
//! on the session clock, and to the trace and the pcap file; [`Capture::stop`] lets it drain,
//! joins it and reports what the kernel dropped (PACKET_STATISTICS).
//!
//! Bounded: the socket's receive buffer is the kernel's fixed queue; when the reader falls
//! behind the kernel drops and counts, and memory here stays one packet buffer.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use super::decode::{self, Body};
use super::filter;
use super::format::{self, Isns};
use super::legs::Legs;
use super::pcap::{OUTGOING, PcapWriter};
use crate::narrate;
use crate::sys;
use crate::trace;

/// What to capture for, from the command line.
#[derive(Debug, Clone, Default)]
pub struct CaptureOpts {
    /// `--wire`: tell each segment on stderr.
    pub wire: bool,
    /// `--pcap FILE`.
    pub pcap: Option<PathBuf>,
}

impl CaptureOpts {
    pub fn wanted(&self) -> bool {
        self.wire || self.pcap.is_some() || trace::on()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    Tcp,
    Udp,
}

/// Whose packets: a client's (to and from its peer), a server's (to and from its port), or
/// a forwarder's (its port, if it listens on IP, and each target leg as it opens: legs.rs).
#[derive(Debug, Clone, Copy)]
pub enum Scope {
    Client {
        proto: Proto,
        peer: SocketAddr,
    },
    Server {
        proto: Proto,
        local: SocketAddr,
    },
    Forward {
        proto: Proto,
        /// The listening address; `None` when clients come over a Unix socket (-U).
        local: Option<SocketAddr>,
        /// Every address a leg may go to is on loopback (so capture on `lo` alone).
        loopback: bool,
    },
}

/// Which leg a packet of a server's scope is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Leg {
    Client,
    Target,
}

impl Scope {
    fn proto(self) -> Proto {
        match self {
            Scope::Client { proto, .. }
            | Scope::Server { proto, .. }
            | Scope::Forward { proto, .. } => proto,
        }
    }

    /// The ports the filter takes either way before any target leg opens.
    fn ports(self) -> Vec<u16> {
        match self {
            Scope::Client { peer, .. } => vec![peer.port()],
            Scope::Server { local, .. } => vec![local.port()],
            Scope::Forward { local, .. } => local.map(|l| l.port()).into_iter().collect(),
        }
    }

    /// Loopback only: capture on `lo` alone.
    fn loopback(self) -> bool {
        match self {
            Scope::Client { peer, .. } => peer.ip().is_loopback(),
            Scope::Server { local, .. } => local.ip().is_loopback(),
            Scope::Forward {
                local, loopback, ..
            } => loopback && local.is_none_or(|l| l.ip().is_loopback()),
        }
    }

    /// Whether a packet from `src` to `dst` is ours, which way it went (`true`: sent by this
    /// end), on which leg, and that leg's ends (this end's, the peer's).
    fn direction(
        self,
        legs: &Legs,
        src: SocketAddr,
        dst: SocketAddr,
    ) -> Option<(bool, Leg, SocketAddr, SocketAddr)> {
        let same = |a: SocketAddr, b: SocketAddr| {
            a.port() == b.port() && canonical(a.ip()) == canonical(b.ip())
        };
        let here = |local: SocketAddr, a: SocketAddr| {
            a.port() == local.port()
                && (local.ip().is_unspecified() || canonical(a.ip()) == canonical(local.ip()))
        };
        let client_leg = |local: SocketAddr| {
            if here(local, src) {
                Some((true, Leg::Client, src, dst))
            } else if here(local, dst) {
                Some((false, Leg::Client, dst, src))
            } else {
                None
            }
        };
        match self {
            Scope::Client { peer, .. } => {
                if same(dst, peer) {
                    Some((true, Leg::Client, src, dst))
                } else if same(src, peer) {
                    Some((false, Leg::Client, dst, src))
                } else {
                    None
                }
            }
            Scope::Server { local, .. } => client_leg(local),
            // A forwarder on loopback to a target on loopback: a packet to the target leaves
            // us, one from it comes in, so the legs are asked first.
            Scope::Forward { local, .. } => legs
                .which(src, dst)
                .map(|f| (f.outgoing, Leg::Target, f.local, f.remote))
                .or_else(|| local.and_then(client_leg)),
        }
    }
}

/// `::ffff:127.0.0.1` is 127.0.0.1 (a dual-stack socket's peers are mapped).
fn canonical(ip: std::net::IpAddr) -> std::net::IpAddr {
    match ip {
        std::net::IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, std::net::IpAddr::V4),
        v4 @ std::net::IpAddr::V4(_) => v4,
    }
}

/// A running capture.
pub struct Capture {
    stop: Arc<AtomicBool>,
    reader: Option<JoinHandle<()>>,
    legs: Legs,
}

/// How long the reader waits for a packet before it looks at the stop flag; at the end it
/// drains until the line has been quiet this long.
const QUIET: Duration = Duration::from_millis(50);
/// How long the kernel's deferred switch to stamping packets is given (see `open`).
const STAMPING_STARTS: Duration = Duration::from_millis(5);
/// The kernel's queue for this socket: a few hundred full-size packets.
const QUEUE_BYTES: libc::c_int = 4 << 20;

impl Capture {
    /// Starts capturing for `scope`, or `None` when nothing asked for it or it cannot be had
    /// (no CAP_NET_RAW: said in one line, and the session goes on without it).
    pub fn start(opts: &CaptureOpts, scope: Scope) -> Option<Capture> {
        if !opts.wanted() {
            return None;
        }
        // Headers only unless the packets are written whole.
        let snap = if opts.pcap.is_some() {
            filter::SNAPLEN
        } else {
            filter::HEADERS
        };
        let legs = match open(scope, snap) {
            Ok(s) => s,
            Err(e) if matches!(e.raw_os_error(), Some(libc::EPERM | libc::EACCES)) => {
                narrate::emit(format_args!(
                    "wire: capturing packets needs CAP_NET_RAW, which this process lacks: \
                     run as root, or `sudo setcap cap_net_raw+ep $(which sockkit)`; going on \
                     without capture"
                ));
                return None;
            }
            Err(e) => {
                narrate::emit(format_args!(
                    "wire: cannot open a packet socket: {}; going on without capture",
                    crate::narrate::errno_text(&e)
                ));
                return None;
            }
        };
        let pcap = match &opts.pcap {
            Some(path) => match PcapWriter::create(path, filter::SNAPLEN) {
                Ok(w) => Some(w),
                Err(e) => {
                    narrate::emit(format_args!("{}: {e}; no pcap is written", path.display()));
                    None
                }
            },
            None => None,
        };
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let wire = opts.wire;
        let lo = sys::if_index("lo");
        let shared = legs.clone();
        let reader = std::thread::Builder::new()
            .name("capture".into())
            .spawn(move || read_loop(&shared, scope, wire, lo, pcap, &flag))
            .ok()?;
        Some(Capture {
            stop,
            reader: Some(reader),
            legs,
        })
    }

    /// The registry a forwarder's engine tells its target legs to (legs.rs).
    pub fn legs(&self) -> Legs {
        self.legs.clone()
    }

    /// Lets the reader drain what is still queued, then ends it.
    pub fn stop(mut self) {
        self.end();
    }

    fn end(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        self.end();
    }
}

/// socket, filter, then bind: no packet is queued before the filter is in place.
fn open(scope: Scope, snap: u32) -> io::Result<Legs> {
    let sock = sys::packet_socket()?;
    let proto = match scope.proto() {
        Proto::Tcp => libc::IPPROTO_TCP,
        Proto::Udp => libc::IPPROTO_UDP,
    } as u8;
    let legs = Legs::new(sock, proto, scope.ports(), snap)?;
    let fd = legs.fd();
    // A bigger queue is best effort: the default still works, it drops sooner.
    let _ = sys::setsockopt(fd, libc::SOL_SOCKET, libc::SO_RCVBUF, &QUEUE_BYTES);
    // Each packet comes with the time the kernel saw it (SCM_TIMESTAMPNS). The kernel turns
    // its packet stamping on from a work queue a moment later (net_enable_timestamp); until
    // then a packet is stamped when read, so the handshake would seem to follow connect().
    // A few milliseconds, once per session, let it start before the first call.
    let _ = sys::setsockopt(
        fd,
        libc::SOL_SOCKET,
        libc::SO_TIMESTAMPNS,
        &1 as &libc::c_int,
    );
    std::thread::sleep(STAMPING_STARTS);
    sys::set_recv_timeout(fd, QUIET)?;
    let ifindex = if scope.loopback() {
        sys::if_index("lo")
    } else {
        0
    };
    sys::packet_bind(fd, ifindex)?;
    Ok(legs)
}

fn read_loop(
    legs: &Legs,
    scope: Scope,
    wire: bool,
    lo: u32,
    mut pcap: Option<PcapWriter>,
    stop: &AtomicBool,
) {
    let fd = legs.fd();
    // The totals are said when packets were asked for (not for --trace alone) or lost.
    let tell_totals = wire || pcap.is_some();
    let mut buf = vec![0u8; filter::SNAPLEN as usize];
    let mut isns = Isns::default();
    let mut seen = 0u64;
    loop {
        let (n, meta, stamp) = match sys::packet_recv(fd, &mut buf) {
            Ok(got) => got,
            Err(e) if matches!(e.raw_os_error(), Some(libc::EAGAIN | libc::EINTR)) => {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                legs.tidy();
                continue;
            }
            Err(e) => {
                narrate::emit(format_args!("wire: {}", narrate::errno_text(&e)));
                break;
            }
        };
        // On `lo` each packet passes twice, going out and coming in: keep the second, as
        // tcpdump does.
        if meta.ifindex == lo && meta.pkttype == OUTGOING {
            continue;
        }
        let data = &buf[..n];
        let Some(packet) = decode::decode(data) else {
            continue;
        };
        let Some((outgoing, leg, local, remote)) = scope.direction(legs, packet.src, packet.dst)
        else {
            continue;
        };
        seen += 1;
        let now = SystemTime::now();
        let when = stamp.unwrap_or(now);
        let ago = now.duration_since(when).unwrap_or_default();
        if let Some(w) = pcap.as_mut() {
            let _ = w.packet(when, &meta, data);
        }
        let (line, numbers) = match &packet.body {
            Body::Tcp(t) => {
                let told = isns.tcp_line(outgoing, local, remote, t);
                (told.line, Some((told.seq, told.ack)))
            }
            Body::Udp { len } => (format::udp_line(outgoing, *len), None),
        };
        let line = match (scope, leg) {
            (Scope::Client { .. }, _) => line,
            (_, Leg::Client) => format!("{line} (client {remote})"),
            (_, Leg::Target) => {
                format!("{line} (target {remote} from port {})", local.port())
            }
        };
        if wire {
            narrate::emit(format_args!("{:>9} {line}", narrate::stamp_ago(ago)));
        }
        if trace::on() {
            trace::record("segment", |f| {
                f.str("dir", if outgoing { "out" } else { "in" })
                    .str("local", &local.to_string())
                    .str("remote", &remote.to_string());
                match &packet.body {
                    Body::Tcp(t) => {
                        f.str("proto", "tcp")
                            .str("flags", &t.flags())
                            .num("len", t.len as i128)
                            .num("win", t.win);
                        if let Some((seq, ack)) = numbers {
                            f.num("seq", seq);
                            if let Some(ack) = ack {
                                f.num("ack", ack);
                            }
                        }
                    }
                    Body::Udp { len } => {
                        f.str("proto", "udp").num("len", *len as i128);
                    }
                }
                f.str("line", &line)
                    .num("kernel_ago_ns", ago.as_nanos() as i128);
            });
        }
    }
    if let Some(w) = pcap {
        let _ = w.finish();
    }
    if let Ok((_, drops)) = sys::packet_stats(fd) {
        if tell_totals || drops > 0 {
            narrate::emit(format_args!(
                "wire: {seen} packets captured, {drops} dropped by the kernel (its queue was full)"
            ));
        }
        trace::record("capture", |f| {
            f.num("packets", seen).num("dropped", drops);
        });
    }
}
