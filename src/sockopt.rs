//! THE socket option table: one row per option, with its kernel name, level, value kind, the
//! sockets it applies to, when it is applied, a short doc, and its set/get functions over
//! `socket2::SockRef`. Parsing `-o`, applying, `--show-opts`, `-o help` and the man page's
//! SOCKET OPTIONS section all read the rows; adding an option is adding a row.

use std::fmt;
use std::io;
use std::str::FromStr;
use std::time::Duration;

use anyhow::{Result, anyhow};
use socket2::{SockRef, Socket};

use crate::narrate;

/// The protocol level an option lives at, as `setsockopt(2)` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Socket,
    Tcp,
    Ip,
    Ipv6,
    /// Not a setsockopt at all: an argument of another call (the `listen()` backlog).
    Call(&'static str),
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Level::Socket => "SOL_SOCKET",
            Level::Tcp => "IPPROTO_TCP",
            Level::Ip => "IPPROTO_IP",
            Level::Ipv6 => "IPPROTO_IPV6",
            Level::Call(name) => name,
        })
    }
}

/// What kind of value an option takes, which decides how `-o NAME=VALUE` is parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// on/off, 1/0, true/false, yes/no; a bare NAME means on.
    Bool,
    /// A byte count with an optional unit: 65536, 256K, 4MiB.
    Bytes,
    /// A humantime duration: 30s, 500ms, 1m30s.
    Duration,
    /// `off`, or a duration that turns it on (SO_LINGER, SO_KEEPALIVE's idle time).
    Toggle,
    /// A whole number.
    Int,
    /// A name, such as a congestion control algorithm or an interface.
    Name,
}

impl Kind {
    fn describe(self) -> &'static str {
        match self {
            Kind::Bool => "on|off",
            Kind::Bytes => "bytes (256K, 4MiB)",
            Kind::Duration => "duration (30s, 500ms)",
            Kind::Toggle => "off|duration",
            Kind::Int => "integer",
            Kind::Name => "name",
        }
    }
}

/// A typed option value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Bool(bool),
    Bytes(u64),
    Duration(Duration),
    /// `None` is off; `Some(d)` is on with that time.
    Toggle(Option<Duration>),
    Int(i64),
    Name(String),
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Bool(b) => f.write_str(if *b { "on" } else { "off" }),
            Value::Bytes(n) => write!(f, "{n}"),
            Value::Duration(d) => write!(f, "{}", humantime::format_duration(*d)),
            Value::Toggle(None) => f.write_str("off"),
            Value::Toggle(Some(d)) => write!(f, "on, {}", humantime::format_duration(*d)),
            Value::Int(n) => write!(f, "{n}"),
            Value::Name(s) => f.write_str(s),
        }
    }
}

/// Which sockets a row applies to: a set of socket kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Applies(u8);

impl Applies {
    pub const TCP: Applies = Applies(1);
    pub const TCP_LISTENER: Applies = Applies(2);
    pub const UDP: Applies = Applies(4);
    pub const UNIX: Applies = Applies(8);
    pub const IPV4: Applies = Applies(16);
    pub const IPV6: Applies = Applies(32);
    pub const ANY_TCP: Applies = Applies(1 | 2 | 16 | 32);
    pub const ANY_INET: Applies = Applies(1 | 2 | 4 | 16 | 32);
    pub const ALL: Applies = Applies(1 | 2 | 4 | 8 | 16 | 32);

    pub const fn or(self, other: Applies) -> Applies {
        Applies(self.0 | other.0)
    }

    /// True when every bit of `target` (one kind plus one family) is admitted.
    pub fn admits(self, target: Target) -> bool {
        let kind = match target.kind {
            SockKind::Tcp => Self::TCP,
            SockKind::TcpListener => Self::TCP_LISTENER,
            SockKind::Udp => Self::UDP,
            SockKind::Unix => Self::UNIX,
        };
        let family = match target.family {
            Fam::V4 => Some(Self::IPV4),
            Fam::V6 => Some(Self::IPV6),
            Fam::Unix => None,
        };
        self.0 & kind.0 != 0 && family.is_none_or(|f| self.0 & f.0 != 0)
    }
}

/// The kind of socket an option is applied to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SockKind {
    Tcp,
    TcpListener,
    Udp,
    Unix,
}

/// The address family of the socket an option is applied to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fam {
    V4,
    V6,
    Unix,
}

/// A concrete socket: which rows apply to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target {
    pub kind: SockKind,
    pub family: Fam,
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            SockKind::Tcp => "TCP",
            SockKind::TcpListener => "listening TCP",
            SockKind::Udp => "UDP",
            SockKind::Unix => "Unix",
        };
        let fam = match self.family {
            Fam::V4 => " IPv4",
            Fam::V6 => " IPv6",
            Fam::Unix => "",
        };
        write!(f, "{kind}{fam} socket")
    }
}

/// When a row's option is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Right after socket(), before bind/connect: most options, some of which (buffer sizes,
    /// window scaling) only take effect if set this early.
    Early,
    /// On the connected socket, after connect() or accept(): options that mean nothing before.
    Connected,
}

/// One socket option.
pub struct Row {
    /// The kernel's name, as in `man 7 socket`/`man 7 tcp`.
    pub name: &'static str,
    /// Short spellings accepted besides the name and the name without its prefix.
    pub aliases: &'static [&'static str],
    pub level: Level,
    pub kind: Kind,
    pub applies: Applies,
    pub stage: Stage,
    /// One or two sentences for `-o help` and the man page; platform caveats included.
    pub doc: &'static str,
    /// Sets the option; `None` for options set by another call (the backlog).
    pub set: Option<fn(SockRef<'_>, &Value) -> io::Result<()>>,
    /// Reads the option back from the kernel.
    pub get: fn(SockRef<'_>) -> io::Result<Value>,
    /// Explains a difference between the requested and the effective value, if expected.
    pub note: fn(&Value, &Value) -> Option<&'static str>,
}

impl fmt::Debug for Row {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}

fn no_note(_: &Value, _: &Value) -> Option<&'static str> {
    None
}

fn as_bool(v: &Value) -> bool {
    matches!(v, Value::Bool(true))
}

fn as_bytes(v: &Value) -> usize {
    match v {
        Value::Bytes(n) => usize::try_from(*n).unwrap_or(usize::MAX),
        _ => 0,
    }
}

fn buffer_note(req: &Value, got: &Value) -> Option<&'static str> {
    match (req, got) {
        (Value::Bytes(r), Value::Bytes(g)) if *g == r * 2 => {
            Some("Linux doubles the request to leave room for its bookkeeping")
        }
        (Value::Bytes(r), Value::Bytes(g)) if g < r => {
            Some("clamped by net.core.rmem_max/wmem_max (doubled); raise the sysctl")
        }
        (Value::Bytes(_), Value::Bytes(_)) => {
            Some("the kernel adjusted it (minimum size, doubling, clamping)")
        }
        _ => None,
    }
}

/// Every option sockkit knows.
pub static TABLE: &[Row] = &[
    Row {
        name: "SO_REUSEADDR",
        aliases: &["reuseaddr"],
        level: Level::Socket,
        kind: Kind::Bool,
        applies: Applies::ALL.or(Applies::IPV4),
        stage: Stage::Early,
        doc: "Lets a server bind a port that connections of an earlier run still hold in \
              TIME_WAIT. On by default for sockkit's servers; -o reuseaddr=0 turns it off.",
        set: Some(|s, v| s.set_reuse_address(as_bool(v))),
        get: |s| s.reuse_address().map(Value::Bool),
        note: no_note,
    },
    Row {
        name: "SO_KEEPALIVE",
        aliases: &["keepalive"],
        level: Level::Socket,
        kind: Kind::Toggle,
        applies: Applies::ANY_TCP,
        stage: Stage::Early,
        doc: "Sends probes on an idle connection to find a peer that vanished. A duration \
              turns it on and sets TCP_KEEPIDLE, the idle time before the first probe.",
        set: Some(|s, v| match v {
            Value::Toggle(Some(idle)) => {
                s.set_tcp_keepalive(&socket2::TcpKeepalive::new().with_time(*idle))
            }
            _ => s.set_keepalive(false),
        }),
        get: |s| {
            if s.keepalive()? {
                Ok(Value::Toggle(Some(s.tcp_keepalive_time()?)))
            } else {
                Ok(Value::Toggle(None))
            }
        },
        note: no_note,
    },
    Row {
        name: "SO_RCVBUF",
        aliases: &["rcvbuf"],
        level: Level::Socket,
        kind: Kind::Bytes,
        applies: Applies::ALL,
        stage: Stage::Early,
        doc: "Size of the kernel's receive buffer, which bounds the TCP window. Set it before \
              connect/listen for window scaling to match. Linux doubles the value and clamps \
              it to net.core.rmem_max.",
        set: Some(|s, v| s.set_recv_buffer_size(as_bytes(v))),
        get: |s| s.recv_buffer_size().map(|n| Value::Bytes(n as u64)),
        note: buffer_note,
    },
    Row {
        name: "SO_SNDBUF",
        aliases: &["sndbuf"],
        level: Level::Socket,
        kind: Kind::Bytes,
        applies: Applies::ALL,
        stage: Stage::Early,
        doc: "Size of the kernel's send buffer: how much written data may wait unsent. Linux \
              doubles the value and clamps it to net.core.wmem_max.",
        set: Some(|s, v| s.set_send_buffer_size(as_bytes(v))),
        get: |s| s.send_buffer_size().map(|n| Value::Bytes(n as u64)),
        note: buffer_note,
    },
    Row {
        name: "TCP_NODELAY",
        aliases: &["nodelay"],
        level: Level::Tcp,
        kind: Kind::Bool,
        applies: Applies::ANY_TCP,
        stage: Stage::Early,
        doc: "Turns off Nagle's algorithm: small writes go out at once instead of waiting to \
              be coalesced while earlier data is unacknowledged.",
        set: Some(|s, v| s.set_tcp_nodelay(as_bool(v))),
        get: |s| s.tcp_nodelay().map(Value::Bool),
        note: no_note,
    },
    Row {
        name: "backlog",
        aliases: &["listen_backlog"],
        level: Level::Call("listen()"),
        kind: Kind::Int,
        applies: Applies::TCP_LISTENER.or(Applies::IPV4).or(Applies::IPV6),
        stage: Stage::Early,
        doc: "The listen() backlog: how many connections the kernel completes and queues \
              before the server accepts them. Linux caps it at net.core.somaxconn; the \
              kernel's value is read from TCP_INFO of the listening socket.",
        set: None,
        get: |s| backlog_of(&s),
        note: |_, _| Some("capped by net.core.somaxconn"),
    },
];

/// A listening socket's backlog as the kernel keeps it: TCP_INFO's tcpi_sacked (Linux reuses
/// the field for listeners).
#[cfg(target_os = "linux")]
fn backlog_of(s: &SockRef<'_>) -> io::Result<Value> {
    use std::os::fd::AsRawFd;
    crate::socket::tcp_info(s.as_raw_fd())
        .map(|i| Value::Int(i64::from(i.tcpi_sacked)))
        .ok_or_else(io::Error::last_os_error)
}

#[cfg(not(target_os = "linux"))]
fn backlog_of(_: &SockRef<'_>) -> io::Result<Value> {
    Err(io::Error::from(io::ErrorKind::Unsupported))
}

/// Finds the row for a name as typed: `SO_RCVBUF`, `so_rcvbuf`, `rcvbuf`, `RCVBUF`.
pub fn find(name: &str) -> Option<&'static Row> {
    let want = name.trim().to_ascii_lowercase().replace('-', "_");
    TABLE.iter().find(|row| names_of(row).any(|n| n == want))
}

/// Every spelling a row answers to, lowercase.
fn names_of(row: &Row) -> impl Iterator<Item = String> + '_ {
    let full = row.name.to_ascii_lowercase();
    let short = ["so_", "tcp_", "ipv6_", "ip_"]
        .iter()
        .find_map(|p| full.strip_prefix(p))
        .map(str::to_string);
    let mut names = vec![full.clone()];
    for n in short
        .into_iter()
        .chain(row.aliases.iter().map(|a| a.to_ascii_lowercase()))
    {
        if !names.contains(&n) {
            names.push(n);
        }
    }
    names.into_iter()
}

/// The names closest to a mistyped one, for "did you mean".
fn suggest(name: &str) -> Vec<&'static str> {
    let want = name.to_ascii_lowercase();
    let mut scored: Vec<(usize, &'static str)> = TABLE
        .iter()
        .map(|row| {
            let best = names_of(row)
                .map(|n| edit_distance(&want, &n))
                .min()
                .unwrap_or(usize::MAX);
            (best, row.name)
        })
        .filter(|(d, _)| *d <= 3.max(want.len() / 3))
        .collect();
    scored.sort();
    scored.into_iter().take(3).map(|(_, n)| n).collect()
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur.push((prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

/// Parses a value for a row of the given kind. `None` is a bare `-o NAME`.
pub fn parse_value(kind: Kind, text: Option<&str>) -> Result<Value, String> {
    let Some(text) = text.map(str::trim) else {
        return match kind {
            Kind::Bool => Ok(Value::Bool(true)),
            Kind::Toggle => Ok(Value::Toggle(Some(Duration::from_secs(7200)))),
            _ => Err(format!("needs a value: {}", kind.describe())),
        };
    };
    let lower = text.to_ascii_lowercase();
    match kind {
        Kind::Bool => match lower.as_str() {
            "1" | "on" | "true" | "yes" => Ok(Value::Bool(true)),
            "0" | "off" | "false" | "no" => Ok(Value::Bool(false)),
            _ => Err(format!("'{text}' is not on or off")),
        },
        Kind::Bytes => parse_bytes(text).map(Value::Bytes),
        Kind::Duration => crate::cli::parse_duration(text).map(Value::Duration),
        Kind::Toggle => match lower.as_str() {
            "0" | "off" | "false" | "no" => Ok(Value::Toggle(None)),
            "1" | "on" | "true" | "yes" => Ok(Value::Toggle(Some(Duration::from_secs(7200)))),
            _ => crate::cli::parse_duration(text).map(|d| Value::Toggle(Some(d))),
        },
        Kind::Int => text
            .parse::<i64>()
            .map(Value::Int)
            .map_err(|_| format!("'{text}' is not a whole number")),
        Kind::Name if text.is_empty() => Err("needs a name".to_string()),
        Kind::Name => Ok(Value::Name(text.to_string())),
    }
}

/// Byte sizes: `65536`, `256K`, `256KiB`, `4M`, `4MiB`, `1G` (binary units, as buffers are).
pub fn parse_bytes(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("'{text}' is not a size (use e.g. 65536, 256K, 4MiB)"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => return Err(format!("'{text}': unknown size unit (use K, M or G)")),
    };
    n.checked_mul(mult)
        .filter(|v| *v <= i32::MAX as u64)
        .ok_or_else(|| format!("'{text}' is too large (at most 2GiB)"))
}

/// One `-o NAME[=VALUE]` as typed, parsed against the table.
#[derive(Clone)]
pub enum SockOptRequest {
    Set {
        row: &'static Row,
        value: Value,
    },
    /// `-o help`: list every row instead of running.
    Help,
}

impl fmt::Debug for SockOptRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SockOptRequest::Set { row, value } => write!(f, "{}={value}", row.name),
            SockOptRequest::Help => f.write_str("help"),
        }
    }
}

impl FromStr for SockOptRequest {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (name, value) = match s.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (s, None),
        };
        if name.eq_ignore_ascii_case("help") || name.eq_ignore_ascii_case("list") {
            return Ok(SockOptRequest::Help);
        }
        let Some(row) = find(name) else {
            let near = suggest(name);
            return Err(if near.is_empty() {
                format!("unknown socket option '{name}' (-o help lists them)")
            } else {
                format!(
                    "unknown socket option '{name}'; did you mean {}? (-o help lists them)",
                    near.join(", ")
                )
            });
        };
        let value = parse_value(row.kind, value).map_err(|why| {
            format!(
                "{}: {why} ({} takes {})",
                row.name,
                row.name,
                row.kind.describe()
            )
        })?;
        Ok(SockOptRequest::Set { row, value })
    }
}

/// The options requested on the command line, plus the defaults a subcommand adds.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// What the user asked for, in order, plus any default not overridden.
    requests: Vec<(&'static Row, Value, Origin)>,
}

/// Where a requested value came from, shown by `--show-opts`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    User,
    Default,
}

impl Plan {
    pub fn new(requests: &[SockOptRequest]) -> Self {
        let requests = requests
            .iter()
            .filter_map(|r| match r {
                SockOptRequest::Set { row, value } => Some((*row, value.clone(), Origin::User)),
                SockOptRequest::Help => None,
            })
            .collect();
        Plan { requests }
    }

    /// Adds a default (such as SO_REUSEADDR on for servers) unless the user set that option.
    pub fn with_default(mut self, name: &str, value: Value) -> Self {
        let row = find(name).expect("default names a row of the table");
        if !self.requests.iter().any(|(r, _, _)| std::ptr::eq(*r, row)) {
            self.requests.push((row, value, Origin::Default));
        }
        self
    }

    /// The listen() backlog the user asked for, if any.
    pub fn backlog(&self) -> Option<i32> {
        match self.requested("backlog") {
            Some(Value::Int(n)) => Some(i32::try_from(*n).unwrap_or(i32::MAX)),
            _ => None,
        }
    }

    /// The value requested for a row, if any.
    pub fn requested(&self, name: &str) -> Option<&Value> {
        let row = find(name)?;
        self.requests
            .iter()
            .rev()
            .find(|(r, _, _)| std::ptr::eq(*r, row))
            .map(|(_, v, _)| v)
    }

    /// Sets every requested option of `stage` on `sock`, narrating each setsockopt. An option
    /// that does not apply to this socket, or that the kernel refuses, is an error naming it.
    pub fn apply(&self, sock: &Socket, target: Target, stage: Stage) -> Result<()> {
        for (row, value, origin) in &self.requests {
            if row.stage != stage {
                continue;
            }
            if !row.applies.admits(target) {
                if *origin == Origin::Default {
                    continue;
                }
                return Err(anyhow!(
                    "socket option {} does not apply to a {target}",
                    row.name
                ));
            }
            let Some(set) = row.set else { continue };
            let fd = crate::socket::fd(sock);
            narrate::traced(
                || set(SockRef::from(sock), value),
                |r| {
                    format!(
                        "setsockopt(fd {fd}, {}, {}, {value}) {}",
                        row.level,
                        row.name,
                        narrate::outcome(r)
                    )
                },
            )
            .map_err(|e| anyhow!("setting {}={value}: {}", row.name, crate::error::plain(&e)))?;
        }
        Ok(())
    }

    /// The `--show-opts` table for `sock`: every row that applies, requested and kernel value.
    pub fn show(&self, sock: &Socket, target: Target, title: &str) -> String {
        let mut lines = vec![(
            "OPTION".to_string(),
            "LEVEL".to_string(),
            "REQUESTED".to_string(),
            "KERNEL".to_string(),
            "NOTE".to_string(),
        )];
        for row in TABLE.iter().filter(|r| r.applies.admits(target)) {
            let requested = self
                .requests
                .iter()
                .rev()
                .find(|(r, _, _)| std::ptr::eq(*r, row));
            let got = (row.get)(SockRef::from(sock));
            let (kernel, note) = match (&got, requested) {
                (Ok(g), Some((_, req, _))) if g != req => (
                    g.to_string(),
                    (row.note)(req, g).unwrap_or("differs from the request"),
                ),
                (Ok(g), _) => (g.to_string(), ""),
                (Err(e), _) => ("?".to_string(), errno_note(e)),
            };
            let req_text = match requested {
                Some((_, v, Origin::User)) => v.to_string(),
                Some((_, v, Origin::Default)) => format!("{v} (default)"),
                None => "-".to_string(),
            };
            lines.push((
                row.name.to_string(),
                row.level.to_string(),
                req_text,
                kernel,
                note.to_string(),
            ));
        }
        let w0 = lines.iter().map(|l| l.0.len()).max().unwrap_or(0);
        let w1 = lines.iter().map(|l| l.1.len()).max().unwrap_or(0);
        let w2 = lines.iter().map(|l| l.2.len()).max().unwrap_or(0);
        let w3 = lines.iter().map(|l| l.3.len()).max().unwrap_or(0);
        let mut out = format!("socket options of {title}:\n");
        for (a, b, c, d, e) in lines {
            let line = format!("  {a:w0$}  {b:w1$}  {c:w2$}  {d:w3$}  {e}");
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

fn errno_note(e: &io::Error) -> &'static str {
    match e.raw_os_error() {
        Some(libc::ENOPROTOOPT) => "not supported here",
        Some(libc::ENOTCONN) => "only once connected",
        _ => "could not be read",
    }
}

/// `-o help`: every row with its names, kind, level and doc.
pub fn help_text() -> String {
    let mut out = String::from(
        "Socket options for -o NAME[=VALUE] (names are case-insensitive; the prefix may be dropped):\n\n",
    );
    for row in TABLE {
        let names: Vec<String> = names_of(row).collect();
        out.push_str(&format!(
            "{}  [{}; {}]\n    also: {}\n",
            row.name,
            row.level,
            row.kind.describe(),
            names[1..].join(", ")
        ));
        for line in wrap(row.doc, 88) {
            out.push_str("    ");
            out.push_str(&line);
            out.push('\n');
        }
        out.push('\n');
    }
    out
}

fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut cur = String::new();
    for word in text.split_whitespace() {
        if !cur.is_empty() && cur.len() + 1 + word.len() > width {
            lines.push(std::mem::take(&mut cur));
        }
        if !cur.is_empty() {
            cur.push(' ');
        }
        cur.push_str(word);
    }
    if !cur.is_empty() {
        lines.push(cur);
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_documented() {
        let mut seen = std::collections::HashSet::new();
        for row in TABLE {
            assert!(!row.doc.is_empty(), "{} has no doc", row.name);
            for n in names_of(row) {
                assert!(seen.insert(n.clone()), "{n} names two rows");
            }
        }
    }

    #[test]
    fn every_spelling_finds_the_row() {
        for n in ["SO_RCVBUF", "so_rcvbuf", "rcvbuf", "RCVBUF"] {
            assert_eq!(find(n).map(|r| r.name), Some("SO_RCVBUF"), "{n}");
        }
        assert_eq!(find("nodelay").map(|r| r.name), Some("TCP_NODELAY"));
    }

    #[test]
    fn values_parse_by_kind() {
        assert_eq!(parse_value(Kind::Bool, None), Ok(Value::Bool(true)));
        assert_eq!(parse_value(Kind::Bool, Some("0")), Ok(Value::Bool(false)));
        assert_eq!(
            parse_value(Kind::Bytes, Some("256K")),
            Ok(Value::Bytes(262_144))
        );
        assert_eq!(
            parse_value(Kind::Bytes, Some("4MiB")),
            Ok(Value::Bytes(4 << 20))
        );
        assert_eq!(
            parse_value(Kind::Toggle, Some("30s")),
            Ok(Value::Toggle(Some(Duration::from_secs(30))))
        );
        assert_eq!(
            parse_value(Kind::Toggle, Some("off")),
            Ok(Value::Toggle(None))
        );
        assert!(parse_value(Kind::Bool, Some("maybe")).is_err());
        assert!(parse_value(Kind::Bytes, Some("12Q")).is_err());
        assert!(parse_value(Kind::Bytes, Some("8G")).is_err());
        assert!(parse_value(Kind::Int, None).is_err());
    }

    #[test]
    fn unknown_names_get_suggestions() {
        let err = "rcvbfu=1".parse::<SockOptRequest>().unwrap_err();
        assert!(err.contains("did you mean SO_RCVBUF"), "{err}");
        let err = "nodelay=maybe".parse::<SockOptRequest>().unwrap_err();
        assert!(
            err.contains("TCP_NODELAY") && err.contains("on|off"),
            "{err}"
        );
    }
}
