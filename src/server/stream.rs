//! The two kinds of stream socket the engine serves, TCP and Unix-domain, behind one type each
//! (`Listen`, `Stream`) so the acceptor, the event loop and the connection do not care which.
//! Who a client is lives in `peer.rs`; nothing here decides anything.

use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

use mio::event::Source;
use mio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use mio::{Interest, Registry, Token};

use socket2::{SockRef, Socket};

use super::peer::{Peer, plain_addr};
use crate::socket::{self, unix};

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
}

impl Stream {
    /// ` on 127.0.0.1:7`: our end, for the `accepted` line (a Unix socket's is its path,
    /// already announced, so nothing).
    pub fn local_shown(&self) -> String {
        match self {
            // Narrated (getsockname), like every call on a client's socket.
            Stream::Tcp(s) => socket::local_addr(&SockRef::from(s))
                .map(|a| format!(" on {}", plain_addr(a)))
                .unwrap_or_default(),
            Stream::Unix(_) => String::new(),
        }
    }

    /// close(), narrated like every close; the descriptor also leaves epoll with it.
    pub fn close(self) {
        socket::close(Socket::from(OwnedFd::from(self)));
    }
}

impl Read for &Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => (&*s).read(buf),
            Stream::Unix(s) => (&*s).read(buf),
        }
    }
}

impl Write for &Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => (&*s).write(buf),
            Stream::Unix(s) => (&*s).write(buf),
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
        }
    }
}

impl AsFd for Stream {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            Stream::Tcp(s) => s.as_fd(),
            Stream::Unix(s) => s.as_fd(),
        }
    }
}

impl From<Stream> for OwnedFd {
    fn from(s: Stream) -> OwnedFd {
        match s {
            Stream::Tcp(s) => s.into(),
            Stream::Unix(s) => s.into(),
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
delegate_source!(Stream);
