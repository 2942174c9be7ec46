//! A proxy client's handshake as a state machine over bytes, for callers that cannot block
//! (forward's event loop): it gives the first message, says how long the proxy's current
//! answer is, and from each whole answer the next message or the outcome, with a sentence
//! for `-vv` at each step. The reading and writing are the caller's.

use std::net::IpAddr;

use super::socks4::{self, Target as V4Target};
use super::step::{Bad, Step};
use super::url::{Dest, ProxyUrl, Scheme};
use super::{http, socks5};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Choice,
    AuthStatus,
    Reply5,
    Reply4,
    Http,
}

/// One handshake in progress.
pub struct Client {
    url: ProxyUrl,
    dest: Dest,
    port: u16,
    stage: Stage,
}

/// What an answer leads to.
#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    /// Send this, then read the next answer.
    Send(Vec<u8>),
    /// The proxy reached the target, or said (in words) why it could not.
    Done(Result<(), String>),
}

impl Client {
    /// The handshake for `dest:port` through `url`: the machine, its first message and what
    /// that message says.
    pub fn start(url: &ProxyUrl, dest: Dest, port: u16) -> (Client, Vec<u8>, String) {
        let (stage, first, said) = match url.scheme {
            Scheme::Socks5 => {
                let hello = socks5::greeting(url.auth.is_some());
                let offered: Vec<&str> =
                    hello[2..].iter().map(|m| socks5::method_name(*m)).collect();
                let said = format!(
                    "SOCKS5 greeting: version 5, methods offered: {}",
                    offered.join(", ")
                );
                (Stage::Choice, hello, said)
            }
            Scheme::Socks4 | Scheme::Socks4a => {
                let user = url.auth.as_ref().map_or("", |c| c.user.as_str());
                let shown = dest.to_string();
                let name = match &dest {
                    Dest::Ip(IpAddr::V6(ip)) => ip.to_string(),
                    Dest::Name(n) => n.clone(),
                    Dest::Ip(IpAddr::V4(_)) => String::new(),
                };
                let target = match &dest {
                    Dest::Ip(IpAddr::V4(ip)) => V4Target::V4(*ip),
                    _ => V4Target::Name(&name),
                };
                let said = format!(
                    "{} request: CONNECT {shown}:{port}, user id `{user}`",
                    url.scheme.name()
                );
                (
                    Stage::Reply4,
                    socks4::connect_request(&target, port, user),
                    said,
                )
            }
            Scheme::Http => {
                let host = host_of(&dest);
                let said = format!(
                    "HTTP request: CONNECT {} HTTP/1.1{}",
                    http::authority(&host, port),
                    if url.auth.is_some() {
                        " (with Proxy-Authorization: Basic)"
                    } else {
                        ""
                    }
                );
                let req = http::connect_request(&host, port, url.auth.as_ref());
                (Stage::Http, req, said)
            }
        };
        let client = Client {
            url: url.clone(),
            dest,
            port,
            stage,
        };
        (client, first, said)
    }

    /// The answer being waited for, as errors name it (`closed before sending its ...`).
    pub fn awaiting(&self) -> &'static str {
        match self.stage {
            Stage::Choice => "method choice",
            Stage::AuthStatus => "status for the credentials",
            Stage::Reply5 | Stage::Reply4 => "reply",
            Stage::Http => "answer",
        }
    }

    /// How long the proxy's current answer is, from its first bytes.
    pub fn length(&self, b: &[u8]) -> Result<Step<()>, Bad> {
        fn unit<T>(s: Result<Step<T>, Bad>) -> Result<Step<()>, Bad> {
            s.map(|s| match s {
                Step::Done(_, n) => Step::Done((), n),
                Step::Need(n) => Step::Need(n),
                Step::More => Step::More,
            })
        }
        match self.stage {
            Stage::Choice => unit(socks5::choice(b)),
            Stage::AuthStatus => unit(socks5::auth_status(b)),
            Stage::Reply5 => unit(socks5::reply(b)),
            Stage::Reply4 => unit(socks4::reply(b)),
            Stage::Http => unit(http::response(b)),
        }
    }

    /// The whole answer `b` (as `length` measured it): what to do next, and what it said.
    /// `Err` is the proxy's own failure (credentials, methods, garbage), not the target's.
    pub fn answer(&mut self, b: &[u8]) -> Result<(Next, String), String> {
        let url = &self.url;
        let garbage = |e: Bad| format!("is not speaking {}: {e}", url.scheme.name());
        match self.stage {
            Stage::Choice => {
                let m = whole(socks5::choice(b).map_err(garbage)?, b.len())?;
                let said = format!(
                    "SOCKS5 method chosen: {m:#04x} ({})",
                    socks5::method_name(m)
                );
                match (m, &url.auth) {
                    (socks5::NO_AUTH, _) => {
                        let said = format!("{said}; {}", self.asking());
                        Ok((Next::Send(self.request()), said))
                    }
                    (socks5::USER_PASS, Some(c)) => {
                        self.stage = Stage::AuthStatus;
                        Ok((Next::Send(socks5::auth_request(c)), said))
                    }
                    (socks5::USER_PASS, None) => {
                        Err("wants a username and password (socks5://USER:PASS@HOST:PORT)".into())
                    }
                    (socks5::NO_METHOD, _) => Err("accepts none of the methods offered".into()),
                    (m, _) => Err(format!("chose method {m:#04x}, which was not offered")),
                }
            }
            Stage::AuthStatus => {
                if !whole(socks5::auth_status(b).map_err(garbage)?, b.len())? {
                    return Err(
                        "refused the username and password (SOCKS5 auth status not 0)".into(),
                    );
                }
                Ok((
                    Next::Send(self.request()),
                    "SOCKS5 credentials accepted".into(),
                ))
            }
            Stage::Reply5 => {
                let r = whole(socks5::reply(b).map_err(garbage)?, b.len())?;
                let words = socks5::reply_name(r.code);
                let bound = r.bound.map(|b| format!(", bound {b}")).unwrap_or_default();
                let said = format!("SOCKS5 reply: {} ({words}){bound}", r.code);
                let done = if r.code == 0 {
                    Ok(())
                } else {
                    Err(format!("{words} (SOCKS5 reply {})", r.code))
                };
                Ok((Next::Done(done), said))
            }
            Stage::Reply4 => {
                let code = whole(socks4::reply(b).map_err(garbage)?, b.len())?;
                let words = socks4::reply_name(code);
                let name = url.scheme.name();
                let done = if code == 90 {
                    Ok(())
                } else {
                    Err(format!("{words} ({name} reply {code})"))
                };
                Ok((Next::Done(done), format!("{name} reply: {code} ({words})")))
            }
            Stage::Http => {
                let s = whole(http::response(b).map_err(garbage)?, b.len())?;
                let words = http::status_name(s.code);
                if s.code == 407 || s.code == 401 {
                    return Err(format!(
                        "{} (HTTP {})",
                        if url.auth.is_some() {
                            "refused the username and password"
                        } else {
                            "wants a username and password (http://USER:PASS@HOST:PORT)"
                        },
                        s.code
                    ));
                }
                let said = format!("HTTP status: {} {} ({words})", s.code, s.reason);
                let done = if s.ok() {
                    Ok(())
                } else {
                    Err(format!("{words} (HTTP {} {})", s.code, s.reason))
                };
                Ok((Next::Done(done), said))
            }
        }
    }

    /// The SOCKS5 request in words.
    fn asking(&self) -> String {
        format!(
            "request: CONNECT {}:{} ({})",
            self.dest,
            self.port,
            match self.dest {
                Dest::Name(_) => "the proxy resolves the name",
                Dest::Ip(_) => "an address",
            }
        )
    }

    /// The SOCKS5 CONNECT request, and the stage that reads its reply.
    fn request(&mut self) -> Vec<u8> {
        self.stage = Stage::Reply5;
        socks5::connect_request(&self.dest, self.port)
    }
}

/// The value of an answer the caller read whole (as `length` measured it).
fn whole<T>(s: Step<T>, len: usize) -> Result<T, String> {
    match s {
        Step::Done(v, _) => Ok(v),
        _ => Err(format!("its answer ended early ({len} B)")),
    }
}

/// The target as an HTTP request line names it.
fn host_of(dest: &Dest) -> String {
    match dest {
        Dest::Name(n) => n.clone(),
        Dest::Ip(ip) => ip.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socks5_with_credentials_goes_greeting_auth_request_reply() {
        let url: ProxyUrl = "socks5://u:p@h:1".parse().unwrap();
        let (mut c, first, said) = Client::start(&url, Dest::Name("t".into()), 80);
        assert_eq!(first, [5, 2, 0, 2]);
        assert!(said.contains("username/password"));
        assert_eq!(c.length(&[5]), Ok(Step::Need(2)));
        let (next, _) = c.answer(&[5, 2]).unwrap();
        assert_eq!(next, Next::Send(vec![1, 1, b'u', 1, b'p']));
        let (next, _) = c.answer(&[1, 0]).unwrap();
        assert_eq!(next, Next::Send(vec![5, 1, 0, 3, 1, b't', 0, 80]));
        let reply = [5, 5, 0, 1, 0, 0, 0, 0, 0, 0];
        assert_eq!(c.length(&reply), Ok(Step::Done((), 10)));
        let (next, said) = c.answer(&reply).unwrap();
        assert_eq!(
            next,
            Next::Done(Err("connection refused (SOCKS5 reply 5)".into()))
        );
        assert_eq!(
            said,
            "SOCKS5 reply: 5 (connection refused), bound 0.0.0.0:0"
        );
    }

    #[test]
    fn refusals_of_the_proxy_itself_are_errors() {
        let url: ProxyUrl = "socks5://h:1".parse().unwrap();
        let (mut c, _, _) = Client::start(&url, Dest::Name("t".into()), 80);
        assert!(
            c.answer(&[5, 0xff])
                .unwrap_err()
                .contains("none of the methods")
        );
        let url: ProxyUrl = "http://u:bad@h:1".parse().unwrap();
        let (mut c, first, _) = Client::start(&url, Dest::of("10.0.0.1"), 22);
        assert!(first.starts_with(b"CONNECT 10.0.0.1:22 HTTP/1.1\r\n"));
        let r = b"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n";
        assert_eq!(c.length(r), Ok(Step::Done((), r.len())));
        assert!(
            c.answer(r)
                .unwrap_err()
                .contains("refused the username and password")
        );
        let url: ProxyUrl = "socks4://h".parse().unwrap();
        let (mut c, first, _) = Client::start(&url, Dest::of("10.0.0.1"), 22);
        assert_eq!(first, [4, 1, 0, 22, 10, 0, 0, 1, 0]);
        let (next, _) = c.answer(&[0, 90, 0, 0, 0, 0, 0, 0]).unwrap();
        assert_eq!(next, Next::Done(Ok(())));
    }
}
