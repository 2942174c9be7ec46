//! How a server learns it should stop: SIGINT and SIGTERM become a byte on a socket pair that
//! the event loop polls like any client (the self-pipe trick, via signal-hook), plus a flag that
//! says which signal it was. Nothing here closes anything; the loops do that.

use std::io::{self, Read};
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{Context, Result};
use signal_hook::consts::{SIGINT, SIGTERM};

/// The read end of the signal pipe, ready to register with mio.
pub struct Stop {
    pub pipe: mio::net::UnixStream,
    which: Arc<AtomicUsize>,
}

impl Stop {
    /// Routes SIGINT and SIGTERM to the pipe. The flag is registered first so it is set by the
    /// time the loop wakes.
    pub fn install() -> Result<Stop> {
        let (rx, tx) = UnixStream::pair().context("creating the signal pipe")?;
        rx.set_nonblocking(true)
            .context("making the signal pipe non-blocking")?;
        let which = Arc::new(AtomicUsize::new(0));
        for sig in [SIGINT, SIGTERM] {
            signal_hook::flag::register_usize(sig, Arc::clone(&which), sig as usize)
                .context("installing a signal handler")?;
            let tx = tx.try_clone().context("cloning the signal pipe")?;
            signal_hook::low_level::pipe::register(sig, tx)
                .context("installing a signal handler")?;
        }
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
        match self.which.load(Ordering::SeqCst) {
            0 => None,
            n if n == SIGINT as usize => Some("SIGINT"),
            _ => Some("SIGTERM"),
        }
    }
}
