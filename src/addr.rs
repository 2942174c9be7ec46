//! Every address a user types, as a value: ports and port lists (`80`, `8000-8100`), hosts
//! (names, IPv4 and IPv6 literals with or without brackets), the server's `[ADDR] PORT` pair,
//! the address-family policy, CIDR networks for `--allow`/`--deny`, Unix socket addresses
//! (`-U PATH`, `@name`) and a client's source (`-s`, `-p`); and resolution. No sockets are
//! made here, and the words for a name that does not resolve come from `error`.

use std::ffi::OsStr;
use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::str::FromStr;

use socket2::SockAddr;

use anyhow::{Result, anyhow};

use crate::error::UsageError;

/// Which address family the user allowed with `-4` / `-6`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Any,
    V4,
    V6,
}

impl Family {
    fn admits(self, addr: &SocketAddr) -> bool {
        match self {
            Family::Any => true,
            Family::V4 => addr.is_ipv4(),
            Family::V6 => addr.is_ipv6(),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Family::Any => "IP",
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        }
    }
}

/// A TCP/UDP port as typed on the command line: 0-65535, with an error that says why not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortArg(pub u16);

impl FromStr for PortArg {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        match t.parse::<i64>() {
            Ok(n) if (0..=65535).contains(&n) => Ok(PortArg(n as u16)),
            Ok(n) => Err(format!(
                "port {n} is out of range: ports go from 0 to 65535"
            )),
            Err(_) if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) => Err(format!(
                "port {t} is out of range: ports go from 0 to 65535"
            )),
            Err(_) => Err(format!(
                "'{s}' is not a port number: a port is a whole number from 0 to 65535"
            )),
        }
    }
}

/// A port a client can connect to: anything but 0, which only means "any free port" to bind.
pub fn connect_port(port: PortArg) -> Result<u16> {
    if port.0 == 0 {
        return Err(UsageError::new(
            "port 0 cannot be connected to: it only means 'any free port' when listening",
        )
        .into());
    }
    Ok(port.0)
}

/// Sorts out a server's optional `[ADDR] [PORT]`: with one value it is the port (or, where the
/// service has a default port, an address or port, whichever it parses as).
pub fn server_endpoint(
    addr: Option<&str>,
    port: Option<PortArg>,
    default_port: Option<u16>,
) -> Result<(Option<String>, u16)> {
    match (addr, port, default_port) {
        (Some(a), Some(p), _) => Ok((Some(a.to_string()), p.0)),
        (None, None, Some(d)) => Ok((None, d)),
        (None, None, None) => Err(UsageError::new(
            "missing PORT: which port should I listen on? (0 picks a free one)",
        )
        .into()),
        (None, Some(p), _) => Ok((None, p.0)),
        (Some(a), None, default) => match a.parse::<PortArg>() {
            Ok(p) => Ok((None, p.0)),
            Err(_) if default.is_some() && looks_like_host(a) => {
                Ok((Some(a.to_string()), default.unwrap_or(0)))
            }
            Err(why) => Err(UsageError::new(format!(
                "{why} (to bind one address give it before the port: ADDR PORT)"
            ))
            .into()),
        },
    }
}

fn looks_like_host(s: &str) -> bool {
    !s.is_empty()
        && !s
            .bytes()
            .all(|b| b.is_ascii_digit() || b == b'-' || b == b'+')
}

/// Removes the brackets of `[::1]`, which URLs and ncat accept around IPv6 literals.
pub fn unbracket(host: &str) -> &str {
    host.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host)
}

/// Every address `host` resolves to that the family admits, in resolver order, no repeats.
pub fn resolve(host: &str, port: u16, family: Family) -> Result<Vec<SocketAddr>> {
    let bare = unbracket(host);
    let found: Vec<SocketAddr> = match bare.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => (bare, port)
            .to_socket_addrs()
            .map_err(|e| anyhow!("{}", crate::error::resolve_failure(host, &e)))?
            .collect(),
    };
    let mut wanted: Vec<SocketAddr> = Vec::new();
    for a in found.iter().filter(|a| family.admits(a)) {
        if !wanted.contains(a) {
            wanted.push(*a);
        }
    }
    if wanted.is_empty() {
        let got: Vec<String> = found.iter().map(|a| a.ip().to_string()).collect();
        return Err(anyhow!(
            "host '{host}' has no {} address (it resolved to {}); drop -{}",
            family.name(),
            if got.is_empty() {
                "nothing".to_string()
            } else {
                got.join(", ")
            },
            if family == Family::V4 { '4' } else { '6' }
        ));
    }
    Ok(wanted)
}

/// Where a server binds. `DualStack` is `[::]` with IPV6_V6ONLY off, one socket for both
/// families; the socket layer falls back to `0.0.0.0` where the kernel has no IPv6.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindTarget {
    DualStack(u16),
    Addr { addr: SocketAddr, v6only: bool },
}

/// The bind target for a server's optional ADDR under the family policy.
pub fn bind_target(addr: Option<&str>, port: u16, family: Family) -> Result<BindTarget> {
    match (addr, family) {
        (None, Family::Any) => Ok(BindTarget::DualStack(port)),
        (None, Family::V4) => Ok(BindTarget::Addr {
            addr: SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), port),
            v6only: false,
        }),
        (None, Family::V6) => Ok(BindTarget::Addr {
            addr: SocketAddr::new(Ipv6Addr::UNSPECIFIED.into(), port),
            v6only: true,
        }),
        (Some(host), family) => {
            let addr = resolve(host, port, family)?[0];
            Ok(BindTarget::Addr {
                addr,
                v6only: family == Family::V6,
            })
        }
    }
}

/// An address as a person reads it, the one form every subcommand prints: an IPv4 client of a
/// dual-stack socket, which the kernel reports as `[::ffff:127.0.0.1]:5000`, is `127.0.0.1:5000`.
pub fn plain(a: SocketAddr) -> SocketAddr {
    SocketAddr::new(a.ip().to_canonical(), a.port())
}

/// An IP network for `--allow` / `--deny`: `127.0.0.0/8`, `::1/128`, or a bare address.
///
/// An IPv4 client on a dual-stack socket arrives as `::ffff:a.b.c.d`, and a rule may be written
/// either way, so both sides are normalised alike: a rule inside `::ffff:0:0/96` is kept as
/// the IPv4 network it names (`::ffff:127.0.0.2/128` is `127.0.0.2/32`), and a wider IPv6 rule
/// (`::/0`, `::/64`...) is matched against an IPv4 client's mapped form, so `--deny ::/0`
/// keeps IPv4 clients out too. A rule can never fail open by being written in the other form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    net: IpAddr,
    prefix: u8,
}

/// The prefix of `::ffff:0:0/96`, where IPv4 lives inside IPv6.
const MAPPED_PREFIX: u8 = 96;

impl Cidr {
    /// True when `ip` is inside. `ip` may be an IPv4 address, an IPv4-mapped IPv6 address
    /// (`::ffff:a.b.c.d`, as a dual-stack socket reports IPv4 clients) or any IPv6 address.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let v4 = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped(),
            IpAddr::V4(v4) => Some(v4),
        };
        match (self.net, v4) {
            (IpAddr::V4(n), Some(a)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V4(_), None) => false,
            (IpAddr::V6(n), _) => {
                // An IPv4 client is compared in its mapped form: `::/0` and `::ffff:0:0/96`
                // cover it, as they cover every address inside them.
                let a = match (ip, v4) {
                    (_, Some(a)) => a.to_ipv6_mapped(),
                    (IpAddr::V6(a), None) => a,
                    (IpAddr::V4(_), None) => return false,
                };
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
        }
    }
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (ip, prefix) = s.split_once('/').map_or((s, None), |(ip, p)| (ip, Some(p)));
        let net: IpAddr = unbracket(ip)
            .parse()
            .map_err(|_| format!("'{s}' is not a network: write it as 10.0.0.0/8 or fd00::/8"))?;
        let max = if net.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => match p.parse::<u8>() {
                Ok(n) if n <= max => n,
                _ => return Err(format!("'{s}': the prefix length must be 0 to {max}")),
            },
        };
        // Normalised as peers are: an IPv4 network written in its mapped form is that network.
        if let IpAddr::V6(v6) = net
            && prefix >= MAPPED_PREFIX
            && let Some(v4) = v6.to_ipv4_mapped()
        {
            return Ok(Cidr {
                net: IpAddr::V4(v4),
                prefix: prefix - MAPPED_PREFIX,
            });
        }
        Ok(Cidr { net, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.net, self.prefix)
    }
}

/// Room in `sockaddr_un.sun_path` (108 bytes on Linux), less the terminating NUL of a path.
const SUN_PATH_MAX: usize = 107;

/// Where a Unix-domain socket lives: a file in the file system, or (Linux) a name in the
/// abstract namespace, which has no file and vanishes with the last socket using it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnixAddr {
    Path(PathBuf),
    Abstract(Vec<u8>),
}

impl FromStr for UnixAddr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() {
            return Err("a Unix socket needs a path (or @name for the abstract namespace)".into());
        }
        if s.starts_with('-') {
            return Err(format!(
                "'{s}' looks like an option, not a socket path (for a file of that name write ./{s})"
            ));
        }
        if let Some(name) = s.strip_prefix('@') {
            if !cfg!(target_os = "linux") {
                return Err(format!(
                    "'{s}': the abstract namespace (@name) exists only on Linux; give a path"
                ));
            }
            if name.is_empty() || name.len() > SUN_PATH_MAX {
                return Err(format!(
                    "'{s}': an abstract name takes 1 to {SUN_PATH_MAX} bytes after the @"
                ));
            }
            return Ok(UnixAddr::Abstract(name.as_bytes().to_vec()));
        }
        if s.len() > SUN_PATH_MAX {
            return Err(format!(
                "'{s}' is {} bytes long: a Unix socket path holds at most {SUN_PATH_MAX} \
                 (sockaddr_un.sun_path); use a shorter path or a relative one",
                s.len()
            ));
        }
        Ok(UnixAddr::Path(PathBuf::from(s)))
    }
}

impl fmt::Display for UnixAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UnixAddr::Path(p) => write!(f, "{}", p.display()),
            UnixAddr::Abstract(name) => write!(f, "@{}", String::from_utf8_lossy(name)),
        }
    }
}

impl UnixAddr {
    /// The `sockaddr_un` for bind/connect: the path, or a NUL then the name (abstract).
    pub fn sockaddr(&self) -> io::Result<SockAddr> {
        match self {
            UnixAddr::Path(p) => SockAddr::unix(p),
            UnixAddr::Abstract(name) => {
                let mut bytes = vec![0u8];
                bytes.extend_from_slice(name);
                SockAddr::unix(OsStr::from_bytes(&bytes))
            }
        }
    }

    /// What `listening on` prints: the path, or `@name (abstract namespace)`.
    pub fn announce(&self) -> String {
        match self {
            UnixAddr::Path(_) => format!("{self} (Unix)"),
            UnixAddr::Abstract(_) => format!("{self} (Unix, abstract namespace)"),
        }
    }
}

/// The local end a client asked for; either part may be left to the kernel.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Source {
    pub ip: Option<IpAddr>,
    pub port: Option<u16>,
}

impl Source {
    /// True when nothing was asked: the kernel picks address and port at connect.
    pub fn is_any(&self) -> bool {
        self.ip.is_none() && self.port.is_none()
    }

    /// Whether a connection to `target` can come from this source (same address family).
    pub fn fits(&self, target: &SocketAddr) -> bool {
        self.ip.is_none_or(|ip| ip.is_ipv4() == target.is_ipv4())
    }

    /// The address to bind before connecting to `target`, or `None` to leave it to connect.
    pub fn bind_addr(&self, target: &SocketAddr) -> Option<SocketAddr> {
        if self.is_any() {
            return None;
        }
        let ip = self.ip.unwrap_or(if target.is_ipv4() {
            Ipv4Addr::UNSPECIFIED.into()
        } else {
            Ipv6Addr::UNSPECIFIED.into()
        });
        Some(SocketAddr::new(ip, self.port.unwrap_or(0)))
    }

    /// The addresses of `host` a connection from here can reach (same family as `-s`).
    pub fn fitting(&self, host: &str, addrs: Vec<SocketAddr>) -> Result<Vec<SocketAddr>> {
        if addrs.iter().any(|a| self.fits(a)) {
            Ok(addrs.into_iter().filter(|a| self.fits(a)).collect())
        } else {
            Err(self.mismatch(host, &addrs))
        }
    }

    /// The error when no address of the host fits the source's family.
    fn mismatch(&self, host: &str, addrs: &[SocketAddr]) -> anyhow::Error {
        let ip = self.ip.map(|i| i.to_string()).unwrap_or_default();
        let got: Vec<String> = addrs.iter().map(|a| a.ip().to_string()).collect();
        anyhow!(
            "source address {ip} is {} but '{host}' resolves only to {} ({}): give a source of \
             the same family",
            if self.ip.is_some_and(|i| i.is_ipv4()) {
                "IPv4"
            } else {
                "IPv6"
            },
            if self.ip.is_some_and(|i| i.is_ipv4()) {
                "IPv6"
            } else {
                "IPv4"
            },
            got.join(", ")
        )
    }
}

/// PORT or PORTS as typed after HOST: one port, a range `FIRST-LAST`, or a comma-separated
/// list of both. Ports keep the order given; a port listed twice is checked once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortList {
    ports: Vec<u16>,
    /// True when the text was exactly one port (no comma, no range): a relay target.
    single: bool,
}

impl PortList {
    /// The one port of a plain `PORT` (for the relay), or a usage error naming `-z`.
    pub fn single(&self) -> Result<PortArg> {
        if self.single {
            return Ok(PortArg(self.ports[0]));
        }
        Err(UsageError::new(format!(
            "a port list ({} ports) needs -z: connect relays with one port; -z checks many",
            self.ports.len()
        ))
        .into())
    }

    pub fn ports(&self) -> &[u16] {
        &self.ports
    }
}

impl FromStr for PortList {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        // One bare port keeps PortArg's wording (and its port 0 rule, checked by the caller).
        if !t.contains([',', '-']) || t.parse::<i64>().is_ok() {
            let p: PortArg = t.parse()?;
            return Ok(PortList {
                ports: vec![p.0],
                single: true,
            });
        }
        let mut ports = Vec::new();
        let mut seen = vec![false; 65536];
        for item in t.split(',') {
            let item = item.trim();
            let (first, last) = match item.split_once('-') {
                _ if item.is_empty() => {
                    return Err(format!(
                        "'{t}' has an empty item: list ports as 22,80,8000-8010"
                    ));
                }
                None => {
                    let p = list_port(item, t)?;
                    (p, p)
                }
                Some((a, b)) => {
                    if a.trim().is_empty() || b.trim().is_empty() {
                        return Err(format!(
                            "'{item}' is not a port range: give both ends, FIRST-LAST (e.g. 8000-8100)"
                        ));
                    }
                    let (a, b) = (list_port(a, t)?, list_port(b, t)?);
                    if a > b {
                        return Err(format!(
                            "port range {a}-{b} runs backwards: write the lower port first ({b}-{a})"
                        ));
                    }
                    (a, b)
                }
            };
            for p in first..=last {
                if !seen[usize::from(p)] {
                    seen[usize::from(p)] = true;
                    ports.push(p);
                }
            }
        }
        Ok(PortList {
            ports,
            single: false,
        })
    }
}

/// A port inside a list or range: 1-65535 (0 cannot be connected to).
fn list_port(s: &str, whole: &str) -> Result<u16, String> {
    let p: PortArg = s.trim().parse()?;
    if p.0 == 0 {
        return Err(format!(
            "port 0 in '{whole}' cannot be checked: it only means 'any free port' when listening"
        ));
    }
    Ok(p.0)
}

/// An IP address for `-s`, with or without the brackets of `[::1]`.
pub fn parse_ip(s: &str) -> Result<std::net::IpAddr, String> {
    let t = s.trim();
    let bare = t
        .strip_prefix('[')
        .and_then(|x| x.strip_suffix(']'))
        .unwrap_or(t);
    bare.parse().map_err(|_| {
        format!("'{s}' is not an IP address: give one of this machine's, e.g. 127.0.0.1 or ::1")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error;

    #[test]
    fn ports_parse_with_reasons() {
        assert_eq!("4444".parse::<PortArg>(), Ok(PortArg(4444)));
        assert_eq!("0".parse::<PortArg>(), Ok(PortArg(0)));
        for (bad, why) in [
            ("65536", "out of range"),
            ("99999999999999999999", "out of range"),
            ("-1", "out of range"),
            ("abc", "not a port number"),
        ] {
            let e = bad.parse::<PortArg>().unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn connect_refuses_port_zero() {
        assert!(connect_port(PortArg(0)).is_err());
        assert_eq!(connect_port(PortArg(80)).unwrap(), 80);
    }

    #[test]
    fn one_server_value_is_the_port_unless_a_default_exists() {
        assert_eq!(
            server_endpoint(Some("4444"), None, None).unwrap(),
            (None, 4444)
        );
        assert!(server_endpoint(Some("localhost"), None, None).is_err());
        assert_eq!(
            server_endpoint(Some("localhost"), None, Some(4444)).unwrap(),
            (Some("localhost".to_string()), 4444)
        );
        assert_eq!(
            server_endpoint(None, None, Some(4444)).unwrap(),
            (None, 4444)
        );
        assert!(server_endpoint(None, None, None).is_err());
        assert!(server_endpoint(Some("70000"), None, Some(4444)).is_err());
    }

    #[test]
    fn literals_resolve_without_dns_and_brackets_are_optional() {
        let want: SocketAddr = "[::1]:80".parse().unwrap();
        assert_eq!(resolve("[::1]", 80, Family::Any).unwrap(), vec![want]);
        assert_eq!(resolve("::1", 80, Family::Any).unwrap(), vec![want]);
        let err = resolve("127.0.0.1", 80, Family::V6)
            .unwrap_err()
            .to_string();
        assert!(err.contains("no IPv6 address"), "{err}");
    }

    #[test]
    fn cidr_matches_mapped_ipv4() {
        let lo: Cidr = "127.0.0.0/8".parse().unwrap();
        assert!(lo.contains("127.1.2.3".parse().unwrap()));
        assert!(lo.contains("::ffff:127.0.0.1".parse().unwrap()));
        assert!(!lo.contains("10.0.0.1".parse().unwrap()));
        let v6: Cidr = "::1".parse().unwrap();
        assert!(v6.contains("::1".parse().unwrap()));
        assert!(!v6.contains("::2".parse().unwrap()));
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("192.0.2.1".parse().unwrap()));
        assert!("10.0.0.0/33".parse::<Cidr>().is_err());
        // Rules written in the mapped form, or wide enough to hold it, cover IPv4 clients
        // however the socket reports them (issue 16 item 2: these failed open).
        let v4 = "127.0.0.2".parse().unwrap();
        let mapped = "::ffff:127.0.0.2".parse().unwrap();
        for rule in [
            "::ffff:127.0.0.2/128",
            "::ffff:127.0.0.2",
            "::ffff:0:0/96",
            "::/0",
        ] {
            let c: Cidr = rule.parse().unwrap();
            assert!(c.contains(v4), "{rule} holds 127.0.0.2");
            assert!(c.contains(mapped), "{rule} holds ::ffff:127.0.0.2");
        }
        let one: Cidr = "::ffff:127.0.0.2/128".parse().unwrap();
        assert_eq!(
            one.to_string(),
            "127.0.0.2/32",
            "shown as the network it is"
        );
        assert!(!one.contains("127.0.0.1".parse().unwrap()));
        let net: Cidr = "::ffff:10.0.0.0/104".parse().unwrap();
        assert_eq!(net.to_string(), "10.0.0.0/8");
        let v6only: Cidr = "2001:db8::/32".parse().unwrap();
        assert!(
            !v6only.contains(v4),
            "an IPv6 network outside ::ffff:0:0/96 holds no IPv4"
        );
        assert!(!"::1".parse::<Cidr>().unwrap().contains(v4));
        assert!("nonsense".parse::<Cidr>().is_err());
    }

    fn list(s: &str) -> Result<Vec<u16>, String> {
        s.parse::<PortList>().map(|l| l.ports)
    }

    #[test]
    fn lists_take_ports_ranges_and_both() {
        assert_eq!(list("80"), Ok(vec![80]));
        assert_eq!(list("8000-8003"), Ok(vec![8000, 8001, 8002, 8003]));
        assert_eq!(list("22,80,8000-8002"), Ok(vec![22, 80, 8000, 8001, 8002]));
        assert_eq!(
            list(" 7 , 7-8 "),
            Ok(vec![7, 8]),
            "repeats are checked once"
        );
        assert_eq!(list("1-65535").unwrap().len(), 65535);
        assert!("80".parse::<PortList>().unwrap().single);
        assert!(!"80,81".parse::<PortList>().unwrap().single);
    }

    #[test]
    fn bad_lists_say_what_is_wrong() {
        assert!(list("100-80").unwrap_err().contains("runs backwards"));
        assert!(list("80-").unwrap_err().contains("FIRST-LAST"));
        assert!(list("22,,80").unwrap_err().contains("empty item"));
        assert!(list("1-70000").unwrap_err().contains("out of range"));
        assert!(list("0-10").unwrap_err().contains("port 0"));
        assert!(list("http").unwrap_err().contains("not a port number"));
        assert!(list("-1").unwrap_err().contains("out of range"));
    }

    #[test]
    fn a_list_is_not_a_relay_target() {
        let l: PortList = "22,80".parse().unwrap();
        let e = l.single().unwrap_err();
        assert_eq!(error::exit_status(&e), error::EXIT_USAGE);
        assert!(e.to_string().contains("-z"));
        assert_eq!(
            "80".parse::<PortList>().unwrap().single().unwrap(),
            PortArg(80)
        );
    }

    #[test]
    fn the_bind_address_fills_in_what_was_not_asked() {
        let v4: SocketAddr = "127.0.0.1:80".parse().unwrap();
        let v6: SocketAddr = "[::1]:80".parse().unwrap();
        assert_eq!(Source::default().bind_addr(&v4), None);
        let port_only = Source {
            ip: None,
            port: Some(4000),
        };
        assert_eq!(
            port_only.bind_addr(&v4),
            Some("0.0.0.0:4000".parse().unwrap())
        );
        assert_eq!(port_only.bind_addr(&v6), Some("[::]:4000".parse().unwrap()));
        let ip_only = Source {
            ip: Some("127.0.0.2".parse().unwrap()),
            port: None,
        };
        assert_eq!(ip_only.bind_addr(&v4), Some("127.0.0.2:0".parse().unwrap()));
        assert!(ip_only.fits(&v4) && !ip_only.fits(&v6));
        assert!(ip_only.mismatch("h", &[v6]).to_string().contains("IPv4"));
    }

    #[test]
    fn paths_and_abstract_names_parse() {
        assert_eq!(
            "/tmp/s".parse::<UnixAddr>().unwrap(),
            UnixAddr::Path("/tmp/s".into())
        );
        if cfg!(target_os = "linux") {
            let a = "@sockkit".parse::<UnixAddr>().unwrap();
            assert_eq!(a, UnixAddr::Abstract(b"sockkit".to_vec()));
            assert_eq!(a.to_string(), "@sockkit");
            let sa = a.sockaddr().unwrap();
            assert_eq!(sa.as_abstract_namespace(), Some(&b"sockkit"[..]));
        }
        assert!("".parse::<UnixAddr>().is_err());
        assert!("@".parse::<UnixAddr>().is_err());
        let long = "x".repeat(200);
        assert!(long.parse::<UnixAddr>().unwrap_err().contains("sun_path"));
    }
}
