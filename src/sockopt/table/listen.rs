//! The arguments of listen() that sockkit treats as options (the backlog): not setsockopt
//! calls, but typed, shown and documented as rows so the user meets them in one place.

use std::io;

use socket2::SockRef;

use crate::sockopt::types::{Adjust, Applies, Kind, Level, Probe, Row, Stage, Value};

/// The rows of this level, in the order `-o help` lists them.
pub(super) const ROWS: &[Row] = &[Row {
    name: "backlog",
    aliases: &["listen_backlog"],
    level: Level::Call("listen()"),
    kind: Kind::Int(1, 2_147_483_647),
    valid: "1 and up; sockkit asks for 1024",
    applies: Applies::TCP_LISTENER.or(Applies::IPV4).or(Applies::IPV6),
    stage: Stage::Early,
    doc: "The listen() backlog: how many connections the kernel completes and queues \
              before the server accepts them; further SYNs are dropped or refused.",
    notes: "Not a setsockopt but listen()'s second argument. Linux caps it at \
                net.core.somaxconn; --show-opts reads the kernel's value from TCP_INFO.",
    set: None,
    get: |s| backlog_of(&s),
    adjust: Adjust::Capped("net.core.somaxconn"),
    probe: Probe::Skip(
        "set by listen(), not setsockopt: tests/sockopt.rs checks it through \
             `sockkit listen -o backlog=N --show-opts`",
    ),
}];

/// A listening socket's backlog as the kernel keeps it: TCP_INFO's tcpi_sacked (Linux reuses
/// the field for listeners).
#[cfg(target_os = "linux")]
fn backlog_of(s: &SockRef<'_>) -> io::Result<Value> {
    use std::os::fd::AsRawFd;
    crate::sys::tcp_info(s.as_raw_fd())
        .map(|i| Value::Int(i64::from(i.tcpi_sacked)))
        .ok_or_else(io::Error::last_os_error)
}

#[cfg(not(target_os = "linux"))]
fn backlog_of(_: &SockRef<'_>) -> io::Result<Value> {
    Err(io::Error::from(io::ErrorKind::Unsupported))
}
