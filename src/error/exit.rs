//! How a failure ends the command: the one function that picks the exit status, the usage
//! error type behind status 2, and the one line main prints (`sockkit: <what>: <why>`, clap's
//! own errors folded to that shape too). The sentences inside `<why>` come from `hints.rs`.

use std::fmt;
use std::io;
use std::sync::atomic::{AtomicI32, Ordering};

/// Exit status: the command did what was asked.
pub const EXIT_OK: u8 = 0;
/// Exit status: a network or I/O failure (refused, timed out, reset, address in use, ...).
pub const EXIT_FAILURE: u8 = 1;
/// Exit status: the command line was wrong (clap's own errors use it too).
pub const EXIT_USAGE: u8 = 2;

/// The signal (SIGINT, SIGTERM, SIGHUP) that stopped the command, once it has cleaned up; 0
/// for none. Set by whoever caught it (the server engine, the relay's signal thread).
static STOP_SIGNAL: AtomicI32 = AtomicI32::new(0);

/// Records that `sig` asked the command to stop; `end_by_signal` then ends the process by it.
pub fn note_stop_signal(sig: i32) {
    STOP_SIGNAL.store(sig, Ordering::SeqCst);
}

/// After a stop signal was caught and everything is cleaned up (clients closed, totals said,
/// socket file removed): ends the process by that same signal, as if it had not been caught,
/// so the parent sees what happened (the shell's `$?` is 128+N: 130, 143, 129; a shell loop
/// stops at Ctrl-C; systemd counts SIGTERM as a clean stop). Returns the 128+N status to exit
/// with only if the signal could not end the process. `None`: no signal was caught.
pub fn end_by_signal() -> Option<u8> {
    let sig = STOP_SIGNAL.load(Ordering::SeqCst);
    if sig == 0 {
        return None;
    }
    // Puts back the default action (terminate) and raises the signal again.
    let _ = signal_hook::low_level::emulate_default_handler(sig);
    Some(u8::try_from(128 + sig).unwrap_or(EXIT_FAILURE))
}

/// A mistake in what the user typed that clap could not catch by itself; exit status 2.
#[derive(Debug)]
pub struct UsageError(String);

impl UsageError {
    pub fn new(msg: impl Into<String>) -> Self {
        UsageError(msg.into())
    }
}

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// The exit status for an error that ended the command.
pub fn exit_status(err: &anyhow::Error) -> u8 {
    if err
        .chain()
        .any(<dyn std::error::Error + 'static>::is::<UsageError>)
    {
        EXIT_USAGE
    } else {
        EXIT_FAILURE
    }
}

/// Prints `message(err)` on stderr without ever panicking: a closed or broken stderr must not
/// turn exit status 1 into a panic's 101.
pub fn report(err: &anyhow::Error) {
    crate::narrate::say(&format!("{}\n", message(err)));
}

/// The one line main prints: the context chain joined by `: `.
pub fn message(err: &anyhow::Error) -> String {
    format!("sockkit: {err:#}")
}

/// The one `sockkit: ...` line for a usage error clap found, with where to read more. clap's
/// own rendering spans several lines; the first says it all.
pub fn usage_line(e: &clap::Error) -> String {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    // Because `-4` and `-6` are flags, clap reads a negative number where a port should be
    // (`listen -1`) as an unknown flag. The user meant a port: say why it is not one.
    if e.kind() == ErrorKind::UnknownArgument
        && let Some(ContextValue::String(arg)) = e.get(ContextKind::InvalidArg)
        && arg.len() > 1
        && arg.starts_with('-')
        && arg[1..].bytes().all(|b| b.is_ascii_digit())
    {
        return format!("sockkit: port {arg} is out of range: ports go from 0 to 65535");
    }
    let text = e.render().to_string();
    let mut lines = text.lines();
    let first = lines.next().unwrap_or_default();
    let mut first = first.strip_prefix("error: ").unwrap_or(first).to_string();
    if first.ends_with(':') {
        // "the following required arguments were not provided:" lists them on the next lines.
        let listed: Vec<&str> = lines
            .clone()
            .map(str::trim)
            .take_while(|l| !l.is_empty())
            .collect();
        first = format!("{first} {}", listed.join(" "));
    }
    // "a similar argument exists" helps; "to pass X as a value, use -- X" misleads a learner.
    let tip = lines
        .map(str::trim)
        .filter_map(|l| l.strip_prefix("tip: "))
        .find(|t| !t.starts_with("to pass"))
        .map(|t| format!("; {t}"))
        .unwrap_or_default();
    format!("sockkit: {first}{tip} (--help shows the usage)")
}

/// True for the errors that mean the reader of our stdout went away (`| head -c 10`): a normal
/// end for a filter, not a failure worth a message.
pub fn is_broken_pipe(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::BrokenPipe
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_errors_exit_2_and_others_1() {
        let usage = anyhow::Error::new(UsageError::new("bad port"));
        assert_eq!(exit_status(&usage), EXIT_USAGE);
        let io = anyhow::Error::new(io::Error::from_raw_os_error(libc::ECONNREFUSED))
            .context("connecting");
        assert_eq!(exit_status(&io), EXIT_FAILURE);
        let wrapped = anyhow::Error::new(UsageError::new("x")).context("parsing");
        assert_eq!(exit_status(&wrapped), EXIT_USAGE);
    }

    #[test]
    fn message_is_one_line_with_the_chain() {
        let e = anyhow::Error::new(io::Error::from_raw_os_error(libc::ECONNRESET))
            .context("reading from the socket");
        assert_eq!(
            message(&e),
            "sockkit: reading from the socket: Connection reset by peer (os error 104)"
        );
    }
}
