//! How a relay session ends, whatever its transport: the options that decide it (`Ending`,
//! filled in by `cmd` from `--no-shutdown`, `--quit-after`, `--send-only`, `--recv-only` and
//! `--idle-timeout`) and the way it did end (`End`). The rules themselves live with each
//! session (stream.rs, dgram.rs).

use std::time::Duration;

/// How one session ended, for `-v` and the exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// Both sides said EOF (or the peer did and stdin is a terminal); for datagrams, which
    /// have no EOF, stdin ended and then the idle timeout ran out or `--send-only` was done.
    Closed,
    /// `--quit-after` ran out after stdin EOF.
    QuitAfter,
    /// The reader of stdout went away (`| head`): a normal end for a filter.
    StdoutClosed,
}

/// How a session ends, and which directions it moves.
#[derive(Debug, Clone, Copy, Default)]
pub struct Ending {
    /// At stdin EOF keep the sending side open instead of shutdown(SHUT_WR) (streams only:
    /// a datagram socket has no sending side to shut).
    pub no_shutdown: bool,
    /// After stdin EOF wait at most this long for the peer's EOF (datagrams: keep printing
    /// this long).
    pub quit_after: Option<Duration>,
    /// Discard what the peer sends (the session still ends at the peer's EOF).
    pub send_only: bool,
    /// Do not read stdin.
    pub recv_only: bool,
    /// End the session when nothing has moved either way for this long.
    pub idle_timeout: Option<Duration>,
    /// With a terminal on stdin, the peer's EOF ends the session at once. True for a client
    /// (`connect`: the server said goodbye, the person gets their prompt back); false for a
    /// server (`listen`: a client that has sent its request and half-closed is waiting for
    /// the person's answer, which their Ctrl-D ends).
    pub peer_eof_ends_terminal: bool,
    /// The peer's EOF ends the session whatever stdin is (OpenBSD nc's listener), once what
    /// the peer sent is written.
    pub peer_eof_ends: bool,
    /// The idle timeout is a normal end (exit 0) rather than a failure (OpenBSD nc's `-w`).
    pub idle_ends_cleanly: bool,
}
