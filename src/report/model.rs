//! What the report draws, gathered from a --trace's lines one at a time and kept bounded:
//! the first and last few hundred diagram items (segments, calls, kernel notes, and the TCP
//! states each side's segments imply, worked out here by the RFC 793 state machine) with a
//! count of those left out, and at most [`MAX_SAMPLES`] TCP_INFO samples of one connection
//! (halved, every other one kept, when full). It reads no file: the caller feeds it lines
//! (`sockkit report` from a file, `--report` from the trace's tap), and page.rs draws it.

use std::collections::VecDeque;

use serde_json::Value;

/// How many diagram items are kept from the start and from the end of the session.
pub const HEAD: usize = 300;
pub const TAIL: usize = 200;
/// How many samples are kept (the plots' resolution).
pub const MAX_SAMPLES: usize = 2000;
/// How many connections' states are followed (a server's clients; the oldest is forgotten).
const CONNS: usize = 256;

/// Which lane an item sits on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    Local,
    Peer,
}

/// One row of the sequence diagram.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    /// A segment: `out` sent by this end. `label` is --wire's line without its arrow.
    Segment {
        out: bool,
        flags: String,
        len: u64,
        label: String,
        remote: String,
    },
    /// A socket call on this end, as -vvv spells it.
    Call { text: String },
    /// Something the kernel did (a state change it reported, a RST).
    Kernel { text: String },
    /// A TCP state one side entered, worked out from the segments.
    State {
        lane: Lane,
        state: &'static str,
        remote: String,
    },
}

/// An item at its time (ns on the session clock; a segment's is the kernel's stamp).
#[derive(Debug, Clone, PartialEq)]
pub struct Timed {
    pub t_ns: u64,
    pub item: Item,
}

/// One TCP_INFO sample, as plotted.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    pub t_ns: u64,
    pub cwnd: f64,
    pub rtt_ms: f64,
    pub in_flight_bytes: f64,
    /// Bytes acked + received so far (throughput is its slope).
    pub moved: f64,
}

/// Why a file is not a trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotTrace(pub String);

/// The whole picture, bounded.
#[derive(Debug, Default)]
pub struct Model {
    pub head: Vec<Timed>,
    pub tail: VecDeque<Timed>,
    /// Items dropped between head and tail: segments, and everything else.
    pub skipped_segments: u64,
    pub skipped_other: u64,
    pub segments: u64,
    pub samples: Vec<Point>,
    /// Only every `stride`-th sample is kept once the buffer has been halved.
    stride: u64,
    offered: u64,
    /// The connection whose samples are plotted, once one has been seen, and how many
    /// samples of others were not.
    sampled: Sampled,
    pub other_samples: u64,
    pub local: Option<String>,
    pub remotes: Vec<String>,
    pub first_ns: Option<u64>,
    pub last_ns: u64,
    pub lines: u64,
    pub not_understood: u64,
    pub captured: Option<(u64, u64)>,
    conns: VecDeque<Conn>,
}

/// Whose samples are plotted.
#[derive(Debug, Default, PartialEq, Eq)]
enum Sampled {
    #[default]
    NoneYet,
    /// A client's own connection (its samples have no "remote").
    Own,
    /// One client of a server.
    Client(String),
}

/// The two sides of one connection, each in its state.
#[derive(Debug)]
struct Conn {
    key: (String, String),
    sides: [Side; 2],
}

#[derive(Debug, Default, Clone, Copy)]
struct Side {
    state: Option<&'static str>,
    /// The sequence number just past this side's FIN, once sent (relative to its ISN).
    fin_end: Option<u64>,
    fin_sent: bool,
}

impl Model {
    /// Takes one trace line. The first line decides whether this is a trace at all: it must
    /// be a JSON object with "t_ns" and "event"; a later line that is not (a cut last line) is
    /// counted and passed over.
    pub fn add_line(&mut self, line: &str) -> Result<(), NotTrace> {
        let line = line.trim();
        if line.is_empty() {
            return Ok(());
        }
        self.lines += 1;
        let parsed: Option<Value> = serde_json::from_str(line).ok();
        let event = parsed
            .as_ref()
            .and_then(|v| Some((v.get("t_ns")?.as_u64()?, v.get("event")?.as_str()?, v)));
        let Some((t, kind, v)) = event else {
            if self.lines == 1 {
                return Err(NotTrace(
                    "line 1 is not a JSON object with \"t_ns\" and \"event\"".to_string(),
                ));
            }
            self.not_understood += 1;
            return Ok(());
        };
        self.first_ns.get_or_insert(t);
        self.last_ns = self.last_ns.max(t);
        match kind {
            "segment" => self.segment(t, v),
            "call" => {
                let name = text(v, "name");
                let args = text(v, "args");
                let result = text(v, "result");
                let text = if result.is_empty() {
                    format!("{name}({args})")
                } else {
                    format!("{name}({args}) = {result}")
                };
                // At the call's start, so connect() comes before the handshake it causes.
                self.push(t.saturating_sub(num(v, "duration_ns")), Item::Call { text });
            }
            "kernel" => self.push(
                t,
                Item::Kernel {
                    text: text(v, "text"),
                },
            ),
            "tcp_info" => self.sample(t, v),
            "capture" => {
                self.captured = Some((num(v, "packets"), num(v, "dropped")));
            }
            _ => {}
        }
        Ok(())
    }

    /// Every kept item in time order, with the place the gap goes (the index of the first
    /// tail item) when some were left out.
    pub fn items(&self) -> (Vec<Timed>, Option<usize>) {
        let mut head: Vec<Timed> = in_order(self.head.iter());
        let tail = in_order(self.tail.iter());
        let gap = (self.skipped_segments + self.skipped_other > 0).then_some(head.len());
        head.extend(tail);
        (head, gap)
    }

    fn push(&mut self, t_ns: u64, item: Item) {
        let timed = Timed { t_ns, item };
        if self.head.len() < HEAD {
            self.head.push(timed);
            return;
        }
        if self.tail.len() == TAIL
            && let Some(old) = self.tail.pop_front()
        {
            if matches!(old.item, Item::Segment { .. }) {
                self.skipped_segments += 1;
            } else {
                self.skipped_other += 1;
            }
        }
        self.tail.push_back(timed);
    }

    fn segment(&mut self, t: u64, v: &Value) {
        // The kernel's stamp (in_order keeps the capture's order where stamps disagree).
        let t = t.saturating_sub(num(v, "kernel_ago_ns"));
        let out = text(v, "dir") == "out";
        let local = text(v, "local");
        let remote = text(v, "remote");
        if self.local.is_none() {
            self.local = Some(local.clone());
        }
        if !self.remotes.contains(&remote) && self.remotes.len() < 64 {
            self.remotes.push(remote.clone());
        }
        let flags = text(v, "flags");
        let len = num(v, "len");
        let line = text(v, "line");
        let label = line
            .strip_prefix("-> ")
            .or_else(|| line.strip_prefix("<- "))
            .unwrap_or(&line)
            .to_string();
        self.segments += 1;
        self.push(
            t,
            Item::Segment {
                out,
                flags: flags.clone(),
                len,
                label,
                remote: remote.clone(),
            },
        );
        if text(v, "proto") == "tcp" {
            let seq = v.get("seq").and_then(Value::as_u64);
            let ack = v.get("ack").and_then(Value::as_u64);
            let seg = Seg {
                syn: flags.contains('S'),
                fin: flags.contains('F'),
                rst: flags.contains('R'),
                ack: flags.contains('.'),
                seq,
                ack_no: ack,
                len,
            };
            for (lane, state) in self.follow(local, remote.clone(), out, &seg) {
                self.push(
                    t,
                    Item::State {
                        lane,
                        state,
                        remote: remote.clone(),
                    },
                );
            }
        }
    }

    /// The states the segment moves each side into.
    fn follow(
        &mut self,
        local: String,
        remote: String,
        out: bool,
        seg: &Seg,
    ) -> Vec<(Lane, &'static str)> {
        let key = (local, remote);
        let idx = if let Some(i) = self.conns.iter().position(|c| c.key == key) {
            i
        } else {
            if self.conns.len() == CONNS {
                self.conns.pop_front();
            }
            self.conns.push_back(Conn {
                key,
                sides: [Side::default(); 2],
            });
            self.conns.len() - 1
        };
        let sides = &mut self.conns[idx].sides;
        let (sender, receiver, lanes) = if out {
            let [a, b] = sides;
            (a, b, [Lane::Local, Lane::Peer])
        } else {
            let [a, b] = sides;
            (b, a, [Lane::Peer, Lane::Local])
        };
        let mut moved = Vec::new();
        let before = sender.state;
        sender.on_send(seg);
        if sender.state != before
            && let Some(s) = sender.state
        {
            moved.push((lanes[0], s));
        }
        let before = receiver.state;
        receiver.on_receive(seg);
        if receiver.state != before
            && let Some(s) = receiver.state
        {
            moved.push((lanes[1], s));
        }
        moved
    }

    fn sample(&mut self, t: u64, v: &Value) {
        let key = match v.get("remote").and_then(Value::as_str) {
            Some(who) => Sampled::Client(who.to_string()),
            None => Sampled::Own,
        };
        if self.sampled == Sampled::NoneYet {
            self.sampled = key;
        } else if self.sampled != key {
            self.other_samples += 1;
            return;
        }
        self.offered += 1;
        let stride = self.stride.max(1);
        if !self.offered.is_multiple_of(stride) {
            return;
        }
        let mss = num(v, "mss") as f64;
        self.samples.push(Point {
            t_ns: t,
            cwnd: num(v, "cwnd") as f64,
            rtt_ms: num(v, "rtt_us") as f64 / 1000.0,
            in_flight_bytes: num(v, "in_flight") as f64 * mss,
            moved: num(v, "bytes_acked").saturating_add(num(v, "bytes_received")) as f64,
        });
        if self.samples.len() >= MAX_SAMPLES {
            let mut i = 0;
            self.samples.retain(|_| {
                i += 1;
                i % 2 == 1
            });
            self.stride = stride * 2;
        }
    }

    /// Whose samples are plotted: `Some(client)` on a server.
    pub fn sampled_remote(&self) -> Option<&str> {
        match &self.sampled {
            Sampled::Client(who) => Some(who),
            Sampled::NoneYet | Sampled::Own => None,
        }
    }
}

/// `items` sorted by time, after making the segments' times agree with the order they were
/// captured in (the kernel's): a segment is moved back to the time of the one captured after
/// it when its own stamp is later. A stamp can be late (the kernel stamps some packets only
/// as they are read, such as a SYN whose buffer carried a departure time); it is never early.
fn in_order<'a>(items: impl Iterator<Item = &'a Timed>) -> Vec<Timed> {
    let mut v: Vec<Timed> = items.cloned().collect();
    let mut next = u64::MAX;
    for t in v.iter_mut().rev() {
        if matches!(t.item, Item::Segment { .. }) {
            t.t_ns = t.t_ns.min(next);
            next = t.t_ns;
        }
    }
    // A state a segment implies was pushed right after it: it moves with it.
    let mut last = None;
    for t in &mut v {
        match t.item {
            Item::Segment { .. } => last = Some(t.t_ns),
            Item::State { .. } => t.t_ns = last.unwrap_or(t.t_ns),
            Item::Call { .. } | Item::Kernel { .. } => {}
        }
    }
    v.sort_by_key(|i| i.t_ns);
    v
}

/// What the state machine reads of a segment.
struct Seg {
    syn: bool,
    fin: bool,
    rst: bool,
    ack: bool,
    seq: Option<u64>,
    ack_no: Option<u64>,
    len: u64,
}

impl Side {
    fn on_send(&mut self, s: &Seg) {
        if s.rst {
            self.state = Some("CLOSED");
            return;
        }
        if s.syn {
            self.state = Some(if s.ack { "SYN_RCVD" } else { "SYN_SENT" });
        }
        if s.fin && !self.fin_sent {
            self.fin_sent = true;
            self.fin_end = s.seq.map(|q| q.saturating_add(s.len).saturating_add(1));
            self.state = match self.state {
                Some("CLOSE_WAIT") => Some("LAST_ACK"),
                _ => Some("FIN_WAIT_1"),
            };
        }
    }

    fn on_receive(&mut self, s: &Seg) {
        if s.rst {
            self.state = Some("CLOSED");
            return;
        }
        if s.syn && !s.ack {
            self.state = Some("SYN_RCVD");
            return;
        }
        // Our SYN answered (SYN-ACK), or our SYN-ACK acknowledged.
        if (s.syn && self.state == Some("SYN_SENT")) || (s.ack && self.state == Some("SYN_RCVD")) {
            self.state = Some("ESTABLISHED");
        }
        // Without numbers (an older trace) any ACK after our FIN is taken to cover it.
        let acks_fin = self.fin_sent
            && s.ack
            && match (self.fin_end, s.ack_no) {
                (Some(end), Some(ack)) => ack >= end,
                _ => true,
            };
        if acks_fin {
            self.state = match self.state {
                Some("FIN_WAIT_1") => Some("FIN_WAIT_2"),
                Some("CLOSING") => Some("TIME_WAIT"),
                Some("LAST_ACK") => Some("CLOSED"),
                other => other,
            };
        }
        if s.fin {
            self.state = match self.state {
                Some("ESTABLISHED" | "SYN_RCVD") => Some("CLOSE_WAIT"),
                Some("FIN_WAIT_1") => Some("CLOSING"),
                Some("FIN_WAIT_2") => Some("TIME_WAIT"),
                other => other,
            };
        }
    }
}

fn text(v: &Value, key: &str) -> String {
    v.get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn num(v: &Value, key: &str) -> u64 {
    v.get(key).and_then(Value::as_u64).unwrap_or(0)
}

/// A small real-shaped trace: handshake, 6 bytes each way, FINs, two samples.
#[cfg(test)]
pub const SMALL: &str = r#"{"t_ns":1000,"event":"call","name":"connect","args":"fd 5, 127.0.0.1:4000","result":"0","duration_ns":90}
{"t_ns":1100,"event":"segment","dir":"out","local":"127.0.0.1:5000","remote":"127.0.0.1:4000","proto":"tcp","flags":"S","len":0,"win":65495,"seq":0,"line":"-> [S] seq 0 win 65495","kernel_ago_ns":0}
{"t_ns":1200,"event":"segment","dir":"in","local":"127.0.0.1:5000","remote":"127.0.0.1:4000","proto":"tcp","flags":"S.","len":0,"win":65483,"seq":0,"ack":1,"line":"<- [S.] seq 0 ack 1 win 65483","kernel_ago_ns":0}
{"t_ns":1300,"event":"segment","dir":"out","local":"127.0.0.1:5000","remote":"127.0.0.1:4000","proto":"tcp","flags":".","len":0,"win":64,"seq":1,"ack":1,"line":"-> [.] seq 1 ack 1","kernel_ago_ns":0}
{"t_ns":1400,"event":"tcp_info","rtt_us":40,"rttvar_us":20,"cwnd":10,"mss":32768,"ssthresh":null,"unacked":0,"in_flight":0,"delivery_rate":0,"retrans":0,"total_retrans":0,"snd_wnd":65483,"rcv_space":65483,"bytes_acked":1,"bytes_received":0}
{"t_ns":1500,"event":"segment","dir":"out","local":"127.0.0.1:5000","remote":"127.0.0.1:4000","proto":"tcp","flags":"P.","len":6,"win":64,"seq":1,"ack":1,"line":"-> [P.] seq 1:7 ack 1 len 6","kernel_ago_ns":0}
{"t_ns":1600,"event":"segment","dir":"out","local":"127.0.0.1:5000","remote":"127.0.0.1:4000","proto":"tcp","flags":"F.","len":0,"win":64,"seq":7,"ack":1,"line":"-> [F.] seq 7 ack 1","kernel_ago_ns":0}
{"t_ns":1700,"event":"segment","dir":"in","local":"127.0.0.1:5000","remote":"127.0.0.1:4000","proto":"tcp","flags":"P.","len":6,"win":64,"seq":1,"ack":8,"line":"<- [P.] seq 1:7 ack 8 len 6","kernel_ago_ns":0}
{"t_ns":1800,"event":"segment","dir":"in","local":"127.0.0.1:5000","remote":"127.0.0.1:4000","proto":"tcp","flags":"F.","len":0,"win":64,"seq":7,"ack":8,"line":"<- [F.] seq 7 ack 8","kernel_ago_ns":0}
{"t_ns":1900,"event":"segment","dir":"out","local":"127.0.0.1:5000","remote":"127.0.0.1:4000","proto":"tcp","flags":".","len":0,"win":64,"seq":8,"ack":8,"line":"-> [.] seq 8 ack 8","kernel_ago_ns":0}
{"t_ns":2000,"event":"tcp_info","rtt_us":50,"rttvar_us":25,"cwnd":10,"mss":32768,"ssthresh":null,"unacked":0,"in_flight":0,"delivery_rate":0,"retrans":0,"total_retrans":0,"snd_wnd":65483,"rcv_space":65483,"bytes_acked":8,"bytes_received":8}
"#;

#[cfg(test)]
pub fn small() -> Model {
    let mut m = Model::default();
    for l in SMALL.lines() {
        m.add_line(l).unwrap();
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    fn states(m: &Model, lane: Lane) -> Vec<&'static str> {
        m.items()
            .0
            .iter()
            .filter_map(|t| match &t.item {
                Item::State { lane: l, state, .. } if *l == lane => Some(*state),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn the_segments_walk_both_sides_through_the_states() {
        let m = small();
        assert_eq!(m.segments, 8);
        assert_eq!(
            states(&m, Lane::Local),
            [
                "SYN_SENT",
                "ESTABLISHED",
                "FIN_WAIT_1",
                "FIN_WAIT_2",
                "TIME_WAIT"
            ]
        );
        assert_eq!(
            states(&m, Lane::Peer),
            [
                "SYN_RCVD",
                "ESTABLISHED",
                "CLOSE_WAIT",
                "LAST_ACK",
                "CLOSED"
            ]
        );
        assert_eq!(m.samples.len(), 2);
        assert!((m.samples[1].moved - 16.0).abs() < f64::EPSILON);
        assert_eq!(m.local.as_deref(), Some("127.0.0.1:5000"));
    }

    #[test]
    fn numbers_at_their_limits_and_times_running_backwards_are_drawn_without_overflow() {
        // A trace is a file anyone can write: the page must not panic (a debug build checks
        // overflow) or wrap on what it holds.
        let mut m = Model::default();
        let max = u64::MAX;
        for line in [
            format!(r#"{{"t_ns":{max},"event":"segment","dir":"out","local":"a","remote":"b","proto":"tcp","flags":"F.","len":{max},"seq":{max},"line":"-> [F.]"}}"#),
            format!(r#"{{"t_ns":{max},"event":"tcp_info","cwnd":10,"rtt_us":5,"in_flight":0,"mss":1,"bytes_acked":{max},"bytes_received":{max}}}"#),
            r#"{"t_ns":5,"event":"tcp_info","cwnd":10,"rtt_us":5,"in_flight":0,"mss":1,"bytes_acked":1,"bytes_received":1}"#.to_string(),
            r#"{"t_ns":1,"event":"tcp_info","cwnd":10,"rtt_us":5,"in_flight":0,"mss":1,"bytes_acked":1,"bytes_received":1}"#.to_string(),
        ] {
            m.add_line(&line).unwrap();
        }
        let page = crate::report::render(&m, "limits");
        assert!(page.contains("class=\"plot cwnd\""), "{page}");
    }

    #[test]
    fn a_late_stamped_segment_keeps_its_place_in_the_capture_order() {
        let mut m = Model::default();
        for line in [
            r#"{"t_ns":100,"event":"call","name":"connect","args":"","result":"0","duration_ns":90}"#,
            r#"{"t_ns":300,"event":"segment","dir":"out","local":"a","remote":"b","proto":"tcp","flags":"S","len":0,"seq":0,"line":"-> [S] seq 0","kernel_ago_ns":100}"#,
            r#"{"t_ns":310,"event":"segment","dir":"in","local":"a","remote":"b","proto":"tcp","flags":"S.","len":0,"seq":0,"ack":1,"line":"<- [S.] seq 0 ack 1","kernel_ago_ns":260}"#,
        ] {
            m.add_line(line).unwrap();
        }
        let (items, _) = m.items();
        let segs: Vec<(u64, bool)> = items
            .iter()
            .filter_map(|t| match &t.item {
                Item::Segment { out, .. } => Some((t.t_ns, *out)),
                _ => None,
            })
            .collect();
        // The SYN (stamped 200) was captured before the SYN-ACK (stamped 50): both at 50,
        // SYN first, and within the connect() that started at 10.
        assert_eq!(segs, [(50, true), (50, false)]);
        let states: Vec<u64> = items
            .iter()
            .filter(|t| matches!(t.item, Item::State { .. }))
            .map(|t| t.t_ns)
            .collect();
        assert!(
            !states.is_empty() && states.iter().all(|&t| t == 50),
            "{states:?}"
        );
        assert!(matches!(items[0].item, Item::Call { .. }) && items[0].t_ns == 10);
    }

    #[test]
    fn a_file_that_is_not_a_trace_is_refused_at_its_first_line() {
        let mut m = Model::default();
        assert!(m.add_line("hello world").is_err());
        let mut m = Model::default();
        assert!(m.add_line("{\"a\":1}").is_err());
        let mut m = small();
        assert_eq!(m.add_line("{\"t_ns\":3000,\"ev"), Ok(()));
        assert_eq!(m.not_understood, 1);
    }

    #[test]
    fn a_long_session_keeps_its_first_and_last_items_and_counts_the_rest() {
        let mut m = Model::default();
        let n = 5000u64;
        for i in 0..n {
            let line = format!(
                r#"{{"t_ns":{i},"event":"segment","dir":"out","local":"a","remote":"b","proto":"udp","len":1,"line":"-> UDP len 1","kernel_ago_ns":0}}"#
            );
            m.add_line(&line).unwrap();
            let s = format!(
                r#"{{"t_ns":{i},"event":"tcp_info","cwnd":{i},"mss":1,"rtt_us":1,"in_flight":0,"bytes_acked":{i},"bytes_received":0}}"#
            );
            m.add_line(&s).unwrap();
        }
        let (items, gap) = m.items();
        assert_eq!(items.len(), HEAD + TAIL);
        assert_eq!(gap, Some(HEAD));
        assert_eq!(m.skipped_segments, n - (HEAD + TAIL) as u64);
        assert_eq!(items.last().unwrap().t_ns, n - 1);
        assert!(m.samples.len() < MAX_SAMPLES && m.samples.len() > MAX_SAMPLES / 4);
        assert!(m.samples.windows(2).all(|w| w[0].t_ns < w[1].t_ns));
    }
}
