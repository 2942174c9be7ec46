//! The broker and chat services (`listen --broker`, `--chat`): every client's bytes go to all
//! the other clients, never back to the sender. Chat adds people's manners: each line goes out
//! as `<ADDR:PORT> line`, and joins and leaves are announced. Pure logic on the engine's
//! fan-out hook (`Service::share`); the engine delivers and drops clients that do not read.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::server::{Event, Farewell, Next, Service};

/// Longest chat line kept whole; a longer one goes out in pieces of this size, each as a line
/// of its own, so a client that never sends a newline cannot grow the server's memory.
pub const MAX_LINE: usize = 4096;

/// The hub: raw bytes (`--broker`) or lines with their sender (`--chat`).
#[derive(Debug, Default)]
pub struct Broker {
    chat: bool,
    /// Clients connected now, for the chat's welcome line.
    here: AtomicUsize,
}

/// One client as the broker knows it.
#[derive(Debug)]
pub struct Member {
    peer: SocketAddr,
    /// Chat: the start of a line whose newline has not arrived yet.
    partial: Vec<u8>,
}

impl Broker {
    pub fn new(chat: bool) -> Broker {
        Broker {
            chat,
            here: AtomicUsize::new(0),
        }
    }

    /// `<peer> line\n` for each whole line in `data`; the unfinished rest waits in `partial`.
    /// Blank lines are not passed on.
    fn lines(m: &mut Member, data: &[u8], others: &mut Vec<u8>) {
        let mut rest = data;
        while !rest.is_empty() {
            if let Some(i) = rest.iter().position(|&b| b == b'\n') {
                m.partial.extend_from_slice(&rest[..=i]);
                rest = &rest[i + 1..];
                Self::say(m, others);
            } else {
                m.partial.extend_from_slice(rest);
                rest = &[];
            }
            while m.partial.len() > MAX_LINE {
                let tail = m.partial.split_off(MAX_LINE);
                Self::say(m, others);
                m.partial = tail;
            }
        }
    }

    /// Sends the line in `partial` (adding the newline it lacks) and empties it.
    fn say(m: &mut Member, others: &mut Vec<u8>) {
        let line = std::mem::take(&mut m.partial);
        let text = line.strip_suffix(b"\n").unwrap_or(&line);
        let text = text.strip_suffix(b"\r").unwrap_or(text);
        if text.iter().all(u8::is_ascii_whitespace) {
            return;
        }
        others.extend_from_slice(format!("<{}> ", m.peer).as_bytes());
        others.extend_from_slice(&line);
        if !line.ends_with(b"\n") {
            others.push(b'\n');
        }
    }
}

impl Service for Broker {
    type Session = Member;

    const FAN_OUT: bool = true;

    fn open(&self, peer: SocketAddr, out: &mut Vec<u8>) -> Member {
        let before = self.here.fetch_add(1, Ordering::Relaxed);
        if self.chat {
            let others = match before {
                0 => "nobody else is here yet".to_string(),
                1 => "1 other is here".to_string(),
                n => format!("{n} others are here"),
            };
            out.extend_from_slice(format!("* welcome, you are {peer}; {others}\n").as_bytes());
        }
        Member {
            peer,
            partial: Vec::new(),
        }
    }

    /// Nothing goes back to the sender; what it sent is for the others (`share`).
    fn input(&self, _m: &mut Member, _data: &[u8], _out: &mut Vec<u8>) -> Next {
        Next::Continue
    }

    /// Chat has lines, so a client the server ends is told why; the raw broker passes bytes
    /// only and adds none of its own.
    fn farewell(&self, why: &Farewell, out: &mut Vec<u8>) {
        if !self.chat {
            return;
        }
        let line = match why {
            Farewell::Idle(limit) => format!(
                "* closing: you were quiet for {} (--idle-timeout)",
                humantime::format_duration(*limit)
            ),
            Farewell::Stopping => "* closing: the server is stopping".to_string(),
            Farewell::Full(n) => format!("* sorry, the chat is full ({n} here, --max-conns {n})"),
        };
        out.extend_from_slice(line.as_bytes());
        out.push(b'\n');
    }

    fn share(&self, m: &mut Member, event: Event, others: &mut Vec<u8>) {
        match event {
            Event::Joined if self.chat => {
                others.extend_from_slice(format!("* {} joined\n", m.peer).as_bytes());
            }
            Event::Data(data) if self.chat => Self::lines(m, data, others),
            Event::Data(data) => others.extend_from_slice(data),
            Event::Eof if self.chat && !m.partial.is_empty() => Self::say(m, others),
            Event::Left(_) => {
                self.here.fetch_sub(1, Ordering::Relaxed);
                if self.chat {
                    if !m.partial.is_empty() {
                        Self::say(m, others);
                    }
                    others.extend_from_slice(format!("* {} left\n", m.peer).as_bytes());
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(b: &Broker, port: u16) -> Member {
        let mut greeting = Vec::new();
        b.open(SocketAddr::from(([127, 0, 0, 1], port)), &mut greeting)
    }

    fn share(b: &Broker, m: &mut Member, e: Event) -> String {
        let mut out = Vec::new();
        b.share(m, e, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn broker_passes_bytes_on_untouched_and_answers_nothing() {
        let b = Broker::new(false);
        let mut m = member(&b, 5000);
        let mut back = Vec::new();
        assert_eq!(b.input(&mut m, b"\x00\xffhi", &mut back), Next::Continue);
        assert!(back.is_empty(), "nothing goes back to the sender");
        let mut out = Vec::new();
        b.share(&mut m, Event::Data(b"\x00\xffhi"), &mut out);
        assert_eq!(out, b"\x00\xffhi");
        assert_eq!(share(&b, &mut m, Event::Joined), "");
        assert_eq!(share(&b, &mut m, Event::Left("bye")), "");
    }

    #[test]
    fn chat_prefixes_whole_lines_and_keeps_the_rest() {
        let b = Broker::new(true);
        let mut m = member(&b, 5000);
        assert_eq!(
            share(&b, &mut m, Event::Joined),
            "* 127.0.0.1:5000 joined\n"
        );
        assert_eq!(
            share(&b, &mut m, Event::Data(b"hello\nwor")),
            "<127.0.0.1:5000> hello\n"
        );
        assert_eq!(
            share(&b, &mut m, Event::Data(b"ld\r\n\n  \nx")),
            "<127.0.0.1:5000> world\r\n",
            "CRLF kept, blank lines dropped"
        );
        assert_eq!(
            share(&b, &mut m, Event::Left("gone")),
            "<127.0.0.1:5000> x\n* 127.0.0.1:5000 left\n"
        );
    }

    #[test]
    fn chat_welcomes_with_a_count_and_cuts_long_lines() {
        let b = Broker::new(true);
        let mut g = Vec::new();
        let _a = b.open("127.0.0.1:1".parse().unwrap(), &mut g);
        assert_eq!(
            g,
            b"* welcome, you are 127.0.0.1:1; nobody else is here yet\n"
        );
        g.clear();
        let mut m = b.open("127.0.0.1:2".parse().unwrap(), &mut g);
        assert_eq!(g, b"* welcome, you are 127.0.0.1:2; 1 other is here\n");
        let long = vec![b'a'; MAX_LINE * 2 + 10];
        let out = share(&b, &mut m, Event::Data(&long));
        assert_eq!(out.lines().count(), 2, "two full pieces go at once");
        assert!(m.partial.len() == 10, "the rest waits for its newline");
        assert_eq!(
            share(&b, &mut m, Event::Eof),
            format!("<127.0.0.1:2> {}\n", "a".repeat(10))
        );
    }
}
