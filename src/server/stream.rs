//! The two kinds of stream socket the engine serves, TCP and Unix-domain, behind one type each
//! (`Listen`, `Stream`) so the event loop, the connection state and the services do not care
//! which; and `Peer`, who a client is: an IP address, or for a Unix client (which has none
//! worth showing) its credentials. Nothing here decides anything; engine.rs does.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

use mio::event::Source;
use mio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use mio::{Interest, Registry, Token};

use super::plain_addr;
use crate::socket::unix;

/// A listening socket the engine accepts on.
pub enum Listen {
    Tcp(TcpListener),
    Unix(UnixListener),
}

impl Listen {
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

/// Who a client is, for log lines, `--allow`/`--deny` and the service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Peer {
    Ip(SocketAddr),
    /// A Unix-domain client: `pid 1234 (uid 1000, gid 1000)` from SO_PEERCRED.
    Unix(String),
}

impl Peer {
    /// The address a `Service` is given. A Unix client has no IP address, so it gets the
    /// unspecified one (`0.0.0.0:0`), as the `Service` contract documents.
    pub fn sock_addr(&self) -> SocketAddr {
        match self {
            Peer::Ip(a) => *a,
            Peer::Unix(_) => SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), 0),
        }
    }
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Peer::Ip(a) => write!(f, "{a}"),
            Peer::Unix(who) => write!(f, "Unix client {who}"),
        }
    }
}
