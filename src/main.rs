//! The `sockkit` binary: parse the command line, run the subcommand, and turn its error (if
//! any) into one line on stderr and an exit status. The parser's own exits (`--help`, `-o
//! help`, usage errors) are `cli::parse`'s; everything else lives in the library.

use std::process::ExitCode;

use sockkit::cli::{self, ParseResult};
use sockkit::{cmd, error};

fn main() -> ExitCode {
    let invocation = match cli::parse() {
        ParseResult::Run(invocation) => invocation,
        ParseResult::Special(special) => return ExitCode::from(special.finish()),
    };
    let status = match cmd::run(invocation) {
        Ok(()) => error::EXIT_OK,
        Err(e) => {
            error::report(&e);
            error::exit_status(&e)
        }
    };
    // Stopped by SIGINT/SIGTERM/SIGHUP (and cleaned up): end by that signal.
    ExitCode::from(error::end_by_signal().unwrap_or(status))
}
