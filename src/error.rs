//! How a failure reaches the user: the one place that picks the exit status for an error, and
//! the hints that turn an errno into advice a learner can act on. Messages are printed once,
//! by main, as `sockkit: <what>: <why>`.

use std::fmt;
use std::io;
use std::net::SocketAddr;

/// Exit status: the command did what was asked.
pub const EXIT_OK: u8 = 0;
/// Exit status: a network or I/O failure (refused, timed out, reset, address in use, ...).
pub const EXIT_FAILURE: u8 = 1;
/// Exit status: the command line was wrong (clap's own errors use it too).
pub const EXIT_USAGE: u8 = 2;

/// A mistake in what the user typed that clap could not catch by itself; exit status 2.
#[derive(Debug)]
pub struct UsageError(String);

impl UsageError {
    pub fn new(msg: impl Into<String>) -> Self {
        UsageError(msg.into())
    }
}

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// The exit status for an error that ended the command.
pub fn exit_status(err: &anyhow::Error) -> u8 {
    if err.chain().any(|e| e.is::<UsageError>()) {
        EXIT_USAGE
    } else {
        EXIT_FAILURE
    }
}

/// The one line main prints: the context chain joined by `: `.
pub fn message(err: &anyhow::Error) -> String {
    format!("sockkit: {err:#}")
}

/// The one `sockkit: ...` line for a usage error clap found, with where to read more. clap's
/// own rendering spans several lines; the first says it all.
pub fn usage_line(e: &clap::Error) -> String {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    // Because `-4` and `-6` are flags, clap reads a negative number where a port should be
    // (`listen -1`) as an unknown flag. The user meant a port: say why it is not one.
    if e.kind() == ErrorKind::UnknownArgument
        && let Some(ContextValue::String(arg)) = e.get(ContextKind::InvalidArg)
        && arg.len() > 1
        && arg.starts_with('-')
        && arg[1..].bytes().all(|b| b.is_ascii_digit())
    {
        return format!("sockkit: port {arg} is out of range: ports go from 0 to 65535");
    }
    let text = e.render().to_string();
    let mut lines = text.lines();
    let first = lines.next().unwrap_or_default();
    let mut first = first.strip_prefix("error: ").unwrap_or(first).to_string();
    if first.ends_with(':') {
        // "the following required arguments were not provided:" lists them on the next lines.
        let listed: Vec<&str> = lines
            .clone()
            .map(str::trim)
            .take_while(|l| !l.is_empty())
            .collect();
        first = format!("{first} {}", listed.join(" "));
    }
    // "a similar argument exists" helps; "to pass X as a value, use -- X" misleads a learner.
    let tip = lines
        .map(str::trim)
        .filter_map(|l| l.strip_prefix("tip: "))
        .find(|t| !t.starts_with("to pass"))
        .map(|t| format!("; {t}"))
        .unwrap_or_default();
    format!("sockkit: {first}{tip} (--help shows the usage)")
}

/// Why a connect failed, worded for a learner.
pub fn connect_failure(addr: SocketAddr, e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(libc::ECONNREFUSED) => {
            format!("connection refused: nothing is listening on {addr}")
        }
        Some(libc::ETIMEDOUT) => format!(
            "timed out: {addr} did not answer (a firewall may drop the packets, or the host is down)"
        ),
        Some(libc::EHOSTUNREACH) => format!("host unreachable: no route to {}", addr.ip()),
        Some(libc::ENETUNREACH) => format!(
            "network unreachable: this machine has no route to {} (no {} connectivity?)",
            addr.ip(),
            if addr.is_ipv6() { "IPv6" } else { "IPv4" }
        ),
        Some(libc::EADDRNOTAVAIL) => format!(
            "cannot connect to {addr}: address not available (no local address can reach it)"
        ),
        _ => format!("cannot connect to {addr}: {}", plain(e)),
    }
}

/// Why a bind failed, worded for a learner: who holds the port and what to try.
pub fn bind_failure(addr: SocketAddr, e: &io::Error, reuseaddr: bool) -> String {
    let port = addr.port();
    match e.raw_os_error() {
        Some(libc::EADDRINUSE) if reuseaddr => format!(
            "address already in use: another socket is listening on port {port} ('ss -ltnp' shows which process)"
        ),
        Some(libc::EADDRINUSE) => format!(
            "address already in use: port {port} is held by another socket or by connections in TIME_WAIT (leave SO_REUSEADDR on, or 'ss -tanp' shows which)"
        ),
        Some(libc::EACCES) if port < 1024 => format!(
            "permission denied binding {addr}: ports below 1024 are privileged (run as root, grant CAP_NET_BIND_SERVICE, or use a port from 1024 up)"
        ),
        Some(libc::EADDRNOTAVAIL) => format!(
            "cannot bind {addr}: that address is not on this machine ('ip addr' lists the ones that are)"
        ),
        _ => format!("cannot bind {addr}: {}", plain(e)),
    }
}

/// An io::Error as words, without std's " (os error N)" tail.
pub fn plain(e: &io::Error) -> String {
    let text = e.to_string();
    let text = match text.find(" (os error") {
        Some(i) => text[..i].to_string(),
        None => text,
    };
    text.to_lowercase()
}

/// True for the errors that mean the reader of our stdout went away (`| head -c 10`): a normal
/// end for a filter, not a failure worth a message.
pub fn is_broken_pipe(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::BrokenPipe
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(code: i32) -> io::Error {
        io::Error::from_raw_os_error(code)
    }

    #[test]
    fn usage_errors_exit_2_and_others_1() {
        let usage = anyhow::Error::new(UsageError::new("bad port"));
        assert_eq!(exit_status(&usage), EXIT_USAGE);
        let io = anyhow::Error::new(err(libc::ECONNREFUSED)).context("connecting");
        assert_eq!(exit_status(&io), EXIT_FAILURE);
        let wrapped = anyhow::Error::new(UsageError::new("x")).context("parsing");
        assert_eq!(exit_status(&wrapped), EXIT_USAGE);
    }

    #[test]
    fn message_is_one_line_with_the_chain() {
        let e = anyhow::Error::new(err(libc::ECONNRESET)).context("reading from the socket");
        assert_eq!(
            message(&e),
            "sockkit: reading from the socket: Connection reset by peer (os error 104)"
        );
    }

    #[test]
    fn privileged_port_hint_only_below_1024() {
        // Tests run as root, where the bind itself succeeds: the wording is checked here.
        let e = err(libc::EACCES);
        let low: SocketAddr = "127.0.0.1:1023".parse().unwrap();
        assert_eq!(
            message(&anyhow::anyhow!("{}", bind_failure(low, &e, true))),
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
}
