//! The two kinds of stream socket the engine serves, TCP and Unix-domain, behind one type each
//! (`Listen`, `Stream`) so the acceptor, the event loop and the connection do not care which.
//! Who a client is lives in `peer.rs`; nothing here decides anything. A client's stream may
//! also be TLS over either (`Stream::Tls`, tls/stage.rs): read and written as plaintext the
//! same way, with its ciphertext sent on writable events (`send_held`) and its close_notify
//! on our shutdown.

use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

use mio::event::Source;
use mio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use mio::{Interest, Registry, Token};

use socket2::{SockRef, Socket};

use super::peer::{Peer, plain_addr};
use crate::socket::{self, unix};
use crate::tls::TlsStream;

/// A listening socket the engine accepts on.
pub enum Listen {
    Tcp(TcpListener),
    Unix(UnixListener),
}

impl Listen {
    /// Wraps a bound, listening socket for mio (made non-blocking first, as edge-triggered
    /// epoll needs): a Unix-domain one when `unix`, TCP otherwise.
    pub fn new(listener: Socket, unix: bool) -> io::Result<Listen> {
        socket::set_nonblocking(&listener, true)?;
        Ok(if unix {
            Listen::Unix(UnixListener::from_std(
                std::os::unix::net::UnixListener::from(OwnedFd::from(listener)),
            ))
        } else {
            Listen::Tcp(TcpListener::from_std(std::net::TcpListener::from(listener)))
        })
    }

    /// accept(): the client's socket and who it is.
    pub fn accept(&self) -> io::Result<(Stream, Peer)> {
        match self {
            Listen::Tcp(l) => l
                .accept()
                .map(|(s, a)| (Stream::Tcp(s), Peer::Ip(plain_addr(a)))),
            Listen::Unix(l) => l.accept().map(|(s, _)| {
                let who = unix::describe_peer(s.as_raw_fd());
                (Stream::Unix(s), Peer::Unix(who))
            }),
        }
    }
}

impl Listen {
    /// close(), narrated: the server accepts no more.
    pub fn close(self) {
        socket::close(Socket::from(OwnedFd::from(self)));
    }
}

impl From<Listen> for OwnedFd {
    fn from(l: Listen) -> OwnedFd {
        match l {
            Listen::Tcp(l) => l.into(),
            Listen::Unix(l) => l.into(),
        }
    }
}

/// A client connection.
pub enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
    /// TLS over one of the others (boxed: a plain client does not pay for rustls's state).
    Tls(Box<TlsStream<Stream>>),
}

impl Stream {
    /// A TCP connection, plain or under TLS (what TCP_INFO can be read from).
    pub fn is_tcp(&self) -> bool {
        match self {
            Stream::Tcp(_) => true,
            Stream::Unix(_) => false,
            Stream::Tls(s) => s.get_ref().is_tcp(),
        }
    }

    /// ` on 127.0.0.1:7`: our end, for the `accepted` line (a Unix socket's is its path,
    /// already announced, so nothing).
    pub fn local_shown(&self) -> String {
        match self {
            // Narrated (getsockname), like every call on a client's socket.
            Stream::Tcp(s) => socket::local_addr(&SockRef::from(s))
                .map(|a| format!(" on {}", plain_addr(a)))
                .unwrap_or_default(),
            Stream::Unix(_) => String::new(),
            Stream::Tls(s) => s.get_ref().local_shown(),
        }
    }

    /// close(), narrated like every close; the descriptor also leaves epoll with it. A TLS
    /// stream says close_notify first, if it has not.
    pub fn close(self) {
        let plain = match self {
            Stream::Tls(s) => s.finish(),
            plain => plain,
        };
        socket::close(Socket::from(OwnedFd::from(plain)));
    }

    /// shutdown(SHUT_WR): our FIN; over TLS, close_notify first, the FIN once it is out.
    pub fn shutdown_write(&self) {
        match self {
            Stream::Tls(s) => s.close_write(),
            plain => {
                let _ = socket::shutdown(&SockRef::from(plain), std::net::Shutdown::Write);
            }
        }
    }

    /// shutdown(SHUT_WR) without close_notify even over TLS: how forward passes on a
    /// truncation, so the far end sees one too.
    pub fn shutdown_write_bare(&self) {
        match self {
            Stream::Tls(s) => s.bare_close_write(),
            plain => plain.shutdown_write(),
        }
    }

    /// The source ended its TLS with a TCP EOF and no close_notify.
    pub fn truncated(&self) -> bool {
        self.tls().is_some_and(TlsStream::truncated)
    }

    /// Plaintext written and not yet out as ciphertext (over TLS, during its handshake).
    pub fn unsent(&self) -> u64 {
        self.tls().map_or(0, TlsStream::unsent)
    }

    /// Over TLS, plaintext whose records the kernel took and the peer has not acknowledged:
    /// lost if the connection is reset now. 0 for a plain socket (not counted there).
    pub fn unacked(&self) -> u64 {
        self.tls().map_or(0, TlsStream::unacked)
    }

    /// Over TLS, sends the ciphertext rustls holds as far as the kernel takes it (a
    /// writable event's work); nothing for a plain socket, which holds nothing.
    pub fn send_held(&self) -> io::Result<()> {
        match self {
            Stream::Tls(s) => s.send_held(),
            _ => Ok(()),
        }
    }

    /// Bytes written to us that the kernel has not taken yet (TLS's ciphertext).
    pub fn holds_output(&self) -> bool {
        matches!(self, Stream::Tls(s) if s.holds_output())
    }

    pub fn tls(&self) -> Option<&TlsStream<Stream>> {
        match self {
            Stream::Tls(s) => Some(s),
            _ => None,
        }
    }
}

impl Read for &Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => (&*s).read(buf),
            Stream::Unix(s) => (&*s).read(buf),
            Stream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for &Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => (&*s).write(buf),
            Stream::Unix(s) => (&*s).write(buf),
            Stream::Tls(s) => s.write(buf),
        }
    }

    /// One writev for many buffers (rustls hands over a flight of records this way): as
    /// small writes, Nagle would hold all but the first for the peer's delayed ACK.
    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => (&*s).write_vectored(bufs),
            Stream::Unix(s) => (&*s).write_vectored(bufs),
            Stream::Tls(s) => {
                let first = bufs
                    .iter()
                    .find(|b| !b.is_empty())
                    .map_or(&[][..], |b| &b[..]);
                s.write(first)
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl AsRawFd for Stream {
    fn as_raw_fd(&self) -> RawFd {
        match self {
            Stream::Tcp(s) => s.as_raw_fd(),
            Stream::Unix(s) => s.as_raw_fd(),
            Stream::Tls(s) => s.get_ref().as_raw_fd(),
        }
    }
}

impl AsFd for Stream {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            Stream::Tcp(s) => s.as_fd(),
            Stream::Unix(s) => s.as_fd(),
            Stream::Tls(s) => s.get_ref().as_fd(),
        }
    }
}

impl From<Stream> for OwnedFd {
    fn from(s: Stream) -> OwnedFd {
        match s {
            Stream::Tcp(s) => s.into(),
            Stream::Unix(s) => s.into(),
            Stream::Tls(s) => s.into_inner().into(),
        }
    }
}

macro_rules! delegate_source {
    ($ty:ident) => {
        impl Source for $ty {
            fn register(&mut self, r: &Registry, t: Token, i: Interest) -> io::Result<()> {
                match self {
                    $ty::Tcp(s) => s.register(r, t, i),
                    $ty::Unix(s) => s.register(r, t, i),
                }
            }

            fn reregister(&mut self, r: &Registry, t: Token, i: Interest) -> io::Result<()> {
                match self {
                    $ty::Tcp(s) => s.reregister(r, t, i),
                    $ty::Unix(s) => s.reregister(r, t, i),
                }
            }

            fn deregister(&mut self, r: &Registry) -> io::Result<()> {
                match self {
                    $ty::Tcp(s) => s.deregister(r),
                    $ty::Unix(s) => s.deregister(r),
                }
            }
        }
    };
}

delegate_source!(Listen);

impl Source for Stream {
    fn register(&mut self, r: &Registry, t: Token, i: Interest) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.register(r, t, i),
            Stream::Unix(s) => s.register(r, t, i),
            Stream::Tls(s) => s.get_mut().register(r, t, i),
        }
    }

    fn reregister(&mut self, r: &Registry, t: Token, i: Interest) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.reregister(r, t, i),
            Stream::Unix(s) => s.reregister(r, t, i),
            Stream::Tls(s) => s.get_mut().reregister(r, t, i),
        }
    }

    fn deregister(&mut self, r: &Registry) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.deregister(r),
            Stream::Unix(s) => s.deregister(r),
            Stream::Tls(s) => s.get_mut().deregister(r),
        }
    }
}
