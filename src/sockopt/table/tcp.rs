//! The IPPROTO_TCP rows (tcp(7)): Nagle, segment size, keepalive timing, timeouts,
//! congestion control and ACKs, and the plain-int setsockopt/getsockopt those socket2 has no
//! single call for go through.

#[cfg(target_os = "linux")]
use std::io;

#[cfg(target_os = "linux")]
use socket2::SockRef;

use crate::sockopt::types::{Adjust, Applies, Kind, Level, Probe, Row, Stage, Value};

/// The rows of this level, in the order `-o help` lists them.
pub(super) const ROWS: &[Row] = &[
    Row {
        name: "TCP_NODELAY",
        aliases: &[],
        level: Level::Tcp,
        kind: Kind::Bool,
        valid: "",
        applies: Applies::ANY_TCP,
        stage: Stage::Early,
        doc: "Turns off Nagle's algorithm: small writes go out at once instead of waiting to \
              be coalesced while earlier data is unacknowledged.",
        notes: "Nagle and the peer's delayed ACKs together can stall a request/response \
                exchange by up to 40 ms (Linux's delayed-ACK timer).",
        set: Some(|s, v| s.set_tcp_nodelay(v.as_bool())),
        get: |s| s.tcp_nodelay().map(Value::Bool),
        adjust: Adjust::Exact,
        probe: Probe::Set("on"),
    },
    Row {
        name: "TCP_MAXSEG",
        aliases: &["mss"],
        level: Level::Tcp,
        kind: Kind::Int(0, 32767),
        valid: "88-32767 bytes, or 0 for no limit",
        applies: Applies::ANY_TCP,
        stage: Stage::Early,
        doc: "Caps the maximum segment size, the largest TCP payload per packet, which is \
              announced to the peer in the SYN.",
        notes: "Set before connect/listen. Once connected the kernel reports the MSS in use: \
                the smaller of both sides', less TCP options (12 bytes of timestamps), so it \
                reads back lower.",
        set: Some(|s, v| s.set_tcp_mss(v.as_c_uint())),
        get: |s| s.tcp_mss().map(|n| Value::Int(i64::from(n))),
        adjust: Adjust::Negotiated,
        probe: Probe::Set("1000"),
    },
    #[cfg(target_os = "linux")]
    Row {
        name: "TCP_KEEPIDLE",
        aliases: &[],
        level: Level::Tcp,
        kind: Kind::Seconds,
        valid: "1-32767 seconds",
        applies: Applies::ANY_TCP,
        stage: Stage::Early,
        doc: "How long a connection must be idle before the first keepalive probe.",
        notes: "Only matters while SO_KEEPALIVE is on (-o keepalive=30s sets both). Set \
                with setsockopt directly: socket2's call would also turn SO_KEEPALIVE on.",
        set: Some(|s, v| set_c_int(&s, libc::IPPROTO_TCP, libc::TCP_KEEPIDLE, v.as_int())),
        get: |s| s.tcp_keepalive_time().map(Value::Duration),
        adjust: Adjust::Exact,
        probe: Probe::Set("45s"),
    },
    #[cfg(target_os = "linux")]
    Row {
        name: "TCP_KEEPINTVL",
        aliases: &[],
        level: Level::Tcp,
        kind: Kind::Seconds,
        valid: "1-32767 seconds",
        applies: Applies::ANY_TCP,
        stage: Stage::Early,
        doc: "Time between keepalive probes once the first one went unanswered.",
        notes: "Only matters while SO_KEEPALIVE is on.",
        set: Some(|s, v| set_c_int(&s, libc::IPPROTO_TCP, libc::TCP_KEEPINTVL, v.as_int())),
        get: |s| s.tcp_keepalive_interval().map(Value::Duration),
        adjust: Adjust::Exact,
        probe: Probe::Set("7s"),
    },
    #[cfg(target_os = "linux")]
    Row {
        name: "TCP_KEEPCNT",
        aliases: &[],
        level: Level::Tcp,
        kind: Kind::Int(1, 127),
        valid: "1-127",
        applies: Applies::ANY_TCP,
        stage: Stage::Early,
        doc: "How many unanswered keepalive probes end the connection (with ETIMEDOUT).",
        notes: "Only matters while SO_KEEPALIVE is on.",
        set: Some(|s, v| set_c_int(&s, libc::IPPROTO_TCP, libc::TCP_KEEPCNT, v.as_int())),
        get: |s| s.tcp_keepalive_retries().map(|n| Value::Int(i64::from(n))),
        adjust: Adjust::Exact,
        probe: Probe::Set("4"),
    },
    #[cfg(target_os = "linux")]
    Row {
        name: "TCP_USER_TIMEOUT",
        aliases: &[],
        level: Level::Tcp,
        kind: Kind::Millis,
        valid: "",
        applies: Applies::ANY_TCP,
        stage: Stage::Early,
        doc: "How long sent data may stay unacknowledged before the kernel gives up on the \
              connection (ETIMEDOUT), instead of retrying for about 15 minutes \
              (net.ipv4.tcp_retries2).",
        notes: "Linux only; millisecond precision; off restores the default. It also bounds \
                keepalive: probes unanswered for this long end the connection.",
        set: Some(|s, v| s.set_tcp_user_timeout(v.as_toggle())),
        get: |s| s.tcp_user_timeout().map(Value::Toggle),
        adjust: Adjust::Exact,
        probe: Probe::Set("10s"),
    },
    #[cfg(target_os = "linux")]
    Row {
        name: "TCP_CONGESTION",
        aliases: &["cc"],
        level: Level::Tcp,
        kind: Kind::Name,
        valid: "a loaded algorithm: cubic, reno, bbr, ...",
        applies: Applies::ANY_TCP,
        stage: Stage::Early,
        doc: "The congestion control algorithm of this connection (cubic, reno, bbr, ...): how \
              fast it sends and how it reacts to loss.",
        notes: "Linux only. The algorithm must be loaded (see \
                net.ipv4.tcp_available_congestion_control; modprobe tcp_bbr loads bbr); \
                without CAP_NET_ADMIN only those in net.ipv4.tcp_allowed_congestion_control \
                may be chosen.",
        set: Some(|s, v| s.set_tcp_congestion(v.as_name().as_bytes())),
        get: |s| {
            s.tcp_congestion().map(|b| {
                let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
                Value::Name(String::from_utf8_lossy(&b[..end]).into_owned())
            })
        },
        adjust: Adjust::Exact,
        // reno is built into every Linux kernel; the test says so if it is the default.
        probe: Probe::Set("reno"),
    },
    #[cfg(target_os = "linux")]
    Row {
        name: "TCP_NOTSENT_LOWAT",
        aliases: &["lowat"],
        level: Level::Tcp,
        kind: Kind::Bytes,
        valid: "",
        applies: Applies::ANY_TCP,
        stage: Stage::Early,
        doc: "Limits how much written data may wait in the send buffer not yet sent; beyond \
              it the socket stops being writable, which keeps latency low for interactive \
              streams.",
        notes: "Linux only; 0 means net.ipv4.tcp_notsent_lowat applies (unlimited by default).",
        set: Some(|s, v| set_c_int(&s, libc::IPPROTO_TCP, libc::TCP_NOTSENT_LOWAT, v.as_int())),
        get: |s| {
            get_c_int(&s, libc::IPPROTO_TCP, libc::TCP_NOTSENT_LOWAT)
                .map(|n| Value::Bytes(u64::from(n.cast_unsigned())))
        },
        adjust: Adjust::Exact,
        probe: Probe::Set("16K"),
    },
    #[cfg(target_os = "linux")]
    Row {
        name: "TCP_QUICKACK",
        aliases: &[],
        level: Level::Tcp,
        kind: Kind::Bool,
        valid: "",
        applies: Applies::TCP.or(Applies::IPV4).or(Applies::IPV6),
        stage: Stage::Connected,
        doc: "Acknowledges every segment at once instead of delaying ACKs (a delayed ACK waits \
              up to 40 ms to ride along with a reply).",
        notes: "Linux only, and not permanent: the kernel drops in and out of quick-ack mode by \
                itself, so it is set after connect/accept and reads back what the kernel is \
                doing now.",
        set: Some(|s, v| s.set_tcp_quickack(v.as_bool())),
        get: |s| s.tcp_quickack().map(Value::Bool),
        adjust: Adjust::Transient,
        // A fresh socket is already in quick-ack mode, so the test turns it off.
        probe: Probe::Set("off"),
    },
];

/// `setsockopt(fd, level, name, &int, sizeof int)`, for options socket2 has no single call for.
#[cfg(target_os = "linux")]
fn set_c_int(s: &SockRef<'_>, level: libc::c_int, name: libc::c_int, v: i32) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    crate::sys::setsockopt(s.as_raw_fd(), level, name, &v)
}

/// `getsockopt(fd, level, name, &int, &len)`.
#[cfg(target_os = "linux")]
fn get_c_int(s: &SockRef<'_>, level: libc::c_int, name: libc::c_int) -> io::Result<i32> {
    use std::os::fd::AsRawFd;
    crate::sys::getsockopt(s.as_raw_fd(), level, name)
}
