//! The vocabulary of socket options: what a row of the table is made of (its level, value
//! kind, the sockets it applies to, when it is set, what the kernel does to a value, its
//! setter and getter), the typed values a user asks for, and the sockets they go on. Data
//! only, with the few methods that say what a value or a set means; the rows themselves are
//! in `table`, reading `-o` in `parse`, applying and showing in `plan`, and what the kernel
//! makes of a value in `kernel`.

use std::fmt;
use std::io;
use std::time::Duration;

use socket2::SockRef;

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

/// What kind of value an option takes, which decides how `-o NAME=VALUE` is parsed and how
/// narration spells the value as C would pass it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// on/off, 1/0, true/false, yes/no; a bare NAME means on.
    Bool,
    /// SO_KEEPALIVE: on/off, or an idle time that also sets TCP_KEEPIDLE (`keepalive=30s`).
    Keepalive,
    /// A byte count with an optional binary unit: 65536, 256K, 4MiB.
    Bytes,
    /// A duration the kernel keeps in whole seconds: 30s, 2m, 45.
    Seconds,
    /// SO_LINGER: `off`, or whole seconds; 0 is the abortive close.
    Linger,
    /// `off` (or 0), or a duration the kernel keeps in milliseconds.
    Millis,
    /// A whole number (decimal, or hex with 0x) within the range the kernel keeps, both ends
    /// included: outside it the kernel would refuse it or silently keep other bits (IP_TOS
    /// stores one byte, so 256 would become 0), so parsing refuses it with the range.
    Int(i64, i64),
    /// A name, such as a congestion control algorithm or an interface.
    Name,
}

impl Kind {
    /// The value syntax, for `-o help`, the man page and parse errors.
    pub fn describe(self) -> &'static str {
        match self {
            Kind::Bool => "on|off",
            Kind::Keepalive => "on|off|idle time (30s)",
            Kind::Bytes => "bytes (256K, 4MiB)",
            Kind::Seconds => "seconds (30s, 2m, 45)",
            Kind::Linger => "off|seconds (0 = reset on close)",
            Kind::Millis => "off|duration (10s, 1500ms)",
            Kind::Int(..) => "integer",
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
    /// `None` is off; `Some(d)` is on with that time (SO_LINGER, TCP_USER_TIMEOUT).
    Toggle(Option<Duration>),
    Int(i64),
    /// An empty name is "none" (no interface bound).
    Name(String),
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Bool(b) => f.write_str(if *b { "on" } else { "off" }),
            Value::Bytes(n) => write!(f, "{n}"),
            Value::Duration(d) => write!(f, "{}", humantime::format_duration(*d)),
            Value::Toggle(None) => f.write_str("off"),
            Value::Toggle(Some(d)) => write!(f, "{}", humantime::format_duration(*d)),
            Value::Int(n) => write!(f, "{n}"),
            Value::Name(s) if s.is_empty() => f.write_str("(none)"),
            Value::Name(s) => f.write_str(s),
        }
    }
}

impl Value {
    /// The value as the C call passes it, for `-vv`: `1`, `30`, `{l_onoff=1, l_linger=0}`.
    pub fn c_arg(&self, kind: Kind) -> String {
        match (self, kind) {
            (Value::Bool(b), _) => u8::from(*b).to_string(),
            (Value::Duration(d), _) => d.as_secs().to_string(),
            (Value::Toggle(t), Kind::Linger) => format!(
                "{{l_onoff={}, l_linger={}}}",
                u8::from(t.is_some()),
                t.map_or(0, |d| d.as_secs())
            ),
            (Value::Toggle(t), _) => t.map_or(0, |d| d.as_millis()).to_string(),
            (Value::Name(s), _) => format!("\"{s}\""),
            (other, _) => other.to_string(),
        }
    }
}

/// What a row's setter passes to socket2: the value as the C argument the kernel receives.
/// A setter is handed a value of its row's kind (parse and Plan make sure), so the fallbacks
/// (0, off, "") only complete the match.
impl Value {
    pub(super) fn as_bool(&self) -> bool {
        matches!(self, Value::Bool(true))
    }

    pub(super) fn as_bytes(&self) -> usize {
        match self {
            Value::Bytes(n) => usize::try_from(*n).unwrap_or(usize::MAX),
            _ => 0,
        }
    }

    /// The integer as the C `int` the kernel receives; parsing keeps values within the row's
    /// range, which is within `i32`.
    pub(super) fn as_int(&self) -> i32 {
        match self {
            Value::Int(n) => i32::try_from(*n).unwrap_or(i32::MAX),
            Value::Bytes(n) => i32::try_from(*n).unwrap_or(i32::MAX),
            Value::Duration(d) => i32::try_from(d.as_secs()).unwrap_or(i32::MAX),
            _ => 0,
        }
    }

    /// The integer as the `u32` socket2's setters take, with the same bits as the C `int`
    /// (`-1` stays `-1` for the kernel, which IP_TTL reads as "the default").
    pub(super) fn as_c_uint(&self) -> u32 {
        self.as_int().cast_unsigned()
    }

    pub(super) fn as_toggle(&self) -> Option<Duration> {
        match self {
            Value::Toggle(t) => *t,
            _ => None,
        }
    }

    pub(super) fn as_name(&self) -> &str {
        match self {
            Value::Name(s) => s,
            _ => "",
        }
    }
}

/// Which sockets a row applies to: a set of socket kinds and address families.
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
    /// Every IPv6 socket (TCP, listening TCP, UDP).
    pub const INET6: Applies = Applies(1 | 2 | 4 | 32);

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

    /// `TCP, listening TCP, UDP; IPv4, IPv6`: for help and the "does not apply" error.
    pub fn describe(self) -> String {
        let kinds: Vec<&str> = [
            (Self::TCP, "TCP"),
            (Self::TCP_LISTENER, "listening TCP"),
            (Self::UDP, "UDP"),
            (Self::UNIX, "Unix"),
        ]
        .iter()
        .filter(|(a, _)| self.0 & a.0 != 0)
        .map(|(_, n)| *n)
        .collect();
        let fams: Vec<&str> = [(Self::IPV4, "IPv4"), (Self::IPV6, "IPv6")]
            .iter()
            .filter(|(a, _)| self.0 & a.0 != 0)
            .map(|(_, n)| *n)
            .collect();
        if fams.is_empty() {
            return format!("{} sockets", kinds.join(", "));
        }
        format!("{} sockets over {}", kinds.join(", "), fams.join(" and "))
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
    /// window scaling, the MSS announced in the SYN, IPV6_V6ONLY) only take effect if set this
    /// early. A listening socket's options are inherited by the sockets accept() returns.
    Early,
    /// On the connected socket, after connect() or accept(): options that mean nothing before.
    Connected,
}

impl Stage {
    pub(super) fn describe(self) -> &'static str {
        match self {
            Stage::Early => "set before bind/connect",
            Stage::Connected => "set after connect/accept",
        }
    }
}

/// What the kernel does to a value it is given: what the round-trip test expects to read
/// back, and what `--show-opts` says when requested and effective values differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Adjust {
    /// The kernel reports what it was given.
    Exact,
    /// Linux doubles buffer sizes (half is bookkeeping, socket(7)) after clamping the request
    /// to this sysctl, and raises tiny ones to a minimum.
    Doubled(&'static str),
    /// On TCP the kernel keeps the two low (ECN) bits of the TOS/traffic class byte itself.
    EcnMasked,
    /// Capped at this sysctl (the listen backlog and net.core.somaxconn).
    Capped(&'static str),
    /// Set before connect; once connected the kernel reports what the handshake negotiated.
    Negotiated,
    /// A hint the kernel acts on and then forgets (TCP_QUICKACK).
    Transient,
}

/// How the round-trip test exercises a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    /// Set this value (which must differ from the kernel's default), read it back, and compare
    /// with `Adjust::expected`.
    Set(&'static str),
    /// Not round-tripped by the generic test, and why.
    Skip(&'static str),
}

/// A row's setter: applies a typed value to the socket.
pub type SetFn = fn(SockRef<'_>, &Value) -> io::Result<()>;
/// A row's getter: reads the kernel's value back.
pub type GetFn = fn(SockRef<'_>) -> io::Result<Value>;

/// One socket option. `Copy` because the table joins its per-level arrays at compile time.
#[derive(Clone, Copy)]
pub struct Row {
    /// The kernel's name, as in `man 7 socket`/`man 7 ip`/`man 7 tcp`.
    pub name: &'static str,
    /// Short spellings accepted besides the name and the name without its prefix.
    pub aliases: &'static [&'static str],
    pub level: Level,
    pub kind: Kind,
    /// The values the kernel accepts, where the kind alone does not say (`1-255`).
    pub valid: &'static str,
    pub applies: Applies,
    pub stage: Stage,
    /// One or two sentences: what the option does.
    pub doc: &'static str,
    /// Caveats, as socket2's `# Notes`: platform limits, privileges, kernel adjustments.
    pub notes: &'static str,
    /// Sets the option; `None` for read-only options (SO_PEERCRED) and for those set by
    /// another call (the backlog).
    pub set: Option<SetFn>,
    /// Reads the option back from the kernel.
    pub get: GetFn,
    pub adjust: Adjust,
    pub probe: Probe,
}

impl fmt::Debug for Row {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
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
