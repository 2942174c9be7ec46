//! Turning what the user typed into socket addresses: ports, hosts (names, IPv4 and IPv6
//! literals with or without brackets), the server's `[ADDR] PORT` pair, the address-family
//! policy, and CIDR networks for `--allow`/`--deny`. No sockets are made here.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::str::FromStr;

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
fn unbracket(host: &str) -> &str {
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
            .map_err(|e| {
                anyhow!(
                    "cannot resolve host '{host}': {} (check the name, or give an IP address)",
                    resolver_text(&e)
                )
            })?
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

/// getaddrinfo's message without std's "failed to lookup address information:" prefix.
fn resolver_text(e: &std::io::Error) -> String {
    let text = e.to_string();
    let text = text
        .strip_prefix("failed to lookup address information: ")
        .unwrap_or(&text);
    text.to_lowercase()
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

/// An IP network for `--allow` / `--deny`: `127.0.0.0/8`, `::1/128`, or a bare address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    net: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// True when `ip` is inside; an IPv4 client seen as `::ffff:a.b.c.d` on a dual-stack
    /// socket matches IPv4 networks, as the user meant.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        match (self.net, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (ip, prefix) = match s.split_once('/') {
            Some((ip, p)) => (ip, Some(p)),
            None => (s, None),
        };
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
        Ok(Cidr { net, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.net, self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_parse_with_reasons() {
        assert_eq!("4444".parse::<PortArg>(), Ok(PortArg(4444)));
        assert_eq!("0".parse::<PortArg>(), Ok(PortArg(0)));
        assert!(
            "65536"
                .parse::<PortArg>()
                .unwrap_err()
                .contains("out of range")
        );
        assert!(
            "99999999999999999999"
                .parse::<PortArg>()
                .unwrap_err()
                .contains("out of range")
        );
        assert!(
            "-1".parse::<PortArg>()
                .unwrap_err()
                .contains("out of range")
        );
        assert!(
            "abc"
                .parse::<PortArg>()
                .unwrap_err()
                .contains("not a port number")
        );
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
        assert!("nonsense".parse::<Cidr>().is_err());
    }
}
