//! TLS as a stage of a non-blocking, edge-triggered event loop: `TlsStream` holds a rustls
//! connection (either end) over a socket and reads and writes plaintext like a socket does,
//! `WouldBlock` included, so the server engine's connections and forward's pairs hold one in
//! place of a plain socket. The handshake is driven by the reads and writes readiness calls
//! for, bounded by a deadline the loop checks (`overdue`); our close sends close_notify; an
//! EOF without the peer's close_notify is kept as a possible truncation for the loop to
//! report. What the loop does with the bytes, and when, stays the loop's; connect and
//! listen run TLS on the relay's threads instead (session.rs's link), sharing the record
//! tap and the wording.
//!
//! Edge-triggered rules kept here: a read goes on until the caller's buffer is full or the
//! kernel says EAGAIN (rustls holds decrypted plaintext and reads the socket in pieces, so a
//! short read means what it means for a socket: nothing more is waiting), and ciphertext
//! the kernel would not take waits here until `send_held` on the next writable event.
//!
//! Accounting: the stage seals one record per write and keeps a ledger of the ciphertext
//! waiting for the kernel, so it knows how much plaintext each queued record carries: `unsent` is
//! exactly the plaintext accepted whose records are not in the kernel yet, and `unacked` (for
//! a reset) what the kernel took and the peer's TCP has not acknowledged (TCP_INFO).

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::os::fd::{AsFd, AsRawFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::Connection;
use socket2::SockRef;

use super::records::{self, Records};
use super::report;
use super::verify::{self, Checked};
use crate::narrate;
use crate::socket;

/// At most this much plaintext is handed to rustls per write: a little more than a
/// record's worth times a few, so one write does not hold a burst in user space.
const WRITE_CHUNK: usize = 64 * 1024;
/// Plaintext sealed per record once the handshake is done: TLS's largest fragment, so each
/// record queued is known to carry exactly the bytes one `writer().write` took.
const RECORD: usize = 16 * 1024;
/// Records in the kernel not yet known to be acknowledged before TCP_INFO is asked (then
/// twice what is left): a TCP_INFO call per this many records, not per write.
const FLIGHT_TRIM: usize = 64;

/// Records sealed before the stage copies each one out of rustls again: half the fewest
/// (AES-GCM's) after which rustls may slip a KeyUpdate of its own among ours.
const COPY_AFTER: u64 = 1 << 23;

/// Ciphertext waiting for the kernel: `len` bytes carrying `plain` bytes of the plaintext
/// written to us (0 for rustls's own messages: handshake, tickets, alerts). `bytes`: taken
/// out of rustls; None: still in rustls's queue, where records of ours wait uncopied when
/// nothing of its own is among them.
struct Chunk {
    len: usize,
    plain: u64,
    bytes: Option<Vec<u8>>,
}

/// What a server needs to speak TLS with each client it accepts.
#[derive(Clone)]
pub struct Accept {
    pub config: Arc<rustls::ServerConfig>,
    /// How long a client may take over its handshake before it is dropped.
    pub handshake: Duration,
}

impl Accept {
    /// The server's end of TLS over an accepted `sock`, `who` tagging its `-vv` records.
    pub fn wrap<S>(&self, sock: S, who: &str) -> Result<TlsStream<S>, String>
    where
        S: AsFd,
        for<'a> &'a S: Read + Write,
    {
        let conn =
            rustls::ServerConnection::new(self.config.clone()).map_err(|e| format!("TLS: {e}"))?;
        Ok(TlsStream::new(
            sock,
            Connection::Server(conn),
            self.handshake,
            who,
        ))
    }
}

/// What a client of a TLS server needs (forward --to-tls): its configuration, the name it
/// checks, what the verifier saw.
#[derive(Clone)]
pub struct Originate {
    pub config: Arc<rustls::ClientConfig>,
    pub name: rustls::pki_types::ServerName<'static>,
    pub checked: Arc<Checked>,
    pub handshake: Duration,
}

impl Originate {
    /// The client's end of TLS over a connected `sock`; on failure the socket comes back.
    pub fn wrap<S>(&self, sock: S, who: &str) -> Result<TlsStream<S>, (S, String)>
    where
        S: AsFd,
        for<'a> &'a S: Read + Write,
    {
        match rustls::ClientConnection::new(self.config.clone(), self.name.clone()) {
            Ok(conn) => Ok(TlsStream::client(
                sock,
                Connection::Client(conn),
                self.checked.clone(),
                self.handshake,
                who,
            )),
            Err(e) => Err((sock, format!("TLS: {e}"))),
        }
    }
}

/// A TLS connection over a non-blocking socket `S`.
pub struct TlsStream<S> {
    sock: S,
    inner: RefCell<Inner>,
}

struct Inner {
    conn: Connection,
    /// What the verifier saw (we are the client), for the refusal sentence and `-v`.
    checked: Option<Arc<Checked>>,
    started: Instant,
    bound: Duration,
    /// The handshake is over (and was reported).
    handshaken: bool,
    /// The `-v` lines of a handshake just finished, for the holder to print with its tag.
    news: Option<Vec<String>>,
    close_sent: bool,
    /// Our side ended during the handshake: close_notify waits for its end (sent during it,
    /// it would end the handshake).
    close_wanted: bool,
    /// Our side ends with a bare TCP FIN, no close_notify (forward passing on a truncation).
    bare_fin: bool,
    shut: bool,
    tcp_eof: bool,
    /// Plaintext accepted while the handshake was on, sealed into records when it ends
    /// (kept here, not in rustls, so each record's share of it is known).
    early: Vec<u8>,
    /// Ciphertext the kernel has not taken yet, in order (taken out of rustls first, then
    /// still in it), and how much of the first is out. rustls cannot say how much plaintext
    /// it holds, so the stage keeps this ledger.
    queue: VecDeque<Chunk>,
    front: usize,
    /// rustls's queue holds the ledger's records of ours and nothing of its own before them:
    /// a record sealed now may stay in rustls, its size known from `overhead`.
    clean: bool,
    /// Bytes a record adds to the plaintext it carries (header, tag, content type),
    /// measured on the first record sealed: the same for every record of a connection.
    overhead: Option<usize>,
    sealed: u64,
    /// Ciphertext the kernel has taken, in all.
    sent: u64,
    /// Records of our plaintext the kernel took and the peer may not have acknowledged yet:
    /// (`sent` at the record's end, its plaintext). Kept only where TCP_INFO can tell.
    flight: VecDeque<(u64, u64)>,
    flight_trim: usize,
    /// TCP_INFO's bytes_acked when the stage began (the SYN, and any proxy exchange before
    /// TLS): what it acknowledges of our ciphertext is counted from there. None: not TCP.
    acked_base: Option<u64>,
    /// The peer's TCP EOF came without its close_notify.
    truncated: bool,
    /// `-vv`: each record each way, told as it passes.
    tap: Option<Box<Tap>>,
}

/// The record narration of one connection: both directions and whose they are.
pub struct Tap {
    who: String,
    out: Records,
    inn: Records,
    /// Our next encrypted record is our last flight of the handshake (a TLS 1.3 client's
    /// Finished, a TLS 1.2 server's), queued when rustls already counts the handshake done.
    finishing: bool,
}

impl Tap {
    /// A tap at `-vv` (None otherwise); `who` tags its lines (empty: untagged).
    pub fn new(who: &str) -> Option<Box<Tap>> {
        narrate::narrating().then(|| {
            Box::new(Tap {
                who: who.to_string(),
                out: Records::default(),
                inn: Records::default(),
                finishing: false,
            })
        })
    }

    /// The handshake just ended with ciphertext of ours still queued: its first encrypted
    /// record is the last of our handshake.
    pub fn last_flight(&mut self) {
        self.finishing = true;
    }

    /// Tells the records `data` (bytes that just went `out`, or came in) completed.
    pub fn saw(&mut self, out: bool, data: &[u8], handshaking: bool) {
        let side = if out { &mut self.out } else { &mut self.inn };
        let was_tls = side.not_tls.is_none();
        let done = side.feed(data);
        let tag = if self.who.is_empty() {
            String::new()
        } else {
            format!("{} ", self.who)
        };
        // On the narration clock, as the calls are (not `seen`: a record is no kernel event,
        // and --trace keeps to calls and the kernel's).
        let stamp = || format!("{:>9}", narrate::stamp_ago(Duration::ZERO));
        for r in &done {
            let last_flight = out && r.encrypted && std::mem::take(&mut self.finishing);
            narrate::emit(format_args!(
                "{} {tag}{}",
                stamp(),
                records::describe(out, r, handshaking || last_flight)
            ));
        }
        if let (true, Some(first)) = (was_tls, side.not_tls) {
            narrate::emit(format_args!(
                "{} {tag}{}",
                stamp(),
                records::not_tls(out, first)
            ));
        }
    }
}

/// A socket as rustls's read_tls/write_tls see it, with the tap on the bytes.
pub struct Tapped<'a, S> {
    pub sock: S,
    pub tap: Option<&'a mut Tap>,
    pub handshaking: bool,
}

impl<S: Read> Read for Tapped<'_, S> {
    /// With the tap on, one record (or its header) at a time, so rustls processes each
    /// before the next arrives and the narration knows which ones were the handshake's.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let limit = self
            .tap
            .as_deref()
            .and_then(|t| t.inn.want())
            .map_or(buf.len(), |w| w.min(buf.len()));
        let n = self.sock.read(&mut buf[..limit])?;
        if let Some(t) = self.tap.as_deref_mut() {
            t.saw(false, &buf[..n], self.handshaking);
        }
        Ok(n)
    }
}

impl<S: Write> Write for Tapped<'_, S> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.sock.write(buf)?;
        if let Some(t) = self.tap.as_deref_mut() {
            t.saw(true, &buf[..n], self.handshaking);
        }
        Ok(n)
    }

    /// rustls hands its queued records over as one vector: one writev, as without the tap,
    /// so a flight's records do not go out as small writes that Nagle would hold back.
    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        let n = self.sock.write_vectored(bufs)?;
        if let Some(t) = self.tap.as_deref_mut() {
            let mut left = n;
            for b in bufs {
                let take = left.min(b.len());
                t.saw(true, &b[..take], self.handshaking);
                left -= take;
                if left == 0 {
                    break;
                }
            }
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.sock.flush()
    }
}

/// A failure of the TLS layer as an io::Error (InvalidData), its text the one line to log.
fn failure(text: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, text)
}

/// The one sentence for a rustls error: what the peer did, or what its certificate is.
/// `peer_is`: "client" or "server".
pub fn sentence(e: &rustls::Error, peer_is: &str, handshaken: bool) -> String {
    match e {
        rustls::Error::InvalidMessage(_) if !handshaken => format!(
            "TLS handshake: the {peer_is} did not answer in TLS ({e}): is it speaking plain text?"
        ),
        rustls::Error::AlertReceived(alert) => {
            format!("TLS: the {peer_is} refused the handshake with the alert {alert:?}")
        }
        rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented => {
            format!("TLS: the {peer_is}'s certificate: {e}")
        }
        _ => format!("TLS: {e}"),
    }
}

impl<S> TlsStream<S>
where
    S: AsFd,
    for<'a> &'a S: Read + Write,
{
    /// A server's end of TLS over an accepted `sock`; the handshake must end within `bound`.
    pub fn new(sock: S, conn: Connection, bound: Duration, who: &str) -> Self {
        let acked_base = socket::bytes_acked(sock.as_fd().as_raw_fd());
        TlsStream {
            sock,
            inner: RefCell::new(Inner {
                conn,
                checked: None,
                started: Instant::now(),
                bound,
                handshaken: false,
                news: None,
                close_sent: false,
                close_wanted: false,
                bare_fin: false,
                early: Vec::new(),
                queue: VecDeque::new(),
                front: 0,
                clean: false,
                overhead: None,
                sealed: 0,
                sent: 0,
                flight: VecDeque::new(),
                flight_trim: FLIGHT_TRIM,
                acked_base,
                shut: false,
                tcp_eof: false,
                truncated: false,
                tap: Tap::new(who),
            }),
        }
    }

    /// A client's end, with what its verifier will see.
    pub fn client(
        sock: S,
        conn: Connection,
        checked: Arc<Checked>,
        bound: Duration,
        who: &str,
    ) -> Self {
        let s = TlsStream::new(sock, conn, bound, who);
        s.inner.borrow_mut().checked = Some(checked);
        s
    }

    pub fn get_ref(&self) -> &S {
        &self.sock
    }

    pub fn get_mut(&mut self) -> &mut S {
        &mut self.sock
    }

    pub fn into_inner(self) -> S {
        self.sock
    }

    /// The handshake's bound counts from now (forward: once the target is reached).
    pub fn start_clock(&self) {
        self.inner.borrow_mut().started = Instant::now();
    }

    pub fn handshaking(&self) -> bool {
        !self.inner.borrow().handshaken
    }

    /// The peer's EOF came without close_notify: what it sent may have been cut short.
    pub fn truncated(&self) -> bool {
        self.inner.borrow().truncated
    }

    /// `--json`'s `tls` object for a server's client: what the handshake settled, the
    /// client's chain, and `truncated` (its EOF came without close_notify).
    pub fn json(&self) -> String {
        let i = self.inner.borrow();
        super::report::json(&i.conn)
            .raw("truncated", i.truncated.to_string())
            .text()
    }

    /// Rustls holds ciphertext the kernel has not taken yet.
    pub fn holds_output(&self) -> bool {
        let i = self.inner.borrow();
        i.holds_ciphertext() || ((i.close_sent || i.close_wanted || i.bare_fin) && !i.shut)
    }

    /// The `-v` lines of a handshake that finished since the last call (once).
    pub fn news(&self) -> Option<Vec<String>> {
        self.inner.borrow_mut().news.take()
    }

    /// Why the connection must go now: its handshake has run past the bound.
    pub fn overdue(&self, now: Instant) -> Option<String> {
        let i = self.inner.borrow();
        (!i.handshaken && now.saturating_duration_since(i.started) >= i.bound).then(|| {
            format!(
                "TLS handshake not finished within {} (a stalled or plain-text client)",
                humantime::format_duration(i.bound)
            )
        })
    }

    /// Hands rustls's ciphertext to the kernel as far as it takes it (EAGAIN is no error:
    /// the rest waits for the next writable event); once all is out after our
    /// close_notify, shuts TCP's sending side.
    pub fn send_held(&self) -> io::Result<()> {
        let mut i = self.inner.borrow_mut();
        i.flush(&self.sock)?;
        if (i.close_sent || i.bare_fin) && !i.shut && !i.holds_ciphertext() {
            i.shut = true;
            let _ = socket::shutdown(&SockRef::from(&self.sock), Shutdown::Write);
        }
        Ok(())
    }

    /// Our side is done: close_notify (once the handshake allows it), then, once sent, the
    /// TCP FIN.
    pub fn close_write(&self) {
        {
            let mut i = self.inner.borrow_mut();
            if !i.handshaken {
                i.close_wanted = true;
            } else if !i.close_sent {
                i.close_sent = true;
                i.conn.send_close_notify();
                i.clean = false;
            }
        }
        let _ = self.send_held();
    }

    /// Our side ends without close_notify: the TCP FIN alone, once the ciphertext rustls holds
    /// is out, so the peer sees a truncation, not a clean end (forward passing one on).
    pub fn bare_close_write(&self) {
        {
            let mut i = self.inner.borrow_mut();
            i.close_wanted = false;
            i.bare_fin = true;
        }
        let _ = self.send_held();
    }

    /// Plaintext accepted by `write` whose records the kernel has not taken whole: what was
    /// written during the handshake and waits for its end, and what waits for room in the
    /// socket. Not delivered, whatever `write` returned. Exact: each record queued knows the
    /// plaintext it carries.
    pub fn unsent(&self) -> u64 {
        let i = self.inner.borrow();
        i.early.len() as u64 + i.queue.iter().map(|c| c.plain).sum::<u64>()
    }

    /// Plaintext whose records the kernel took but the peer's TCP has not acknowledged whole
    /// (TCP_INFO's bytes_acked): what a reset now loses on its way, beyond `unsent`. 0 where
    /// TCP_INFO cannot tell (not TCP).
    pub fn unacked(&self) -> u64 {
        let i = self.inner.borrow();
        let Some(acked) = i.acked(&self.sock) else {
            return 0;
        };
        i.flight
            .iter()
            .filter(|(end, _)| *end > acked)
            .map(|(_, plain)| plain)
            .sum()
    }

    /// Plaintext into `buf`: what rustls holds, then what the socket has, until `buf` is
    /// full or the kernel has no more (`WouldBlock` when nothing came). `Ok(0)`: the peer's
    /// close_notify, or its EOF without one (`truncated`). A TLS failure is InvalidData, its
    /// text the sentence to log.
    pub fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        let mut i = self.inner.borrow_mut();
        let mut got = 0;
        loop {
            match i.conn.reader().read(&mut buf[got..]) {
                Ok(0) if got < buf.len() => return Ok(got),
                Ok(n) => {
                    got += n;
                    if got == buf.len() {
                        return Ok(got);
                    }
                    continue;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                    if got > 0 {
                        return Ok(got);
                    }
                    if !i.handshaken {
                        let peer_is = i.peer_is();
                        return Err(failure(format!(
                            "TLS handshake: the {peer_is} closed the connection before it \
                             finished (is it speaking TLS?)"
                        )));
                    }
                    i.truncated = true;
                    return Ok(0);
                }
                Err(e) => return Err(e),
            }
            if i.tcp_eof {
                // rustls said neither EOF nor data after the socket's EOF: treat as EOF.
                return Ok(got);
            }
            let handshaking = !i.handshaken;
            let Inner { conn, tap, .. } = &mut *i;
            let mut io = Tapped {
                sock: &self.sock,
                tap: tap.as_deref_mut(),
                handshaking,
            };
            match conn.read_tls(&mut io) {
                Ok(0) => i.tcp_eof = true,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    return if got > 0 { Ok(got) } else { Err(e) };
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            // What it read may make rustls queue messages of its own (a KeyUpdate, an alert).
            i.clean = false;
            if let Err(e) = i.conn.process_new_packets() {
                let text = i.refusal(&e);
                // The alert rustls queued goes out, if the kernel takes it.
                let _ = i.flush(&self.sock);
                return Err(failure(text));
            }
            // Handshake replies (and tickets) go out as soon as they are made.
            i.flush(&self.sock)?;
            if i.notice_handshake() {
                // What was written during the handshake goes now, ahead of any close_notify.
                i.seal_early()?;
                if i.close_wanted {
                    i.close_sent = true;
                    i.conn.send_close_notify();
                    i.clean = false;
                }
                drop(i);
                self.send_held()?;
                i = self.inner.borrow_mut();
            }
        }
    }

    /// Plaintext from `buf` sealed into records (before the handshake ends it waits here),
    /// then out as far as the kernel takes it. `WouldBlock` while ciphertext the kernel would
    /// not take is still queued: backpressure, as a full socket buffer gives.
    pub fn write(&self, buf: &[u8]) -> io::Result<usize> {
        let mut i = self.inner.borrow_mut();
        if i.handshaken && !i.early.is_empty() {
            // What the handshake's end could not seal goes before anything newer.
            i.seal_early()?;
        }
        i.flush(&self.sock)?;
        if i.holds_ciphertext() || (i.handshaken && !i.early.is_empty()) {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let want = buf.len().min(WRITE_CHUNK);
        let mut n = 0;
        if i.handshaken {
            while n < want {
                let took = i.seal(&buf[n..want.min(n + RECORD)])?;
                if took == 0 {
                    break;
                }
                n += took;
            }
        } else {
            n = want.min(WRITE_CHUNK - i.early.len());
            i.early.extend_from_slice(&buf[..n]);
        }
        if n == 0 && !buf.is_empty() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        i.flush(&self.sock)?;
        Ok(n)
    }

    /// Closes: close_notify first if the session got that far and we have not said it, one
    /// attempt to send it, and the socket back for its narrated close.
    pub fn finish(self) -> S {
        let said = {
            let i = self.inner.borrow();
            i.close_sent || i.bare_fin || !i.handshaken
        };
        if !said {
            self.close_write();
        }
        self.sock
    }
}

/// What sealing `took` plaintext bytes added, read off the last record in `bytes` (ours: rustls
/// may put a message of its own, such as a KeyUpdate, in front of it, never behind). None when
/// `bytes` is not whole records ending in one that carries at least `took`.
fn last_record_overhead(bytes: &[u8], took: usize) -> Option<usize> {
    const HEADER: usize = 5;
    let mut at = 0;
    let mut last = None;
    while at < bytes.len() {
        let len = bytes.get(at + 3..at + HEADER)?;
        let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
        last = Some(len);
        at = at.checked_add(HEADER + len)?;
    }
    let record = HEADER + last?;
    (at == bytes.len() && record >= took).then(|| record - took)
}

impl Inner {
    fn peer_is(&self) -> &'static str {
        match self.conn {
            Connection::Client(_) => "server",
            Connection::Server(_) => "client",
        }
    }

    fn refusal(&self, e: &rustls::Error) -> String {
        if let Some(checked) = &self.checked
            && let Some(line) = verify::refusal(e, checked)
        {
            return line;
        }
        sentence(e, self.peer_is(), self.handshaken)
    }

    /// Ciphertext is queued: ours, or rustls's own.
    fn holds_ciphertext(&self) -> bool {
        !self.queue.is_empty() || self.conn.wants_write()
    }

    /// Takes all rustls holds out of it: the records of ours it held, split as the ledger
    /// says, then its own messages (a chunk carrying no plaintext). rustls is empty after.
    fn take_tls(&mut self) -> io::Result<()> {
        let mut bytes = Vec::new();
        while self.conn.wants_write() {
            self.conn.write_tls(&mut bytes)?;
        }
        let mut at = 0;
        for (j, c) in self.queue.iter_mut().enumerate() {
            if c.bytes.is_some() {
                continue;
            }
            if j == 0 {
                // What of the first the kernel has taken is no longer in rustls.
                c.len -= self.front;
                self.front = 0;
            }
            let end = (at + c.len).min(bytes.len());
            c.len = end - at;
            c.bytes = Some(bytes[at..end].to_vec());
            at = end;
        }
        // A chunk rustls held nothing of (a ledger out of step) would stall `flush`: write(2)
        // of nothing takes nothing.
        self.queue.retain(|c| c.len > 0);
        if at < bytes.len() {
            let own = bytes[at..].to_vec();
            self.queue.push_back(Chunk {
                len: own.len(),
                plain: 0,
                bytes: Some(own),
            });
        }
        self.clean = true;
        Ok(())
    }

    /// Seals plaintext into one record and queues it; how much of `piece` rustls took. The
    /// record stays in rustls when its queue is known to hold only ours (the record's size is
    /// then the plaintext plus `overhead`); else rustls is emptied first and the record is
    /// copied out, its size seen.
    fn seal(&mut self, piece: &[u8]) -> io::Result<usize> {
        let copy = !self.clean || self.overhead.is_none() || self.sealed >= COPY_AFTER;
        if copy {
            self.take_tls()?;
        }
        let took = self.conn.writer().write(piece)?;
        if took == 0 {
            return Ok(0);
        }
        self.sealed += 1;
        let plain = took as u64;
        if let (false, Some(o)) = (copy, self.overhead) {
            self.queue.push_back(Chunk {
                len: took + o,
                plain,
                bytes: None,
            });
        } else {
            let mut bytes = Vec::new();
            while self.conn.wants_write() {
                self.conn.write_tls(&mut bytes)?;
            }
            if self.overhead.is_none() {
                self.overhead = last_record_overhead(&bytes, took);
            }
            self.queue.push_back(Chunk {
                len: bytes.len(),
                plain,
                bytes: Some(bytes),
            });
        }
        Ok(took)
    }

    /// The handshake just ended: what was written during it, sealed behind its last flight.
    fn seal_early(&mut self) -> io::Result<()> {
        let early = std::mem::take(&mut self.early);
        let mut at = 0;
        while at < early.len() {
            let took = self.seal(&early[at..early.len().min(at + RECORD)])?;
            if took == 0 {
                // rustls refused plaintext (its buffer limit; not expected with its queue
                // emptied): the rest stays early, for the next write's turn.
                break;
            }
            at += took;
        }
        self.early = early[at..].to_vec();
        Ok(())
    }

    /// Queued ciphertext to the kernel, in order (what was taken out of rustls, then what is
    /// in it, its own messages behind ours), until nothing is queued or the kernel is full.
    fn flush<S>(&mut self, sock: &S) -> io::Result<()>
    where
        S: AsFd,
        for<'a> &'a S: Write,
    {
        let handshaking = !self.handshaken;
        loop {
            let taken_out = self.queue.front().map(|c| c.bytes.is_some());
            if taken_out != Some(true) && !self.conn.wants_write() {
                if taken_out.is_some() {
                    // The ledger says rustls holds records of ours and it holds nothing:
                    // not expected; dropped so the count stays on what is known.
                    debug_assert!(false, "TLS stage ledger out of step with rustls");
                    self.queue.clear();
                    self.front = 0;
                }
                // Not `clean`: an empty queue does not mean rustls holds nothing of its own
                // to come. A KeyUpdate the peer asked for is held aside and put in front of
                // our next record inside `writer().write()`, so only `take_tls`, which sees
                // what rustls emits, may say the queue is ours alone.
                return Ok(());
            }
            let mut io = Tapped {
                sock,
                tap: self.tap.as_deref_mut(),
                handshaking,
            };
            let r = if taken_out == Some(true) {
                let mut slices = [io::IoSlice::new(&[]); 16];
                let mut k = 0;
                for c in self.queue.iter().take(slices.len()) {
                    let Some(b) = &c.bytes else { break };
                    let from = if k == 0 { self.front } else { 0 };
                    slices[k] = io::IoSlice::new(&b[from..]);
                    k += 1;
                }
                io.write_vectored(&slices[..k])
            } else {
                self.conn.write_tls(&mut io)
            };
            match r {
                Ok(0) => return Ok(()),
                Ok(n) => self.advance(n, sock),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// The kernel took `n` bytes: whole chunks leave the queue, and those carrying our
    /// plaintext join the flight until the peer acknowledges them. Bytes past the queue's
    /// end are rustls's own messages.
    fn advance<S: AsFd>(&mut self, n: usize, sock: &S) {
        let mut left = n;
        let mut at = self.sent;
        while let Some(c) = self.queue.front() {
            let rest = c.len - self.front;
            if left < rest {
                self.front += left;
                at += left as u64;
                left = 0;
                break;
            }
            left -= rest;
            at += rest as u64;
            self.front = 0;
            let plain = c.plain;
            self.queue.pop_front();
            if plain > 0 && self.acked_base.is_some() {
                self.flight.push_back((at, plain));
            }
        }
        self.sent = at + left as u64;
        if self.flight.len() > self.flight_trim {
            if let Some(acked) = self.acked(sock) {
                while self.flight.front().is_some_and(|(end, _)| *end <= acked) {
                    self.flight.pop_front();
                }
            }
            self.flight_trim = (2 * self.flight.len()).max(FLIGHT_TRIM);
        }
    }

    /// Our ciphertext the peer's TCP has acknowledged, in all (TCP_INFO); None: not TCP.
    fn acked<S: AsFd>(&self, sock: &S) -> Option<u64> {
        let base = self.acked_base?;
        let now = socket::bytes_acked(sock.as_fd().as_raw_fd())?;
        // A FIN acknowledged counts one more than our bytes.
        Some(now.saturating_sub(base).min(self.sent))
    }

    /// True when the handshake has just ended.
    fn notice_handshake(&mut self) -> bool {
        if self.handshaken || self.conn.is_handshaking() {
            return false;
        }
        self.handshaken = true;
        if !narrate::verbose() {
            return true;
        }
        let mut lines = vec![report::summary(&self.conn, self.started.elapsed())];
        match (&self.checked, self.conn.peer_certificates()) {
            (Some(checked), _) => {
                let seen = checked.seen();
                lines.push(format!("server certificate: {}", seen.verdict));
            }
            (None, Some(certs)) => {
                let subject = certs
                    .first()
                    .and_then(report::Cert::parse)
                    .map_or_else(|| "?".to_string(), |c| c.subject);
                lines.push(format!(
                    "client certificate: subject {subject}, verified against --client-ca"
                ));
            }
            (None, None) => {}
        }
        self.news = Some(lines);
        true
    }
}

#[cfg(test)]
mod tests {
    //! Both ends of TLS over a Unix socket pair, non-blocking, driven by hand as an event
    //! loop would: the handshake, bytes both ways, close_notify, a truncation, a plain-text
    //! client, and the handshake bound.

    use super::*;
    use crate::tls::config::{self, ClientOptions, ServerOptions};
    use rustls::{ClientConnection, ServerConnection};
    use std::os::unix::net::UnixStream;

    fn server_conn() -> Connection {
        let server = config::server(&ServerOptions::default(), &["localhost".to_string()]).unwrap();
        Connection::Server(ServerConnection::new(server.config).unwrap())
    }

    /// A server and a client end over a socket pair (the client trusts anything: what is
    /// tested here is the stage, not verification, which tests/tls.rs covers).
    fn ends() -> (TlsStream<UnixStream>, TlsStream<UnixStream>) {
        let opts = ClientOptions {
            insecure: true,
            ..ClientOptions::default()
        };
        let client = config::client(&opts, "localhost").unwrap();
        let (a, b) = UnixStream::pair().unwrap();
        a.set_nonblocking(true).unwrap();
        b.set_nonblocking(true).unwrap();
        let s = TlsStream::new(a, server_conn(), Duration::from_secs(10), "");
        let c = TlsStream::client(
            b,
            Connection::Client(ClientConnection::new(client.config, client.name).unwrap()),
            client.checked,
            Duration::from_secs(10),
            "",
        );
        (s, c)
    }

    /// Turns both ends until neither moves: what each read, and how each read ended.
    fn turn(
        a: &TlsStream<UnixStream>,
        b: &TlsStream<UnixStream>,
    ) -> (Vec<u8>, Vec<u8>, [Option<io::Result<usize>>; 2]) {
        let (mut got_a, mut got_b) = (Vec::new(), Vec::new());
        let mut last = [None, None];
        let mut buf = [0u8; 1000];
        for _ in 0..200 {
            a.send_held().unwrap();
            b.send_held().unwrap();
            for (k, (s, got)) in [(a, &mut got_a), (b, &mut got_b)].into_iter().enumerate() {
                let r = s.read(&mut buf);
                if let Ok(n) = &r {
                    got.extend_from_slice(&buf[..*n]);
                }
                let ended = !matches!(&r, Err(e) if e.kind() == io::ErrorKind::WouldBlock);
                if ended {
                    last[k] = Some(r);
                }
            }
        }
        (got_a, got_b, last)
    }

    #[test]
    fn handshake_bytes_both_ways_and_close_notify_is_a_clean_eof() {
        let (s, c) = ends();
        // The client's bytes wait in rustls until the handshake is done, then go.
        assert_eq!(c.write(b"hello").unwrap(), 5);
        assert!(c.handshaking());
        let (at_s, at_c, _) = turn(&s, &c);
        assert!(!s.handshaking() && !c.handshaking());
        assert_eq!(at_s, b"hello");
        assert!(at_c.is_empty());
        // More than one read buffer's worth comes through whole, in order.
        let big: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let mut at = 0;
        let mut got = Vec::new();
        let mut buf = vec![0u8; 4096];
        while got.len() < big.len() {
            if at < big.len() {
                match s.write(&big[at..]) {
                    Ok(n) => at += n,
                    Err(e) => assert_eq!(e.kind(), io::ErrorKind::WouldBlock),
                }
            }
            s.send_held().unwrap();
            match c.read(&mut buf) {
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) => assert_eq!(e.kind(), io::ErrorKind::WouldBlock),
            }
        }
        assert_eq!(got, big);
        s.close_write();
        let (_, _, last) = turn(&s, &c);
        assert!(matches!(last[1], Some(Ok(0))), "{:?}", last[1]);
        assert!(!c.truncated());
    }

    /// With the reader stalled, what `write` accepted is either in the kernel as whole
    /// records (the reader gets it all once it reads) or counted `unsent`, to the byte, in
    /// the handshake and after it.
    #[test]
    fn a_keyupdate_from_the_peer_before_our_first_record_keeps_the_ledger_exact() {
        // rustls answers a peer's KeyUpdate by putting its own in front of the next record we
        // seal, out of the queue's sight until then: the ledger must neither count those bytes
        // as the record's overhead nor take the queue for ours alone after the read.
        let (s, c) = ends();
        turn(&s, &c);
        {
            let mut i = c.inner.borrow_mut();
            let Connection::Client(cc) = &mut i.conn else {
                unreachable!("ends() makes a client")
            };
            cc.refresh_traffic_keys().unwrap();
        }
        c.send_held().unwrap();
        let mut b = [0u8; 10];
        assert!(matches!(s.read(&mut b), Err(e) if e.kind() == io::ErrorKind::WouldBlock));
        let chunk = vec![2u8; 65_536];
        let mut accepted = 0u64;
        for _ in 0..1000 {
            match s.write(&chunk) {
                Ok(n) => accepted += n as u64,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => panic!("{e}"),
            }
        }
        // TLS 1.3: a 5-byte header, the content type, a 16-byte tag.
        assert_eq!(s.inner.borrow().overhead, Some(22));
        let held = s.unsent();
        let mut got = 0u64;
        let mut buf = vec![0u8; 1 << 16];
        loop {
            match c.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => got += n as u64,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => panic!("{e}"),
            }
        }
        assert!(accepted > 0 && held > 0, "accepted {accepted}, held {held}");
        assert_eq!(
            got,
            accepted - held,
            "the client got all but what the stage still holds"
        );
    }

    #[test]
    fn the_overhead_is_read_off_the_last_record() {
        let record = |len: usize| {
            let mut r = vec![23, 3, 3];
            r.extend_from_slice(&u16::try_from(len).unwrap().to_be_bytes());
            r.extend(std::iter::repeat_n(0u8, len));
            r
        };
        assert_eq!(last_record_overhead(&record(117), 100), Some(22));
        // A KeyUpdate (22 bytes of record body) in front of ours is not ours.
        let both = [record(22), record(117)].concat();
        assert_eq!(last_record_overhead(&both, 100), Some(22));
        // Not whole records, or too short to carry what was taken: not measured.
        assert_eq!(last_record_overhead(&both[..both.len() - 1], 100), None);
        assert_eq!(last_record_overhead(&record(50), 100), None);
        assert_eq!(last_record_overhead(&[], 0), None);
    }

    #[test]
    fn unsent_is_exactly_what_has_not_reached_the_kernel_as_whole_records() {
        let (s, c) = ends();
        // During the handshake: all of it waits.
        assert_eq!(s.write(&[1u8; 5000]).unwrap(), 5000);
        assert_eq!(s.unsent(), 5000);
        let (_, at_c, _) = turn(&s, &c);
        assert_eq!((at_c.len(), s.unsent()), (5000, 0));
        // After it: write until the kernel is full.
        let mut accepted = 0u64;
        let chunk = vec![2u8; 10_000];
        for _ in 0..1000 {
            match s.write(&chunk) {
                Ok(n) => accepted += n as u64,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => panic!("{e}"),
            }
        }
        let held = s.unsent();
        assert!(held > 0, "the kernel took all {accepted} B");
        let mut got = 0u64;
        let mut buf = vec![0u8; 1 << 16];
        // Reads what has come; true at the close_notify.
        let mut drain = |got: &mut u64| loop {
            match c.read(&mut buf) {
                Ok(0) => return true,
                Ok(n) => *got += n as u64,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
                Err(e) => panic!("{e}"),
            }
        };
        assert!(!drain(&mut got));
        assert_eq!(got, accepted - held);
        // close_notify now queues behind our records: they still go first, whole, and the
        // rest goes once there is room; then nothing is unsent.
        s.close_write();
        let mut ended = false;
        for _ in 0..10_000 {
            s.send_held().unwrap();
            ended |= drain(&mut got);
            if ended && !s.holds_output() {
                break;
            }
        }
        assert!(ended, "no close_notify");
        assert_eq!((got, s.unsent()), (accepted, 0));
        // A socket pair has no TCP_INFO: nothing is counted as unacknowledged.
        assert_eq!(s.unacked(), 0);
    }

    #[test]
    fn an_eof_without_close_notify_is_a_truncation() {
        let (s, c) = ends();
        let _ = turn(&s, &c);
        assert!(!c.handshaking());
        // The server's socket is shut without a close_notify.
        s.into_inner().shutdown(Shutdown::Write).unwrap();
        let mut buf = [0u8; 100];
        let mut end = None;
        for _ in 0..100 {
            match c.read(&mut buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                r => {
                    end = Some(r.unwrap());
                    break;
                }
            }
        }
        assert_eq!(end, Some(0));
        assert!(c.truncated());
    }

    #[test]
    fn plain_text_fails_the_handshake_with_one_sentence() {
        let (a, b) = UnixStream::pair().unwrap();
        a.set_nonblocking(true).unwrap();
        let server = TlsStream::new(a, server_conn(), Duration::from_secs(10), "");
        (&b).write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
        let e = server.read(&mut [0u8; 100]).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        assert!(e.to_string().contains("plain text"), "{e}");
    }

    #[test]
    fn a_handshake_past_its_bound_is_overdue() {
        let (s, _c) = ends();
        let now = Instant::now();
        assert_eq!(s.overdue(now), None);
        let why = s.overdue(now + Duration::from_secs(10)).unwrap();
        assert!(why.contains("within 10s"), "{why}");
    }
}
