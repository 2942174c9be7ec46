//! What a byte-stream session runs over: a `Link` reads and writes the session's bytes and
//! ends its sending side, and says whether the kernel may move them without a copy. A plain
//! stream socket is one (`Plain`, `PlainDup`); TLS is another (tls/session.rs), whose bytes
//! are plaintext on this side of rustls. stream.rs runs the one session loop over either, so
//! the ending rules, counts and hand-offs are the same for both; how each link moves bytes
//! and ends is its own. The zero-copy system calls are zerocopy.rs's; the narrated
//! read(2)/write(2) both files use are here.

use std::io;
use std::net::Shutdown;
use std::os::fd::RawFd;

use socket2::Socket;

use crate::error;
use crate::narrate::{self, Flow, Key};
use crate::socket;
use crate::sys;

/// A session's connection, as the relay's two threads see it: the session's thread reads,
/// the stdin thread (through `for_stdin`'s handle) writes and ends the sending side.
pub trait Link: Send + Sync {
    /// The socket underneath: its descriptor to wait on, its TCP state to look at.
    fn socket(&self) -> &Socket;

    /// Whether bytes may go between the socket and stdio without passing through sockkit
    /// (sendfile, splice, MSG_TRUNC): true for a plain socket, false where something must
    /// see each byte (TLS encrypts them).
    fn zero_copy(&self) -> bool;

    /// Sends the start of `data`, blocking until some of it is taken; how much. Plain: one
    /// write(2), WouldBlock included.
    fn send(&self, flow: &mut Option<Flow>, data: &[u8]) -> io::Result<usize>;

    /// Receives into `buf` (the socket polled readable, or `buffered`); 0 is the peer's
    /// orderly end; WouldBlock: nothing for the session yet.
    fn recv(&self, flow: &mut Option<Flow>, buf: &mut [u8]) -> io::Result<usize>;

    /// Bytes for the session wait inside the link already: read without waiting for the
    /// socket.
    fn buffered(&self) -> bool {
        false
    }

    /// stdin is done: end our sending side so the peer reads its end.
    fn shut_write(&self) -> io::Result<()>;

    /// What the peer's orderly end is on this link: the note on the kernel's look at the
    /// socket (`-vv`), and the sentence for `-v`.
    fn peer_end(&self) -> (&'static str, &'static str) {
        (
            "read returned 0: the peer's FIN",
            "the peer closed its sending side",
        )
    }

    /// The stdin thread's handle on the same connection, for the length of a session.
    fn for_stdin(&self) -> anyhow::Result<Box<dyn Link>>;

    /// The stdin thread is done with its handle (`for_stdin`'s).
    fn release(self: Box<Self>);

    /// The session is over (`clean`: it ended well), before the caller closes the socket.
    fn finish(&self, _clean: bool) {}
}

/// An error whose text is already the whole sentence for the user, passed through the
/// relay's io::Error paths as it is (TLS's refusals and truncations).
#[derive(Debug)]
pub struct Said(pub String);

impl std::fmt::Display for Said {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Said {}

/// The sentence `e` carries, if it is a `Said`.
pub fn said(e: &io::Error) -> Option<&str> {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<Said>())
        .map(|s| s.0.as_str())
}

/// A second descriptor for `sock`, for the stdin thread (narrated at `-vv`): it may outlive
/// the session while stdin blocks, and the caller's close must not leave it a number that
/// a later socket reuses.
pub fn dup_for_stdin(sock: &Socket) -> anyhow::Result<Socket> {
    narrate::traced(
        || sock.try_clone(),
        |r| match r {
            // socket2's try_clone: the lowest free descriptor, close-on-exec like every
            // descriptor sockkit makes.
            Ok(d) => format!(
                "fcntl(fd {}, F_DUPFD_CLOEXEC, 0) = fd {} (a second descriptor for the same \
                 socket, for the stdin thread)",
                socket::fd(sock),
                socket::fd(d)
            ),
            Err(e) => format!(
                "fcntl(fd {}, F_DUPFD_CLOEXEC, 0) {}",
                socket::fd(sock),
                narrate::errno_text(e)
            ),
        },
    )
    .map_err(|e| anyhow::anyhow!("a second descriptor for the socket: {}", error::plain(&e)))
}

/// The socket a link works on: the caller's (borrowed, for the session's thread) or the
/// stdin thread's own descriptor (`Dup`, closed when it is done, narrated).
pub trait Held: Send + Sync {
    fn sock(&self) -> &Socket;
    /// The stdin thread is done with it.
    fn release(self);
}

impl Held for &Socket {
    fn sock(&self) -> &Socket {
        self
    }

    fn release(self) {}
}

/// The stdin thread's descriptor for the session's socket (`dup_for_stdin`).
pub struct Dup(pub Socket);

impl Held for Dup {
    fn sock(&self) -> &Socket {
        &self.0
    }

    /// Closed before the session hears the stdin thread's outcome, so the session's close of
    /// the socket is the last one and what it narrates (FIN, RST, TIME_WAIT) is true.
    fn release(self) {
        socket::close_dup(self.0);
    }
}

/// A plain stream socket (TCP, Unix stream): bytes go by read(2)/write(2) here, or by
/// zerocopy.rs's calls.
pub struct Plain<S>(pub S);

impl<S: Held> Link for Plain<S> {
    fn socket(&self) -> &Socket {
        self.0.sock()
    }

    fn zero_copy(&self) -> bool {
        true
    }

    fn send(&self, flow: &mut Option<Flow>, data: &[u8]) -> io::Result<usize> {
        write_fd(flow, socket::fd(self.0.sock()), data)
    }

    fn recv(&self, flow: &mut Option<Flow>, buf: &mut [u8]) -> io::Result<usize> {
        read_fd(flow, socket::fd(self.0.sock()), buf)
    }

    fn shut_write(&self) -> io::Result<()> {
        socket::shutdown(self.0.sock(), Shutdown::Write)
    }

    fn for_stdin(&self) -> anyhow::Result<Box<dyn Link>> {
        Ok(Box::new(Plain(Dup(dup_for_stdin(self.0.sock())?))))
    }

    fn release(self: Box<Self>) {
        self.0.release();
    }
}

/// Tells `flow` (when narrating) of a data call that returned `result`, spelled by `full`.
pub fn told(
    flow: &mut Option<Flow>,
    key: Key,
    full: impl FnOnce() -> String,
    result: io::Result<usize>,
) -> io::Result<usize> {
    if let Some(f) = flow {
        f.call(key, full, &result);
    }
    result
}

/// One read(2) from `fd`, narrated at `-vv`.
pub fn read_fd(flow: &mut Option<Flow>, fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    let r = sys::read(fd, buf);
    let len = buf.len();
    let key = Key {
        name: "read",
        from: fd,
        to: None,
    };
    told(flow, key, || format!("read(fd {fd}, buf, {len})"), r)
}

/// One write(2) to `fd`, narrated at `-vv`.
pub fn write_fd(flow: &mut Option<Flow>, fd: RawFd, buf: &[u8]) -> io::Result<usize> {
    let r = sys::write(fd, buf);
    let len = buf.len();
    let key = Key {
        name: "write",
        from: fd,
        to: None,
    };
    told(flow, key, || format!("write(fd {fd}, buf, {len})"), r)
}
