//! The small handle the commands hold: [`Capture::start`] opens the packet socket (only when
//! `--wire` or `--pcap` asked: off, nothing is opened), attaches the filter, and runs one
//! reader thread that decodes each packet and tells it (format.rs) on stderr through narrate,
//! on the session clock, and to the trace and the pcap file; [`Capture::stop`] lets it drain,
//! joins it and reports what the kernel dropped (PACKET_STATISTICS).
//!
//! Bounded: the kernel fills a fixed ring mapped into this process (PACKET_RX_RING,
//! TPACKET_V3: 8 MiB for headers, 32 MiB with `--pcap`, read in place with no system call
//! per packet); when the reader falls behind and every block is still its own, the kernel
//! drops and counts. Where the ring cannot be had, recvmsg on a fresh socket's receive queue,
//! which drops sooner; recvmsg too with `-vv --wire`, whose segment lines must come as
//! the packets do, between the calls' lines.

use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
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
        stamp: SystemTime,
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
                .which(src, dst, stamp)
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
/// Without the ring, the kernel's queue for this socket: a few hundred full-size packets
/// (each queued packet is charged its whole buffer, however little of it is kept).
const QUEUE_BYTES: libc::c_int = 4 << 20;
/// The receive ring, 32 blocks: of 256 KiB for packets cut to their headers (`--wire`,
/// `--trace`: about 900 a block, 8 MiB in all), of 1 MiB for whole ones (`--pcap`: a dozen
/// or more 64 KiB loopback segments a block, 32 MiB). Many blocks, so a reader held off the
/// CPU for a while finds the kernel still has blocks to fill.
const RING_BLOCKS: usize = 32;
const RING_BLOCK_HEADERS: usize = 256 << 10;
const RING_BLOCK_WHOLE: usize = 1 << 20;
/// A block that is not full is handed over after this long, so a quiet connection's
/// segments are told within it (and 32 blocks so retired still cover 64 ms).
const RETIRE: Duration = Duration::from_millis(2);

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
        // With -vv the segment lines are told beside the calls, in the order they happened:
        // each packet is taken as it comes (recvmsg), not in the ring's blocks, which the
        // kernel hands over every few milliseconds, after a short session's calls are told.
        let prompt = opts.wire && narrate::narrating();
        let (legs, source) = match open(scope, snap, prompt) {
            Ok(got) => got,
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
            .spawn(move || read_loop(&shared, source, scope, wire, lo, pcap, &flag))
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

/// Where the reader takes packets from: the mapped ring, or recvmsg one packet at a time
/// when the ring cannot be had, when `--wire -vv` interleaves the segments with the calls
/// (see `Capture::start`), or when `SOCKKIT_CAPTURE=recvmsg` asks (to compare the two).
enum Source {
    Ring(sys::PacketRing),
    Recv(Vec<u8>),
}

/// socket, the ring, the filter, then bind: no packet is queued before the filter is in
/// place (an unbound packet socket receives nothing).
fn open(scope: Scope, snap: u32, prompt: bool) -> io::Result<(Legs, Source)> {
    let mut sock = sys::packet_socket()?;
    let proto = match scope.proto() {
        Proto::Tcp => libc::IPPROTO_TCP,
        Proto::Udp => libc::IPPROTO_UDP,
    } as u8;
    let block = if snap == filter::SNAPLEN {
        RING_BLOCK_WHOLE
    } else {
        RING_BLOCK_HEADERS
    };
    let ring = if prompt || std::env::var_os("SOCKKIT_CAPTURE").is_some_and(|v| v == "recvmsg") {
        None
    } else {
        // A ring the kernel will not make or this process cannot map (memory, an old kernel)
        // leaves recvmsg, which works and drops sooner. It is read on a fresh socket: one
        // the ring was half set up on might queue nothing to recvmsg.
        if let Ok(r) = sys::PacketRing::new(sock.as_raw_fd(), block, RING_BLOCKS, RETIRE) {
            Some(r)
        } else {
            sock = sys::packet_socket()?;
            None
        }
    };
    let legs = Legs::new(sock, proto, scope.ports(), snap, sys::if_index("lo"))?;
    let fd = legs.fd();
    // The ring stamps each packet as the kernel sees it (its skb's time or, before the
    // kernel's stamping starts, the time of the copy into the ring), so no wait is needed.
    let source = if let Some(r) = ring {
        Source::Ring(r)
    } else {
        // A bigger queue is best effort: the default still works, it drops sooner.
        let _ = sys::setsockopt(fd, libc::SOL_SOCKET, libc::SO_RCVBUF, &QUEUE_BYTES);
        // Each packet comes with the time the kernel saw it (SCM_TIMESTAMPNS). The kernel
        // turns its packet stamping on from a work queue a moment later
        // (net_enable_timestamp); until then a packet is stamped when read, so the
        // handshake would seem to follow connect(). A few milliseconds, once per session,
        // let it start before the first call.
        let _ = sys::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_TIMESTAMPNS,
            &1 as &libc::c_int,
        );
        std::thread::sleep(STAMPING_STARTS);
        sys::set_recv_timeout(fd, QUIET)?;
        Source::Recv(vec![0u8; filter::SNAPLEN as usize])
    };
    let ifindex = if scope.loopback() {
        sys::if_index("lo")
    } else {
        0
    };
    sys::packet_bind(fd, ifindex)?;
    Ok((legs, source))
}

/// The reader thread's state: what it tells and writes, and the sequence numbers it has
/// seen (sequence numbers are told relative to each side's first).
struct Reader<'a> {
    legs: &'a Legs,
    scope: Scope,
    wire: bool,
    lo: u32,
    pcap: Option<PcapWriter>,
    isns: Isns,
    seen: u64,
    /// Packets the kernel filter passed that are on none of this session's connections
    /// (counted, so none is lost unsaid).
    unmatched: u64,
}

fn read_loop(
    legs: &Legs,
    mut source: Source,
    scope: Scope,
    wire: bool,
    lo: u32,
    pcap: Option<PcapWriter>,
    stop: &AtomicBool,
) {
    let fd = legs.fd();
    // The totals are said when packets were asked for (not for --trace alone) or lost.
    let tell_totals = wire || pcap.is_some();
    let mut r = Reader {
        legs,
        scope,
        wire,
        lo,
        pcap,
        isns: Isns::default(),
        seen: 0,
        unmatched: 0,
    };
    // When a packet last came: after the stop flag the reader goes on until the line has
    // been quiet for QUIET (a wait cut short, by a signal or a wakeup with nothing in the
    // ring, does not end it early).
    let mut last = std::time::Instant::now();
    loop {
        let got = match &mut source {
            Source::Ring(ring) => {
                ring.next_block(fd, QUIET, |p| r.packet(p.data, &p.meta, Some(p.stamp)))
            }
            Source::Recv(buf) => match sys::packet_recv(fd, buf) {
                Ok((n, meta, stamp)) => {
                    r.packet(&buf[..n], &meta, stamp);
                    Ok(true)
                }
                Err(e) if matches!(e.raw_os_error(), Some(libc::EAGAIN | libc::EINTR)) => Ok(false),
                Err(e) => Err(e),
            },
        };
        match got {
            Ok(true) => last = std::time::Instant::now(),
            Ok(false) => {
                if stop.load(Ordering::Relaxed) && last.elapsed() >= QUIET {
                    break;
                }
                // Nothing came for QUIET: every packet the kernel stamped before then has
                // been read (a block is handed over RETIRE after its first packet).
                legs.tidy(SystemTime::now() - QUIET);
            }
            Err(e) => {
                narrate::emit(format_args!("wire: {}", narrate::errno_text(&e)));
                break;
            }
        }
    }
    let Reader {
        pcap,
        seen,
        unmatched,
        ..
    } = r;
    if let Some(w) = pcap {
        let _ = w.finish();
    }
    if let Ok((_, drops)) = sys::packet_stats(fd) {
        if tell_totals || drops > 0 || unmatched > 0 {
            let strays = if unmatched > 0 {
                format!(
                    "; {unmatched} more passed the filter but were on none of this session's \
                     connections (not told)"
                )
            } else {
                String::new()
            };
            narrate::emit(format_args!(
                "wire: {seen} packets captured, {drops} dropped by the kernel (its queue was \
                 full){strays}"
            ));
        }
        trace::record("capture", |f| {
            f.num("packets", seen)
                .num("dropped", drops)
                .num("unmatched", unmatched);
        });
    }
}

impl Reader<'_> {
    /// One captured packet: ours or not, then told, traced and written.
    fn packet(&mut self, data: &[u8], meta: &sys::PacketMeta, stamp: Option<SystemTime>) {
        // On `lo` each packet passes twice, going out and coming in: keep the second, as
        // tcpdump does.
        if meta.ifindex == self.lo && meta.pkttype == OUTGOING {
            return;
        }
        let Some(packet) = decode::decode(data) else {
            return;
        };
        let now = SystemTime::now();
        let when = stamp.unwrap_or(now);
        let Some((outgoing, leg, local, remote)) = self
            .scope
            .direction(self.legs, packet.src, packet.dst, when)
        else {
            self.unmatched += 1;
            return;
        };
        self.seen += 1;
        let ago = now.duration_since(when).unwrap_or_default();
        if let Some(w) = self.pcap.as_mut() {
            let _ = w.packet(when, meta, data);
        }
        let (line, numbers) = match &packet.body {
            Body::Tcp(t) => {
                let told = self.isns.tcp_line(outgoing, local, remote, t);
                (told.line, Some((told.seq, told.ack)))
            }
            Body::Udp { len } => (format::udp_line(outgoing, *len), None),
        };
        let line = match (self.scope, leg) {
            (Scope::Client { .. }, _) => line,
            (_, Leg::Client) => format!("{line} (client {remote})"),
            (_, Leg::Target) => {
                format!("{line} (target {remote} from port {})", local.port())
            }
        };
        if self.wire {
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
}
