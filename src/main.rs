//! The `sockkit` binary: parse the command line, run the subcommand, and turn its error (if
//! any) into one line on stderr and an exit status. Everything else lives in the library.

use std::process::ExitCode;

use clap::Parser;
use sockkit::{cli::Cli, cmd, error};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // clap prints help and version to stdout (exit 0) and usage errors to stderr (2).
            let _ = e.print();
            return ExitCode::from(e.exit_code() as u8);
        }
    };
    match cmd::run(cli) {
        Ok(()) => ExitCode::from(error::EXIT_OK),
        Err(e) => {
            eprintln!("{}", error::message(&e));
            ExitCode::from(error::exit_status(&e))
        }
    }
}
