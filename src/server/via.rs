//! `forward --proxy`: the outbound side's handshake with the proxy, a phase of a pair between
//! the connect to the proxy and the relay. Non-blocking: each answer is read exactly (its
//! length from `proxy::client`, an HTTP header found with MSG_PEEK), so the target's first
//! bytes stay in the socket for the relay. The messages are `proxy::client`'s; when to call,
//! and what a failure does to the pair, are `forward.rs`'s.

use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;

use super::stream::Stream;
use crate::narrate;
use crate::proxy::client::{Client, Next};
use crate::proxy::{Dest, ProxyUrl, Step, http};

/// A handshake in progress on a pair's outbound socket.
pub struct Via {
    machine: Client,
    /// The bytes of the answer being read.
    got: Vec<u8>,
    /// The proxy, as errors name it (no password).
    shown: String,
}

/// How far a turn took it.
pub enum Went {
    Wait,
    /// The proxy reached the target: the socket is a stream to it now.
    Reached,
    /// The proxy could not reach the target, or failed itself: why, in words.
    Failed(String),
}

impl Via {
    /// Sends the first message on the connected socket to the proxy.
    pub fn start(url: &ProxyUrl, dest: Dest, port: u16, out: &Stream) -> Result<Via, String> {
        let (machine, first, said) = Client::start(url, dest, port);
        let via = Via {
            machine,
            got: Vec::new(),
            shown: url.to_string(),
        };
        tell(&said);
        send(out, &first)?;
        Ok(via)
    }

    /// Reads and answers as far as the proxy's bytes go.
    pub fn turn(&mut self, out: &Stream) -> Went {
        match self.steps(out) {
            Ok(w) => w,
            Err(why) => Went::Failed(format!("proxy {}: {why}", self.shown)),
        }
    }

    fn steps(&mut self, out: &Stream) -> Result<Went, String> {
        loop {
            let len = self
                .machine
                .length(&self.got)
                .map_err(|b| format!("is not speaking the protocol of its URL: {b}"))?;
            match len {
                Step::Done((), n) => {
                    let (next, said) = self.machine.answer(&self.got[..n])?;
                    tell(&said);
                    self.got.clear();
                    match next {
                        Next::Send(msg) => send(out, &msg)?,
                        Next::Done(Ok(())) => return Ok(Went::Reached),
                        Next::Done(Err(why)) => {
                            return Err(format!("could not reach the target: {why}"));
                        }
                    }
                }
                Step::Need(n) => {
                    let at = self.got.len();
                    self.got.resize(n, 0);
                    let r = (&*out).read(&mut self.got[at..]);
                    match self.took(r, at)? {
                        Some(()) => {}
                        None => return Ok(Went::Wait),
                    }
                }
                Step::More => {
                    // An HTTP header: peek, then take only what is the header's.
                    let at = self.got.len();
                    self.got.resize(at + http::MAX_HEADER, 0);
                    let r = crate::sys::recv(out.as_raw_fd(), &mut self.got[at..], true);
                    let seen = match r {
                        Ok(0) => return Err("closed the connection during the handshake".into()),
                        Ok(k) => k,
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                            self.got.truncate(at);
                            return Ok(Went::Wait);
                        }
                        Err(e) => return Err(crate::error::plain(&e)),
                    };
                    self.got.truncate(at + seen);
                    let take = match self.machine.length(&self.got) {
                        Ok(Step::Done((), used)) => used - at,
                        _ => seen,
                    };
                    self.got.truncate(at);
                    self.got.resize(at + take, 0);
                    let r = (&*out).read(&mut self.got[at..]);
                    self.took(r, at)?;
                }
            }
        }
    }

    /// After a read into `got[at..]`: `None` when nothing was there yet.
    fn took(&mut self, r: io::Result<usize>, at: usize) -> Result<Option<()>, String> {
        match r {
            Ok(0) => Err("closed the connection during the handshake".into()),
            Ok(k) => {
                self.got.truncate(at + k);
                Ok(Some(()))
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                self.got.truncate(at);
                Ok(None)
            }
            Err(e) => Err(crate::error::plain(&e)),
        }
    }
}

/// A message is a few bytes (an HTTP request a few hundred) on a fresh connection, which
/// always has room for them: a short write means the proxy is gone.
fn send(out: &Stream, msg: &[u8]) -> Result<(), String> {
    match (&*out).write(msg) {
        Ok(n) if n == msg.len() => Ok(()),
        Ok(_) => Err("took only part of a message".into()),
        Err(e) => Err(crate::error::plain(&e)),
    }
}

/// A `-vv` line in words.
fn tell(said: &str) {
    if narrate::narrating() {
        narrate::emit(format_args!("{said}"));
    }
}
