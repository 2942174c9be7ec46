//! `-x` for the servers on the engine (echo, knock, broker): a wrapper service that shows each
//! client's bytes in the hex view of `wire.rs` and otherwise changes nothing. `<` is what a
//! client sent, `>` what the service answered (queued in order, so that is what the client is
//! sent unless it goes away first); each block is labelled with the client's address, and
//! offsets count per client and direction. A broker's fan-out bytes show once per sender, as
//! `>` to `others`.

use std::net::SocketAddr;

use crate::relay::wire::{Dir, Dump};
use crate::server::{Event, Farewell, Next, Service};

/// `inner`, with every byte in and out of it dumped.
pub struct Dumped<S> {
    pub inner: S,
    pub dump: Dump,
}

/// The inner session plus where each direction's dump has got to.
pub struct Tap<T> {
    inner: T,
    label: String,
    received: u64,
    sent: u64,
    shared: u64,
}

impl<S: Service> Dumped<S> {
    fn answered(&self, tap: &mut Tap<S::Session>, out: &[u8]) {
        self.dump.record(Some(&tap.label), Dir::Out, tap.sent, out);
        tap.sent += out.len() as u64;
    }
}

impl<S: Service> Service for Dumped<S> {
    type Session = Tap<S::Session>;

    const FAN_OUT: bool = S::FAN_OUT;

    const ANSWERS_EMPTY: bool = S::ANSWERS_EMPTY;

    fn open(&self, peer: SocketAddr, out: &mut Vec<u8>) -> Self::Session {
        let start = out.len();
        let inner = self.inner.open(peer, out);
        let mut tap = Tap {
            inner,
            label: peer.to_string(),
            received: 0,
            sent: 0,
            shared: 0,
        };
        self.answered(&mut tap, &out[start..]);
        tap
    }

    fn input(&self, tap: &mut Self::Session, data: &[u8], out: &mut Vec<u8>) -> Next {
        self.dump
            .record(Some(&tap.label), Dir::In, tap.received, data);
        tap.received += data.len() as u64;
        let start = out.len();
        let next = self.inner.input(&mut tap.inner, data, out);
        self.answered(tap, &out[start..]);
        next
    }

    fn eof(&self, tap: &mut Self::Session, out: &mut Vec<u8>) -> Next {
        let start = out.len();
        let next = self.inner.eof(&mut tap.inner, out);
        self.answered(tap, &out[start..]);
        next
    }

    fn farewell(&self, why: &Farewell, out: &mut Vec<u8>) {
        // No client label: a client turned away at the door has no session. Its address
        // is in the server's log line beside it.
        let start = out.len();
        self.inner.farewell(why, out);
        if out.len() > start {
            self.dump
                .record(Some("farewell"), Dir::Out, 0, &out[start..]);
        }
    }

    fn share(&self, tap: &mut Self::Session, event: Event, others: &mut Vec<u8>) {
        let start = others.len();
        self.inner.share(&mut tap.inner, event, others);
        let label = format!("{} to others", tap.label);
        self.dump
            .record(Some(&label), Dir::Out, tap.shared, &others[start..]);
        tap.shared += (others.len() - start) as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::echo::Echo;

    #[test]
    fn the_wrapper_changes_no_byte_of_the_answer() {
        let dir = std::env::temp_dir().join(format!("sockkit-dumped-{}", std::process::id()));
        let dump = Dump::open(true, Some(&dir)).unwrap().unwrap();
        let svc = Dumped { inner: Echo, dump };
        let mut out = Vec::new();
        let mut tap = svc.open("127.0.0.1:9".parse().unwrap(), &mut out);
        assert_eq!(svc.input(&mut tap, b"hi\n", &mut out), Next::Continue);
        assert_eq!(out, b"hi\n");
        assert_eq!(svc.eof(&mut tap, &mut out), Next::Close);
        let text = std::fs::read_to_string(&dir).unwrap();
        std::fs::remove_file(&dir).unwrap();
        assert_eq!(
            text,
            "< 127.0.0.1:9: 3 bytes\n\
             < 00000000  68 69 0a                                          |hi.|\n\
             > 127.0.0.1:9: 3 bytes\n\
             > 00000000  68 69 0a                                          |hi.|\n"
        );
    }
}
