//! `forward --socks5`: the SOCKS5 server's handshake, a phase of a pair before it relays. The
//! client's greeting, credentials and request are read from its non-blocking socket (exactly
//! each message's bytes, so whatever the client sends after its request waits in the socket
//! for the relay), and the answers written back. The message bytes are `proxy::socks5`'s;
//! where to connect, the rules on the target, and the connect itself are `forward.rs`'s.

use std::io::{self, Read, Write};
use std::net::SocketAddr;

use super::stream::Stream;
use crate::narrate;
use crate::proxy::socks5::{self, Request};
use crate::proxy::{Bad, Dest, Step};

/// The RFC 1929 username and password a client must give (`--proxy-auth`), if any.
#[derive(Debug, Clone)]
pub struct Auth {
    pub user: String,
    pub pass: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Greeting,
    Credentials,
    Request,
    /// The request is read; the connect is the loop's.
    Connecting,
}

/// One client's handshake so far.
pub struct Handshake {
    stage: Stage,
    /// The bytes of the message being read (at most a request: 4 + 1 + 255 + 2).
    got: Vec<u8>,
    /// The reply code to send if the connect fails (set by the loop as it learns why).
    pub fail_code: u8,
}

/// What a turn of the handshake came to.
pub enum Progress {
    /// Waiting for more bytes from the client.
    Wait,
    /// The client asks for this target.
    Connect(Dest, u16),
    /// The handshake failed (answered where SOCKS5 has an answer): close the client.
    Over(String),
}

impl Default for Handshake {
    fn default() -> Handshake {
        Handshake {
            stage: Stage::Greeting,
            got: Vec::new(),
            fail_code: 1,
        }
    }
}

impl Handshake {
    /// True once the client's request is in and the target is being connected to.
    pub fn connecting(&self) -> bool {
        self.stage == Stage::Connecting
    }

    /// Reads and answers as far as the client's bytes go.
    pub fn turn(
        &mut self,
        client: &Stream,
        auth: Option<&Auth>,
        who: &dyn std::fmt::Display,
    ) -> Progress {
        loop {
            let r = match self.stage {
                Stage::Greeting => self.read(client, socks5::read_greeting).map(|o| {
                    o.map(|methods| {
                        let wanted = if auth.is_some() { socks5::USER_PASS } else { socks5::NO_AUTH };
                        let chosen = if methods.contains(&wanted) { wanted } else { socks5::NO_METHOD };
                        tell(format_args!(
                            "SOCKS5 client {who}: greeting offers {}; choosing {chosen:#04x} ({})",
                            methods.iter().map(|m| socks5::method_name(*m)).collect::<Vec<_>>().join(", "),
                            socks5::method_name(chosen)
                        ));
                        if let Err(e) = send(client, &socks5::choose(chosen)) {
                            return Progress::Over(e);
                        }
                        match chosen {
                            socks5::NO_METHOD => Progress::Over(format!(
                                "SOCKS5: offers none of the methods this server takes ({})",
                                socks5::method_name(wanted)
                            )),
                            socks5::USER_PASS => {
                                self.stage = Stage::Credentials;
                                Progress::Wait
                            }
                            _ => {
                                self.stage = Stage::Request;
                                Progress::Wait
                            }
                        }
                    })
                }),
                Stage::Credentials => self.read(client, socks5::read_auth).map(|o| {
                    o.map(|c| {
                        let ok = auth.is_some_and(|a| a.user == c.user && a.pass == c.pass);
                        tell(format_args!(
                            "SOCKS5 client {who}: username/password for user {}: {}",
                            c.user,
                            if ok { "accepted" } else { "refused" }
                        ));
                        if let Err(e) = send(client, &socks5::auth_answer(ok)) {
                            return Progress::Over(e);
                        }
                        if ok {
                            self.stage = Stage::Request;
                            Progress::Wait
                        } else {
                            Progress::Over(format!(
                                "SOCKS5: wrong username or password (user {})",
                                c.user
                            ))
                        }
                    })
                }),
                Stage::Request => self.read(client, socks5::read_request).map(|o| {
                    o.map(|Request { command, dest, port }| {
                        tell(format_args!(
                            "SOCKS5 client {who}: request command {command} for {dest}:{port}"
                        ));
                        if command != 1 {
                            let _ = send(client, &socks5::answer(7, None));
                            return Progress::Over(format!(
                                "SOCKS5: command {command} (only CONNECT, 1, is served): reply 7 ({})",
                                socks5::reply_name(7)
                            ));
                        }
                        self.stage = Stage::Connecting;
                        Progress::Connect(dest, port)
                    })
                }),
                Stage::Connecting => return Progress::Wait,
            };
            match r {
                Ok(Some(Progress::Wait)) => {}
                Ok(Some(done)) => return done,
                Ok(None) => return Progress::Wait,
                Err(why) => return Progress::Over(why),
            }
        }
    }

    /// Reads one message with `decode`: `None` while incomplete.
    fn read<T>(
        &mut self,
        client: &Stream,
        decode: fn(&[u8]) -> Result<Step<T>, Bad>,
    ) -> Result<Option<T>, String> {
        loop {
            match decode(&self.got).map_err(|b| format!("not a SOCKS5 client: {b}"))? {
                Step::Done(v, _) => {
                    self.got.clear();
                    return Ok(Some(v));
                }
                Step::Need(n) => {
                    let at = self.got.len();
                    self.got.resize(n, 0);
                    match (&*client).read(&mut self.got[at..]) {
                        Ok(0) => {
                            return Err("closed the connection during the SOCKS5 handshake".into());
                        }
                        Ok(k) => self.got.truncate(at + k),
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                            self.got.truncate(at);
                            return Ok(None);
                        }
                        Err(e) => {
                            return Err(format!(
                                "reading the SOCKS5 handshake: {}",
                                crate::error::plain(&e)
                            ));
                        }
                    }
                }
                Step::More => return Err("not a SOCKS5 client".into()),
            }
        }
    }
}

/// The answer to the request once the connect is done: `code` 0 with where we connected
/// from, or the failure's code.
pub fn answer(
    client: &Stream,
    code: u8,
    bound: Option<SocketAddr>,
    who: &dyn std::fmt::Display,
) -> Result<(), String> {
    tell(format_args!(
        "SOCKS5 client {who}: reply {code} ({}){}",
        socks5::reply_name(code),
        bound.map(|b| format!(", bound {b}")).unwrap_or_default()
    ));
    send(client, &socks5::answer(code, bound))
}

/// A `-vv` line in words.
fn tell(what: std::fmt::Arguments) {
    if narrate::narrating() {
        narrate::emit(what);
    }
}

/// Writes a short answer whole. A fresh connection's send buffer always has room for a few
/// bytes, so a short write means the client is gone or misbehaving.
fn send(client: &Stream, bytes: &[u8]) -> Result<(), String> {
    match (&*client).write(bytes) {
        Ok(n) if n == bytes.len() => Ok(()),
        Ok(_) => Err("the client's socket took only part of a SOCKS5 answer".into()),
        Err(e) => Err(format!(
            "sending the SOCKS5 answer: {}",
            crate::error::plain(&e)
        )),
    }
}

/// The reply code for a connect that failed with `e` (RFC 1928 §6).
pub fn code_for(e: &io::Error) -> u8 {
    match e.raw_os_error() {
        Some(libc::ECONNREFUSED) => 5,
        Some(libc::ENETUNREACH) => 3,
        Some(libc::EHOSTUNREACH | libc::ETIMEDOUT) => 4,
        _ => 1,
    }
}
