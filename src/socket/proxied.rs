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
use crate::proxy::client::{Client, Next};
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
/// True when a name is looked up here rather than by the proxy (`--proxy-dns local`, or
/// SOCKS4, which carries only an IPv4 address).
pub fn resolves_here(proxy: &Proxy) -> bool {
    proxy.local_dns || proxy.url.scheme == Scheme::Socks4
}

pub fn destination(proxy: &Proxy, host: &str, port: u16, family: Family) -> Result<Dest> {
    let dest = Dest::of(host);
    let scheme = proxy.url.scheme;
    let local = resolves_here(proxy);
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
    /// The handshake `proxy::client` describes, message by message: each answer read whole
    /// (never past it), each step told at -vv.
    fn handshake(&mut self, dest: &Dest, port: u16) -> Result<Reached> {
        let (mut machine, first, said) = Client::start(self.url, dest.clone(), port);
        tell(format_args!("{said}"));
        self.send(&first, "the first message")?;
        loop {
            let what = machine.awaiting();
            let answer = self.read(|b| machine.length(b), what)?;
            let (next, said) = machine
                .answer(&answer)
                .map_err(|why| anyhow!("proxy {}: {why}", self.url))?;
            tell(format_args!("{said}"));
            match next {
                Next::Send(msg) => self.send(&msg, "the next message")?,
                Next::Done(reached) => return Ok(reached),
            }
        }
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
    fn read(
        &self,
        decode: impl Fn(&[u8]) -> std::result::Result<Step<()>, Bad>,
        what: &str,
    ) -> Result<Vec<u8>> {
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
                Step::Done((), used) => {
                    got.truncate(used);
                    return Ok(got);
                }
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
                    Step::Done((), used) => used - before,
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
