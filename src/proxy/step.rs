//! What a reply decoder makes of the bytes read so far: done (with how many bytes the message
//! took), or how many more it needs, or that the proxy sent something no proxy would. The
//! reading itself, and its deadline, belong to `socket/proxied.rs`.

use std::fmt;

/// A decoder's verdict on a prefix of the proxy's reply.
#[derive(Debug, PartialEq, Eq)]
pub enum Step<T> {
    /// The message is whole: its meaning and how many bytes it took.
    Done(T, usize),
    /// The message is at least this many bytes long in all: read up to it.
    Need(usize),
    /// The length is not known from a prefix (an HTTP header): read what there is, ask again.
    More,
}

/// Bytes that are not the protocol: what was expected, in words.
#[derive(Debug, PartialEq, Eq, Clone)]
pub struct Bad(pub String);

impl Bad {
    pub fn new(why: impl Into<String>) -> Bad {
        Bad(why.into())
    }
}

impl fmt::Display for Bad {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Bad {}
