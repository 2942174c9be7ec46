//! The one relay pipeline `connect` and `listen` run, whatever the transport: a session
//! between stdio and a socket is a byte stream (TCP, Unix stream: stream.rs) or a stream of
//! datagrams (UDP, Unix datagram: dgram.rs), and either way it goes through the same wire
//! stages (wire.rs) and ends by the same options (ending.rs). The caller makes and closes the
//! socket; this file picks the session kind, runs it and reports it (`-v`).

use std::time::Instant;

use anyhow::Result;
use socket2::{SockAddr, Socket};

use super::dgram::{self, DgramRelay, Peers};
use super::ending::{End, Ending};
use super::link::Plain;
use super::stream::{self, ByteRelay};
use super::summary;
use super::wire::Wire;
use crate::interrupt;
use crate::json;
use crate::narrate;
use crate::progress;

/// What a session carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    /// A byte stream: TCP or a Unix stream socket.
    Bytes,
    /// Datagrams: UDP or a Unix datagram socket.
    Datagrams {
        /// `--lines`: one datagram per stdin line instead of one per read.
        lines: bool,
        /// A connected socket, or one answering whoever was heard from last.
        peers: Peers,
        /// `-q`: a quiet server does not announce its peers either.
        quiet: bool,
    },
}

/// Runs sessions one after another (`listen -k`), all with the same options and stages.
pub struct Relay {
    ending: Ending,
    wire: Wire,
    /// Made at the first byte-stream session and kept: its stdin thread carries what was
    /// typed between two clients over to the next one.
    bytes: Option<ByteRelay>,
    /// `--json`: the end-of-session summary as one JSON object (summary.rs) instead of -v's
    /// lines.
    json: bool,
    /// `--progress`: the live line while a session runs (progress.rs).
    progress: bool,
}

impl Relay {
    pub fn new(ending: Ending, wire: Wire) -> Self {
        Relay {
            ending,
            wire,
            bytes: None,
            json: false,
            progress: false,
        }
    }

    /// Report each session as one JSON object on stderr (`--json`).
    pub fn json(mut self, on: bool) -> Self {
        self.json = on;
        self
    }

    /// Keep the live `--progress` line on stderr while each session runs.
    pub fn progress(mut self, on: bool) -> Self {
        self.progress = on;
        self
    }

    /// Relays between stdio and `sock` until the session ends, then reports it (`-v`). The
    /// socket is left to the caller to close.
    pub fn session(&mut self, sock: &Socket, channel: Channel) -> Result<End> {
        match channel {
            Channel::Bytes => {
                let (ending, wire) = (self.ending, &self.wire);
                let relay = self
                    .bytes
                    .get_or_insert_with(|| ByteRelay::new(ending, wire.clone()));
                let (peer, line) = stream_reports(sock, self.json, self.progress);
                let totals = relay.session(&Plain(sock));
                // Erased before the summary, so the last line is the summary, whole.
                drop(line);
                let totals = totals?;
                stream_ended(sock, peer.as_ref(), &totals, self.json, None);
                Ok(totals.end)
            }
            Channel::Datagrams {
                lines,
                peers,
                quiet,
            } => {
                let started = Instant::now();
                if self.json {
                    // The kernel's drop count at a stop signal, read on a descriptor of its own.
                    let dup = sock.try_clone().ok();
                    let drops: interrupt::Drops =
                        Box::new(move || dup.as_ref().and_then(crate::socket::udp::kernel_drops));
                    let peer = json::address(sock.peer_addr().ok().as_ref());
                    interrupt::name_session(summary::head(sock, true), peer, Some(drops));
                }
                let line = self
                    .progress
                    .then(|| progress::transfer(progress::stdin_size()));
                let outcome = DgramRelay {
                    sock,
                    opts: self.ending,
                    lines,
                    peers,
                    quiet,
                    wire: &self.wire,
                }
                .run();
                drop(line);
                interrupt::retire();
                let (counts, end) = outcome?;
                interrupt::session_ended(counts.sent_bytes, counts.received_bytes);
                if self.json {
                    let o = summary::datagrams(sock, &counts, started.elapsed(), end);
                    narrate::json_line(&o.text());
                } else {
                    dgram::report(sock, &counts, started.elapsed());
                }
                Ok(end)
            }
        }
    }
}

/// What a byte-stream session (plain, or TLS's) sets up for its reports before it runs: with
/// `--json` the peer, named now (once the peer has closed, getpeername() has nobody to name),
/// and the session named for a stop signal's object; with `--progress` the live line.
pub fn stream_reports(
    sock: &Socket,
    json: bool,
    progress: bool,
) -> (Option<SockAddr>, Option<progress::Ticker>) {
    let peer = if json { sock.peer_addr().ok() } else { None };
    if json {
        let shown = json::address(peer.as_ref());
        interrupt::name_session(summary::head(sock, false), shown, None);
    }
    let line = progress.then(|| progress::transfer(progress::stdin_size()));
    (peer, line)
}

/// The account of a byte-stream session (plain, or TLS's) that ended well: its counts to the
/// signal thread, then the `--json` object (with TLS's nested `tls` object, `tls`) or `-v`'s
/// closing lines.
pub fn stream_ended(
    sock: &Socket,
    peer: Option<&SockAddr>,
    totals: &stream::Totals,
    json: bool,
    tls: Option<String>,
) {
    interrupt::session_ended(totals.sent, totals.received);
    if json {
        let o = summary::stream(sock, peer, totals);
        let o = match tls {
            Some(t) => o.raw("tls", t),
            None => o,
        };
        narrate::json_line(&o.text());
    } else {
        stream::report(sock, totals, tls.is_some());
    }
}
