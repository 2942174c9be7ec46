//! The Knock Knock protocol of the Java sockets tutorial (KnockKnockProtocol), as sockkit
//! speaks it: a pure state machine (`Conversation`: one answer line in, one reply line out,
//! no I/O), the order a client hears the jokes in (`Order`), and the `Knock` service that
//! frames a connection's bytes into lines for it. The engine in `server/` owns the sockets;
//! the jokes come from `jokes.rs`.
//!
//! ```text
//! S: Knock! Knock!
//! C: Who's there?
//! S: <clue>
//! C: <clue> who?
//! S: <punchline> Want another? (y/n)
//! C: y -> S: Knock! Knock! (the next joke)   anything else -> S: Bye.  (and the server closes)
//! ```
//!
//! Answers are compared case-insensitively, ignoring surrounding whitespace (and treating a
//! run of inner whitespace as one space); lines may end in LF or CRLF. Replies end in LF, as
//! the tutorial's `println` does on Unix. A wrong answer gets one line saying what was
//! expected, ending in `Knock! Knock!`: the same joke starts over. A line that is not UTF-8
//! or holds a NUL byte is a wrong answer like any other; a line over 1 KiB ends the client.
//! After `MAX_WRONG` wrong answers in a row the server says goodbye: each wrong answer costs
//! a line of about 90 bytes, so without that a client pipelining empty lines would get back
//! some 45 times what it sent.

use std::hash::{BuildHasher, RandomState};
use std::net::SocketAddr;

use crate::narrate;
use crate::server::{Farewell, Next, Service};
use crate::service::jokes::{Jokes, MAX_LINE, fold};

pub const KNOCK: &str = "Knock! Knock!";
pub const WHOS_THERE: &str = "Who's there?";
pub const WANT_ANOTHER: &str = "Want another? (y/n)";
pub const BYE: &str = "Bye.";

/// Wrong answers in a row after which the server gives up on a client.
pub const MAX_WRONG: u32 = 16;

/// `Who's there?` as [`fold`] leaves it, to compare answers with.
const WHOS_THERE_KEY: &str = "who's there?";

/// Where a conversation stands: what the server said last, so what it waits to hear.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Said `Knock! Knock!`; waits for `Who's there?`.
    Knocked,
    /// Said the clue; waits for `<clue> who?`.
    Clued,
    /// Said the punchline and `Want another? (y/n)`; waits for `y`.
    Offered,
    /// Said `Bye.`; the connection is closing.
    Over,
}

/// The server's reply to one line from the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The line to send (without its line ending); `None` once the conversation is over.
    pub line: Option<String>,
    /// True when the server closes after sending `line`.
    pub close: bool,
    /// The joke (index into the set) whose punchline this reply delivered, for `-v`.
    pub told: Option<usize>,
}

impl Reply {
    fn say(line: String) -> Reply {
        Reply {
            line: Some(line),
            close: false,
            told: None,
        }
    }
}

/// The order one client hears the jokes in: in file order, or (with `--shuffle`) an affine
/// permutation `start + k * stride (mod n)` with `stride` coprime to `n`. That visits every
/// joke once before any repeats and costs two numbers per client however many jokes there are,
/// where a shuffled list would cost memory per joke per client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Order {
    n: u64,
    start: u64,
    stride: u64,
}

impl Order {
    pub fn in_order(n: usize) -> Order {
        Order {
            n: n.max(1) as u64,
            start: 0,
            stride: 1,
        }
    }

    /// A permutation of `n` jokes picked by `seed`.
    pub fn shuffled(n: usize, seed: u64) -> Order {
        let n = n.max(1) as u64;
        let mut stride = 1 + (seed >> 32) % n;
        while gcd(stride, n) != 1 {
            // Terminates: stride 1 is coprime with every n.
            stride = stride % n + 1;
        }
        Order {
            n,
            start: seed % n,
            stride,
        }
    }

    /// Index of the `k`-th joke told (0-based), cycling after all `n`.
    pub fn nth(&self, k: u64) -> usize {
        // (k % n) * stride < n * n, which fits u64 for any jokes file we accept.
        ((self.start + (k % self.n) * self.stride) % self.n) as usize
    }
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// One client's conversation: pure state, fed one line at a time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conversation {
    state: State,
    order: Order,
    /// How many jokes were started before the current one (position in `order`).
    position: u64,
    /// Wrong answers since the last right one.
    wrong: u32,
}

impl Conversation {
    /// A new conversation and the greeting the server opens with.
    pub fn new(order: Order) -> (Conversation, String) {
        let c = Conversation {
            state: State::Knocked,
            order,
            position: 0,
            wrong: 0,
        };
        (c, KNOCK.to_string())
    }

    pub fn state(&self) -> State {
        self.state
    }

    /// Index (into the set) of the joke being told.
    pub fn current(&self) -> usize {
        self.order.nth(self.position)
    }

    /// The server's answer to one line from the client (its line ending already removed).
    /// `line` is raw bytes: text that is not UTF-8 or holds a NUL cannot be the expected words,
    /// so it is a wrong answer (at `Offered`, a no).
    pub fn hear(&mut self, jokes: &Jokes, line: &[u8]) -> Reply {
        // None when unintelligible: it can equal no expected answer.
        let heard = match std::str::from_utf8(line) {
            Ok(text) if !text.contains('\0') => Some(fold(text)),
            _ => None,
        };
        let heard = heard.as_deref();
        let joke = jokes.get(self.current());
        let right = match self.state {
            State::Knocked => heard == Some(WHOS_THERE_KEY),
            State::Clued => heard.is_some_and(|h| joke.is_answer(h)),
            // At the offer there is no wrong answer: anything but `y` is a no.
            State::Offered | State::Over => true,
        };
        if right {
            self.wrong = 0;
        } else {
            self.wrong += 1;
            if self.wrong >= MAX_WRONG {
                self.state = State::Over;
                return Reply {
                    line: Some(format!(
                        "That's {MAX_WRONG} wrong answers in a row; I'll save my jokes for later. {BYE}"
                    )),
                    close: true,
                    told: None,
                };
            }
        }
        match self.state {
            State::Knocked if heard == Some(WHOS_THERE_KEY) => {
                self.state = State::Clued;
                Reply::say(joke.clue.clone())
            }
            State::Knocked => Reply::say(format!(
                "That's not it: when someone knocks, you say \"{WHOS_THERE}\". Let's try again. {KNOCK}"
            )),
            State::Clued if heard.is_some_and(|h| joke.is_answer(h)) => {
                self.state = State::Offered;
                Reply {
                    line: Some(format!("{} {WANT_ANOTHER}", joke.punchline)),
                    close: false,
                    told: Some(self.current()),
                }
            }
            State::Clued => {
                self.state = State::Knocked;
                Reply::say(format!(
                    "Not quite: after \"{}\" comes \"{}\". From the top: {KNOCK}",
                    joke.clue,
                    joke.expected_answer()
                ))
            }
            State::Offered if heard == Some("y") => {
                self.state = State::Knocked;
                self.position += 1;
                Reply::say(KNOCK.to_string())
            }
            State::Offered => {
                self.state = State::Over;
                Reply {
                    line: Some(BYE.to_string()),
                    close: true,
                    told: None,
                }
            }
            State::Over => Reply {
                line: None,
                close: true,
                told: None,
            },
        }
    }
}

/// The knock service: the jokes and how to order them, shared by every connection.
pub struct Knock {
    jokes: Jokes,
    shuffle: bool,
    /// Seeds per-client shuffles; std's RandomState is randomly keyed per process.
    seeds: RandomState,
}

impl Knock {
    pub fn new(jokes: Jokes, shuffle: bool) -> Knock {
        Knock {
            jokes,
            shuffle,
            seeds: RandomState::new(),
        }
    }

    fn order_for(&self, peer: SocketAddr) -> Order {
        if self.shuffle {
            // The peer's port and the clock make two clients' seeds differ within a process.
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
            Order::shuffled(self.jokes.len(), self.seeds.hash_one((peer, now)))
        } else {
            Order::in_order(self.jokes.len())
        }
    }
}

/// One connection: its conversation and the part of a line not yet ended by LF.
pub struct Session {
    peer: SocketAddr,
    conversation: Conversation,
    /// At most `MAX_LINE + 1` bytes (a full line and the CR of a CRLF still to come), so a
    /// client costs a bounded amount of memory however it sends.
    partial: Vec<u8>,
    told: u64,
    /// Why the conversation ended, when the service decided it (for the `-v` leaving line).
    ending: Option<&'static str>,
}

impl Session {
    /// Buffered bytes of an unfinished line.
    #[cfg(test)]
    pub fn pending(&self) -> usize {
        self.partial.len()
    }

    /// Answers one complete line; true when the server closes after it.
    fn answer(&mut self, jokes: &Jokes, line: &[u8], out: &mut Vec<u8>) -> bool {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let reply = self.conversation.hear(jokes, line);
        if let Some(text) = reply.line {
            out.extend_from_slice(text.as_bytes());
            out.push(b'\n');
        }
        if let Some(i) = reply.told {
            self.told += 1;
            narrate::info(format_args!(
                "knock: {} heard joke {} ({:?}); {} told",
                self.peer,
                i + 1,
                jokes.get(i).clue,
                self.told
            ));
        }
        if reply.close {
            self.ending.get_or_insert("said goodbye");
        }
        reply.close
    }
}

impl Drop for Session {
    /// The engine drops a session when its connection ends, for whatever reason: the one
    /// place that sees every client leave.
    fn drop(&mut self) {
        let why = self.ending.unwrap_or(match self.conversation.state() {
            State::Offered => "left between jokes",
            _ => "left mid-joke",
        });
        narrate::info(format_args!(
            "knock: {} leaves after {} joke{} ({why})",
            self.peer,
            self.told,
            if self.told == 1 { "" } else { "s" }
        ));
    }
}

impl Service for Knock {
    type Session = Session;

    fn open(&self, peer: SocketAddr, out: &mut Vec<u8>) -> Session {
        let (conversation, greeting) = Conversation::new(self.order_for(peer));
        narrate::info(format_args!(
            "knock: {peer} joins; first joke {} of {}",
            conversation.current() + 1,
            self.jokes.len()
        ));
        out.extend_from_slice(greeting.as_bytes());
        out.push(b'\n');
        Session {
            peer,
            conversation,
            partial: Vec::new(),
            told: 0,
            ending: None,
        }
    }

    /// Splits `data` at LF and answers each complete line in order (pipelined input gets its
    /// replies in order); keeps the unfinished tail for the next call.
    fn input(&self, s: &mut Session, data: &[u8], out: &mut Vec<u8>) -> Next {
        if s.conversation.state() == State::Over {
            return Next::Close;
        }
        let mut rest = data;
        while let Some(lf) = rest.iter().position(|&b| b == b'\n') {
            let (head, tail) = (&rest[..lf], &rest[lf + 1..]);
            rest = tail;
            let line_len = s.partial.len() + head.len();
            let content_len = line_len - usize::from(line_ends_cr(&s.partial, head));
            if content_len > MAX_LINE {
                return too_long(s, out);
            }
            let closing = if s.partial.is_empty() {
                s.answer(&self.jokes, head, out)
            } else {
                let mut line = std::mem::take(&mut s.partial);
                line.extend_from_slice(head);
                let closing = s.answer(&self.jokes, &line, out);
                // Keep the allocation for the next line (still within the bound).
                line.clear();
                s.partial = line;
                closing
            };
            if closing {
                // Anything pipelined after the goodbye is not answered: the server closes.
                return Next::Close;
            }
        }
        if s.partial.len() + rest.len() > MAX_LINE + 1 {
            return too_long(s, out);
        }
        s.partial.extend_from_slice(rest);
        Next::Continue
    }

    /// The engine is ending the client: one line that says why, in the joke teller's voice.
    fn farewell(&self, why: &Farewell, out: &mut Vec<u8>) {
        let line = match why {
            Farewell::Idle(limit) => format!(
                "You've been quiet for {}; I'll save my jokes for later. {BYE}",
                humantime::format_duration(*limit)
            ),
            Farewell::Stopping => format!("The server is stopping: no more jokes today. {BYE}"),
            Farewell::Full(n) => format!(
                "Sorry, I'm telling jokes to {n} {} already (--max-conns {n}); try again later. {BYE}",
                if *n == 1 { "person" } else { "people" }
            ),
        };
        out.extend_from_slice(line.as_bytes());
        out.push(b'\n');
    }

    /// The client will send no more. An unfinished last line (no LF before EOF) is still an
    /// answer, as `printf 'y' | ...` means it; then the server closes.
    fn eof(&self, s: &mut Session, out: &mut Vec<u8>) -> Next {
        if !s.partial.is_empty() && s.conversation.state() != State::Over {
            let line = std::mem::take(&mut s.partial);
            s.answer(&self.jokes, &line, out);
        }
        s.ending.get_or_insert("hung up");
        Next::Close
    }
}

/// True when the line made of `partial` + `head` ends in CR (the CR of a CRLF).
fn line_ends_cr(partial: &[u8], head: &[u8]) -> bool {
    match head.last() {
        Some(&b) => b == b'\r',
        None => partial.last() == Some(&b'\r'),
    }
}

/// A line over `MAX_LINE`: the client is told in one line (then the engine's lingering close
/// makes sure it arrives), and the server's log gets the reason.
fn too_long(s: &mut Session, out: &mut Vec<u8>) -> Next {
    s.ending = Some("sent a line over 1 KiB");
    out.extend_from_slice(
        format!("That line is over {MAX_LINE} bytes; an answer takes a few words. {BYE}\n")
            .as_bytes(),
    );
    Next::Drop(format!(
        "{} sent a line longer than {MAX_LINE} bytes",
        s.peer
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::jokes::Joke;

    fn two_jokes() -> Jokes {
        Jokes::from_list(vec![
            Joke::new("Socket", "Socket to me!"),
            Joke::new("Nagle", "Nagle-ing doubt."),
        ])
        .unwrap()
    }

    fn conv() -> Conversation {
        Conversation::new(Order::in_order(2)).0
    }

    fn said(r: &Reply) -> &str {
        r.line.as_deref().unwrap()
    }

    #[test]
    fn whos_there_key_is_the_folded_phrase() {
        assert_eq!(fold(WHOS_THERE), WHOS_THERE_KEY);
    }

    #[test]
    fn opens_with_the_knock() {
        let (c, greeting) = Conversation::new(Order::in_order(2));
        assert_eq!(greeting, "Knock! Knock!");
        assert_eq!(c.state(), State::Knocked);
        assert_eq!(c.current(), 0);
    }

    #[test]
    fn knocked_then_whos_there_gives_the_clue() {
        let j = two_jokes();
        let mut c = conv();
        let r = c.hear(&j, b"Who's there?");
        assert_eq!(said(&r), "Socket");
        assert!(!r.close && r.told.is_none());
        assert_eq!(c.state(), State::Clued);
    }

    #[test]
    fn knocked_then_wrong_answer_quotes_whos_there_and_knocks_again() {
        let j = two_jokes();
        for wrong in [&b"Who is there?"[..], b"", b"Socket who?", b"y"] {
            let mut c = conv();
            let r = c.hear(&j, wrong);
            assert!(said(&r).contains("\"Who's there?\""), "{r:?}");
            assert!(said(&r).ends_with("Knock! Knock!"));
            assert!(!r.close);
            assert_eq!(c.state(), State::Knocked);
        }
    }

    #[test]
    fn clued_then_right_answer_gives_punchline_and_offer() {
        let j = two_jokes();
        let mut c = conv();
        c.hear(&j, b"Who's there?");
        let r = c.hear(&j, b"Socket who?");
        assert_eq!(said(&r), "Socket to me! Want another? (y/n)");
        assert_eq!(r.told, Some(0));
        assert!(!r.close);
        assert_eq!(c.state(), State::Offered);
    }

    #[test]
    fn clued_then_wrong_answer_quotes_clue_who_and_restarts_same_joke() {
        let j = two_jokes();
        let mut c = conv();
        c.hear(&j, b"Who's there?");
        let r = c.hear(&j, b"Nagle who?");
        assert!(said(&r).contains("\"Socket who?\""), "{r:?}");
        assert!(said(&r).ends_with("Knock! Knock!"));
        assert_eq!(c.state(), State::Knocked);
        assert_eq!(c.current(), 0, "the same joke starts over");
        assert_eq!(said(&c.hear(&j, b"who's there?")), "Socket");
    }

    #[test]
    fn offered_then_y_knocks_with_the_next_joke() {
        let j = two_jokes();
        let mut c = conv();
        c.hear(&j, b"Who's there?");
        c.hear(&j, b"Socket who?");
        let r = c.hear(&j, b"y");
        assert_eq!(said(&r), "Knock! Knock!");
        assert_eq!(c.state(), State::Knocked);
        assert_eq!(said(&c.hear(&j, b"Who's there?")), "Nagle");
        let r = c.hear(&j, b"nagle who?");
        assert_eq!(said(&r), "Nagle-ing doubt. Want another? (y/n)");
        assert_eq!(r.told, Some(1));
        // After the last joke the set starts over.
        c.hear(&j, b"Y");
        assert_eq!(said(&c.hear(&j, b"Who's there?")), "Socket");
    }

    #[test]
    fn offered_then_anything_else_says_bye_and_closes() {
        let j = two_jokes();
        for other in [&b"n"[..], b"yes", b"", b"\xff", b"y y"] {
            let mut c = conv();
            c.hear(&j, b"Who's there?");
            c.hear(&j, b"Socket who?");
            let r = c.hear(&j, other);
            assert_eq!(said(&r), "Bye.", "{other:?}");
            assert!(r.close);
            assert_eq!(c.state(), State::Over);
        }
    }

    #[test]
    fn too_many_wrong_answers_in_a_row_end_the_conversation() {
        let j = two_jokes();
        let mut c = conv();
        // A right answer resets the count, at either step.
        for _ in 0..MAX_WRONG - 1 {
            assert!(!c.hear(&j, b"nope").close);
        }
        c.hear(&j, b"Who's there?");
        for _ in 0..MAX_WRONG - 2 {
            assert!(!c.hear(&j, b"nope").close);
        }
        c.hear(&j, b"Who's there?");
        assert!(
            !c.hear(&j, b"nope").close,
            "the count restarted at the knock"
        );
        for _ in 0..MAX_WRONG - 2 {
            assert!(!c.hear(&j, b"nope").close);
        }
        let r = c.hear(&j, b"nope");
        assert!(r.close, "{r:?}");
        assert!(said(&r).contains("16 wrong answers in a row") && said(&r).ends_with("Bye."));
        assert_eq!(c.state(), State::Over);
    }

    #[test]
    fn over_says_nothing_more() {
        let j = two_jokes();
        let mut c = conv();
        c.hear(&j, b"Who's there?");
        c.hear(&j, b"Socket who?");
        c.hear(&j, b"n");
        let r = c.hear(&j, b"Who's there?");
        assert_eq!(r.line, None);
        assert!(r.close);
        assert_eq!(c.state(), State::Over);
    }

    #[test]
    fn case_and_surrounding_whitespace_do_not_matter() {
        let j = two_jokes();
        let mut c = conv();
        assert_eq!(said(&c.hear(&j, b"  WHO'S THERE?\t")), "Socket");
        assert!(said(&c.hear(&j, b"socket   WHO?  ")).starts_with("Socket to me!"));
        assert_eq!(said(&c.hear(&j, b" Y ")), "Knock! Knock!");
    }

    #[test]
    fn nul_bytes_and_invalid_utf8_are_wrong_answers() {
        let j = two_jokes();
        let mut c = conv();
        let r = c.hear(&j, b"Who's there?\0");
        assert!(said(&r).ends_with("Knock! Knock!"));
        assert_eq!(c.state(), State::Knocked);
        let r = c.hear(&j, b"Who's \xc3\x28there?");
        assert!(said(&r).contains("Who's there?"));
        c.hear(&j, b"Who's there?");
        let r = c.hear(&j, b"\0");
        assert!(said(&r).contains("\"Socket who?\""));
    }

    #[test]
    fn shuffled_orders_visit_every_joke_once_per_round() {
        for n in 1..40usize {
            for seed in [0u64, 1, 7, u64::MAX, 0xdead_beef_0000_0001, 12345 << 32] {
                let o = Order::shuffled(n, seed);
                let mut seen: Vec<usize> = (0..n as u64).map(|k| o.nth(k)).collect();
                // The next round repeats the same order.
                assert_eq!(o.nth(n as u64), seen[0]);
                seen.sort_unstable();
                assert_eq!(seen, (0..n).collect::<Vec<_>>(), "n={n} seed={seed}");
            }
        }
        let o = Order::in_order(5);
        assert_eq!(
            (0..6).map(|k| o.nth(k)).collect::<Vec<_>>(),
            [0, 1, 2, 3, 4, 0]
        );
    }

    #[test]
    fn shuffled_orders_differ_between_seeds() {
        let orders: std::collections::HashSet<Vec<usize>> = (0..50u64)
            .map(|s| {
                let o = Order::shuffled(10, s.wrapping_mul(0x9E37_79B9_7F4A_7C15));
                (0..10).map(|k| o.nth(k)).collect()
            })
            .collect();
        assert!(orders.len() > 5, "only {} distinct orders", orders.len());
    }

    // --- the service: framing bytes into lines ---

    fn peer() -> SocketAddr {
        "127.0.0.1:5000".parse().unwrap()
    }

    fn open(k: &Knock) -> (Session, String) {
        let mut out = Vec::new();
        let s = k.open(peer(), &mut out);
        (s, String::from_utf8(out).unwrap())
    }

    fn feed(k: &Knock, s: &mut Session, data: &[u8]) -> (Next, String) {
        let mut out = Vec::new();
        let next = k.input(s, data, &mut out);
        (next, String::from_utf8(out).unwrap())
    }

    #[test]
    fn service_greets_and_answers_lf_and_crlf_lines() {
        let k = Knock::new(two_jokes(), false);
        let (mut s, greeting) = open(&k);
        assert_eq!(greeting, "Knock! Knock!\n");
        assert_eq!(
            feed(&k, &mut s, b"Who's there?\r\n"),
            (Next::Continue, "Socket\n".into())
        );
        assert_eq!(
            feed(&k, &mut s, b"Socket who?\n"),
            (Next::Continue, "Socket to me! Want another? (y/n)\n".into())
        );
        assert_eq!(feed(&k, &mut s, b"n\r\n"), (Next::Close, "Bye.\n".into()));
    }

    #[test]
    fn service_joins_lines_split_across_reads_byte_by_byte() {
        let k = Knock::new(two_jokes(), false);
        let (mut s, _) = open(&k);
        let mut replies = String::new();
        for b in b"Who's there?\r\nSocket who?\r\n" {
            let (next, out) = feed(&k, &mut s, &[*b]);
            assert_eq!(next, Next::Continue);
            replies += &out;
        }
        assert_eq!(replies, "Socket\nSocket to me! Want another? (y/n)\n");
        assert_eq!(s.pending(), 0);
    }

    #[test]
    fn service_answers_pipelined_lines_in_order_and_stops_at_bye() {
        let k = Knock::new(two_jokes(), false);
        let (mut s, _) = open(&k);
        let (next, out) = feed(
            &k,
            &mut s,
            b"Who's there?\nSocket who?\ny\nWho's there?\nNagle who?\nn\nWho's there?\n",
        );
        assert_eq!(next, Next::Close);
        assert_eq!(
            out,
            "Socket\nSocket to me! Want another? (y/n)\nKnock! Knock!\nNagle\n\
             Nagle-ing doubt. Want another? (y/n)\nBye.\n"
        );
        assert_eq!(s.told, 2);
        // Nothing more is answered once the goodbye is said.
        assert_eq!(
            feed(&k, &mut s, b"Who's there?\n"),
            (Next::Close, String::new())
        );
    }

    #[test]
    fn service_takes_a_line_of_exactly_1_kib_and_drops_a_longer_one() {
        let k = Knock::new(two_jokes(), false);
        let (mut s, _) = open(&k);
        let mut line = vec![b'a'; MAX_LINE];
        line.extend_from_slice(b"\r\n");
        let (next, out) = feed(&k, &mut s, &line);
        assert_eq!(next, Next::Continue);
        assert!(out.ends_with("Knock! Knock!\n"), "{out}");

        // 1025 bytes in pieces, no LF yet: dropped as soon as the bound is passed.
        let (mut s, _) = open(&k);
        assert_eq!(feed(&k, &mut s, &[b'a'; 1000]).0, Next::Continue);
        assert_eq!(
            feed(&k, &mut s, &[b'a'; 25]).0,
            Next::Continue,
            "1025 may still end in CR"
        );
        assert!(
            matches!(feed(&k, &mut s, b"a").0, Next::Drop(why) if why.contains("longer than 1024"))
        );
        assert!(s.pending() <= MAX_LINE + 1);

        // 1025 bytes then LF in one read.
        let (mut s, _) = open(&k);
        let mut line = vec![b'a'; MAX_LINE + 1];
        line.push(b'\n');
        assert!(matches!(feed(&k, &mut s, &line).0, Next::Drop(_)));

        // A CR split from its LF across reads still counts as the line ending.
        let (mut s, _) = open(&k);
        assert_eq!(feed(&k, &mut s, &[b'a'; MAX_LINE]).0, Next::Continue);
        assert_eq!(feed(&k, &mut s, b"\r").0, Next::Continue);
        let (next, out) = feed(&k, &mut s, b"\n");
        assert_eq!(next, Next::Continue);
        assert!(out.ends_with("Knock! Knock!\n"));
    }

    #[test]
    fn service_memory_stays_bounded_under_a_flood() {
        let k = Knock::new(two_jokes(), false);
        let (mut s, _) = open(&k);
        let junk = vec![b'x'; 64 * 1024];
        assert!(matches!(feed(&k, &mut s, &junk).0, Next::Drop(_)));
        assert_eq!(s.pending(), 0, "nothing of the flood is kept");
        assert!(s.partial.capacity() <= 2 * (MAX_LINE + 1));
    }

    #[test]
    fn service_output_stays_small_for_a_flood_of_empty_lines() {
        let k = Knock::new(two_jokes(), false);
        let (mut s, _) = open(&k);
        let (next, out) = feed(&k, &mut s, &vec![b'\n'; 64 * 1024]);
        assert_eq!(next, Next::Close);
        assert_eq!(out.lines().count(), MAX_WRONG as usize);
        assert!(out.len() < 2048, "{} bytes out", out.len());
    }

    #[test]
    fn service_treats_binary_junk_lines_as_wrong_answers() {
        let k = Knock::new(two_jokes(), false);
        let (mut s, _) = open(&k);
        let (next, out) = feed(&k, &mut s, b"\x00\xff\xfe\x01junk\n\x80\n");
        assert_eq!(next, Next::Continue);
        assert_eq!(out.lines().count(), 2);
        assert!(out.lines().all(|l| l.ends_with("Knock! Knock!")));
        assert_eq!(feed(&k, &mut s, b"Who's there?\n").1, "Socket\n");
    }

    #[test]
    fn service_eof_answers_an_unfinished_last_line_then_closes() {
        let k = Knock::new(two_jokes(), false);
        let (mut s, _) = open(&k);
        assert_eq!(feed(&k, &mut s, b"Who's there?").1, "");
        let mut out = Vec::new();
        assert_eq!(k.eof(&mut s, &mut out), Next::Close);
        assert_eq!(out, b"Socket\n");

        let (mut s, _) = open(&k);
        let mut out = Vec::new();
        assert_eq!(k.eof(&mut s, &mut out), Next::Close);
        assert!(out.is_empty());
    }

    #[test]
    fn service_gives_each_client_its_own_state() {
        let k = Knock::new(two_jokes(), false);
        let (mut a, _) = open(&k);
        let (mut b, _) = open(&k);
        feed(&k, &mut a, b"Who's there?\nSocket who?\ny\n");
        assert_eq!(feed(&k, &mut b, b"Who's there?\n").1, "Socket\n");
        assert_eq!(feed(&k, &mut a, b"Who's there?\n").1, "Nagle\n");
    }

    #[test]
    fn shuffled_service_still_tells_a_whole_joke() {
        let k = Knock::new(Jokes::builtin(), true);
        let (mut s, _) = open(&k);
        let clue = feed(&k, &mut s, b"Who's there?\n").1;
        let clue = clue.trim_end();
        let joke = k
            .jokes
            .iter()
            .find(|j| j.clue == clue)
            .expect("a known clue");
        let (_, out) = feed(&k, &mut s, format!("{clue} who?\n").as_bytes());
        assert_eq!(out, format!("{} Want another? (y/n)\n", joke.punchline));
    }
}
