//! A TCP connection through a proxy: connect to the proxy (as `tcp.rs` connects anywhere),
//! then the handshake on that socket, each message sent and read with narrated calls and
//! told in words at `-vv`, the whole handshake bounded by one deadline. After it the socket
//! is a plain byte stream to the target, so the relay's rules apply unchanged. The bytes of
//! each message are `proxy`'s; the relay is `relay`'s.

use std::io;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow};
use socket2::Socket;

use super::call;
use super::tcp;
use crate::addr::{self, Family, Source};
use crate::error;
use crate::narrate;
use crate::proxy::socks4::{self, Target as V4Target};
use crate::proxy::{Bad, Dest, ProxyUrl, Scheme, Step, http, socks5};
use crate::sockopt::Plan;

/// How long a handshake may take when `-w` gives no bound: a proxy that accepts and then says
/// nothing must not hold the client forever.
pub const DEFAULT_HANDSHAKE: Duration = Duration::from_secs(30);

/// A proxy to go through, and who resolves the target's name.
#[derive(Debug, Clone)]
pub struct Proxy {
    pub url: ProxyUrl,
    /// Resolve the target here and send the proxy an address (`--proxy-dns local`).
    pub local_dns: bool,
}

/// What the proxy said about the target: it connected, or it could not (in words).
pub type Reached = std::result::Result<(), String>;

/// Connects to the proxy (each of its addresses in turn, from `-s`/`-p` if given, each
/// attempt bounded by `timeout`), then asks it for `host:port`. The outer error is the
/// proxy's own failure (unreachable, bad credentials, garbage); `Ok(Err(why))` is the proxy
/// saying it could not reach the target.
pub fn connect_via(
    proxy: &Proxy,
    host: &str,
    port: u16,
    family: Family,
    timeout: Option<Duration>,
    plan: &Plan,
    source: &Source,
) -> Result<(Socket, Reached)> {
    let dest = destination(proxy, host, port, family)?;
    let url = &proxy.url;
    let addrs = addr::resolve(&url.host, url.port, Family::Any)?;
    let addrs = source.fitting(&url.host, addrs)?;
    narrate::info(format_args!(
        "going through the {} proxy {url} to {dest}:{port}",
        url.scheme.name()
    ));
    let sock = tcp::connect_from(&addrs, timeout, plan, source)
        .map_err(|e| anyhow!("proxy {url}: {e}"))?;
    let deadline = Instant::now() + timeout.unwrap_or(DEFAULT_HANDSHAKE);
    let mut talk = Talk {
        sock: &sock,
        deadline,
        url,
    };
    match talk.handshake(&dest, port) {
        Ok(reached) => Ok((sock, reached)),
        Err(e) => {
            call::close(sock);
            Err(e)
        }
    }
}

/// The target as the proxy will be told it: a name (it resolves) or an address (resolved here,
/// because `--proxy-dns local` asked or SOCKS4 has no names).
pub fn destination(proxy: &Proxy, host: &str, port: u16, family: Family) -> Result<Dest> {
    let dest = Dest::of(host);
    let scheme = proxy.url.scheme;
    let local = proxy.local_dns || scheme == Scheme::Socks4;
    let dest = match dest {
        Dest::Name(_) if local => {
            let family = if scheme == Scheme::Socks4 {
                Family::V4
            } else {
                family
            };
            let found = addr::resolve(host, port, family)?;
            let ip = found[0].ip();
            narrate::info(format_args!("{host} resolves here to {ip}"));
            Dest::Ip(ip)
        }
        Dest::Name(_) => {
            if let Family::V4 | Family::V6 = family {
                narrate::info(format_args!(
                    "the proxy resolves {host}; -4/-6 choose the proxy's address family only"
                ));
            }
            dest
        }
        ip @ Dest::Ip(_) => ip,
    };
    if scheme == Scheme::Socks4 && matches!(dest, Dest::Ip(IpAddr::V6(_))) {
        return Err(anyhow!(
            "socks4:// carries IPv4 addresses only, and {host} is IPv6: use socks4a:// or socks5://"
        ));
    }
    if scheme == Scheme::Socks5 && !socks5::name_fits(&dest) {
        return Err(anyhow!("{host}: SOCKS5 carries names of 1 to 255 bytes"));
    }
    Ok(dest)
}

/// One handshake on a connected socket: the proxy's address for errors, one deadline.
struct Talk<'a> {
    sock: &'a Socket,
    deadline: Instant,
    url: &'a ProxyUrl,
}

impl Talk<'_> {
    fn handshake(&mut self, dest: &Dest, port: u16) -> Result<Reached> {
        match self.url.scheme {
            Scheme::Socks5 => self.socks5(dest, port),
            Scheme::Socks4 | Scheme::Socks4a => self.socks4(dest, port),
            Scheme::Http => self.http(dest, port),
        }
    }

    fn socks5(&mut self, dest: &Dest, port: u16) -> Result<Reached> {
        let auth = self.url.auth.as_ref();
        let hello = socks5::greeting(auth.is_some());
        let offered: Vec<&str> = hello[2..].iter().map(|m| socks5::method_name(*m)).collect();
        tell(format_args!(
            "SOCKS5 greeting: version 5, methods offered: {}",
            offered.join(", ")
        ));
        self.send(&hello, "the greeting")?;
        let method = self.read(socks5::choice, "method choice")?;
        tell(format_args!(
            "SOCKS5 method chosen: {method:#04x} ({})",
            socks5::method_name(method)
        ));
        match (method, auth) {
            (socks5::NO_AUTH, _) => {}
            (socks5::USER_PASS, Some(c)) => {
                tell(format_args!(
                    "SOCKS5 username/password (RFC 1929): user {}, password of {} bytes",
                    c.user,
                    c.pass.len()
                ));
                self.send(&socks5::auth_request(c), "the credentials")?;
                if !self.read(socks5::auth_status, "status for the credentials")? {
                    return Err(anyhow!(
                        "proxy {}: refused the username and password (SOCKS5 auth status not 0)",
                        self.url
                    ));
                }
                tell(format_args!("SOCKS5 credentials accepted"));
            }
            (socks5::USER_PASS, None) => {
                return Err(anyhow!(
                    "proxy {}: wants a username and password (socks5://USER:PASS@HOST:PORT)",
                    self.url
                ));
            }
            (socks5::NO_METHOD, _) => {
                let what = if auth.is_some() {
                    "no authentication nor username/password"
                } else {
                    "no authentication; it may want a username and password \
                     (socks5://USER:PASS@HOST:PORT)"
                };
                return Err(anyhow!(
                    "proxy {}: accepts none of the methods offered ({what})",
                    self.url
                ));
            }
            (m, _) => {
                return Err(anyhow!(
                    "proxy {}: chose method {m:#04x}, which was not offered",
                    self.url
                ));
            }
        }
        tell(format_args!(
            "SOCKS5 request: CONNECT {dest}:{port} ({})",
            match dest {
                Dest::Name(_) => "the proxy resolves the name",
                Dest::Ip(_) => "an address",
            }
        ));
        self.send(&socks5::connect_request(dest, port), "the CONNECT request")?;
        let reply = self.read(socks5::reply, "reply")?;
        let words = socks5::reply_name(reply.code);
        let bound = reply
            .bound
            .map(|b| format!(", bound {b}"))
            .unwrap_or_default();
        tell(format_args!(
            "SOCKS5 reply: {} ({words}){bound}",
            reply.code
        ));
        Ok(if reply.code == 0 {
            Ok(())
        } else {
            Err(format!("{words} (SOCKS5 reply {})", reply.code))
        })
    }

    fn socks4(&mut self, dest: &Dest, port: u16) -> Result<Reached> {
        let user = self.url.auth.as_ref().map_or("", |c| c.user.as_str());
        let name;
        let target = match dest {
            Dest::Ip(IpAddr::V4(ip)) => V4Target::V4(*ip),
            Dest::Ip(IpAddr::V6(ip)) if self.url.scheme == Scheme::Socks4a => {
                name = ip.to_string();
                V4Target::Name(&name)
            }
            Dest::Ip(IpAddr::V6(_)) => return Err(anyhow!("socks4:// carries IPv4 only")),
            Dest::Name(n) => V4Target::Name(n),
        };
        let scheme = self.url.scheme.name();
        tell(format_args!(
            "{scheme} request: CONNECT {dest}:{port}, user id `{user}`{}",
            if matches!(target, V4Target::Name(_)) {
                " (address 0.0.0.1: the name follows, for the proxy to resolve)"
            } else {
                ""
            }
        ));
        self.send(
            &socks4::connect_request(&target, port, user),
            "the CONNECT request",
        )?;
        let code = self.read(socks4::reply, "reply")?;
        let words = socks4::reply_name(code);
        tell(format_args!("{scheme} reply: {code} ({words})"));
        Ok(if code == 90 {
            Ok(())
        } else {
            Err(format!("{words} ({scheme} reply {code})"))
        })
    }

    fn http(&mut self, dest: &Dest, port: u16) -> Result<Reached> {
        let host = match dest {
            Dest::Name(n) => n.clone(),
            Dest::Ip(ip) => ip.to_string(),
        };
        let auth = self.url.auth.as_ref();
        let req = http::connect_request(&host, port, auth);
        tell(format_args!(
            "HTTP request: CONNECT {} HTTP/1.1{}",
            http::authority(&host, port),
            if auth.is_some() {
                " (with Proxy-Authorization: Basic)"
            } else {
                ""
            }
        ));
        self.send(&req, "the CONNECT request")?;
        let status = self.read(http::response, "answer")?;
        let words = http::status_name(status.code);
        tell(format_args!(
            "HTTP status: {} {} ({words})",
            status.code, status.reason
        ));
        // 407 is the standard answer; some proxies (tinyproxy) say 401.
        if status.code == 407 || status.code == 401 {
            let said = if auth.is_some() {
                "refused the username and password"
            } else {
                "wants a username and password (http://USER:PASS@HOST:PORT)"
            };
            return Err(anyhow!("proxy {}: {said} (HTTP {})", self.url, status.code));
        }
        Ok(if status.ok() {
            Ok(())
        } else {
            Err(format!("{words} (HTTP {} {})", status.code, status.reason))
        })
    }

    /// Time left before the deadline, or the error that says it passed.
    fn left(&self, what: &str) -> Result<Duration> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(anyhow!(
                "proxy {}: no {what} before the handshake's deadline (-w)",
                self.url
            ));
        }
        Ok(left)
    }

    /// The whole message, by socket2's send (sendto(2) with no flags, as strace shows it).
    fn send(&self, data: &[u8], what: &str) -> Result<()> {
        let mut at = 0;
        while at < data.len() {
            self.left(what)?;
            let rest = &data[at..];
            let n = narrate::traced(
                || self.sock.send(rest),
                |r| {
                    format!(
                        "sendto(fd {}, buf, {}, 0, NULL, 0) {}",
                        call::fd(self.sock),
                        rest.len(),
                        size(r)
                    )
                },
            )
            .map_err(|e| self.io_failure(&e, &format!("sending {what}")))?;
            at += n;
        }
        Ok(())
    }

    /// Reads one message that `decode` recognises, never past its end (the bytes after are the
    /// target's): exact reads when the length is known, a MSG_PEEK when it is not (an HTTP
    /// header), each read waited for with poll() within the deadline.
    fn read<T>(
        &self,
        decode: impl Fn(&[u8]) -> std::result::Result<Step<T>, Bad>,
        what: &str,
    ) -> Result<T> {
        let mut got: Vec<u8> = Vec::new();
        let garbage = |b: Bad| {
            anyhow!(
                "proxy {}: is not speaking {}: {b}",
                self.url,
                self.url.scheme.name()
            )
        };
        loop {
            let want = match decode(&got).map_err(garbage)? {
                Step::Done(v, _) => return Ok(v),
                Step::Need(n) => n - got.len(),
                Step::More => 0,
            };
            let left = self.left(what)?;
            let fd = call::fd(self.sock);
            let t0 = std::time::Instant::now();
            let ready = call::poll_readable(&[Some(fd)], Some(left))
                .map_err(|e| self.io_failure(&e, "poll()"))?;
            if narrate::every_call() {
                let ms = left.as_millis() + 1;
                narrate::call(
                    format_args!(
                        "poll([{{fd={fd}, events=POLLIN}}], 1, {ms}) = {}",
                        u8::from(ready[0])
                    ),
                    t0.elapsed(),
                );
            }
            if !ready[0] {
                continue;
            }
            let n = if want > 0 {
                self.recv(&mut got, want, false, what)?
            } else {
                // Peek, then take only what belongs to the header.
                let before = got.len();
                let seen = self.recv(&mut got, http::MAX_HEADER, true, what)?;
                let take = match decode(&got).map_err(garbage)? {
                    Step::Done(_, used) => used - before,
                    _ => seen,
                };
                got.truncate(before);
                self.recv(&mut got, take, false, what)?
            };
            if n == 0 {
                return Err(anyhow!(
                    "proxy {}: closed the connection before sending its {what}{}",
                    self.url,
                    if got.is_empty() {
                        String::new()
                    } else {
                        format!(" ({} B of it came)", got.len())
                    }
                ));
            }
        }
    }

    /// One recv(2) (recvfrom as strace shows it) of at most `max` bytes appended to `into`,
    /// narrated; 0 means EOF.
    fn recv(&self, into: &mut Vec<u8>, max: usize, peek: bool, what: &str) -> Result<usize> {
        let start = into.len();
        into.resize(start + max, 0);
        let buf = &mut into[start..];
        let fd = call::fd(self.sock);
        let r = narrate::traced(
            || crate::sys::recv(fd, buf, peek),
            |r| {
                format!(
                    "recvfrom(fd {}, buf, {max}, {}, NULL, NULL) {}",
                    call::fd(self.sock),
                    if peek { "MSG_PEEK" } else { "0" },
                    size(r)
                )
            },
        );
        let n = match r {
            Ok(n) => n,
            Err(e) => {
                into.truncate(start);
                return Err(self.io_failure(&e, &format!("reading {what}")));
            }
        };
        into.truncate(start + n);
        Ok(n)
    }

    fn io_failure(&self, e: &io::Error, doing: &str) -> anyhow::Error {
        anyhow!("proxy {}: {doing}: {}", self.url, error::plain(e))
    }
}

/// A `-vv` line in words beside the calls.
fn tell(what: std::fmt::Arguments) {
    if narrate::narrating() {
        narrate::emit(what);
    }
}

/// `= 3` or the errno, as a byte-count call reads.
fn size(r: &io::Result<usize>) -> String {
    match r {
        Ok(n) => format!("= {n}"),
        Err(e) => narrate::errno_text(e),
    }
}
