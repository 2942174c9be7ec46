//! The errno -> sentence table: what a failed call means for a learner, worded for the
//! situation it failed in (connecting to an IP address or to a Unix path; binding a server, a
//! Unix path or a connection's source; resolving a name; a datagram peer that is gone; bytes
//! a stream peer never took; a server's I/O on one client). One table, `sentence`, keyed by
//! the situation and the errno; one small function per situation for the call sites.
//! Deciding what to do about a failure (retry, fall back, give up) is the caller's; only the
//! words live here.

use std::fmt;
use std::io;
use std::net::SocketAddr;

use crate::narrate;

/// What was being done when the call failed: the first half of the table's key.
enum Doing<'a> {
    /// connect() to an IP address: TCP, or UDP's connect() that only fixes the peer.
    Connect(SocketAddr),
    /// connect() to a Unix socket, shown as the user wrote it.
    ConnectUnix {
        addr: &'a dyn fmt::Display,
        abstract_name: bool,
        datagram: bool,
    },
    /// bind() for a server. `reuseaddr` is SO_REUSEADDR as set: with it on, only a listener
    /// can hold the port, without it connections in TIME_WAIT can too.
    Bind {
        addr: SocketAddr,
        reuseaddr: bool,
        udp: bool,
    },
    /// bind() of a Unix path; `holder` is who the socket layer found holding a taken one.
    BindUnix {
        addr: &'a dyn fmt::Display,
        holder: Option<PathHolder>,
    },
    /// bind() of a client's source address (`-s`, `-p`) before connect().
    BindSource(SocketAddr),
    /// getaddrinfo() for a host name.
    Resolve { host: &'a str },
    /// send() or recv() on a datagram socket: `ip` is the peer's IP address (UDP), none for a
    /// Unix peer, shown as `shown`.
    Datagram {
        ip: Option<SocketAddr>,
        shown: &'a dyn fmt::Display,
    },
    /// Sending what stdin gave to a stream peer: `lost` bytes, `what` says where they are
    /// (`read from stdin`, `left in the stdin file`).
    Deliver { lost: u64, what: &'a str },
    /// A server's read or write (`op`) on one client's connection.
    Client { op: &'a str },
}

/// Who holds a Unix path that bind() found taken (EADDRINUSE). The socket layer finds out;
/// the advice depends on it, since only a stale file may be replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathHolder {
    /// A socket file whose server is gone: connecting to it is refused.
    Stale,
    /// Someone is bound (and listening) there.
    Listening,
    /// A regular file, directory, ... (the words say which): never deleted.
    NotSocket(&'static str),
}

/// The table: one arm per (situation, errno) that deserves more than the errno's own words,
/// and a last arm per situation for the rest.
fn sentence(doing: &Doing, e: &io::Error) -> String {
    use Doing::{
        Bind, BindSource, BindUnix, Client, Connect, ConnectUnix, Datagram, Deliver, Resolve,
    };
    use libc::{
        EACCES, EADDRINUSE, EADDRNOTAVAIL, ECONNREFUSED, ECONNRESET, EHOSTUNREACH, ENETUNREACH,
        ENOENT, ENOTDIR, ENOTSOCK, EPIPE, EPROTOTYPE, ETIMEDOUT,
    };
    match (doing, e.raw_os_error()) {
        (Connect(addr), Some(ECONNREFUSED)) => {
            format!("connection refused: nothing is listening on {addr}")
        }
        (Connect(addr), Some(ETIMEDOUT)) => connect_timed_out(*addr, None),
        (Connect(addr), Some(EHOSTUNREACH)) => {
            format!("host unreachable: no route to {}", addr.ip())
        }
        (Connect(addr), Some(ENETUNREACH)) => format!(
            "network unreachable: this machine has no route to {} (no {} connectivity?)",
            addr.ip(),
            if addr.is_ipv6() { "IPv6" } else { "IPv4" }
        ),
        (Connect(addr), Some(EADDRNOTAVAIL)) => format!(
            "cannot connect to {addr}: address not available (no local address can reach it)"
        ),
        (Connect(addr), _) => format!("cannot connect to {addr}: {}", plain(e)),

        (ConnectUnix { addr, .. }, Some(ENOENT)) => {
            format!("no socket at {addr}: nothing has bound that path (is the server running?)")
        }
        (
            ConnectUnix {
                addr,
                abstract_name: true,
                ..
            },
            Some(ECONNREFUSED),
        ) => format!("connection refused: nothing is bound to {addr} (abstract namespace)"),
        (ConnectUnix { addr, .. }, Some(ECONNREFUSED)) => format!(
            "connection refused: {addr} is a socket file nobody listens on (a stale file left \
             by a server that exited)"
        ),
        (
            ConnectUnix {
                addr,
                datagram: true,
                ..
            },
            Some(EPROTOTYPE),
        ) => format!("{addr} is a stream socket, not a datagram one: drop -u"),
        (ConnectUnix { addr, .. }, Some(EPROTOTYPE)) => {
            format!("{addr} is a datagram socket: add -u")
        }
        (ConnectUnix { addr, .. }, Some(EACCES)) => format!(
            "permission denied connecting to {addr}: connecting needs write permission on the \
             socket file and search permission on its directories"
        ),
        (ConnectUnix { addr, .. }, Some(ENOTSOCK | ENOTDIR)) => {
            format!("{addr} is not a socket: a file that is not a socket cannot be connected to")
        }
        (ConnectUnix { addr, .. }, _) => format!("cannot connect to {addr}: {}", plain(e)),

        // UDP has no listening or TIME_WAIT: the port is simply bound by another socket.
        (
            Bind {
                addr, udp: true, ..
            },
            Some(EADDRINUSE),
        ) => format!(
            "address already in use: another socket is bound to UDP port {} ('ss -lunp' \
             shows which process)",
            addr.port()
        ),
        (
            Bind {
                addr,
                reuseaddr: true,
                ..
            },
            Some(EADDRINUSE),
        ) => format!(
            "address already in use: another socket is listening on port {} ('ss -ltnp' shows which process)",
            addr.port()
        ),
        (Bind { addr, .. }, Some(EADDRINUSE)) => format!(
            "address already in use: port {} is held by another socket or by connections in TIME_WAIT (leave SO_REUSEADDR on, or 'ss -tanp' shows which)",
            addr.port()
        ),
        (Bind { addr, .. }, Some(EACCES)) if addr.port() < 1024 => format!(
            "permission denied binding {addr}: ports below 1024 are privileged (run as root, grant CAP_NET_BIND_SERVICE, or use a port from 1024 up)"
        ),
        (Bind { addr, .. }, Some(EADDRNOTAVAIL)) => format!(
            "cannot bind {addr}: that address is not on this machine ('ip addr' lists the ones that are)"
        ),
        (Bind { addr, .. }, _) => format!("cannot bind {addr}: {}", plain(e)),

        (
            BindUnix {
                addr,
                holder: Some(PathHolder::Stale),
            },
            Some(EADDRINUSE),
        ) => format!(
            "cannot bind {addr}: a stale socket file is in the way (nobody listens on it: a \
             server exited without removing it); pass --unlink to replace it, or remove it \
             with rm"
        ),
        (
            BindUnix {
                addr,
                holder: Some(PathHolder::NotSocket(what)),
            },
            Some(EADDRINUSE),
        ) => format!(
            "cannot bind {addr}: it exists and is {what}, not a socket; sockkit never deletes \
             it (choose another path)"
        ),
        (
            BindUnix {
                addr,
                holder: Some(PathHolder::Listening),
            },
            Some(EADDRINUSE),
        ) => format!(
            "address already in use: a server is listening on {addr} ('ss -xlp' shows which \
             process)"
        ),
        (BindUnix { addr, .. }, Some(ENOENT)) => {
            format!("cannot bind {addr}: its directory does not exist")
        }
        (BindUnix { addr, .. }, Some(EACCES)) => format!(
            "permission denied binding {addr}: creating the socket file needs write permission \
             on its directory"
        ),
        (BindUnix { addr, .. }, _) => format!("cannot bind {addr}: {}", plain(e)),

        (BindSource(addr), Some(EADDRNOTAVAIL)) => format!(
            "cannot use source address {}: it is not an address of this machine ('ip addr' \
             lists the ones that are)",
            addr.ip()
        ),
        (BindSource(addr), Some(EADDRINUSE)) => format!(
            "cannot use source port {}: another socket holds {addr} ('ss -tanp' shows which; a \
             recent connection from it may still be in TIME_WAIT)",
            addr.port()
        ),
        (BindSource(addr), Some(EACCES)) if addr.port() < 1024 => format!(
            "cannot use source port {}: ports below 1024 are privileged (root or \
             CAP_NET_BIND_SERVICE)",
            addr.port()
        ),
        (BindSource(addr), _) => format!("cannot bind source {addr}: {}", plain(e)),

        // getaddrinfo's errors carry no errno (EAI_* codes): its own words, without std's
        // "failed to lookup address information:" prefix.
        (Resolve { host }, _) => {
            let text = e.to_string();
            let text = text
                .strip_prefix("failed to lookup address information: ")
                .unwrap_or(&text)
                .to_lowercase();
            format!("cannot resolve host '{host}': {text} (check the name, or give an IP address)")
        }

        // A connected UDP socket hears of ICMP port unreachable as ECONNREFUSED.
        (Datagram { ip: Some(a), .. }, Some(ECONNREFUSED)) => format!(
            "connection refused: nothing is listening on UDP {a} (its host answered with ICMP \
             port unreachable)"
        ),
        (Datagram { shown, .. }, Some(ECONNREFUSED)) => {
            format!(
                "connection refused: nothing is bound to {shown} any more (its server has gone)"
            )
        }
        (Datagram { shown, .. }, _) => format!("{shown}: {}", plain(e)),

        (Deliver { lost, what }, Some(EPIPE | ECONNRESET)) => {
            format!("the peer closed the connection: {lost} bytes {what} were not delivered")
        }
        (Deliver { lost, what }, _) => format!(
            "sending to the peer: {} ({lost} bytes {what} were not delivered)",
            plain(e)
        ),

        (Client { .. }, Some(ECONNRESET)) => "reset by the client (ECONNRESET)".to_string(),
        (Client { .. }, Some(EPIPE)) => {
            "client went away before taking its answer (EPIPE)".to_string()
        }
        (Client { op }, _) => format!("{op} failed: {}", plain_named(e)),
    }
}

/// Why a connect to an IP address failed (TCP, or a UDP connect that found no route).
pub fn connect_failure(addr: SocketAddr, e: &io::Error) -> String {
    sentence(&Doing::Connect(addr), e)
}

/// Why a connect to `addr` timed out: sockkit's own `-w` deadline (`waited`) or the kernel's
/// SYN retries (`None`). The likely cause differs: a deadline shorter than any handshake, a
/// listener whose accept queue is full (on loopback nothing else is in the way), or packets
/// dropped on the way to another host.
pub fn connect_timed_out(addr: SocketAddr, waited: Option<std::time::Duration>) -> String {
    let within = match waited {
        Some(t) => format!(" within {} (-w)", narrate::short(t)),
        None => String::new(),
    };
    let why = match waited {
        Some(t) if t < std::time::Duration::from_millis(1) => format!(
            "a timeout of {} is shorter than a TCP handshake takes, even on loopback: give -w \
             more time (e.g. -w 2s)",
            narrate::short(t)
        ),
        _ if addr.ip().is_loopback() => "on loopback no network is in the way: the listener's \
             accept queue is probably full (it is not calling accept(); `ss -ltn` shows Recv-Q at the \
             backlog), so the kernel drops the SYN"
            .to_string(),
        _ => "a firewall may drop the packets, or the host is down".to_string(),
    };
    format!("timed out: {addr} did not complete the handshake{within}: {why}")
}

/// Why a connect to a Unix socket failed. `abstract_name`: the address is in Linux's
/// abstract namespace, where no file can be stale; `datagram`: the client asked for -u.
pub fn unix_connect_failure(
    addr: &dyn fmt::Display,
    abstract_name: bool,
    datagram: bool,
    e: &io::Error,
) -> String {
    let doing = Doing::ConnectUnix {
        addr,
        abstract_name,
        datagram,
    };
    sentence(&doing, e)
}

/// Why a connect to the Unix path `addr` cannot work: the file there is `kind` (`a regular
/// file`), not a socket. (Linux says ECONNREFUSED, as for a stale socket file.)
pub fn unix_not_a_socket(addr: &dyn fmt::Display, kind: &str) -> String {
    format!(
        "cannot connect to {addr}: it is {kind}, not a socket (a Unix socket file is made by \
             a server's bind(); is the path right?)"
    )
}

/// Why a TCP server's bind failed: who holds the port and what to try. `reuseaddr` is
/// SO_REUSEADDR as it was set on the socket.
pub fn bind_failure(addr: SocketAddr, e: &io::Error, reuseaddr: bool) -> String {
    let doing = Doing::Bind {
        addr,
        reuseaddr,
        udp: false,
    };
    sentence(&doing, e)
}

/// Why a UDP server's bind failed: as for TCP, but a taken UDP port is only ever bound, never
/// listened on or in TIME_WAIT.
pub fn udp_bind_failure(addr: SocketAddr, e: &io::Error, reuseaddr: bool) -> String {
    let doing = Doing::Bind {
        addr,
        reuseaddr,
        udp: true,
    };
    sentence(&doing, e)
}

/// Why a Unix server could not bind `addr` (other than the path being taken).
pub fn unix_bind_failure(addr: &dyn fmt::Display, e: &io::Error) -> String {
    sentence(&Doing::BindUnix { addr, holder: None }, e)
}

/// Why a Unix server could not bind `addr`: the path is taken, by `holder`.
pub fn unix_path_taken(addr: &dyn fmt::Display, holder: PathHolder) -> String {
    let doing = Doing::BindUnix {
        addr,
        holder: Some(holder),
    };
    sentence(&doing, &io::Error::from_raw_os_error(libc::EADDRINUSE))
}

/// Why a client's source address or port (`-s`, `-p`) could not be bound.
pub fn source_failure(addr: SocketAddr, e: &io::Error) -> String {
    sentence(&Doing::BindSource(addr), e)
}

/// Why `host` did not resolve, in the resolver's words.
pub fn resolve_failure(host: &str, e: &io::Error) -> String {
    sentence(&Doing::Resolve { host }, e)
}

/// Why a datagram peer cannot be reached: for ECONNREFUSED, that no one listens on the UDP
/// port (`ip`) or that the Unix peer `shown` has gone. Not called yet: for `relay::dgram`'s
/// `refused`, which still words it itself.
pub fn datagram_failure(ip: Option<SocketAddr>, shown: &dyn fmt::Display, e: &io::Error) -> String {
    sentence(&Doing::Datagram { ip, shown }, e)
}

/// Why `lost` bytes (`what`: `read from stdin`, `left in the stdin file`) did not reach a
/// stream peer. Not called yet: for `relay`'s `undelivered`, which still words it itself.
pub fn undelivered(e: &io::Error, lost: u64, what: &str) -> String {
    sentence(&Doing::Deliver { lost, what }, e)
}

/// Why a server's `op` (`read`, `write`) ended a client, for its `closed` line.
pub fn client_io_failure(op: &str, e: &io::Error) -> String {
    sentence(&Doing::Client { op }, e)
}

/// An io::Error as words, without std's " (os error N)" tail: for a failure no sentence in
/// the table fits better.
pub fn plain(e: &io::Error) -> String {
    let text = e.to_string();
    let text = match text.find(" (os error") {
        Some(i) => text[..i].to_string(),
        None => text,
    };
    text.to_lowercase()
}

/// `connection reset by peer (ECONNRESET)`: the words and the symbolic errno, for a failure
/// a learner may want to look up in the man page.
pub fn plain_named(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(code) => format!("{} ({})", plain(e), narrate::errno_name(code)),
        None => plain(e),
    }
}

/// True when the process or the system is out of file descriptors (EMFILE, ENFILE): closing
/// sockets gives them back, so callers wait instead of failing.
pub fn is_out_of_fds(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(code: i32) -> io::Error {
        io::Error::from_raw_os_error(code)
    }

    #[test]
    fn privileged_port_hint_only_below_1024() {
        // Tests run as root, where the bind itself succeeds: the wording is checked here.
        let e = err(libc::EACCES);
        let low: SocketAddr = "127.0.0.1:1023".parse().unwrap();
        assert_eq!(
            crate::error::message(&anyhow::anyhow!("{}", bind_failure(low, &e, true))),
            "sockkit: permission denied binding 127.0.0.1:1023: ports below 1024 are privileged \
             (run as root, grant CAP_NET_BIND_SERVICE, or use a port from 1024 up)"
        );
        let high: SocketAddr = "[::]:1024".parse().unwrap();
        assert_eq!(
            bind_failure(high, &e, true),
            "cannot bind [::]:1024: permission denied"
        );
    }

    #[test]
    fn hints_name_the_cause() {
        let a: SocketAddr = "127.0.0.1:4444".parse().unwrap();
        assert!(
            connect_failure(a, &err(libc::ECONNREFUSED))
                .contains("nothing is listening on 127.0.0.1:4444")
        );
        assert!(bind_failure(a, &err(libc::EADDRINUSE), true).contains("ss -ltnp"));
        assert!(bind_failure(a, &err(libc::EADDRINUSE), false).contains("SO_REUSEADDR"));
        let low: SocketAddr = "0.0.0.0:80".parse().unwrap();
        let text = bind_failure(low, &err(libc::EACCES), true);
        assert!(
            text.contains("privileged") && text.contains("CAP_NET_BIND_SERVICE"),
            "{text}"
        );
    }

    #[test]
    fn source_failures_name_the_cause() {
        let a: SocketAddr = "192.0.2.1:0".parse().unwrap();
        let e = err(libc::EADDRNOTAVAIL);
        assert!(source_failure(a, &e).contains("not an address of this machine"));
        let a: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let e = err(libc::EADDRINUSE);
        assert!(source_failure(a, &e).contains("source port 5000"));
    }

    #[test]
    fn udp_and_unix_situations_get_their_own_words() {
        let a: SocketAddr = "0.0.0.0:53".parse().unwrap();
        let inuse = err(libc::EADDRINUSE);
        assert!(udp_bind_failure(a, &inuse, true).contains("'ss -lunp'"));
        // Past EADDRINUSE, UDP's bind reads as TCP's.
        let e = err(libc::EADDRNOTAVAIL);
        assert_eq!(udp_bind_failure(a, &e, false), bind_failure(a, &e, false));
        let p = "/tmp/s";
        let refused = err(libc::ECONNREFUSED);
        assert!(unix_connect_failure(&p, false, false, &refused).contains("stale file"));
        assert!(unix_connect_failure(&p, true, false, &refused).contains("abstract namespace"));
        let wrong = err(libc::EPROTOTYPE);
        assert!(unix_connect_failure(&p, false, true, &wrong).ends_with("drop -u"));
        assert!(unix_connect_failure(&p, false, false, &wrong).ends_with("add -u"));
        assert!(unix_path_taken(&p, PathHolder::Stale).contains("--unlink"));
        assert!(unix_path_taken(&p, PathHolder::Listening).contains("'ss -xlp'"));
        assert!(
            unix_path_taken(&p, PathHolder::NotSocket("a directory"))
                .contains("is a directory, not a socket")
        );
        // A rebind after --unlink that still finds the path taken has no holder to name.
        assert_eq!(
            unix_bind_failure(&p, &inuse),
            "cannot bind /tmp/s: address already in use"
        );
    }

    #[test]
    fn peers_that_went_away_are_named() {
        let refused = err(libc::ECONNREFUSED);
        let a: SocketAddr = "127.0.0.1:9".parse().unwrap();
        assert!(datagram_failure(Some(a), &a, &refused).contains("ICMP port unreachable"));
        assert!(datagram_failure(None, &"/tmp/d", &refused).contains("/tmp/d any more"));
        assert_eq!(
            undelivered(&err(libc::EPIPE), 3, "read from stdin"),
            "the peer closed the connection: 3 bytes read from stdin were not delivered"
        );
        assert_eq!(
            client_io_failure("write", &err(libc::EPIPE)),
            "client went away before taking its answer (EPIPE)"
        );
        assert_eq!(
            client_io_failure("read", &err(libc::ETIMEDOUT)),
            "read failed: connection timed out (ETIMEDOUT)"
        );
    }

    #[test]
    fn errno_names_follow_the_words() {
        assert_eq!(
            plain_named(&err(libc::ECONNRESET)),
            "connection reset by peer (ECONNRESET)"
        );
        assert_eq!(plain_named(&io::Error::other("Odd")), "odd");
        assert!(is_out_of_fds(&err(libc::EMFILE)) && !is_out_of_fds(&err(libc::EINTR)));
    }
}
