//! `--trace FILE`: every event of the session as one JSON object per line, timed by the
//! session clock (`clock.rs`). It owns the file and the line format; what an event says is the
//! caller's (narrate for calls and kernel events, capture for segments). Off, it costs one
//! relaxed atomic load per event site: nothing is formatted.
//!
//! Each line is written whole with one write(2) under a lock, and its `t_ns` is read under
//! that lock, so the lines of concurrent threads are in timestamp order. `--report` reads the
//! same lines through a tap, with or without a file.

use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};

use crate::clock;

/// Who else reads each line as it is written (`--report` keeps a bounded picture of them).
pub type Tap = Box<dyn FnMut(&str) + Send>;

static ON: AtomicBool = AtomicBool::new(false);
static SINK: OnceLock<Mutex<Sink>> = OnceLock::new();

struct Sink {
    file: Option<File>,
    tap: Option<Tap>,
}

/// Starts the trace: lines go to `path` (created, truncated) and/or to `tap`. With neither
/// nothing starts. The first start wins.
pub fn open(path: Option<&Path>, tap: Option<Tap>) -> io::Result<()> {
    let file = path.map(File::create).transpose()?;
    if file.is_none() && tap.is_none() {
        return Ok(());
    }
    if SINK.set(Mutex::new(Sink { file, tap })).is_ok() {
        ON.store(true, Ordering::Release);
    }
    Ok(())
}

/// True when `--trace` (or `--report`) is on.
pub fn on() -> bool {
    ON.load(Ordering::Relaxed)
}

/// Stops the trace and hands back its tap, so that whoever fed it can read what it kept;
/// later events are not written.
pub fn close() -> Option<Tap> {
    ON.store(false, Ordering::Release);
    let mut sink = SINK.get()?.lock().ok()?;
    sink.file = None;
    sink.tap.take()
}

/// One event line: `{"t_ns":..,"event":"<kind>", <fields>}`; `fields` appends `,"k":v` pairs
/// (see [`Fields`]). Nothing happens when the trace is off.
pub fn record(kind: &str, fields: impl FnOnce(&mut Fields)) {
    if !on() {
        return;
    }
    let Some(sink) = SINK.get() else { return };
    let mut f = Fields(String::with_capacity(160));
    fields(&mut f);
    let Ok(mut sink) = sink.lock() else { return };
    let t = clock::since_start().as_nanos();
    let line = format!("{{\"t_ns\":{t},\"event\":\"{kind}\"{}}}\n", f.0);
    // A trace that cannot be written (disk full) must not end the session it describes.
    if let Some(file) = sink.file.as_mut() {
        let _ = file.write_all(line.as_bytes());
    }
    if let Some(tap) = sink.tap.as_mut() {
        tap(line.trim_end());
    }
}

/// The fields of one event, appended as JSON.
#[derive(Default)]
pub struct Fields(String);

impl Fields {
    pub fn str(&mut self, key: &str, value: &str) -> &mut Self {
        let _ = write!(self.0, ",\"{key}\":{}", crate::json::string(value));
        self
    }

    pub fn num(&mut self, key: &str, value: impl Into<i128>) -> &mut Self {
        let _ = write!(self.0, ",\"{key}\":{}", value.into());
        self
    }

    /// A value already in JSON (`null`, an object).
    pub fn raw(&mut self, key: &str, json: &str) -> &mut Self {
        let _ = write!(self.0, ",\"{key}\":{json}");
        self
    }

    /// The fields as written so far (`,"k":v,...`).
    #[cfg(test)]
    pub fn text(&self) -> &str {
        &self.0
    }
}

/// A call as narration spells it, `connect(3, {...}) = 0`, split into name, arguments and
/// result for the trace.
pub fn split_call(text: &str) -> (&str, &str, &str) {
    let Some(open) = text.find('(') else {
        return (text, "", "");
    };
    match text.rfind(") = ") {
        Some(close) if close > open => (&text[..open], &text[open + 1..close], &text[close + 4..]),
        _ => match text.rfind(')') {
            Some(close) if close > open => (
                &text[..open],
                &text[open + 1..close],
                text[close + 1..].trim(),
            ),
            _ => (text, "", ""),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_split_into_name_args_result() {
        assert_eq!(
            split_call("connect(3, {sa_family=AF_INET}, 16) = 0"),
            ("connect", "3, {sa_family=AF_INET}, 16", "0")
        );
        assert_eq!(split_call("close(3)"), ("close", "3", ""));
    }

    #[test]
    fn strings_are_escaped() {
        let mut f = Fields(String::new());
        f.str("k", "a\"b\\c\n\u{1}");
        assert_eq!(f.0, ",\"k\":\"a\\\"b\\\\c\\n\\u0001\"");
    }
}
