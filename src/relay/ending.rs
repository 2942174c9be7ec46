//! How a relay session ends, whatever its transport: the options that decide it (`Ending`,
//! filled in by `cmd` from `--no-shutdown`, `--quit-after`, `--send-only`, `--recv-only` and
//! `--idle-timeout`) and the way it did end (`End`), and the rules a byte-stream session ends
//! by, whatever carries its bytes (`Ending::due`, `Ending::peer_eof_ends_now`): the plain
//! relay (stream.rs) and the TLS relay (tls/session.rs) both ask here, so `-q`, `-w` and the
//! peer's EOF mean the same over TCP and over TLS. How a session waits, reads and writes stays
//! with it; datagrams (dgram.rs) have no EOF and keep their own rules.

use std::time::{Duration, Instant};

use anyhow::{Result, anyhow};

use crate::narrate;

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

/// What a byte-stream session's deadlines say at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    /// Nothing is due: wait at most this long (None: no deadline) before asking again.
    Wait(Option<Duration>),
    /// A deadline ended the session normally.
    Ended(End),
}

impl Ending {
    /// The deadlines of a byte stream at `now`: `--quit-after` counts from stdin's EOF
    /// (`stdin_eof_at`), the idle timeout from the last byte moved either way. An idle
    /// timeout that is a failure (not nc's `-w`) is the error; the one-line narration of a
    /// normal end is said here, once for every transport.
    pub fn due(
        &self,
        now: Instant,
        stdin_eof_at: Option<Instant>,
        last_moved: Instant,
    ) -> Result<Due> {
        // checked_add: a deadline too far to represent is no deadline.
        let quit_at = stdin_eof_at
            .zip(self.quit_after)
            .and_then(|(t, q)| t.checked_add(q));
        if quit_at.is_some_and(|q| now >= q) {
            narrate::info(format_args!("--quit-after ran out after stdin EOF; ending"));
            return Ok(Due::Ended(End::QuitAfter));
        }
        let idle_at = self.idle_timeout.and_then(|t| last_moved.checked_add(t));
        if let (Some(at), Some(t)) = (idle_at, self.idle_timeout)
            && now >= at
        {
            if self.idle_ends_cleanly {
                narrate::info(format_args!(
                    "idle for {}: ending (nc's -w)",
                    humantime::format_duration(t)
                ));
                return Ok(Due::Ended(End::Closed));
            }
            return Err(anyhow!(
                "idle timeout: no data moved either way for {}",
                humantime::format_duration(t)
            ));
        }
        let next = [quit_at, idle_at].into_iter().flatten().min();
        Ok(Due::Wait(next.map(|d| d.saturating_duration_since(now))))
    }

    /// Whether the peer's EOF (over TLS: its close_notify), already seen, ends the session
    /// now: once stdin is done with this peer (`uplink_done`), at once for OpenBSD nc's
    /// listener, and at once for a client whose stdin is a terminal.
    pub fn peer_eof_ends_now(&self, uplink_done: bool, stdin_is_tty: bool) -> bool {
        uplink_done || self.peer_eof_ends || (stdin_is_tty && self.peer_eof_ends_terminal)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quit_after_counts_from_stdin_eof_and_idle_from_the_last_byte() {
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        let opts = Ending {
            quit_after: Some(s),
            idle_timeout: Some(3 * s),
            ..Ending::default()
        };
        // No stdin EOF yet: only the idle deadline counts.
        assert_eq!(opts.due(t0, None, t0).unwrap(), Due::Wait(Some(3 * s)));
        assert_eq!(
            opts.due(t0, Some(t0), t0).unwrap(),
            Due::Wait(Some(s)),
            "the nearer deadline is the one waited for"
        );
        assert_eq!(
            opts.due(t0 + s, Some(t0), t0).unwrap(),
            Due::Ended(End::QuitAfter)
        );
        let err = opts.due(t0 + 3 * s, None, t0).unwrap_err().to_string();
        assert!(
            err.contains("idle timeout: no data moved either way for 3s"),
            "{err}"
        );
        let nc = Ending {
            idle_ends_cleanly: true,
            ..opts
        };
        assert_eq!(
            nc.due(t0 + 3 * s, None, t0).unwrap(),
            Due::Ended(End::Closed)
        );
        assert_eq!(
            Ending::default().due(t0, Some(t0), t0).unwrap(),
            Due::Wait(None)
        );
    }

    #[test]
    fn the_peers_eof_ends_a_session_by_its_role_and_stdin() {
        let server = Ending::default();
        assert!(server.peer_eof_ends_now(true, false));
        assert!(!server.peer_eof_ends_now(false, true));
        let client = Ending {
            peer_eof_ends_terminal: true,
            ..server
        };
        assert!(client.peer_eof_ends_now(false, true));
        assert!(!client.peer_eof_ends_now(false, false));
        let nc = Ending {
            peer_eof_ends: true,
            ..server
        };
        assert!(nc.peer_eof_ends_now(false, false));
    }
}
