//! What watches a session besides the capture: the --trace file, the TCP_INFO sampler
//! (`--tcp-info-every`, or `--report`'s own 20ms) and the --report page written at exit. A
//! command calls [`start`] before its first socket call and [`Observed::finish`] after its
//! last (and after stopping the capture, whose totals the trace records). The sampler is
//! capture/sample.rs's, the trace trace.rs's, the page report/'s; this file only wires them
//! to the command line.

use std::fs::File;
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Result, anyhow};

use super::setup::{Bound, Local};
use crate::capture::{Capture, CaptureOpts, Proto, Scope, sample};
use crate::cli::CaptureArgs;
use crate::error::{self, UsageError};
use crate::narrate;
use crate::report::{self, Model};
use crate::trace;

/// How often `--report` samples TCP_INFO when `--tcp-info-every` does not say: often enough
/// to draw a short transfer's cwnd and rtt, rarely enough to cost nothing (one getsockopt
/// per connection each time).
pub const REPORT_EVERY: Duration = Duration::from_millis(20);
/// The shortest `--tcp-info-every`: below it the sampler would cost more than it shows.
const MIN_EVERY: Duration = Duration::from_millis(1);

/// The watchers started for one command, ended by [`Observed::finish`].
pub struct Observed {
    report: Option<(PathBuf, File, Arc<Mutex<Model>>)>,
}

/// Opens the trace and the report file (so a bad path fails before any socket is made),
/// starts the sampler, and hands back the capture's options. Called after the command's own
/// usage checks, so a refused command leaves an existing file as it was.
pub fn start(args: &CaptureArgs) -> Result<(CaptureOpts, Observed)> {
    if let Some(every) = args.tcp_info_every
        && every < MIN_EVERY
    {
        return Err(UsageError::new(format!(
            "--tcp-info-every {}: too short to be worth a sample; give 1ms or more",
            humantime::format_duration(every)
        ))
        .into());
    }
    let report = match &args.report {
        Some(path) => {
            let file = File::create(path)
                .map_err(|e| anyhow!("{}: {}", path.display(), error::plain(&e)))?;
            Some((path.clone(), file, Arc::new(Mutex::new(Model::default()))))
        }
        None => None,
    };
    let tap: Option<trace::Tap> = report.as_ref().map(|(_, _, model)| {
        let model = Arc::clone(model);
        Box::new(move |line: &str| {
            if let Ok(mut m) = model.lock() {
                // The lines are ours: none is refused, and a bad one would only be counted.
                let _ = m.add_line(line);
            }
        }) as trace::Tap
    });
    trace::open(args.trace.as_deref(), tap).map_err(|e| {
        let path = args
            .trace
            .as_deref()
            .unwrap_or_else(|| std::path::Path::new(""));
        anyhow!("{}: {}", path.display(), error::plain(&e))
    })?;
    let every = args
        .tcp_info_every
        .or_else(|| report.as_ref().map(|_| REPORT_EVERY));
    if let Some(every) = every {
        sample::start(every, args.tcp_info_every.is_some());
    }
    let opts = CaptureOpts {
        wire: args.wire,
        pcap: args.pcap.clone(),
    };
    Ok((opts, Observed { report }))
}

/// A server's capture: its port, so the listening socket and every client. None on a Unix
/// socket (no packets) or when no capture was asked for.
pub fn capture_server(opts: &CaptureOpts, bound: &Bound) -> Option<Capture> {
    let Local::Ip { addr, .. } = &bound.local else {
        return None;
    };
    Capture::start(
        opts,
        Scope::Server {
            proto: proto_of(bound),
            local: *addr,
        },
    )
}

/// A forwarder's capture: its port when it listens on IP (with -U its clients have no
/// wire), and each target leg the engine registers as it opens (`Capture::legs`).
/// `loopback`: every address a leg may go to is on loopback.
pub fn capture_forward(opts: &CaptureOpts, bound: &Bound, loopback: bool) -> Option<Capture> {
    let local = match &bound.local {
        Local::Ip { addr, .. } => Some(*addr),
        Local::Unix(_) => None,
    };
    Capture::start(
        opts,
        Scope::Forward {
            proto: proto_of(bound),
            local,
            loopback,
        },
    )
}

fn proto_of(bound: &Bound) -> Proto {
    if bound.transport.is_stream() {
        Proto::Tcp
    } else {
        Proto::Udp
    }
}

impl Observed {
    /// Stops the sampler and the trace and writes the report page, if one was asked for.
    pub fn finish(mut self) -> Result<()> {
        self.write_report()
    }

    fn write_report(&mut self) -> Result<()> {
        sample::stop();
        trace::close();
        let Some((path, mut file, model)) = self.report.take() else {
            return Ok(());
        };
        let model = model
            .lock()
            .map_err(|_| anyhow!("the report's events were lost"))?;
        let title = path
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        let page = report::render(&model, &title);
        file.write_all(page.as_bytes())
            .map_err(|e| anyhow!("{}: {}", path.display(), error::plain(&e)))?;
        narrate::info(format_args!(
            "report: {} ({} segments, {} samples)",
            path.display(),
            model.segments,
            model.samples.len()
        ));
        Ok(())
    }
}

/// A command that fails after `start` (a refused connection, a bind in use) still gets its
/// page: what the kernel did up to the failure (a SYN answered by a RST) is worth drawing.
impl Drop for Observed {
    fn drop(&mut self) {
        if let Err(e) = self.write_report() {
            narrate::emit(format_args!("{e:#}"));
        }
    }
}
