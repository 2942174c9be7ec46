//! The SOL_SOCKET rows (socket(7)): options every socket has, whatever its protocol, and
//! the reader of SO_PEERCRED. Which sockets each applies to is in its `applies`.

#[cfg(target_os = "linux")]
use std::io;

#[cfg(target_os = "linux")]
use socket2::SockRef;

use crate::sockopt::types::{Adjust, Applies, Kind, Level, Probe, Row, Stage, Value};

/// The rows of this level, in the order `-o help` lists them.
pub(super) const ROWS: &[Row] = &[
    Row {
        name: "SO_REUSEADDR",
        aliases: &[],
        level: Level::Socket,
        kind: Kind::Bool,
        valid: "",
        applies: Applies::ANY_INET,
        stage: Stage::Early,
        doc: "Lets a server bind a port that connections of an earlier run still hold in \
              TIME_WAIT.",
        notes: "On by default for sockkit's servers (-o reuseaddr=0 turns it off). On Linux it \
                does not let two sockets listen on one port: SO_REUSEPORT does.",
        set: Some(|s, v| s.set_reuse_address(v.as_bool())),
        get: |s| s.reuse_address().map(Value::Bool),
        adjust: Adjust::Exact,
        probe: Probe::Set("on"),
    },
    #[cfg(target_os = "linux")]
    Row {
        name: "SO_REUSEPORT",
        aliases: &[],
        level: Level::Socket,
        kind: Kind::Bool,
        valid: "",
        applies: Applies::ANY_INET,
        stage: Stage::Early,
        doc: "Lets several sockets bind the same address and port; the kernel spreads incoming \
              connections (or datagrams) across them.",
        notes: "Linux semantics (BSDs differ). Every socket sharing the port must set it, and \
                all must belong to the same user.",
        set: Some(|s, v| s.set_reuse_port(v.as_bool())),
        get: |s| s.reuse_port().map(Value::Bool),
        adjust: Adjust::Exact,
        probe: Probe::Set("on"),
    },
    Row {
        name: "SO_KEEPALIVE",
        aliases: &[],
        level: Level::Socket,
        kind: Kind::Keepalive,
        valid: "",
        applies: Applies::ANY_TCP,
        stage: Stage::Early,
        doc: "Sends probes on an idle connection to notice a peer that vanished without \
              closing (crashed, unplugged); the connection then fails with ETIMEDOUT.",
        notes: "A duration is shorthand: -o keepalive=30s sets SO_KEEPALIVE on and TCP_KEEPIDLE \
                to 30 seconds, two setsockopt calls. Otherwise the first probe waits \
                net.ipv4.tcp_keepalive_time (7200 s by default).",
        set: Some(|s, v| s.set_keepalive(v.as_bool())),
        get: |s| s.keepalive().map(Value::Bool),
        adjust: Adjust::Exact,
        probe: Probe::Set("on"),
    },
    Row {
        name: "SO_RCVBUF",
        aliases: &[],
        level: Level::Socket,
        kind: Kind::Bytes,
        valid: "",
        applies: Applies::ALL,
        stage: Stage::Early,
        doc: "Size of the kernel's receive buffer, which bounds the TCP receive window.",
        notes: "Set before connect/listen so window scaling matches. Linux doubles the value \
                (half is bookkeeping), clamps the request to net.core.rmem_max, and stops \
                autotuning the buffer once it is set.",
        set: Some(|s, v| s.set_recv_buffer_size(v.as_bytes())),
        get: |s| s.recv_buffer_size().map(|n| Value::Bytes(n as u64)),
        adjust: Adjust::Doubled("net.core.rmem_max"),
        // Not 64K: on Linux that doubles to 131072, tcp_rmem's default, so it would not
        // show that the set took effect.
        probe: Probe::Set("96K"),
    },
    Row {
        name: "SO_SNDBUF",
        aliases: &[],
        level: Level::Socket,
        kind: Kind::Bytes,
        valid: "",
        applies: Applies::ALL,
        stage: Stage::Early,
        doc: "Size of the kernel's send buffer: how much written data may wait unsent or \
              unacknowledged before write() blocks.",
        notes: "Linux doubles the value, clamps the request to net.core.wmem_max, and stops \
                autotuning the buffer once it is set.",
        set: Some(|s, v| s.set_send_buffer_size(v.as_bytes())),
        get: |s| s.send_buffer_size().map(|n| Value::Bytes(n as u64)),
        adjust: Adjust::Doubled("net.core.wmem_max"),
        probe: Probe::Set("96K"),
    },
    Row {
        name: "SO_LINGER",
        aliases: &[],
        level: Level::Socket,
        kind: Kind::Linger,
        valid: "",
        applies: Applies::ANY_TCP,
        stage: Stage::Early,
        doc: "What close() does with data not yet sent: off (the default) returns at once and \
              the kernel finishes in the background; a time makes close() wait up to that \
              long for the peer to acknowledge it.",
        notes: "0 is special: close() discards unsent data and sends a RST instead of a FIN \
                (an abortive close: the peer sees ECONNRESET, no TIME_WAIT is left). Off is \
                not the same as 0. The kernel keeps whole seconds.",
        set: Some(|s, v| s.set_linger(v.as_toggle())),
        get: |s| s.linger().map(Value::Toggle),
        adjust: Adjust::Exact,
        probe: Probe::Set("3s"),
    },
    Row {
        name: "SO_BROADCAST",
        aliases: &[],
        level: Level::Socket,
        kind: Kind::Bool,
        valid: "",
        applies: Applies::UDP.or(Applies::IPV4),
        stage: Stage::Early,
        doc: "Allows sending datagrams to a broadcast address (255.255.255.255, or a subnet's \
              broadcast address).",
        notes: "UDP over IPv4 only: TCP cannot broadcast, and IPv6 has no broadcast (it uses \
                multicast).",
        set: Some(|s, v| s.set_broadcast(v.as_bool())),
        get: |s| s.broadcast().map(Value::Bool),
        adjust: Adjust::Exact,
        probe: Probe::Set("on"),
    },
    #[cfg(target_os = "linux")]
    Row {
        name: "SO_PASSCRED",
        aliases: &[],
        level: Level::Socket,
        kind: Kind::Bool,
        valid: "",
        applies: Applies::UNIX,
        stage: Stage::Early,
        doc: "Asks the kernel to attach the sender's credentials (pid, uid, gid) to every \
              message received, as an SCM_CREDENTIALS control message.",
        notes: "Linux, Unix-domain sockets. sockkit reads data with read(), which drops control \
                messages, so it only shows the flag; SO_PEERCRED tells who the peer is.",
        set: Some(|s, v| s.set_passcred(v.as_bool())),
        get: |s| s.passcred().map(Value::Bool),
        adjust: Adjust::Exact,
        probe: Probe::Set("on"),
    },
    #[cfg(target_os = "linux")]
    Row {
        name: "SO_PEERCRED",
        aliases: &[],
        level: Level::Socket,
        kind: Kind::Name,
        valid: "read-only",
        applies: Applies::UNIX,
        stage: Stage::Connected,
        doc: "The peer's credentials (pid, uid, gid) as the kernel recorded them at connect() \
              or listen(): who is at the other end of a Unix socket, which no address says.",
        notes: "Linux, Unix-domain stream sockets; read-only (--show-opts shows it). On a \
                listening socket it is the listener's own, on a datagram socket it is empty.",
        set: None,
        get: |s| peercred_of(&s),
        adjust: Adjust::Exact,
        probe: Probe::Skip(
            "read-only: tests/udp_unix.rs checks the pid/uid/gid it shows on a connected \
             Unix socket",
        ),
    },
    #[cfg(target_os = "linux")]
    Row {
        name: "SO_PRIORITY",
        aliases: &[],
        level: Level::Socket,
        kind: Kind::Int(0, 2_147_483_647),
        valid: "0-6; higher needs CAP_NET_ADMIN",
        applies: Applies::ANY_INET,
        stage: Stage::Early,
        doc: "Priority of the socket's packets in the local queueing discipline (tc), which may \
              send them first; it also sets the VLAN priority.",
        notes: "Linux only. Values above 6 need CAP_NET_ADMIN (EPERM otherwise). Setting IP_TOS \
                changes it too.",
        set: Some(|s, v| s.set_priority(v.as_c_uint())),
        get: |s| s.priority().map(|p| Value::Int(i64::from(p.cast_signed()))),
        adjust: Adjust::Exact,
        probe: Probe::Set("3"),
    },
    #[cfg(target_os = "linux")]
    Row {
        name: "SO_BINDTODEVICE",
        aliases: &["device"],
        level: Level::Socket,
        kind: Kind::Name,
        valid: "an interface name (lo, eth0)",
        applies: Applies::ANY_INET,
        stage: Stage::Early,
        doc: "Binds the socket to one network interface: it sends and receives only through \
              that interface, whatever the routing table says.",
        notes: "Linux only. Changing an existing binding needs CAP_NET_RAW. An unknown name \
                fails with ENODEV; 'ip link' lists the interfaces.",
        set: Some(|s, v| s.bind_device(Some(v.as_name().as_bytes()))),
        get: |s| {
            s.device().map(|d| {
                Value::Name(d.map_or_else(String::new, |b| {
                    String::from_utf8_lossy(&b)
                        .trim_end_matches('\0')
                        .to_string()
                }))
            })
        },
        adjust: Adjust::Exact,
        probe: Probe::Set("lo"),
    },
];

/// SO_PEERCRED as `pid 1234, uid 1000, gid 1000`; no peer (pid 0) reads as "(none)".
#[cfg(target_os = "linux")]
fn peercred_of(s: &SockRef<'_>) -> io::Result<Value> {
    use std::os::fd::AsRawFd;
    let c = crate::sys::peer_cred(s.as_raw_fd()).ok_or_else(io::Error::last_os_error)?;
    if c.pid == 0 {
        return Ok(Value::Name(String::new()));
    }
    Ok(Value::Name(format!(
        "pid {}, uid {}, gid {}",
        c.pid, c.uid, c.gid
    )))
}
