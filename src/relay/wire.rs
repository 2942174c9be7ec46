//! The wire stages every relay session goes through, whatever its transport: `--crlf` (LF
//! typed on stdin goes out as CRLF) and the hex view of `-x`/`--hexdump-file` (offset, hex and
//! ASCII per direction, as `hexdump -C` lays it out). `Wire` is what the command line asked
//! for; `Outbound` and `Inbound` are its two halves as a session applies them, framed as a
//! byte stream (TCP, Unix stream) or as datagrams (UDP, Unix datagram), so a stage is written
//! once and no transport can miss it. The transforms are pure functions over byte slices,
//! tested here; `Dump` is only the sink the lines go to (stderr or a file). Moving the bytes is
//! the relays' business (stream.rs with zerocopy.rs, dgram.rs) and the engine's.

use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, Write};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};

/// `--crlf`: LF becomes CRLF; an LF that already follows a CR is left alone (so CRLF input is
/// not doubled), even when the CR ended the previous chunk.
#[derive(Debug, Default, Clone, Copy)]
pub struct Crlf {
    after_cr: bool,
}

impl Crlf {
    /// Appends `input`, with every bare LF as CRLF, to `out`.
    pub fn convert(&mut self, input: &[u8], out: &mut Vec<u8>) {
        out.reserve(input.len() + input.len() / 16);
        for &b in input {
            if b == b'\n' && !self.after_cr {
                out.push(b'\r');
            }
            out.push(b);
            self.after_cr = b == b'\r';
        }
    }
}

/// Which way bytes crossed the wire, from this end's point of view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    /// Sent to the peer: `>`.
    Out,
    /// Received from the peer: `<`.
    In,
}

impl Dir {
    pub fn mark(self) -> char {
        match self {
            Dir::Out => '>',
            Dir::In => '<',
        }
    }
}

/// Bytes per dump line.
const WIDTH: usize = 16;

/// `data`, which starts `offset` bytes into this direction's stream, as `hexdump -C` lines
/// with the direction in front:
///
/// ```text
/// > 00000000  48 65 6c 6c 6f 2c 20 77  6f 72 6c 64 0a           |Hello, world.|
/// ```
pub fn hexdump(dir: Dir, offset: u64, data: &[u8]) -> String {
    let mut s = String::with_capacity(data.len().div_ceil(WIDTH) * 80);
    for (i, row) in data.chunks(WIDTH).enumerate() {
        let _ = write!(s, "{} {:08x}  ", dir.mark(), offset + (i * WIDTH) as u64);
        for col in 0..WIDTH {
            match row.get(col) {
                Some(b) => {
                    let _ = write!(s, "{b:02x} ");
                }
                None => s.push_str("   "),
            }
            if col == WIDTH / 2 - 1 {
                s.push(' ');
            }
        }
        s.push_str(" |");
        s.extend(row.iter().map(|&b| {
            if b.is_ascii_graphic() || b == b' ' {
                b as char
            } else {
                '.'
            }
        }));
        s.push_str("|\n");
    }
    s
}

/// Where the hex dump goes: stderr, or the file of `--hexdump-file`. Shared by threads and
/// connections; each call writes whole lines at once, so dumps never interleave mid-line.
#[derive(Clone)]
pub struct Dump {
    out: Arc<Mutex<Box<dyn Write + Send>>>,
}

impl std::fmt::Debug for Dump {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Dump")
    }
}

impl Dump {
    /// The sink `-x`/`--hexdump-file` asked for, or `None` when no dump was asked for.
    pub fn open(hexdump: bool, file: Option<&std::path::Path>) -> Result<Option<Dump>> {
        let out: Box<dyn Write + Send> = match (file, hexdump) {
            (Some(path), _) => Box::new(
                File::create(path)
                    .with_context(|| format!("creating the hex dump file {}", path.display()))?,
            ),
            (None, true) => Box::new(io::stderr()),
            (None, false) => return Ok(None),
        };
        Ok(Some(Dump {
            out: Arc::new(Mutex::new(out)),
        }))
    }

    /// Dumps `data`, `offset` bytes into direction `dir`, with `label` (a client's address on
    /// a server) in front of the block when given.
    pub fn record(&self, label: Option<&str>, dir: Dir, offset: u64, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        let mut text = String::new();
        if let Some(l) = label {
            let _ = writeln!(text, "{} {l}: {} bytes", dir.mark(), data.len());
        }
        text.push_str(&hexdump(dir, offset, data));
        let mut out = self
            .out
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // A dump that cannot be written (disk full) must not end the session it watches.
        let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
    }
}

/// What the relay does on the way: `--crlf` and the dump. When either is on, the relay copies
/// through user space (no zero-copy path), since it has to see the bytes.
#[derive(Debug, Clone, Default)]
pub struct Wire {
    pub crlf: bool,
    pub dump: Option<Dump>,
}

/// What one unit of a session is, which decides what a stage works on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// A byte stream: `--crlf` carries a CR over from one read to the next, the dump counts
    /// offsets through the whole session.
    Stream,
    /// Datagrams: each is converted on its own and dumped as its own block from offset 0, so
    /// its boundaries show.
    Datagrams,
}

impl Wire {
    /// The stages for bytes going to the peer.
    pub fn outbound(&self, framing: Framing) -> Outbound {
        Outbound {
            crlf: self.crlf.then(Crlf::default),
            dump: self.dump.clone(),
            framing,
            offset: 0,
            converted: Vec::new(),
        }
    }

    /// The stages for bytes coming from the peer (the dump; `--crlf` is for what is typed).
    pub fn inbound(&self, framing: Framing) -> Inbound {
        Inbound {
            dump: self.dump.clone(),
            framing,
            offset: 0,
        }
    }
}

/// The label of a datagram's dump block: one block per datagram.
const DATAGRAM: &str = "datagram";

/// stdin -> peer: `--crlf`, then the dump of what the socket took.
#[derive(Debug)]
pub struct Outbound {
    crlf: Option<Crlf>,
    dump: Option<Dump>,
    framing: Framing,
    offset: u64,
    converted: Vec<u8>,
}

impl Outbound {
    /// True when a stage must see each byte, so the caller has to copy them through a buffer.
    pub fn sees_bytes(&self) -> bool {
        self.crlf.is_some() || self.dump.is_some()
    }

    /// A new session on the same stdin (`listen -k`): its dump counts from offset 0.
    pub fn restart(&mut self) {
        self.offset = 0;
    }

    /// Puts `data` (read from stdin: a chunk of the stream, or one datagram) through the
    /// stages and hands the result to `send`, which says how many of those bytes the socket
    /// took; those are dumped. Returns what `send` returned.
    pub fn pass<R>(&mut self, data: &[u8], send: impl FnOnce(&[u8]) -> (usize, R)) -> R {
        let bytes: &[u8] = match &mut self.crlf {
            Some(state) => {
                if self.framing == Framing::Datagrams {
                    *state = Crlf::default();
                }
                self.converted.clear();
                state.convert(data, &mut self.converted);
                &self.converted
            }
            None => data,
        };
        let (went, result) = send(bytes);
        if let Some(dump) = &self.dump {
            record(
                dump,
                self.framing,
                Dir::Out,
                &mut self.offset,
                &bytes[..went],
            );
        }
        result
    }
}

/// peer -> stdout: the dump of what arrived.
#[derive(Debug)]
pub struct Inbound {
    dump: Option<Dump>,
    framing: Framing,
    offset: u64,
}

impl Inbound {
    /// True when a stage must see each byte received.
    pub fn sees_bytes(&self) -> bool {
        self.dump.is_some()
    }

    /// `data` arrived from the peer (a chunk of the stream, or one datagram).
    pub fn received(&mut self, data: &[u8]) {
        if let Some(dump) = &self.dump {
            record(dump, self.framing, Dir::In, &mut self.offset, data);
        }
    }
}

/// One direction's bytes to the dump, as the framing lays them out.
fn record(dump: &Dump, framing: Framing, dir: Dir, offset: &mut u64, data: &[u8]) {
    match framing {
        Framing::Stream => {
            dump.record(None, dir, *offset, data);
            *offset += data.len() as u64;
        }
        Framing::Datagrams => dump.record(Some(DATAGRAM), dir, 0, data),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crlf(chunks: &[&[u8]]) -> Vec<u8> {
        let mut c = Crlf::default();
        let mut out = Vec::new();
        for ch in chunks {
            c.convert(ch, &mut out);
        }
        out
    }

    #[test]
    fn crlf_turns_bare_lf_into_crlf_only() {
        assert_eq!(crlf(&[b"HELO x\nQUIT\n"]), b"HELO x\r\nQUIT\r\n");
        assert_eq!(crlf(&[b"a\r\nb\n"]), b"a\r\nb\r\n", "CRLF is not doubled");
        assert_eq!(
            crlf(&[b"a\r", b"\nb"]),
            b"a\r\nb",
            "a CR at a chunk's end counts"
        );
        assert_eq!(crlf(&[b"\n\n"]), b"\r\n\r\n");
        assert_eq!(crlf(&[b"\r\r\n"]), b"\r\r\n");
        assert_eq!(crlf(&[b"no newline"]), b"no newline");
    }

    #[test]
    fn hexdump_lays_out_offset_hex_and_ascii() {
        let text = hexdump(Dir::Out, 0, b"Hello, world!\n\x00\xff\x7fABC");
        assert_eq!(
            text,
            "> 00000000  48 65 6c 6c 6f 2c 20 77  6f 72 6c 64 21 0a 00 ff  |Hello, world!...|\n\
             > 00000010  7f 41 42 43                                       |.ABC|\n"
        );
        let text = hexdump(Dir::In, 0x1f0, b"hi");
        assert_eq!(
            text,
            "< 000001f0  68 69                                             |hi|\n"
        );
        assert_eq!(hexdump(Dir::In, 0, b""), "");
    }

    #[test]
    fn every_dump_line_has_the_same_width() {
        let data: Vec<u8> = (0..=255u8).collect();
        for n in [1, 7, 8, 9, 15, 16, 17, 200] {
            let text = hexdump(Dir::Out, 0, &data[..n]);
            for line in text.lines() {
                let bar = line.find('|').unwrap();
                assert_eq!(bar, 62, "n={n}: {line}");
            }
        }
    }

    /// Stages dumping into memory, to read back what they wrote.
    fn dumping(crlf: bool) -> (Wire, Arc<Mutex<Vec<u8>>>) {
        #[derive(Clone)]
        struct Shared(Arc<Mutex<Vec<u8>>>);
        impl Write for Shared {
            fn write(&mut self, b: &[u8]) -> io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let mem = Arc::new(Mutex::new(Vec::new()));
        let out: Box<dyn Write + Send> = Box::new(Shared(mem.clone()));
        let dump = Dump {
            out: Arc::new(Mutex::new(out)),
        };
        let wire = Wire {
            crlf,
            dump: Some(dump),
        };
        (wire, mem)
    }

    #[test]
    fn datagrams_are_converted_and_dumped_one_by_one() {
        let (wire, mem) = dumping(true);
        let mut out = wire.outbound(Framing::Datagrams);
        let mut sent = Vec::new();
        for d in [&b"a\r"[..], b"\nb\n"] {
            out.pass(d, |bytes| {
                sent.push(bytes.to_vec());
                (bytes.len(), ())
            });
        }
        // A CR ending one datagram does not join the LF starting the next.
        assert_eq!(sent, vec![b"a\r".to_vec(), b"\r\nb\r\n".to_vec()]);
        wire.inbound(Framing::Datagrams).received(b"hi");
        let text = String::from_utf8(mem.lock().unwrap().clone()).unwrap();
        assert_eq!(
            text,
            "> datagram: 2 bytes\n\
             > 00000000  61 0d                                             |a.|\n\
             > datagram: 5 bytes\n\
             > 00000000  0d 0a 62 0d 0a                                    |..b..|\n\
             < datagram: 2 bytes\n\
             < 00000000  68 69                                             |hi|\n"
        );
    }

    #[test]
    fn a_stream_dump_counts_offsets_and_shows_only_what_went() {
        let (wire, mem) = dumping(false);
        let mut out = wire.outbound(Framing::Stream);
        out.pass(b"abc", |b| (b.len(), ()));
        out.pass(b"defg", |_| (2, ()));
        let text = String::from_utf8(mem.lock().unwrap().clone()).unwrap();
        assert_eq!(
            text,
            "> 00000000  61 62 63                                          |abc|\n\
             > 00000003  64 65                                             |de|\n"
        );
        assert!(!Wire::default().outbound(Framing::Stream).sees_bytes());
    }
}
