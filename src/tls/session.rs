//! TLS for the relay of `connect --tls` and `listen --tls`: the handshake, then the relay's
//! one byte-stream session (relay/stream.rs) over a TLS link, so half-close, `-q`, `-w`,
//! `--no-shutdown`, the counts, `--json`/`--progress` and the `-k` hand-off of stdin are the
//! plain relay's, written once. What is TLS's is here: bytes are plaintext on our side of
//! rustls and are copied through it (no splice or sendfile: they are encrypted on the way);
//! stdin EOF sends close_notify, then shuts TCP's sending side, and the session reads on
//! until the peer's close_notify (TLS 1.3 keeps both directions apart; a TLS 1.2 peer
//! answers with its own at once); a TCP EOF without the peer's close_notify may be a
//! truncation and ends the session with an error (exit 1); the handshake is bounded by a
//! timeout; `-vv` narrates each record (stage.rs's tap).
//!
//! The relay's two threads share one rustls connection behind a mutex: the session's thread
//! reads and decrypts, the stdin thread encrypts and sends. Neither waits on the socket while
//! holding it, so a peer that sends while we send never stalls either direction.

use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::os::fd::AsRawFd;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow};
use rustls::Connection;
use socket2::Socket;

use super::report;
use super::stage::{Tap, Tapped, sentence};
use super::verify::{self, Checked};
use crate::error;
use crate::interrupt;
use crate::narrate::{self, Flow};
use crate::relay::link::{self, Dup, Held, Link, Said};
use crate::relay::session::{stream_ended, stream_reports};
use crate::relay::stream::ByteRelay;
use crate::relay::{End, Ending, Wire};
use crate::socket;
use crate::sys;

/// Which end of the handshake we are.
#[derive(Clone)]
pub enum Role {
    /// A client, with what its verifier saw.
    Client(Arc<Checked>),
    /// A server, reporting a client certificate if it asked for one.
    Server,
}

/// At most this much plaintext is handed to rustls per send: a few records' worth, so one
/// send does not hold a burst in user space.
const SEND_CHUNK: usize = 64 * 1024;

/// Runs TLS sessions over sockets handed to it, one at a time.
pub struct TlsRelay {
    /// The plain relay's session loop, kept across sessions (`listen -k`): its stdin thread
    /// carries what was typed between clients to the next one.
    relay: ByteRelay,
    no_shutdown: bool,
    handshake_timeout: Duration,
    /// `--json`: the session's summary object instead of `-v`'s closing lines.
    json: bool,
    /// `--progress`: the live line while each session runs (progress.rs).
    progress: bool,
}

impl TlsRelay {
    /// Sessions ending as `opts` says, with the wire stages `wire` (`--crlf`, `-x`) on the
    /// plaintext, each handshake bounded by `handshake_timeout`.
    pub fn new(opts: Ending, wire: Wire, handshake_timeout: Duration) -> Self {
        TlsRelay {
            relay: ByteRelay::new(opts, wire),
            no_shutdown: opts.no_shutdown,
            handshake_timeout,
            json: false,
            progress: false,
        }
    }

    /// End each session with its `--json` object (relay/summary.rs's, with a `tls` object).
    #[must_use]
    pub fn json(mut self, on: bool) -> Self {
        self.json = on;
        self
    }

    /// Keep the live `--progress` line on stderr while each session runs.
    #[must_use]
    pub fn progress(mut self, on: bool) -> Self {
        self.progress = on;
        self
    }

    /// Handshakes over `sock` as `role`, then relays stdio over it until the session ends.
    /// The socket is left to the caller to close.
    pub fn session(&mut self, sock: &Socket, conn: Connection, role: &Role) -> Result<End> {
        let started = Instant::now();
        sock.set_nonblocking(true)?;
        let (peer, line) = stream_reports(sock, self.json, self.progress);
        let link = TlsLink {
            sock,
            shared: Arc::new(Shared {
                role: role.clone(),
                no_shutdown: self.no_shutdown,
                inner: Mutex::new(Inner {
                    conn,
                    tap: Tap::new(""),
                    handshaken: false,
                    sent: 0,
                    received: 0,
                    held: true,
                    close_sent: false,
                    peer_closed: false,
                    tcp_eof: false,
                }),
            }),
        };
        let result = link
            .handshake(started, self.handshake_timeout)
            .and_then(|()| self.relay.session(&link));
        drop(line);
        match result {
            Ok(totals) => {
                let tls = {
                    let inner = link.shared.lock();
                    report::json(&inner.conn)
                        .raw("close_notify", inner.peer_closed.to_string())
                        .text()
                };
                stream_ended(sock, peer.as_ref(), &totals, self.json, Some(tls));
                Ok(totals.end)
            }
            Err(e) => {
                // Whatever the error, the peer hears the end now (an alert, if rustls queued
                // one). A failed session has no object: its error line is the account.
                link.shared.flush_now(sock).ok();
                interrupt::retire();
                Err(e)
            }
        }
    }
}

/// A TLS connection as the relay's link: the session's thread holds one on the caller's
/// socket, the stdin thread one on its own descriptor (`Dup`), both on one rustls
/// connection.
struct TlsLink<S> {
    sock: S,
    shared: Arc<Shared>,
}

struct Shared {
    role: Role,
    /// `--no-shutdown`: our side never says close_notify.
    no_shutdown: bool,
    inner: Mutex<Inner>,
}

struct Inner {
    conn: Connection,
    /// `-vv`: the records each way (stage.rs's tap, shared with the event loops).
    tap: Option<Box<Tap>>,
    handshaken: bool,
    /// Plaintext rustls took from us, and gave us.
    sent: u64,
    received: u64,
    /// rustls may hold decrypted plaintext (or the peer's close_notify) the socket will not
    /// announce again: the session reads before it waits.
    held: bool,
    close_sent: bool,
    /// The peer's close_notify arrived.
    peer_closed: bool,
    /// TCP EOF from the peer.
    tcp_eof: bool,
}

impl Inner {
    /// Hands rustls's queued ciphertext to the socket until it is all gone or the socket is
    /// full (WouldBlock): true once nothing is queued.
    fn send_queued(&mut self, sock: &Socket) -> io::Result<bool> {
        while self.conn.wants_write() {
            let mut io = Tapped {
                sock,
                tap: self.tap.as_deref_mut(),
                handshaking: !self.handshaken,
            };
            match self.conn.write_tls(&mut io) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn peer_is(&self) -> &'static str {
        match self.role {
            Role::Client(_) => "server",
            Role::Server => "client",
        }
    }

    /// The one line for a TLS failure: the certificate's problem, or what the peer did.
    fn tls_error(&self, e: &rustls::Error, handshaken: bool) -> String {
        if let Role::Client(checked) = &self.role
            && let Some(line) = verify::refusal(e, checked)
        {
            return line;
        }
        sentence(e, self.peer_is(), handshaken)
    }

    /// What rustls holds goes out, as far as the socket takes it now.
    fn flush_now(&self, sock: &Socket) -> io::Result<bool> {
        let mut inner = self.lock();
        inner.send_queued(sock)
    }

    /// What rustls holds goes out, waiting for room (not holding the connection meanwhile,
    /// so the session's thread reads on).
    fn flush_all(&self, sock: &Socket) -> io::Result<()> {
        while !self.flush_now(sock)? {
            wait(sock.as_raw_fd(), libc::POLLOUT, -1)?;
        }
        Ok(())
    }

    /// `-v`: what the handshake settled and the peer's chain.
    fn on_handshake(&self, conn: &Connection, took: Duration) {
        report::handshake(conn, took);
        match &self.role {
            Role::Client(checked) => {
                let seen = checked.seen();
                report::chain("server", &seen.chain, &seen.verdict);
            }
            Role::Server => {
                if let Some(certs) = conn.peer_certificates() {
                    report::chain("client", certs, "verified against --client-ca");
                }
            }
        }
    }
}

impl<S: Held> TlsLink<S> {
    /// The handshake, within `bound` of `started`; on failure the one line that says why.
    fn handshake(&self, started: Instant, bound: Duration) -> Result<()> {
        let (s, sock) = (&*self.shared, self.sock.sock());
        let deadline = started + bound;
        loop {
            let (done, wants_write) = {
                let mut inner = s.lock();
                let drained = inner.send_queued(sock).map_err(|e| relay_error(&e))?;
                if inner.handshaken && drained {
                    return Ok(());
                }
                (inner.handshaken, !drained)
            };
            let now = Instant::now();
            if now >= deadline {
                return Err(anyhow!(
                    "TLS handshake: no answer within {} (is the peer speaking TLS?)",
                    humantime::format_duration(bound)
                ));
            }
            let ms = i32::try_from((deadline - now).as_millis() + 1).unwrap_or(i32::MAX);
            // Done, with our last flight still queued: only room to send it is waited for
            // (what the peer sends meanwhile is the session's to read).
            let events = match (done, wants_write) {
                (true, _) => libc::POLLOUT,
                (false, true) => libc::POLLIN | libc::POLLOUT,
                (false, false) => libc::POLLIN,
            };
            let revents = wait(sock.as_raw_fd(), events, ms)
                .map_err(|e| anyhow!("poll: {}", error::plain(&e)))?;
            if revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) == 0 {
                continue;
            }
            if done {
                continue;
            }
            let mut inner = s.lock();
            let inner = &mut *inner;
            let mut io = Tapped {
                sock,
                tap: inner.tap.as_deref_mut(),
                handshaking: true,
            };
            match inner.conn.read_tls(&mut io) {
                Ok(0) => {
                    return Err(anyhow!(
                        "TLS handshake: the peer closed the connection before it finished (is \
                         it speaking TLS?)"
                    ));
                }
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                    ) =>
                {
                    continue;
                }
                Err(e) => {
                    return Err(anyhow!(
                        "receiving from the peer: {} (after 0 bytes)",
                        error::plain(&e)
                    ));
                }
            }
            if let Err(e) = inner.conn.process_new_packets() {
                return Err(anyhow!(s.tls_error(&e, false)));
            }
            if !inner.conn.is_handshaking() {
                inner.handshaken = true;
                if inner.conn.wants_write()
                    && let Some(t) = inner.tap.as_deref_mut()
                {
                    t.last_flight();
                }
                s.on_handshake(&inner.conn, started.elapsed());
            }
        }
    }
}

/// The sentence of a link error, for a failure before the relay runs.
fn relay_error(e: &io::Error) -> anyhow::Error {
    match link::said(e) {
        Some(text) => anyhow!("{text}"),
        None => anyhow!("sending to the peer: {}", error::plain(e)),
    }
}

fn said(text: String) -> io::Error {
    io::Error::other(Said(text))
}

/// poll(2) on one descriptor for `events`, `ms` at most (-1: no bound); its revents.
fn wait(fd: i32, events: libc::c_short, ms: i32) -> io::Result<libc::c_short> {
    let mut p = libc::pollfd {
        fd,
        events,
        revents: 0,
    };
    match sys::poll(std::slice::from_mut(&mut p), ms) {
        Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(0),
        Err(e) => Err(e),
        Ok(_) => Ok(p.revents),
    }
}

impl<S: Held> Link for TlsLink<S> {
    fn socket(&self) -> &Socket {
        self.sock.sock()
    }

    fn zero_copy(&self) -> bool {
        false
    }

    /// Plaintext to rustls, then its ciphertext to the socket, all of it before returning:
    /// the stdin thread may block on stdin next, and nothing may wait in rustls meanwhile.
    fn send(&self, _flow: &mut Option<Flow>, data: &[u8]) -> io::Result<usize> {
        let s = &*self.shared;
        let n = {
            let mut inner = s.lock();
            let n = inner
                .conn
                .writer()
                .write(&data[..data.len().min(SEND_CHUNK)])?;
            inner.sent += n as u64;
            n
        };
        match s.flush_all(self.sock.sock()) {
            Err(e) if gone(&e) => Err(said(format!(
                "the peer closed the connection: some of the {} bytes sent may not have been \
                 delivered",
                s.lock().sent
            ))),
            r => r.map(|()| n),
        }
    }

    fn recv(&self, _flow: &mut Option<Flow>, buf: &mut [u8]) -> io::Result<usize> {
        let (s, sock) = (&*self.shared, self.sock.sock());
        let mut inner = s.lock();
        let inner = &mut *inner;
        loop {
            match inner.conn.reader().read(buf) {
                Ok(0) if !buf.is_empty() => {
                    inner.held = false;
                    if !inner.peer_closed {
                        inner.peer_closed = true;
                    }
                    return Ok(0);
                }
                Ok(n) => {
                    // There may be more, or a close_notify right behind: look again before
                    // waiting.
                    inner.held = true;
                    inner.received += n as u64;
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                    inner.held = false;
                    return Err(truncated(inner.received));
                }
                Err(e) => return Err(said(format!("TLS: {e}"))),
            }
            inner.held = false;
            if inner.tcp_eof {
                return Err(truncated(inner.received));
            }
            let mut io = Tapped {
                sock,
                tap: inner.tap.as_deref_mut(),
                handshaking: false,
            };
            match inner.conn.read_tls(&mut io) {
                Ok(0) => inner.tcp_eof = true,
                Ok(_) => {}
                Err(e) => return Err(e),
            }
            if let Err(e) = inner.conn.process_new_packets() {
                return Err(said(s.tls_error(&e, true)));
            }
            // A KeyUpdate answer, a TLS 1.2 peer's alert: what rustls queued goes now, as far
            // as the socket takes it (the stdin thread's next send takes the rest).
            inner.send_queued(sock)?;
        }
    }

    fn buffered(&self) -> bool {
        self.shared.lock().held
    }

    fn shut_write(&self) -> io::Result<()> {
        let (s, sock) = (&*self.shared, self.sock.sock());
        {
            let mut inner = s.lock();
            narrate::info(format_args!(
                "stdin EOF after {} bytes: sending close_notify",
                inner.sent
            ));
            inner.conn.send_close_notify();
            inner.close_sent = true;
        }
        // Our close_notify is data: a peer that has closed its socket answers it with a
        // reset. What it sent before is still ours to read, and the session's reads say
        // how it ended (its close_notify, a truncation, the reset): not this.
        match s
            .flush_all(sock)
            .and_then(|()| socket::shutdown(sock, Shutdown::Write))
        {
            Err(e) if gone(&e) => Ok(()),
            r => r,
        }
    }

    fn peer_end(&self) -> (&'static str, &'static str) {
        (
            "close_notify read: the peer's end of TLS",
            "the peer sent close_notify",
        )
    }

    /// The stdin thread's handle may outlive the session while stdin blocks: its own
    /// descriptor, as the plain relay's.
    fn for_stdin(&self) -> Result<Box<dyn Link>> {
        Ok(Box::new(TlsLink {
            sock: Dup(link::dup_for_stdin(self.sock.sock())?),
            shared: self.shared.clone(),
        }))
    }

    fn release(self: Box<Self>) {
        self.sock.release();
    }

    /// A session that ends well with our side still open (--recv-only, a terminal's stdin,
    /// --quit-after) still says goodbye: the peer may be waiting for our close_notify.
    fn finish(&self, clean: bool) {
        let s = &*self.shared;
        let mut inner = s.lock();
        if clean && !inner.close_sent && !s.no_shutdown && inner.handshaken {
            inner.conn.send_close_notify();
            inner.close_sent = true;
        }
        inner.send_queued(self.sock.sock()).ok();
    }
}

/// The connection is gone under a write: the peer reset it, or closed before.
fn gone(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotConnected
        || matches!(e.raw_os_error(), Some(libc::EPIPE | libc::ECONNRESET))
}

/// The peer's TCP EOF came without its close_notify.
fn truncated(received: u64) -> io::Error {
    said(format!(
        "TLS: the peer closed the connection without close_notify after {received} bytes: the \
         data may be truncated"
    ))
}
