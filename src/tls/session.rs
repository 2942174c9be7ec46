//! The relay between stdio and a TLS connection (`connect --tls`, `listen --tls`): the same
//! ending rules as the plain relay (relay/stream.rs), with TLS's own on top. Bytes are copied
//! (no splice or sendfile: they are encrypted on the way), through rustls's buffers, on one
//! thread that polls the socket both ways, so a peer that sends while we send never stalls
//! us. A stdin thread for the whole process reads stdin in chunks (it outlives a session, so
//! `listen -k` hands what was typed between clients to the next one).
//!
//! TLS semantics: stdin EOF sends close_notify, then shuts TCP's sending side, and keeps
//! reading until the peer's close_notify (TLS 1.3 keeps both directions apart; a TLS 1.2
//! peer answers with its own at once). A TCP EOF without the peer's close_notify may be a
//! truncation: it ends the session with an error (exit 1). The handshake is bounded by a
//! timeout.

use std::io::{self, IsTerminal, Read, Write};
use std::net::Shutdown;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TryRecvError};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow};
use rustls::Connection;
use socket2::Socket;

use super::report;
use super::stage::{Tap, Tapped, sentence};
use super::verify::{self, Checked};
use crate::error;
use crate::interrupt::{self, Live};
use crate::narrate;
use crate::relay::ending::Due;
use crate::relay::session::{stream_ended, stream_reports};
use crate::relay::stream;
use crate::relay::{End, Ending};
use crate::socket;
use crate::sys;

/// Which end of the handshake we are.
pub enum Role {
    /// A client, with what its verifier saw.
    Client(Arc<Checked>),
    /// A server, reporting a client certificate if it asked for one.
    Server,
}

/// What the stdin thread hands over.
enum Chunk {
    Data(Vec<u8>),
    Eof,
    Failed(io::Error),
}

/// The stdin thread's end of the pipe, made at the first session and kept.
struct Stdin {
    chunks: Receiver<Chunk>,
    wake: UnixStream,
    at_eof: bool,
    /// What a session ended before rustls took (`listen -k`): the next client gets it first,
    /// as the plain relay hands stdin on, so nothing typed between clients is lost.
    carry: Vec<u8>,
}

/// Runs TLS sessions over sockets handed to it, one at a time.
pub struct TlsRelay {
    opts: Ending,
    handshake_timeout: Duration,
    stdin: Option<Stdin>,
    stdin_is_tty: bool,
    /// `--json`: the session's summary object instead of `-v`'s closing lines.
    json: bool,
    /// `--progress`: the live line while each session runs (progress.rs).
    progress: bool,
}

const CHUNK: usize = 64 * 1024;

impl TlsRelay {
    pub fn new(opts: Ending, handshake_timeout: Duration) -> Self {
        TlsRelay {
            opts,
            handshake_timeout,
            stdin: None,
            stdin_is_tty: io::stdin().is_terminal(),
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

    fn stdin(&mut self) -> Result<&mut Stdin> {
        if self.stdin.is_none() {
            let (wake_rx, wake_tx) = UnixStream::pair()?;
            wake_tx.set_nonblocking(true)?;
            wake_rx.set_nonblocking(true)?;
            // Two chunks in flight: enough to keep the socket busy, little to hold.
            let (tx, rx) = mpsc::sync_channel(2);
            thread::Builder::new()
                .name("stdin".into())
                .spawn(move || stdin_loop(&tx, &wake_tx))?;
            self.stdin = Some(Stdin {
                chunks: rx,
                wake: wake_rx,
                at_eof: false,
                carry: Vec::new(),
            });
        }
        Ok(self.stdin.as_mut().expect("made above"))
    }

    /// Handshakes over `sock` as `role`, then relays stdio over it until the session ends.
    /// The socket is left to the caller to close.
    pub fn session(&mut self, sock: &Socket, conn: Connection, role: &Role) -> Result<End> {
        let started = Instant::now();
        sock.set_nonblocking(true)?;
        // Plaintext counters the signal thread and the --progress line read, as a plain
        // session publishes its own.
        let live = Live::new(Arc::new(AtomicU64::new(0)));
        interrupt::publish(&live);
        let (peer, line) = stream_reports(sock, self.json, self.progress);
        let uplink = !self.opts.recv_only;
        if uplink {
            self.stdin()?;
        }
        let mut s = Session {
            sock,
            conn,
            role,
            opts: self.opts,
            stdin: if uplink { self.stdin.as_mut() } else { None },
            stdin_is_tty: self.stdin_is_tty,
            started,
            handshake_deadline: started + self.handshake_timeout,
            handshaken: false,
            sent: 0,
            received: 0,
            last_moved: started,
            stdin_eof_at: None,
            held: Vec::new(),
            held_at: 0,
            close_sent: false,
            shut: false,
            peer_closed: false,
            tcp_eof: false,
            tap: Tap::new(""),
            live,
        };
        if let Some(i) = s.stdin.as_deref_mut() {
            s.held = std::mem::take(&mut i.carry);
        }
        if s.stdin.as_ref().is_some_and(|i| i.at_eof) {
            // stdin ended during an earlier session (`listen -k`): this one starts half-closed.
            s.stdin_eof_at = Some(started);
        }
        let result = match s.run() {
            Err(e) if e.is::<StdoutClosed>() => Ok(End::StdoutClosed),
            r => r,
        };
        if result.is_ok() && !s.close_sent && !s.opts.no_shutdown && s.handshaken {
            // A session that ends with our side still open (--recv-only, a terminal's stdin,
            // --quit-after) still says goodbye: the peer may be waiting for our close_notify.
            s.conn.send_close_notify();
            s.close_sent = true;
            s.flush().ok();
        }
        if s.held_at < s.held.len()
            && let Some(i) = s.stdin.as_deref_mut()
        {
            i.carry = s.held.split_off(s.held_at);
        }
        let totals = stream::Totals {
            sent: s.sent,
            received: s.received,
            elapsed: started.elapsed(),
            // What a failed session's `-v` lines show does not depend on it.
            end: *result.as_ref().unwrap_or(&End::Closed),
        };
        if result.is_err() {
            // Whatever the error, the peer hears the end now (an alert, if rustls queued one).
            s.flush().ok();
        }
        drop(line);
        interrupt::retire();
        match &result {
            Ok(_) => {
                let tls = report::json(&s.conn)
                    .raw("close_notify", s.peer_closed.to_string())
                    .text();
                stream_ended(sock, peer.as_ref(), &totals, self.json, Some(tls));
            }
            // A failed session has no object: its error line is the account, as on TCP; at
            // -v its counts still say how far it got.
            Err(_) if !self.json => stream::report(sock, &totals, true),
            Err(_) => {}
        }
        result
    }
}

/// The stdin thread: chunks of stdin, each followed by a byte on the wake pipe.
fn stdin_loop(tx: &SyncSender<Chunk>, wake: &UnixStream) {
    let mut stdin = sys::stdio_file(0);
    loop {
        let mut buf = vec![0u8; CHUNK];
        let chunk = match stdin.read(&mut buf) {
            Ok(0) => Chunk::Eof,
            Ok(n) => {
                buf.truncate(n);
                Chunk::Data(buf)
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => Chunk::Failed(e),
        };
        let last = !matches!(chunk, Chunk::Data(_));
        if tx.send(chunk).is_err() {
            return;
        }
        // A full pipe already holds a wake-up; losing this byte loses nothing.
        let _ = (&*wake).write(b"!");
        if last {
            return;
        }
    }
}

struct Session<'a> {
    sock: &'a Socket,
    conn: Connection,
    role: &'a Role,
    opts: Ending,
    stdin: Option<&'a mut Stdin>,
    stdin_is_tty: bool,
    started: Instant,
    handshake_deadline: Instant,
    handshaken: bool,
    sent: u64,
    received: u64,
    last_moved: Instant,
    stdin_eof_at: Option<Instant>,
    /// A chunk of stdin rustls has not taken all of yet, and how much it has.
    held: Vec<u8>,
    held_at: usize,
    /// close_notify queued (stdin EOF).
    close_sent: bool,
    /// TCP's sending side shut after close_notify went out.
    shut: bool,
    /// The peer's close_notify arrived.
    peer_closed: bool,
    /// TCP EOF from the peer.
    tcp_eof: bool,
    /// `-vv`: the records each way (stage.rs's tap, shared with the event loops).
    tap: Option<Box<Tap>>,
    /// The counters published for the signal thread and `--progress`.
    live: Arc<Live>,
}

impl Session<'_> {
    fn uplink_done(&self) -> bool {
        self.stdin.as_ref().is_none_or(|s| s.at_eof) && self.held_at == self.held.len()
    }

    fn run(&mut self) -> Result<End> {
        loop {
            self.take_stdin()?;
            self.flush()?;
            if self.close_sent && !self.shut && !self.conn.wants_write() {
                self.shut = true;
                socket::shutdown(self.sock, Shutdown::Write).ok();
            }
            if self.peer_closed
                && self
                    .opts
                    .peer_eof_ends_now(self.uplink_done(), self.stdin_is_tty)
            {
                return Ok(End::Closed);
            }
            let now = Instant::now();
            if !self.handshaken && now >= self.handshake_deadline {
                return Err(anyhow!(
                    "TLS handshake: no answer within {} (is the peer speaking TLS?)",
                    humantime::format_duration(self.handshake_deadline - self.started)
                ));
            }
            // The relay's own deadlines are relay/ending.rs's, as on a plain session; the
            // handshake's bound is TLS's.
            let wait = match self.opts.due(now, self.stdin_eof_at, self.last_moved)? {
                Due::Ended(end) => return Ok(end),
                Due::Wait(t) => t,
            };
            let handshake_in =
                (!self.handshaken).then(|| self.handshake_deadline.saturating_duration_since(now));
            let wait = [wait, handshake_in].into_iter().flatten().min();
            let ms = wait.map_or(-1, |d| i32::try_from(d.as_millis() + 1).unwrap_or(i32::MAX));
            let mut events = 0;
            if !self.tcp_eof {
                events |= libc::POLLIN;
            }
            if self.conn.wants_write() {
                events |= libc::POLLOUT;
            }
            let wake_fd = match &self.stdin {
                Some(s) if !s.at_eof && self.can_take_input() => s.wake.as_raw_fd(),
                _ => -1,
            };
            let mut fds = [
                libc::pollfd {
                    fd: if events == 0 {
                        -1
                    } else {
                        self.sock.as_raw_fd()
                    },
                    events,
                    revents: 0,
                },
                libc::pollfd {
                    fd: wake_fd,
                    events: libc::POLLIN,
                    revents: 0,
                },
            ];
            match sys::poll(&mut fds, ms) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(anyhow!("poll: {}", error::plain(&e))),
                Ok(_) => {}
            }
            if fds[1].revents != 0
                && let Some(s) = &self.stdin
            {
                let mut drain = [0u8; 64];
                let _ = (&s.wake).read(&mut drain);
            }
            if fds[0].revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0 {
                self.receive()?;
            }
        }
    }

    /// More plaintext is taken only once rustls has sent what it holds: stdin waits, not
    /// memory.
    fn can_take_input(&self) -> bool {
        self.handshaken && !self.conn.wants_write() && !self.close_sent
    }

    /// Moves what the stdin thread has read into the TLS connection; at its EOF (once the
    /// handshake is done: a close_notify during it would end the handshake) the close_notify.
    fn take_stdin(&mut self) -> Result<()> {
        self.take_chunks()?;
        if self.stdin_eof_at.is_some()
            && self.held_at == self.held.len()
            && self.handshaken
            && !self.close_sent
            && !self.opts.no_shutdown
        {
            narrate::info(format_args!(
                "stdin EOF after {} bytes: sending close_notify",
                self.sent
            ));
            self.conn.send_close_notify();
            self.close_sent = true;
        }
        Ok(())
    }

    fn take_chunks(&mut self) -> Result<()> {
        while self.can_take_input() {
            // rustls takes at most its buffer limit at a time: the rest waits here.
            if self.held_at < self.held.len() {
                let n = self
                    .conn
                    .writer()
                    .write(&self.held[self.held_at..])
                    .map_err(|e| anyhow!("TLS: {e}"))?;
                self.held_at += n;
                self.sent += n as u64;
                self.live.sent.fetch_add(n as u64, Ordering::Relaxed);
                self.last_moved = Instant::now();
                if n == 0 {
                    return Ok(());
                }
                continue;
            }
            let Some(stdin) = self.stdin.as_mut() else {
                return Ok(());
            };
            if stdin.at_eof {
                return Ok(());
            }
            match stdin.chunks.try_recv() {
                Ok(Chunk::Data(data)) => {
                    self.held = data;
                    self.held_at = 0;
                }
                Ok(Chunk::Eof) | Err(TryRecvError::Disconnected) => {
                    stdin.at_eof = true;
                    self.stdin_eof_at = Some(Instant::now());
                }
                Ok(Chunk::Failed(e)) => {
                    return Err(anyhow!("reading stdin: {}", error::plain(&e)));
                }
                Err(TryRecvError::Empty) => return Ok(()),
            }
        }
        Ok(())
    }

    /// Sends what rustls holds, as far as the socket takes it.
    fn flush(&mut self) -> Result<()> {
        while self.conn.wants_write() {
            let mut io = Tapped {
                sock: self.sock,
                tap: self.tap.as_deref_mut(),
                handshaking: !self.handshaken,
            };
            match self.conn.write_tls(&mut io) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    return Err(match e.raw_os_error() {
                        Some(libc::EPIPE | libc::ECONNRESET) => anyhow!(
                            "the peer closed the connection: some of the {} bytes sent may not have been delivered",
                            self.sent
                        ),
                        _ => anyhow!("sending to the peer: {}", error::plain(&e)),
                    });
                }
            }
        }
        Ok(())
    }

    /// Reads what the socket has, decrypts it and writes the plaintext to stdout.
    fn receive(&mut self) -> Result<()> {
        loop {
            let mut io = Tapped {
                sock: self.sock,
                tap: self.tap.as_deref_mut(),
                handshaking: !self.handshaken,
            };
            match self.conn.read_tls(&mut io) {
                Ok(0) => {
                    self.tcp_eof = true;
                }
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(anyhow!(
                        "receiving from the peer: {} (after {} bytes)",
                        error::plain(&e),
                        self.received
                    ));
                }
            }
            break;
        }
        let state = match self.conn.process_new_packets() {
            Ok(state) => state,
            Err(e) => return Err(self.tls_error(&e)),
        };
        if !self.handshaken && !self.conn.is_handshaking() {
            self.handshaken = true;
            if self.conn.wants_write()
                && let Some(t) = self.tap.as_deref_mut()
            {
                t.last_flight();
            }
            self.on_handshake();
        }
        let mut plain = state.plaintext_bytes_to_read();
        let mut buf = vec![0u8; CHUNK];
        while plain > 0 {
            let n = match self.conn.reader().read(&mut buf) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(anyhow!("TLS: {e}")),
            };
            if n == 0 {
                break;
            }
            plain = plain.saturating_sub(n);
            self.received += n as u64;
            self.live.received.fetch_add(n as u64, Ordering::Relaxed);
            self.last_moved = Instant::now();
            if !self.opts.send_only {
                let mut out = sys::stdio_file(1);
                if let Err(e) = out.write_all(&buf[..n]) {
                    if error::is_broken_pipe(&e) {
                        return Err(StdoutClosed.into());
                    }
                    return Err(anyhow!("writing to stdout: {}", error::plain(&e)));
                }
            }
        }
        if state.peer_has_closed() && !self.peer_closed {
            self.peer_closed = true;
            narrate::info(format_args!(
                "the peer sent close_notify (EOF after {} bytes)",
                self.received
            ));
        }
        if self.tcp_eof && !self.peer_closed {
            if !self.handshaken {
                return Err(anyhow!(
                    "TLS handshake: the peer closed the connection before it finished (is it speaking TLS?)"
                ));
            }
            return Err(anyhow!(
                "TLS: the peer closed the connection without close_notify after {} bytes: the data may be truncated",
                self.received
            ));
        }
        Ok(())
    }

    fn on_handshake(&self) {
        report::handshake(&self.conn, self.started.elapsed());
        match self.role {
            Role::Client(checked) => {
                let seen = checked.seen();
                report::chain("server", &seen.chain, &seen.verdict);
            }
            Role::Server => {
                if let Some(certs) = self.conn.peer_certificates() {
                    report::chain("client", certs, "verified against --client-ca");
                }
            }
        }
    }

    /// The one line for a TLS failure: the certificate's problem, or what the peer did.
    fn tls_error(&self, e: &rustls::Error) -> anyhow::Error {
        if let Role::Client(checked) = self.role
            && let Some(line) = verify::refusal(e, checked)
        {
            return anyhow!(line);
        }
        let peer_is = match self.role {
            Role::Client(_) => "server",
            Role::Server => "client",
        };
        anyhow!(sentence(e, peer_is, self.handshaken))
    }
}

/// Stdout's reader went away: a normal end for a filter (`| head`).
#[derive(Debug)]
pub struct StdoutClosed;

impl std::fmt::Display for StdoutClosed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("stdout closed")
    }
}

impl std::error::Error for StdoutClosed {}
