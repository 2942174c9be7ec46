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
    match cmd::run(invocation) {
        Ok(()) => ExitCode::from(error::EXIT_OK),
        Err(e) => {
            error::report(&e);
            ExitCode::from(error::exit_status(&e))
        }
    }
}
