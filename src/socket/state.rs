//! What the kernel says about a TCP connection, as narration and `-v` show it: the state in
//! the RFC 793 diagram after a call (` -> ESTABLISHED`) and the end-of-connection TCP_INFO
//! summary in `ss -ti`'s words. Read through `sys::tcp_info` (Linux); elsewhere nothing is
//! said. The calls that move the state live in `call.rs` and `tcp.rs`.

use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Mutex;
use std::time::Instant;

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
    let fd = sock.as_raw_fd();
    tcp_state(fd)
        .inspect(|s| remember(fd, s))
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
    state_name(info.tcpi_state)
}

#[cfg(not(target_os = "linux"))]
pub fn tcp_state(_fd: RawFd) -> Option<&'static str> {
    None
}

/// A state number as Linux numbers them (TCP_INFO and sock_diag alike), by its RFC 793 name.
fn state_name(n: u8) -> Option<&'static str> {
    Some(match n {
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

/// What narration has told of one socket: its last TCP state, and its two ends once a
/// narrated getsockname/getpeername/accept showed them (after close() they are how the
/// connection is looked up; by then getpeername would fail).
#[derive(Debug, Clone, Copy)]
struct Told {
    inode: u64,
    state: Option<&'static str>,
    local: Option<SocketAddr>,
    peer: Option<SocketAddr>,
}

/// Per socket (by inode, so a descriptor and its dup are one socket): a move the kernel made
/// on its own can be told when sockkit next looks.
static TOLD: Mutex<Vec<Told>> = Mutex::new(Vec::new());

fn inode(fd: RawFd) -> Option<u64> {
    crate::sys::fstat(fd).ok().map(|st| st.st_ino)
}

/// Updates what is known of the socket on `fd` with `change`.
fn update(fd: RawFd, change: impl FnOnce(&mut Told)) {
    let Some(ino) = inode(fd) else { return };
    let mut told = TOLD
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(entry) = told.iter_mut().find(|t| t.inode == ino) {
        change(entry);
    } else {
        let mut entry = Told {
            inode: ino,
            state: None,
            local: None,
            peer: None,
        };
        change(&mut entry);
        told.push(entry);
    }
}

fn remember(fd: RawFd, state: &'static str) {
    update(fd, |t| t.state = Some(state));
}

/// A narrated call showed one end of the socket on `fd` (`local` or the peer's).
pub fn remember_end(fd: RawFd, addr: SocketAddr, local: bool) {
    if narrate::narrating() {
        update(fd, |t| {
            if local {
                t.local = Some(addr);
            } else {
                t.peer = Some(addr);
            }
        });
    }
}

/// What was told of the socket on `fd`, forgetting it when `forget` (it is being closed).
fn told(fd: RawFd, forget: bool) -> Option<Told> {
    let ino = inode(fd)?;
    let mut told = TOLD
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let at = told.iter().position(|t| t.inode == ino)?;
    let entry = told[at];
    if forget {
        told.swap_remove(at);
    }
    Some(entry)
}

fn last_told(fd: RawFd, forget: bool) -> Option<&'static str> {
    told(fd, forget).and_then(|t| t.state)
}

/// The socket on `fd` is about to be closed: what was told of it is forgotten, and its two
/// ends, when they were told, are returned for the look-up after close().
pub fn forget(fd: RawFd) -> Option<(SocketAddr, SocketAddr)> {
    let t = told(fd, true)?;
    Some((t.local?, t.peer?))
}

/// Looks at the socket now (at `-vv`): when the kernel moved it since the state last told
/// (the peer's FIN: ESTABLISHED -> CLOSE_WAIT; the ACK of ours: FIN_WAIT1 -> FIN_WAIT2),
/// says so, with `when` saying what made sockkit look.
pub fn look(sock: &Socket, when: &str) {
    if !narrate::narrating() {
        return;
    }
    let fd = sock.as_raw_fd();
    let Some(now) = tcp_state(fd) else { return };
    let before = last_told(fd, false);
    if let Some(before) = before
        && before != now
    {
        narrate::seen(format_args!(
            "kernel: fd {fd} {before} -> {now}, no call of ours: {} ({when})",
            kernel_move(before, now)
        ));
    }
    remember(fd, now);
}

/// Why the kernel moved a connection from `before` to `now` by itself.
fn kernel_move(before: &str, now: &str) -> &'static str {
    match (before, now) {
        ("ESTABLISHED", "CLOSE_WAIT") => "the peer's FIN arrived; we may still send",
        ("FIN_WAIT1", "FIN_WAIT2") => "the peer acked our FIN; its own is still to come",
        ("FIN_WAIT1" | "FIN_WAIT2" | "CLOSING", "CLOSE") => {
            "the peer acked our FIN and sent its own: the connection is over on this socket, \
             and the kernel keeps its TIME_WAIT apart (ss -tan shows it)"
        }
        ("FIN_WAIT1", "CLOSING") => "the peer's FIN crossed ours",
        (_, "CLOSE") => "the connection ended (a RST, or both FINs done)",
        ("SYN_SENT" | "SYN_RECV", "ESTABLISHED") => "the handshake finished",
        _ => "segments from the peer moved it",
    }
}

/// Said just before close(fd) on a TCP socket (`-vv`): what close() will send, in the order
/// Linux's tcp_close decides it: nothing if the connection already ended; a RST if unread
/// data waits in the receive queue, or if SO_LINGER is on with a zero timeout and the
/// connection still has a FIN to exchange; otherwise a FIN if ours has not gone out yet.
/// A linger of 0 that an earlier FIN made moot is said once, here.
pub fn before_close(sock: &Socket, state: &str) -> String {
    let fd = sock.as_raw_fd();
    let unread = crate::sys::unread(fd).unwrap_or(0);
    let linger0 = crate::sys::getsockopt::<libc::linger>(fd, libc::SOL_SOCKET, libc::SO_LINGER)
        .is_ok_and(|l| l.l_onoff != 0 && l.l_linger == 0);
    let live = matches!(
        state,
        "ESTABLISHED" | "CLOSE_WAIT" | "FIN_WAIT1" | "FIN_WAIT2" | "SYN_RECV"
    );
    match state {
        "CLOSE" if linger0 => ", sends nothing: both FINs went out before, so SO_LINGER 0 \
                               has nothing to reset (it is moot here)"
            .to_string(),
        "CLOSE" | "LISTEN" => String::new(),
        _ if unread > 0 => format!(
            ", sends a RST, not a FIN: {unread} bytes arrived that nobody read, and Linux \
             resets rather than let the peer think they were"
        ),
        _ if linger0 && live => {
            ", sends a RST, not a FIN: SO_LINGER is on with a 0 s timeout".to_string()
        }
        "ESTABLISHED" | "CLOSE_WAIT" | "SYN_RECV" => ", sends our FIN".to_string(),
        _ => String::new(),
    }
}

/// Said after close() of a TCP connection between `local` and `peer` (`-vv`): what the
/// kernel still holds, found as `ss` finds it (sock_diag), in a learner's words.
pub fn after_close(local: SocketAddr, peer: SocketAddr) {
    if !narrate::narrating() {
        return;
    }
    let t0 = Instant::now();
    let found = crate::sys::tcp_diag(local, peer);
    let what = match &found {
        Ok(None) => "nothing: the kernel has forgotten the connection (no TIME_WAIT on this \
                     side: it stays with whoever closed first, or a RST ended it)"
            .to_string(),
        Ok(Some(d)) => remains(d, local),
        Err(e) => narrate::errno_text(e),
    };
    narrate::call(
        format_args!(
            "sock_diag({local} -> {peer}) (a NETLINK_SOCK_DIAG lookup, as ss does) = {what}"
        ),
        t0.elapsed(),
    );
}

/// One line for what sock_diag found left of a closed connection.
fn remains(d: &crate::sys::Diag, local: SocketAddr) -> String {
    let secs = d.expires_ms.div_ceil(1000);
    match state_name(d.state) {
        Some("TIME_WAIT") => format!(
            "TIME_WAIT (the kernel holds {local} for {secs}s so late segments of this \
             connection are not taken for a new one)"
        ),
        Some("FIN_WAIT1") => "FIN_WAIT1 (our FIN is not acked yet; the kernel finishes the \
                              close without us)"
            .to_string(),
        Some("FIN_WAIT2") => format!(
            "FIN_WAIT2 (our FIN was acked; the kernel waits {secs}s more for the peer's, \
             net.ipv4.tcp_fin_timeout)"
        ),
        Some("LAST_ACK") => "LAST_ACK (our FIN waits for the peer's ACK; then nothing \
                             remains)"
            .to_string(),
        Some(name) => name.to_string(),
        None => format!("state {}", d.state),
    }
}

/// TCP_INFO's bytes_acked: how much of what we sent the peer's TCP has acknowledged, in all
/// (the SYN and a FIN count one each). None: not TCP, or not Linux. For what a reset loses:
/// the bytes the kernel took and the peer never acknowledged.
pub fn bytes_acked(fd: std::os::fd::RawFd) -> Option<u64> {
    #[cfg(target_os = "linux")]
    {
        crate::sys::tcp_info(fd).map(|t| t.tcpi_bytes_acked)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = fd;
        None
    }
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
        crate::narrate::bits_per_second(i.tcpi_delivery_rate),
    ))
}

/// TCP_INFO for `--json`: rtt_ms, rttvar_ms, retrans, total_retrans, cwnd (segments), mss,
/// bytes_sent, bytes_acked, bytes_received, delivery_rate (bytes per second), as an object.
#[cfg(target_os = "linux")]
pub fn tcp_info_json(sock: &Socket) -> Option<String> {
    let i = crate::sys::tcp_info(sock.as_raw_fd())?;
    Some(
        crate::json::Object::default()
            .real("rtt_ms", f64::from(i.tcpi_rtt) / 1000.0)
            .real("rttvar_ms", f64::from(i.tcpi_rttvar) / 1000.0)
            .num("retrans", u64::from(i.tcpi_retransmits))
            .num("total_retrans", u64::from(i.tcpi_total_retrans))
            .num("cwnd", u64::from(i.tcpi_snd_cwnd))
            .num("mss", u64::from(i.tcpi_snd_mss))
            .num("bytes_sent", i.tcpi_bytes_sent)
            .num("bytes_acked", i.tcpi_bytes_acked)
            .num("bytes_received", i.tcpi_bytes_received)
            .num("delivery_rate", i.tcpi_delivery_rate)
            .text(),
    )
}

#[cfg(not(target_os = "linux"))]
pub fn tcp_info_json(_sock: &Socket) -> Option<String> {
    None
}

#[cfg(not(target_os = "linux"))]
pub fn tcp_info_summary(_sock: &Socket) -> Option<String> {
    None
}
