//! How the relay's bytes move: for each direction, the system call that carries them, chosen
//! at run time from what stdin and stdout are (fstat). On Linux a regular file on stdin goes to
//! the socket by sendfile(2); the socket goes to a stdout pipe by splice(2), and to a regular
//! file or a device such as /dev/null by splice(2) through a pipe of our own; terminals,
//! sockets, pipes on stdin (where splice measured slower than write(2), see benches/README.md)
//! and any call the kernel refuses at run time (EINVAL, ENOSYS) use read(2)/write(2) through one
//! fixed buffer. Pipes handed to us are grown to 1 MiB (F_SETPIPE_SZ): the writer runs ahead
//! and each call moves more. `SOCKKIT_RELAY=buffered` turns sendfile and splice off, for the
//! benchmark's comparison. The wire stages (`--crlf`, the dump) come from wire.rs and force
//! the copying path, since they must see each byte; so does a link that is not zero-copy
//! (TLS, link.rs), whose reads and writes the copying path calls. The session rules (half-close, EOF,
//! timeouts, the stdin hand-off) stay in stream.rs: this file only moves bytes and says how
//! many, and what it holds between calls never grows with the size of the transfer.

use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::link::{Link, read_fd, told, write_fd};
use super::wire::{Inbound, Outbound};
use crate::narrate::{self, Flow, Key};
use crate::sys;

/// The read(2)/write(2) buffer: large enough for loopback speed, and a read is still forwarded
/// as soon as it returns, however little it got.
pub const CHUNK: usize = 256 * 1024;

/// Bytes asked of one splice(2) from the socket. It returns whatever had arrived (and what fits
/// in the pipe), so this bounds a call, not a wait.
const ZC_CHUNK: usize = 1 << 20;

/// Bytes asked of one sendfile(2): as much as one buffered write, so the byte count and the
/// idle timer advance as often as on the read/write path even towards a slow peer (1 MiB or
/// 16 MiB measured no faster, see benches/README.md).
const SENDFILE_CHUNK: usize = CHUNK;

/// The pipe capacity asked for (F_SETPIPE_SZ): our own pipe, and the stdout pipe we splice into.
/// 1 MiB is the default /proc/sys/fs/pipe-max-size, what an unprivileged process may ask.
const PIPE_SIZE: i32 = 1 << 20;

/// The descriptors the relay works on.
const STDIN: RawFd = 0;
const STDOUT: RawFd = 1;

/// How one direction moves its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Path {
    /// sendfile(2): the file's pages go to the socket without a copy through user space.
    Sendfile,
    /// splice(2) from the socket straight into the stdout pipe.
    Splice,
    /// splice(2) from the socket into a pipe of ours, then from it into stdout.
    SpliceVia,
    /// read(2) into one fixed buffer, write(2) out of it.
    Buffered,
    /// recv(2) with MSG_TRUNC: `--send-only` drops what the peer sends without copying it.
    Discard,
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Path::Sendfile => "sendfile(2), no copy through user space",
            Path::Splice => "splice(2), no copy through user space",
            Path::SpliceVia => "splice(2) through a pipe of its own, no copy through user space",
            Path::Buffered => "read(2)/write(2) through a 256 KiB buffer",
            Path::Discard => "recv(2, MSG_TRUNC): received and dropped without a copy",
        })
    }
}

/// What fstat(2) says a descriptor is, as far as choosing a path goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    File { size: u64 },
    Pipe,
    Socket,
    Terminal,
    DevNull,
    CharDevice,
    BlockDevice,
    Other,
    Unknown,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Kind::File { size } => write!(f, "regular file, {}", narrate::bytes(*size)),
            Kind::Pipe => f.write_str("pipe"),
            Kind::Socket => f.write_str("socket"),
            Kind::Terminal => f.write_str("terminal"),
            Kind::DevNull => f.write_str("/dev/null"),
            Kind::CharDevice => f.write_str("character device"),
            Kind::BlockDevice => f.write_str("block device"),
            Kind::Other => f.write_str("neither file, pipe nor socket"),
            Kind::Unknown => f.write_str("unknown"),
        }
    }
}

/// fstat(2) on `fd`, and how long it took (for the narration).
fn probe(fd: RawFd) -> (Kind, Duration) {
    let t0 = Instant::now();
    let kind = match sys::fstat(fd) {
        Err(_) => Kind::Unknown,
        Ok(st) => match st.st_mode & libc::S_IFMT {
            libc::S_IFREG => Kind::File {
                size: st.st_size.max(0).cast_unsigned(),
            },
            libc::S_IFIFO => Kind::Pipe,
            libc::S_IFSOCK => Kind::Socket,
            libc::S_IFCHR if sys::isatty(fd) => Kind::Terminal,
            libc::S_IFCHR if libc::major(st.st_rdev) == 1 && libc::minor(st.st_rdev) == 3 => {
                Kind::DevNull
            }
            libc::S_IFCHR => Kind::CharDevice,
            libc::S_IFBLK => Kind::BlockDevice,
            _ => Kind::Other,
        },
    };
    (kind, t0.elapsed())
}

/// Zero-copy paths are Linux system calls; elsewhere every direction is buffered.
const ZERO_COPY: bool = cfg!(target_os = "linux");

/// `SOCKKIT_RELAY=buffered` turns the zero-copy paths off (pipes are still grown), so the
/// benchmark can measure what each buys and a suspected kernel quirk can be ruled out without a
/// rebuild.
fn forced_buffered() -> bool {
    std::env::var_os("SOCKKIT_RELAY").is_some_and(|v| v == "buffered")
}

fn narrate_choice(fd: RawFd, kind: Kind, took: Duration, direction: &str, path: Path) {
    narrate::call(
        format_args!("fstat(fd {fd}) = {kind}: {direction} by {path}"),
        took,
    );
}

/// A call that moved this much filled a default-sized pipe: bulk data.
const BULK: usize = 64 * 1024;

/// Grows one pipe to PIPE_SIZE once bulk data shows up, and never for interactive traffic: a
/// user's pipes share a soft limit (/proc/sys/fs/pipe-user-pages-soft, 64 MiB by default)
/// past which that user's new pipes are made smaller, so sockkit takes the memory only where
/// it pays.
struct Grow {
    fd: Option<RawFd>,
}

impl Grow {
    fn pipe(fd: RawFd) -> Grow {
        Grow {
            fd: ZERO_COPY.then_some(fd),
        }
    }

    fn never() -> Grow {
        Grow { fd: None }
    }

    /// After a call that moved `n` bytes through the pipe (which must be empty by now if it
    /// is ours: a pipe cannot shrink below what it holds, and ours only grows).
    fn after(&mut self, n: usize) {
        if n >= BULK
            && let Some(fd) = self.fd.take()
        {
            grow_narrated(fd);
        }
    }
}

/// Grows a pipe to PIPE_SIZE (never shrinks it); a refusal (the per-user pipe limit) only
/// costs speed.
fn grow_narrated(fd: RawFd) {
    let t0 = Instant::now();
    let r = sys::grow_pipe(fd, PIPE_SIZE);
    narrate::call(
        format_args!(
            "fcntl(fd {fd}, F_SETPIPE_SZ, {}) {}",
            narrate::bytes(PIPE_SIZE as u64),
            match &r {
                Ok(n) => format!("= {}", narrate::bytes(*n as u64)),
                Err(e) => narrate::errno_text(e),
            }
        ),
        t0.elapsed(),
    );
}

/// `-vv`: a call the kernel refused (`since`: when it started), and the path taken instead.
/// `since` is `None` when not narrating: the hot path reads no clock for narration.
fn narrate_fallback(call: &str, e: &io::Error, since: Option<Instant>, direction: &str) {
    narrate::call(
        format_args!(
            "{call} {}: {direction} falls back to {}",
            narrate::errno_text(e),
            Path::Buffered
        ),
        since.map_or(Duration::ZERO, |t| t.elapsed()),
    );
}

/// Errors that mean "this pair of descriptors cannot do that call", not "the transfer failed":
/// the bytes are still where they were, and read/write will move them.
fn unsupported(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EINVAL | libc::ENOSYS | libc::EOPNOTSUPP | libc::EXDEV)
    )
}

fn interrupted(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::Interrupted
}

fn would_block(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::WouldBlock
}

/// Waits until `fd` can take bytes.
fn wait_writable(fd: RawFd) {
    wait_ready(fd, libc::POLLOUT);
}

/// Waits until `fd` is ready for `events` (or hung up): stdin and stdout may be non-blocking
/// when another process set O_NONBLOCK on a descriptor it shares with us.
fn wait_ready(fd: RawFd, events: libc::c_short) {
    let mut p = libc::pollfd {
        fd,
        events,
        revents: 0,
    };
    let _ = sys::poll(std::slice::from_mut(&mut p), -1);
}

/// splice(2) from `inp` to `out` (SPLICE_F_MOVE, as sys::splice always sets it), narrated.
fn splice_fd(flow: &mut Option<Flow>, inp: RawFd, out: RawFd, len: usize) -> io::Result<usize> {
    let r = sys::splice(inp, out, len, 0);
    let key = Key {
        name: "splice",
        from: inp,
        to: Some(out),
    };
    told(
        flow,
        key,
        || format!("splice(fd {inp}, NULL, fd {out}, NULL, {len}, SPLICE_F_MOVE)"),
        r,
    )
}

/// Writes all of `data` to `fd`, calling `moved` after each write; on failure says how much
/// had been written.
fn write_all(
    flow: &mut Option<Flow>,
    fd: RawFd,
    data: &[u8],
    moved: &mut dyn FnMut(usize),
) -> Result<(), (usize, io::Error)> {
    write_all_by(flow, fd, data, moved, &mut |flow, data| {
        write_fd(flow, fd, data)
    })
}

/// One send of a link's (link.rs), narrated into the flow.
type SendFn<'a> = dyn FnMut(&mut Option<Flow>, &[u8]) -> io::Result<usize> + 'a;

/// `write_all` through `send` (a link's), waiting on `fd` when it would block.
fn write_all_by(
    flow: &mut Option<Flow>,
    fd: RawFd,
    mut data: &[u8],
    moved: &mut dyn FnMut(usize),
    send: &mut SendFn<'_>,
) -> Result<(), (usize, io::Error)> {
    let mut written = 0;
    while !data.is_empty() {
        match send(flow, data) {
            Ok(0) => return Err((written, io::ErrorKind::WriteZero.into())),
            Ok(n) => {
                written += n;
                data = &data[n..];
                moved(n);
            }
            Err(e) if interrupted(&e) => {}
            Err(e) if would_block(&e) => wait_writable(fd),
            Err(e) => return Err((written, e)),
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// stdin -> socket

/// What one uplink step did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Some bytes went to the socket (or a call was interrupted): call again.
    Moved,
    /// stdin is at EOF.
    Eof,
    /// A chunk was read from stdin but the session was cancelled before it could be sent: it
    /// stays here for the next session.
    Held,
}

/// Why the uplink stopped.
#[derive(Debug)]
pub enum UpError {
    /// Reading stdin failed.
    Stdin(io::Error),
    /// The socket refused bytes; `lost` of them had been read from stdin (or, for a file sent
    /// by sendfile, were left in it) and did not reach the peer.
    Send {
        err: io::Error,
        lost: u64,
        from_file: bool,
    },
}

/// stdin -> socket for the whole process: what is held here (a chunk read but not yet sent)
/// carries over from one `listen -k` session to the next.
pub struct Uplink {
    path: Path,
    buf: Vec<u8>,
    pending: usize,
    /// `--crlf` and the dump: only the buffered path sees the bytes, so they force it.
    stages: Outbound,
    /// Bytes sendfile has moved; an EINVAL before the first means "cannot", after it "failed".
    zc_moved: u64,
    /// A stdin pipe grows once bulk data arrives: the writer runs ahead, reads take 256 KiB.
    grow: Grow,
    /// The data calls, narrated at `-vv` (`None` otherwise).
    flow: Option<Flow>,
}

impl Uplink {
    /// Looks at stdin (fstat) and picks its path, with the wire stages applied on the way
    /// (they force the buffered path); narrated at `-vv`.
    /// `zero_copy`: the link lets bytes bypass sockkit (a plain socket; TLS does not).
    pub fn for_stdin(stages: Outbound, zero_copy: bool) -> Uplink {
        let (kind, took) = probe(STDIN);
        let path = match kind {
            _ if stages.sees_bytes() => Path::Buffered,
            Kind::File { .. } if zero_copy && ZERO_COPY && !forced_buffered() => Path::Sendfile,
            _ => Path::Buffered,
        };
        narrate_choice(STDIN, kind, took, "stdin -> socket", path);
        if stages.sees_bytes() {
            narrate::info(format_args!(
                "stdin -> socket is copied through sockkit: --crlf and -x must see each byte"
            ));
        }
        Uplink {
            path,
            buf: Vec::new(),
            pending: 0,
            stages,
            zc_moved: 0,
            grow: if kind == Kind::Pipe {
                Grow::pipe(STDIN)
            } else {
                Grow::never()
            },
            flow: Flow::new("stdin -> socket"),
        }
    }

    /// The session's uplink is over: the data calls counted but not yet told are told.
    pub fn session_done(&mut self) {
        if let Some(flow) = &mut self.flow {
            flow.summarise();
        }
    }

    /// A new session takes over (`listen -k`): what is held goes to it, its dump starts at 0.
    pub fn restart(&mut self) {
        self.stages.restart();
    }

    /// Moves the next bytes from stdin to `link`, calling `moved` with each count as the
    /// link takes them; blocks until stdin has something (or EOF) and the link took it.
    pub fn step(
        &mut self,
        link: &dyn Link,
        cancelled: &AtomicBool,
        moved: &mut dyn FnMut(usize),
    ) -> Result<Step, UpError> {
        let sock = link.socket();
        if self.path == Path::Sendfile && link.zero_copy() {
            let t0 = narrate::narrating().then(Instant::now);
            let out = sock.as_raw_fd();
            let key = Key {
                name: "sendfile",
                from: STDIN,
                to: Some(out),
            };
            let r = sys::sendfile(out, STDIN, SENDFILE_CHUNK);
            let full = || format!("sendfile(fd {out}, fd {STDIN}, NULL, {SENDFILE_CHUNK})");
            match told(&mut self.flow, key, full, r) {
                Ok(0) => return Ok(Step::Eof),
                Ok(n) => {
                    self.zc_moved += n as u64;
                    moved(n);
                    return Ok(Step::Moved);
                }
                Err(e) if interrupted(&e) => return Ok(Step::Moved),
                Err(e) if would_block(&e) => {
                    wait_writable(sock.as_raw_fd());
                    return Ok(Step::Moved);
                }
                Err(e) if self.zc_moved == 0 && unsupported(&e) => {
                    narrate_fallback("sendfile(fd 0)", &e, t0, "stdin -> socket");
                    self.path = Path::Buffered;
                }
                Err(e) if e.raw_os_error() == Some(libc::EIO) => return Err(UpError::Stdin(e)),
                Err(e) => {
                    return Err(UpError::Send {
                        err: e,
                        lost: file_left(STDIN),
                        from_file: true,
                    });
                }
            }
        }
        self.buffered_step(link, cancelled, moved)
    }

    fn buffered_step(
        &mut self,
        link: &dyn Link,
        cancelled: &AtomicBool,
        moved: &mut dyn FnMut(usize),
    ) -> Result<Step, UpError> {
        if self.buf.is_empty() {
            self.buf = vec![0u8; CHUNK];
        }
        if self.pending == 0 {
            match read_fd(&mut self.flow, STDIN, &mut self.buf) {
                Ok(0) => return Ok(Step::Eof),
                Ok(n) => {
                    self.pending = n;
                    self.grow.after(n);
                }
                Err(e) if interrupted(&e) => return Ok(Step::Moved),
                Err(e) if would_block(&e) => {
                    wait_ready(STDIN, libc::POLLIN);
                    return Ok(Step::Moved);
                }
                Err(e) => return Err(UpError::Stdin(e)),
            }
            if cancelled.load(Ordering::SeqCst) {
                return Ok(Step::Held);
            }
        }
        let fd = link.socket().as_raw_fd();
        // The dump shows what the socket took: after --crlf, and only as far as it got.
        let flow = &mut self.flow;
        let result = self.stages.pass(&self.buf[..self.pending], |data| {
            match write_all_by(flow, fd, data, moved, &mut |flow, data| {
                link.send(flow, data)
            }) {
                Ok(()) => (data.len(), Ok(Step::Moved)),
                Err((written, err)) => (
                    written,
                    Err(UpError::Send {
                        err,
                        lost: (data.len() - written) as u64,
                        from_file: false,
                    }),
                ),
            }
        });
        self.pending = 0;
        result
    }
}

/// What is left of a regular file on `fd` past its position: the bytes sendfile did not send.
fn file_left(fd: RawFd) -> u64 {
    match (probe(fd).0, sys::position(fd)) {
        (Kind::File { size }, Ok(pos)) => size.saturating_sub(pos),
        _ => 0,
    }
}

// ---------------------------------------------------------------------------------------------
// socket -> stdout

/// What one downlink step got from the socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Got {
    /// This many bytes were received and written to stdout (or dropped, `--send-only`).
    Data(usize),
    /// The peer closed its sending side.
    Eof,
    /// Nothing this time (a signal, a full non-blocking stdout): poll again.
    Nothing,
}

/// Why the downlink stopped.
#[derive(Debug)]
pub enum DownError {
    /// Receiving from the socket failed.
    Recv(io::Error),
    /// Writing to stdout failed after `received` bytes had been taken from the socket in this
    /// step (they count as received: the peer sent them).
    Stdout { err: io::Error, received: usize },
}

/// socket -> stdout for one session.
pub struct Sink {
    path: Path,
    buf: Vec<u8>,
    /// The dump (only the buffered path sees the bytes, so it forces it), and `--send-only`
    /// on that path.
    stages: Inbound,
    discard: bool,
    /// Our own pipe (read end, write end) for SpliceVia.
    pipe: Option<(OwnedFd, OwnedFd)>,
    /// Bytes the splice paths have moved; an EINVAL before the first means "cannot".
    zc_moved: u64,
    /// A stdout pipe, or our own pipe, grows once bulk data arrives: each call moves more
    /// and the reader is woken less often.
    grow: Grow,
    /// The data calls, narrated at `-vv` (`None` otherwise).
    flow: Option<Flow>,
}

impl Sink {
    /// Looks at stdout (fstat) and picks its path; `discard` is `--send-only`, `stages` the
    /// dump of what arrives (it forces the buffered path). Narrated at `-vv`.
    /// `zero_copy`: the link lets bytes bypass sockkit (a plain socket; TLS does not).
    pub fn for_stdout(discard: bool, stages: Inbound, zero_copy: bool) -> Sink {
        let (kind, took) = probe(STDOUT);
        let zc = ZERO_COPY && !forced_buffered();
        let mut path = match kind {
            _ if stages.sees_bytes() || !zero_copy => Path::Buffered,
            _ if discard => Path::Discard,
            Kind::Pipe if zc => Path::Splice,
            Kind::File { .. } | Kind::DevNull | Kind::CharDevice | Kind::BlockDevice if zc => {
                Path::SpliceVia
            }
            _ => Path::Buffered,
        };
        let mut pipe = None;
        let mut grow = match kind {
            Kind::Pipe if !discard => Grow::pipe(STDOUT),
            _ => Grow::never(),
        };
        if path == Path::SpliceVia {
            let t0 = narrate::narrating().then(Instant::now);
            match sys::pipe() {
                Ok(p) => {
                    grow = Grow::pipe(p.1.as_raw_fd());
                    pipe = Some(p);
                }
                Err(e) => {
                    narrate_fallback("pipe2()", &e, t0, "socket -> stdout");
                    path = Path::Buffered;
                }
            }
        }
        narrate_choice(STDOUT, kind, took, "socket -> stdout", path);
        if stages.sees_bytes() {
            narrate::info(format_args!(
                "socket -> stdout is copied through sockkit: -x must see each byte"
            ));
        }
        let buf = if matches!(path, Path::Buffered | Path::Discard) {
            // Discard never touches it: calloc'd pages that stay unmapped cost no memory.
            vec![0u8; CHUNK]
        } else {
            Vec::new()
        };
        Sink {
            path,
            buf,
            stages,
            discard,
            pipe,
            zc_moved: 0,
            grow,
            flow: Flow::new("socket -> stdout"),
        }
    }

    /// Moves what the link has (it polled readable) to stdout; blocks while stdout is full.
    pub fn step(&mut self, link: &dyn Link) -> Result<Got, DownError> {
        let fd = link.socket().as_raw_fd();
        let t0 = narrate::narrating().then(Instant::now);
        match self.path {
            Path::Splice => match splice_fd(&mut self.flow, fd, STDOUT, ZC_CHUNK) {
                Ok(0) => Ok(Got::Eof),
                Ok(n) => {
                    self.zc_moved += n as u64;
                    self.grow.after(n);
                    Ok(Got::Data(n))
                }
                Err(e) if interrupted(&e) => Ok(Got::Nothing),
                Err(e) if would_block(&e) => {
                    wait_writable(STDOUT);
                    Ok(Got::Nothing)
                }
                Err(e) if self.zc_moved == 0 && unsupported(&e) => {
                    narrate_fallback("splice(socket -> fd 1)", &e, t0, "socket -> stdout");
                    self.fall_back_to_buffered();
                    Ok(Got::Nothing)
                }
                Err(e) if e.raw_os_error() == Some(libc::EPIPE) => Err(DownError::Stdout {
                    err: e,
                    received: 0,
                }),
                Err(e) => Err(DownError::Recv(e)),
            },
            Path::SpliceVia => self.splice_via(fd),
            Path::Discard => loop {
                let r = sys::recv_trunc(fd, &mut self.buf);
                let len = self.buf.len();
                let key = Key {
                    name: "recvfrom",
                    from: fd,
                    to: None,
                };
                let full = || format!("recvfrom(fd {fd}, buf, {len}, MSG_TRUNC, NULL, NULL)");
                match told(&mut self.flow, key, full, r) {
                    Ok(0) => return Ok(Got::Eof),
                    Ok(n) => return Ok(Got::Data(n)),
                    Err(e) if interrupted(&e) => {}
                    Err(e) => return Err(DownError::Recv(e)),
                }
            },
            Path::Buffered | Path::Sendfile => {
                let n = loop {
                    match link.recv(&mut self.flow, &mut self.buf) {
                        Ok(n) => break n,
                        Err(e) if interrupted(&e) => {}
                        // A link that holds bytes back (TLS: a record not yet whole).
                        Err(e) if would_block(&e) => return Ok(Got::Nothing),
                        Err(e) => return Err(DownError::Recv(e)),
                    }
                };
                if n == 0 {
                    return Ok(Got::Eof);
                }
                self.stages.received(&self.buf[..n]);
                if self.discard {
                    return Ok(Got::Data(n));
                }
                write_all(&mut self.flow, STDOUT, &self.buf[..n], &mut |_| {})
                    .map_err(|(_, err)| DownError::Stdout { err, received: n })?;
                self.grow.after(n);
                Ok(Got::Data(n))
            }
        }
    }

    fn fall_back_to_buffered(&mut self) {
        self.path = Path::Buffered;
        if self.pipe.is_some() {
            self.grow = Grow::never(); // our pipe is out of use
        }
        if self.buf.is_empty() {
            self.buf = vec![0u8; CHUNK];
        }
    }

    /// socket -> our pipe -> stdout. The pipe is empty between steps, so the first splice
    /// never waits for room and a failed step leaves nothing behind for a later one.
    fn splice_via(&mut self, sock: RawFd) -> Result<Got, DownError> {
        let (pr, pw) = match &self.pipe {
            Some((r, w)) => (r.as_raw_fd(), w.as_raw_fd()),
            None => unreachable!("SpliceVia always has its pipe"),
        };
        let n = loop {
            let t0 = narrate::narrating().then(Instant::now);
            match splice_fd(&mut self.flow, sock, pw, ZC_CHUNK) {
                Ok(n) => break n,
                Err(e) if interrupted(&e) => {}
                Err(e) if self.zc_moved == 0 && unsupported(&e) => {
                    narrate_fallback("splice(socket -> pipe)", &e, t0, "socket -> stdout");
                    self.fall_back_to_buffered();
                    return Ok(Got::Nothing);
                }
                Err(e) => return Err(DownError::Recv(e)),
            }
        };
        if n == 0 {
            return Ok(Got::Eof);
        }
        let mut left = n;
        while left > 0 {
            let t0 = narrate::narrating().then(Instant::now);
            match splice_fd(&mut self.flow, pr, STDOUT, left) {
                Ok(0) => {
                    let err = io::ErrorKind::WriteZero.into();
                    return Err(DownError::Stdout { err, received: n });
                }
                Ok(m) => {
                    left -= m;
                    self.zc_moved += m as u64;
                }
                Err(e) if interrupted(&e) => {}
                Err(e) if would_block(&e) => wait_writable(STDOUT),
                Err(e) if self.zc_moved == 0 && unsupported(&e) => {
                    // e.g. stdout opened with O_APPEND (`>>`): the bytes already in our pipe
                    // go out by read/write, and so does everything after them.
                    narrate_fallback("splice(pipe -> fd 1)", &e, t0, "socket -> stdout");
                    self.fall_back_to_buffered();
                    self.drain_pipe(pr, left)
                        .map_err(|err| DownError::Stdout { err, received: n })?;
                    left = 0;
                }
                Err(e) => {
                    return Err(DownError::Stdout {
                        err: e,
                        received: n,
                    });
                }
            }
        }
        self.grow.after(n);
        Ok(Got::Data(n))
    }

    /// Copies `left` bytes out of our pipe into stdout by read/write.
    fn drain_pipe(&mut self, pr: RawFd, mut left: usize) -> io::Result<()> {
        while left > 0 {
            let want = left.min(self.buf.len());
            let n = match read_fd(&mut self.flow, pr, &mut self.buf[..want]) {
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => n,
                Err(e) if interrupted(&e) => continue,
                Err(e) => return Err(e),
            };
            write_all(&mut self.flow, STDOUT, &self.buf[..n], &mut |_| {}).map_err(|(_, e)| e)?;
            left -= n;
        }
        Ok(())
    }
}
