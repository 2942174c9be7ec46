//! `sockkit completions SHELL`: the completion script on stdout. The script is the parser's
//! (cli); this is only its delivery, where a reader that went away (`| head`) is a normal end.

use std::io::Write;

use anyhow::{Context, Result};

use crate::cli::{self, CompletionsArgs};
use crate::error;

pub fn run(args: &CompletionsArgs) -> Result<()> {
    let script = cli::completion_script(args.shell);
    let mut out = std::io::stdout().lock();
    match out.write_all(&script).and_then(|()| out.flush()) {
        Err(e) if !error::is_broken_pipe(&e) => Err(e).context("writing the script to stdout"),
        _ => Ok(()),
    }
}
