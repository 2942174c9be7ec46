//! The `--proxy` URL (`socks5://[user:pass@]host:port`, `socks4a://`, `socks4://`,
//! `http://[user:pass@]host:port`) and the target a proxy is asked to reach. Parsing only:
//! resolving the proxy's name is `addr`'s, and the messages are the protocol files'.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// Which protocol the proxy speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// SOCKS5; the proxy resolves the target name (as curl's `socks5h://`).
    Socks5,
    /// SOCKS4a: SOCKS4 with the name sent to the proxy.
    Socks4a,
    /// SOCKS4: IPv4 addresses only, so the name is resolved here.
    Socks4,
    /// HTTP CONNECT.
    Http,
}

impl Scheme {
    /// The protocol's name as narration and errors say it.
    pub fn name(self) -> &'static str {
        match self {
            Scheme::Socks5 => "SOCKS5",
            Scheme::Socks4a => "SOCKS4a",
            Scheme::Socks4 => "SOCKS4",
            Scheme::Http => "HTTP CONNECT",
        }
    }
}

/// A username and password for the proxy (SOCKS5 RFC 1929, HTTP Basic; SOCKS4's user id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub user: String,
    pub pass: String,
}

/// A parsed `--proxy` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyUrl {
    pub scheme: Scheme,
    pub host: String,
    pub port: u16,
    pub auth: Option<Credentials>,
}

/// Where the proxy is asked to connect: a name it resolves, or an address resolved here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dest {
    Name(String),
    Ip(IpAddr),
}

impl Dest {
    /// A name that is an address literal is an address: no resolver needed on either side.
    pub fn of(host: &str) -> Dest {
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        match bare.parse::<IpAddr>() {
            Ok(ip) => Dest::Ip(ip),
            Err(_) => Dest::Name(host.to_string()),
        }
    }
}

impl fmt::Display for Dest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Dest::Name(n) => f.write_str(n),
            Dest::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]"),
            Dest::Ip(ip) => write!(f, "{ip}"),
        }
    }
}

impl fmt::Display for ProxyUrl {
    /// The URL without the password, which never reaches stderr.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = match self.scheme {
            Scheme::Socks5 => "socks5",
            Scheme::Socks4a => "socks4a",
            Scheme::Socks4 => "socks4",
            Scheme::Http => "http",
        };
        let user = match &self.auth {
            Some(c) => format!("{}@", c.user),
            None => String::new(),
        };
        let host = Dest::of(&self.host);
        write!(f, "{scheme}://{user}{host}:{}", self.port)
    }
}

/// `%40` -> `@`: a password may hold the characters the URL uses as separators.
fn percent_decode(s: &str) -> Result<String, String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| format!("`{}` is not a %XX escape", &s[i..s.len().min(i + 3)]))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "a %XX escape makes the text not UTF-8".to_string())
}

impl FromStr for ProxyUrl {
    type Err = String;

    fn from_str(s: &str) -> Result<ProxyUrl, String> {
        let (scheme, rest) = s.split_once("://").ok_or(
            "expected SCHEME://[USER:PASS@]HOST:PORT, SCHEME one of socks5, socks5h, socks4a, \
             socks4, http",
        )?;
        let scheme = match scheme.to_ascii_lowercase().as_str() {
            "socks5" | "socks5h" => Scheme::Socks5,
            "socks4a" => Scheme::Socks4a,
            "socks4" => Scheme::Socks4,
            "http" => Scheme::Http,
            "https" => {
                return Err(
                    "https:// proxies (TLS to the proxy) are not supported; use http://".into(),
                );
            }
            other => {
                return Err(format!(
                    "`{other}` is not a proxy scheme sockkit speaks (socks5, socks5h, socks4a, \
                     socks4, http)"
                ));
            }
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains('/') || rest.contains('?') || rest.contains('#') {
            return Err("a proxy URL has no path: SCHEME://[USER:PASS@]HOST:PORT".into());
        }
        let (auth, hostport) = match rest.rsplit_once('@') {
            Some((userinfo, hp)) => {
                let (user, pass) = userinfo.split_once(':').unwrap_or((userinfo, ""));
                let user = percent_decode(user)?;
                let pass = percent_decode(pass)?;
                if user.is_empty() {
                    return Err("the user name before `@` is empty".into());
                }
                if scheme == Scheme::Socks5 && (user.len() > 255 || pass.len() > 255) {
                    return Err("SOCKS5 user names and passwords are at most 255 bytes".into());
                }
                (Some(Credentials { user, pass }), hp)
            }
            None => (None, rest),
        };
        let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
            let (h, after) = v6
                .split_once(']')
                .ok_or("an IPv6 address opened with `[` needs its `]`")?;
            (h, after.strip_prefix(':'))
        } else {
            match hostport.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (hostport, None),
            }
        };
        if host.is_empty() {
            return Err("the proxy's host is missing".into());
        }
        let port = match (port, scheme) {
            (Some(p), _) => match p.parse::<u16>() {
                Ok(0) | Err(_) => return Err(format!("`{p}` is not a port (1-65535)")),
                Ok(n) => n,
            },
            // 1080 is SOCKS's own port (IANA); HTTP proxies have no one port.
            (None, Scheme::Http) => {
                return Err("an http:// proxy needs its port: http://HOST:PORT".into());
            }
            (None, _) => 1080,
        };
        Ok(ProxyUrl {
            scheme,
            host: host.to_string(),
            port,
            auth,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_scheme_with_and_without_credentials() {
        let u: ProxyUrl = "socks5://alice:s%40cret@127.0.0.1:1081".parse().unwrap();
        assert_eq!(u.scheme, Scheme::Socks5);
        assert_eq!((u.host.as_str(), u.port), ("127.0.0.1", 1081));
        let c = u.auth.clone().unwrap();
        assert_eq!((c.user.as_str(), c.pass.as_str()), ("alice", "s@cret"));
        assert_eq!(u.to_string(), "socks5://alice@127.0.0.1:1081");
        let u: ProxyUrl = "socks4a://proxy.example".parse().unwrap();
        assert_eq!((u.scheme, u.port), (Scheme::Socks4a, 1080));
        let u: ProxyUrl = "http://[::1]:3128/".parse().unwrap();
        assert_eq!(
            (u.scheme, u.host.as_str(), u.port),
            (Scheme::Http, "::1", 3128)
        );
        assert_eq!(u.to_string(), "http://[::1]:3128");
        assert_eq!(
            "SOCKS5H://h:1".parse::<ProxyUrl>().unwrap().scheme,
            Scheme::Socks5
        );
    }

    #[test]
    fn refuses_what_is_not_a_proxy_url() {
        for bad in [
            "127.0.0.1:1080",
            "ftp://h:21",
            "socks5://h:0",
            "socks5://h:99999",
            "socks5://:1080",
            "http://h",
            "http://h:80/path",
            "socks5://[::1:1080",
            "socks5://u:%zz@h:1",
            "socks5://:pw@h:1",
        ] {
            assert!(bad.parse::<ProxyUrl>().is_err(), "{bad} parsed");
        }
    }

    #[test]
    fn an_address_literal_is_an_address() {
        assert_eq!(Dest::of("[::1]"), Dest::Ip("::1".parse().unwrap()));
        assert_eq!(Dest::of("10.0.0.1"), Dest::Ip("10.0.0.1".parse().unwrap()));
        assert_eq!(Dest::of("example.org"), Dest::Name("example.org".into()));
    }
}
