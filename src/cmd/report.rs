//! `sockkit report TRACE [-o FILE]`: reads a saved --trace file line by line into the
//! report's bounded model and writes the page (report/) to FILE or stdout. A file that is not
//! a trace is refused in one line (exit 1), before anything is written.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};

use anyhow::{Result, anyhow};

use crate::cli::ReportArgs;
use crate::error;
use crate::narrate;
use crate::report::{self, Model};

/// The longest line a trace may have. Its lines are one event each, a few hundred bytes.
const MAX_LINE: u64 = 1024 * 1024;

pub fn run(args: &ReportArgs) -> Result<()> {
    let shown = args.trace.display();
    let file = File::open(&args.trace).map_err(|e| anyhow!("{shown}: {}", error::plain(&e)))?;
    let mut model = Model::default();
    let mut reader = BufReader::new(file);
    let mut line = Vec::new();
    for number in 1.. {
        line.clear();
        // Each line read through a bound, so a file with no newline (/dev/zero, a binary) is
        // refused instead of read whole into memory.
        let got = (&mut reader)
            .take(MAX_LINE + 1)
            .read_until(b'\n', &mut line)
            .map_err(|e| anyhow!("{shown}: {}", error::plain(&e)))?;
        if got == 0 {
            break;
        }
        if line.last() == Some(&b'\n') {
            line.pop();
        } else if got as u64 > MAX_LINE {
            return Err(anyhow!(
                "{shown}: not a sockkit --trace file: line {number} is longer than {} (a trace's \
                 lines are short)",
                narrate::bytes(MAX_LINE)
            ));
        }
        model
            .add_line(&String::from_utf8_lossy(&line))
            .map_err(|why| anyhow!("{shown}: not a sockkit --trace file: {}", why.0))?;
    }
    if model.lines == 0 {
        return Err(anyhow!("{shown}: not a sockkit --trace file: it is empty"));
    }
    let title = args
        .trace
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let page = report::render(&model, &title);
    match &args.output {
        Some(path) => std::fs::write(path, page)
            .map_err(|e| anyhow!("{}: {}", path.display(), error::plain(&e)))?,
        None => io::stdout()
            .lock()
            .write_all(page.as_bytes())
            .map_err(|e| anyhow!("stdout: {}", error::plain(&e)))?,
    }
    narrate::info(format_args!(
        "{} segments ({} not drawn), {} samples",
        model.segments,
        model.skipped_segments,
        model.samples.len()
    ));
    Ok(())
}
