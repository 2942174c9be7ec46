//! The `sockkit` binary: parse the command line, run the subcommand, and turn its error (if
//! any) into one line on stderr and an exit status. Everything else lives in the library.

use std::process::ExitCode;

use clap::Parser;
use clap::error::ErrorKind;
use sockkit::{cli::Cli, cmd, error, sockopt};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // `sockkit connect -o help` lists the options although HOST and PORT are missing.
        Err(e)
            if e.kind() == clap::error::ErrorKind::MissingRequiredArgument
                && sockopt::help_in_args(std::env::args_os()) =>
        {
            sockopt::print_help();
            return ExitCode::from(error::EXIT_OK);
        }
        // A mistake gets one line; bare `sockkit` gets the usage (clap, stderr, exit 2).
        Err(e)
            if e.use_stderr()
                && e.kind() != ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand =>
        {
            eprintln!("{}", error::usage_line(&e));
            return ExitCode::from(error::EXIT_USAGE);
        }
        Err(e) => {
            // --help and --version go to stdout with exit 0; the bare usage to stderr, exit 2.
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
