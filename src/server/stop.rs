//! How a server learns it should stop: SIGINT, SIGTERM and SIGHUP (the terminal went away)
//! become a byte on a socket pair that the event loop polls like any client (the self-pipe
//! trick), plus a flag that says which signal it was. The one signal thread of the process
//! (relay/interrupt.rs, started before the socket exists so no early signal is lost) passes
//! them here once the loop runs. Nothing here closes anything; the loops do that.

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{Context, Result};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};

/// The read end of the signal pipe, ready to register with mio.
pub struct Stop {
    pub pipe: mio::net::UnixStream,
    which: Arc<AtomicUsize>,
}

impl Stop {
    /// Takes SIGINT, SIGTERM and SIGHUP over from the signal thread: each sets the flag,
    /// then writes a byte to the pipe, so the flag is set by the time the loop wakes.
    pub fn install() -> Result<Stop> {
        let (rx, tx) = UnixStream::pair().context("creating the signal pipe")?;
        rx.set_nonblocking(true)
            .context("making the signal pipe non-blocking")?;
        tx.set_nonblocking(true)
            .context("making the signal pipe non-blocking")?;
        let which = Arc::new(AtomicUsize::new(0));
        let flag = Arc::clone(&which);
        crate::interrupt::install()?;
        crate::interrupt::hand_over(move |sig| {
            flag.store(usize::try_from(sig).unwrap_or(0), Ordering::SeqCst);
            // A full pipe already holds a wake-up.
            let _ = (&tx).write(b"!");
        });
        Ok(Stop {
            pipe: mio::net::UnixStream::from_std(rx),
            which,
        })
    }

    /// Empties the pipe after a wake-up; the name of the signal that arrived, if one did.
    pub fn take(&mut self) -> Option<&'static str> {
        let mut buf = [0u8; 16];
        loop {
            match (&self.pipe).read(&mut buf) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        let sig = match self.which.load(Ordering::SeqCst) {
            0 => return None,
            n => i32::try_from(n).unwrap_or(SIGTERM),
        };
        // main ends the process by this signal once the server has stopped.
        crate::error::note_stop_signal(sig);
        Some(match sig {
            SIGINT => "SIGINT",
            SIGHUP => "SIGHUP",
            _ => "SIGTERM",
        })
    }
}
