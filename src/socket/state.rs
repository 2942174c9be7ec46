//! What the kernel says about a TCP connection, as narration and `-v` show it: the state in
//! the RFC 793 diagram after a call (` -> ESTABLISHED`) and the end-of-connection TCP_INFO
//! summary in `ss -ti`'s words. Read through `sys::tcp_info` (Linux); elsewhere nothing is
//! said. The calls that move the state live in `call.rs` and `tcp.rs`.

use std::os::fd::{AsRawFd, RawFd};

use socket2::Socket;

use crate::narrate;

/// What a narrated call says of the socket after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum After {
    /// ` -> ESTABLISHED`: a TCP socket, whose state the kernel reports.
    TcpState,
    /// Nothing: UDP and Unix sockets have no TCP state, and asking would cost a getsockopt
    /// that only fails.
    Nothing,
}

impl After {
    /// The text after the call's result: a state suffix, or nothing.
    pub fn told(self, sock: &Socket) -> String {
        match self {
            After::TcpState => state_suffix(sock),
            After::Nothing => String::new(),
        }
    }
}

/// ` -> ESTABLISHED`: where the TCP state machine is now, when the kernel says (Linux).
pub fn state_suffix(sock: &Socket) -> String {
    if !narrate::narrating() {
        return String::new();
    }
    tcp_state(sock.as_raw_fd())
        .map(|s| format!(" -> {s}"))
        .unwrap_or_default()
}

/// The state after a non-blocking connect() said EINPROGRESS: ` -> SYN_SENT` while the
/// handshake is under way, or, when the peer's SYN-ACK was already back by the time we looked
/// (loopback answers in microseconds), ` -> ESTABLISHED` with that said.
pub fn after_inprogress(sock: &Socket) -> String {
    match narrate::narrating()
        .then(|| tcp_state(sock.as_raw_fd()))
        .flatten()
    {
        Some("ESTABLISHED") => " -> ESTABLISHED (the handshake finished meanwhile: EINPROGRESS \
             only said it had not when connect() returned)"
            .to_string(),
        Some(s) => format!(" -> {s}"),
        None => String::new(),
    }
}

/// TCP_INFO's state, by name as in the RFC 793 diagram.
#[cfg(target_os = "linux")]
pub fn tcp_state(fd: RawFd) -> Option<&'static str> {
    let info = crate::sys::tcp_info(fd)?;
    Some(match info.tcpi_state {
        1 => "ESTABLISHED",
        2 => "SYN_SENT",
        3 => "SYN_RECV",
        4 => "FIN_WAIT1",
        5 => "FIN_WAIT2",
        6 => "TIME_WAIT",
        7 => "CLOSE",
        8 => "CLOSE_WAIT",
        9 => "LAST_ACK",
        10 => "LISTEN",
        11 => "CLOSING",
        _ => return None,
    })
}

#[cfg(not(target_os = "linux"))]
pub fn tcp_state(_fd: RawFd) -> Option<&'static str> {
    None
}

/// The `-v` end-of-connection TCP_INFO line, in `ss -ti`'s words and units so the two can be
/// compared: rtt/rttvar in ms, retrans as current/total, cwnd in segments, delivery_rate in
/// bits per second. bytes_acked and bytes_received count the SYN and FIN too, as the kernel does.
#[cfg(target_os = "linux")]
pub fn tcp_info_summary(sock: &Socket) -> Option<String> {
    let i = crate::sys::tcp_info(sock.as_raw_fd())?;
    Some(format!(
        "tcp_info: rtt:{}/{} ms, retrans:{}/{}, cwnd:{}, mss:{}, bytes_sent:{}, bytes_acked:{}, \
         bytes_received:{}, delivery_rate {} (compare with ss -ti)",
        f64::from(i.tcpi_rtt) / 1000.0,
        f64::from(i.tcpi_rttvar) / 1000.0,
        i.tcpi_retransmits,
        i.tcpi_total_retrans,
        i.tcpi_snd_cwnd,
        i.tcpi_snd_mss,
        i.tcpi_bytes_sent,
        i.tcpi_bytes_acked,
        i.tcpi_bytes_received,
        bits_per_second(i.tcpi_delivery_rate),
    ))
}

/// A rate in bytes/s as `ss` prints it: bits per second, `12.3Mbps`.
#[cfg(target_os = "linux")]
fn bits_per_second(bytes_per_sec: u64) -> String {
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

#[cfg(not(target_os = "linux"))]
pub fn tcp_info_summary(_sock: &Socket) -> Option<String> {
    None
}
