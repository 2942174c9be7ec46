//! A decoded segment as `--wire` tells it, tcpdump's way: flags in brackets, sequence and
//! acknowledgement numbers relative to each side's initial sequence number (so the SYN is
//! `seq 0` and the first data byte is 1), the direction seen from this end (`->` sent, `<-`
//! received). The window and options are told on SYN segments, where the window is not yet
//! scaled and the options are negotiated; payload as `len N`. UDP: the datagram's length.

use std::net::SocketAddr;

use super::decode::Tcp;

/// One segment as told: the line, and its relative numbers for the trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Told {
    pub line: String,
    pub seq: u32,
    pub ack: Option<u32>,
}

/// The initial sequence numbers of each connection seen, to make numbers relative.
#[derive(Default)]
pub struct Isns {
    seen: Vec<Conn>,
}

struct Conn {
    local: SocketAddr,
    remote: SocketAddr,
    /// This end's ISN (its SYN's seq), or the first seq seen.
    ours: Option<u32>,
    theirs: Option<u32>,
}

/// How many connections' ISNs are remembered: a server's clients come and go, and a bounded
/// list forgets the oldest (whose numbers are then told from their first segment seen).
const REMEMBERED: usize = 256;

impl Isns {
    /// The line for one TCP segment between `local` and `remote`.
    pub fn tcp_line(
        &mut self,
        outgoing: bool,
        local: SocketAddr,
        remote: SocketAddr,
        t: &Tcp,
    ) -> Told {
        let found = self
            .seen
            .iter()
            .position(|c| c.local == local && c.remote == remote);
        let idx = if let Some(i) = found {
            i
        } else {
            if self.seen.len() >= REMEMBERED {
                self.seen.remove(0);
            }
            self.seen.push(Conn {
                local,
                remote,
                ours: None,
                theirs: None,
            });
            self.seen.len() - 1
        };
        let conn = &mut self.seen[idx];
        let (sender, receiver) = if outgoing {
            (&mut conn.ours, &mut conn.theirs)
        } else {
            (&mut conn.theirs, &mut conn.ours)
        };
        if t.syn || sender.is_none() {
            *sender = Some(t.seq);
        }
        let base = sender.unwrap_or(t.seq);
        let seq = t.seq.wrapping_sub(base);
        let arrow = if outgoing { "->" } else { "<-" };
        let mut line = format!("{arrow} [{}]", t.flags());
        if t.len > 0 {
            line.push_str(&format!(" seq {seq}:{}", seq.wrapping_add(t.len as u32)));
        } else {
            line.push_str(&format!(" seq {seq}"));
        }
        let ack = t.has_ack.then(|| match receiver {
            Some(b) => t.ack.wrapping_sub(*b),
            None => t.ack,
        });
        if let Some(ack) = ack {
            line.push_str(&format!(" ack {ack}"));
        }
        if t.syn {
            line.push_str(&format!(" win {}", t.win));
            if !t.options.is_empty() {
                line.push_str(&format!(" <{}>", t.options.join(",")));
            }
        }
        if t.len > 0 {
            line.push_str(&format!(" len {}", t.len));
        }
        Told { line, seq, ack }
    }
}

/// The line for one UDP datagram.
pub fn udp_line(outgoing: bool, len: usize) -> String {
    let arrow = if outgoing { "->" } else { "<-" };
    format!("{arrow} UDP len {len}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(seq: u32, ack: u32, syn: bool, has_ack: bool, len: usize) -> Tcp {
        Tcp {
            seq,
            ack,
            win: 65495,
            syn,
            fin: false,
            rst: false,
            psh: len > 0,
            urg: false,
            ece: false,
            cwr: false,
            has_ack,
            len,
            options: vec!["mss 65495".into()],
        }
    }

    #[test]
    fn numbers_are_relative_to_each_isn() {
        let (l, r) = (
            "127.0.0.1:4000".parse().unwrap(),
            "127.0.0.1:80".parse().unwrap(),
        );
        let mut isns = Isns::default();
        assert_eq!(
            isns.tcp_line(true, l, r, &seg(1000, 0, true, false, 0))
                .line,
            "-> [S] seq 0 win 65495 <mss 65495>"
        );
        assert_eq!(
            isns.tcp_line(false, l, r, &seg(5000, 1001, true, true, 0))
                .line,
            "<- [S.] seq 0 ack 1 win 65495 <mss 65495>"
        );
        let data = isns.tcp_line(true, l, r, &seg(1001, 5001, false, true, 6));
        assert_eq!(data.line, "-> [P.] seq 1:7 ack 1 len 6");
        assert_eq!((data.seq, data.ack), (1, Some(1)));
    }
}
