//! A socket's options from request to kernel: the Plan a subcommand builds from the `-o`
//! requests and its own defaults, applied at each Stage with every setsockopt narrated, and
//! the `--show-opts` table of what the kernel reports beside what was asked. Reading `-o` is
//! `parse`'s, and the words for what the kernel did with a value are `kernel`'s.

use std::io;

use anyhow::{Result, anyhow};
use socket2::{SockRef, Socket};

use super::kernel;
use super::table::{TABLE, find};
use super::types::{Kind, Row, SockOptRequest, Stage, Target, Value};
use crate::narrate;

/// The options requested on the command line, plus the defaults a subcommand adds.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// What the user asked for, in order, plus any default not overridden.
    requests: Vec<(&'static Row, Value, Origin)>,
}

/// Where a requested value came from, shown by `--show-opts`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    User,
    Default,
}

impl Plan {
    /// The plan for the `-o` options as typed. `-o keepalive=30s` becomes what it means to the
    /// kernel: SO_KEEPALIVE on, then TCP_KEEPIDLE 30, so both are narrated and shown.
    pub fn new(requests: &[SockOptRequest]) -> Self {
        let mut plan = Plan::default();
        for r in requests {
            let SockOptRequest::Set { row, value } = r else {
                continue;
            };
            match (row.kind, value, find("TCP_KEEPIDLE")) {
                (Kind::Keepalive, Value::Duration(idle), Some(keepidle)) => {
                    plan.requests.push((row, Value::Bool(true), Origin::User));
                    plan.requests
                        .push((keepidle, Value::Duration(*idle), Origin::User));
                }
                _ => plan.requests.push((row, value.clone(), Origin::User)),
            }
        }
        plan
    }

    /// Adds a default (such as SO_REUSEADDR on for servers) unless the user set that option.
    pub fn with_default(mut self, name: &str, value: Value) -> Self {
        let row = find(name).expect("default names a row of the table");
        if self.last_for(row).is_none() {
            self.requests.push((row, value, Origin::Default));
        }
        self
    }

    /// The listen() backlog asked for (by the user, or a default), if any.
    pub fn backlog(&self) -> Option<i32> {
        match self.requested("backlog") {
            Some(Value::Int(n)) => Some(i32::try_from(*n).unwrap_or(i32::MAX)),
            _ => None,
        }
    }

    /// The value requested for a row, if any: the last one given wins, as it would in C.
    pub fn requested(&self, name: &str) -> Option<&Value> {
        self.last_for(find(name)?).map(|(v, _)| v)
    }

    /// The request that decides `row`'s value (the last one, as setsockopt calls in that order
    /// would) and where it came from. Rows are compared by address: each is one static.
    fn last_for(&self, row: &Row) -> Option<(&Value, Origin)> {
        self.requests
            .iter()
            .rev()
            .find(|(r, _, _)| std::ptr::eq(*r, row))
            .map(|(_, v, o)| (v, *o))
    }

    /// Sets every requested option of `stage` on `sock`, narrating each setsockopt. An option
    /// that does not apply to this socket, or that the kernel refuses, is an error naming it
    /// and the value.
    pub fn apply(&self, sock: &Socket, target: Target, stage: Stage) -> Result<()> {
        for (row, value, origin) in &self.requests {
            if row.stage != stage {
                continue;
            }
            if !row.applies.admits(target) {
                if *origin == Origin::Default {
                    continue;
                }
                return Err(anyhow!(
                    "socket option {}={value} does not apply to a {target}: it is for {}",
                    row.name,
                    row.applies.describe()
                ));
            }
            let Some(set) = row.set else { continue };
            let fd = std::os::fd::AsRawFd::as_raw_fd(sock);
            narrate::traced(
                || set(SockRef::from(sock), value),
                |r| {
                    format!(
                        "setsockopt(fd {fd}, {}, {}, {}) {}",
                        row.level,
                        row.name,
                        value.c_arg(row.kind),
                        narrate::outcome(r)
                    )
                },
            )
            .map_err(|e| anyhow!("{}", kernel::refusal(row, value, &e)))?;
        }
        Ok(())
    }

    /// The `--show-opts` table for `sock`: every row that applies, with the requested value,
    /// the value getsockopt reports, and a note where they differ.
    pub fn show(&self, sock: &Socket, target: Target, title: &str) -> String {
        let mut lines = vec![[
            "OPTION".to_string(),
            "LEVEL".to_string(),
            "REQUESTED".to_string(),
            "KERNEL".to_string(),
            "NOTE".to_string(),
        ]];
        let rows: Vec<&Row> = TABLE.iter().filter(|r| r.applies.admits(target)).collect();
        let fd = std::os::fd::AsRawFd::as_raw_fd(sock);
        let got: Vec<io::Result<Value>> = narrate::traced(
            || Ok(rows.iter().map(|r| (r.get)(SockRef::from(sock))).collect()),
            |_| {
                format!(
                    "getsockopt(fd {fd}, ...) for each of {} options",
                    rows.len()
                )
            },
        )
        .unwrap_or_default();
        for (row, got) in rows.iter().zip(got) {
            let requested = self.last_for(row);
            let (kernel, note) = match (&got, requested) {
                (Ok(g), Some((req, _))) if g != req => {
                    // Another option's doing is named before the row's own kernel rule.
                    let note = kernel::caused_by(row, &|name| self.requested(name).cloned())
                        .unwrap_or_else(|| row.adjust.explain(req, g));
                    (g.to_string(), note)
                }
                (Ok(g), _) => (g.to_string(), String::new()),
                (Err(e), _) => ("?".to_string(), kernel::errno_note(e).to_string()),
            };
            let req_text = match requested {
                Some((v, Origin::User)) => v.to_string(),
                Some((v, Origin::Default)) => format!("{v} (default)"),
                None => "-".to_string(),
            };
            lines.push([
                row.name.to_string(),
                row.level.to_string(),
                req_text,
                kernel,
                note,
            ]);
        }
        let width = |i: usize| {
            lines
                .iter()
                .map(|l| l[i].chars().count())
                .max()
                .unwrap_or(0)
        };
        let (w0, w1, w2, w3) = (width(0), width(1), width(2), width(3));
        let mut out = format!("socket options of {title}:\n");
        for [a, b, c, d, e] in lines {
            let line = format!("  {a:w0$}  {b:w1$}  {c:w2$}  {d:w3$}  {e}");
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_os = "linux")]
    #[test]
    fn keepalive_with_a_duration_also_sets_keepidle() {
        use std::time::Duration;
        let req: SockOptRequest = "keepalive=30s".parse().unwrap();
        let plan = Plan::new(&[req]);
        assert_eq!(plan.requested("SO_KEEPALIVE"), Some(&Value::Bool(true)));
        assert_eq!(
            plan.requested("TCP_KEEPIDLE"),
            Some(&Value::Duration(Duration::from_secs(30)))
        );
        let plan = Plan::new(&["keepalive=off".parse().unwrap()]);
        assert_eq!(plan.requested("SO_KEEPALIVE"), Some(&Value::Bool(false)));
        assert_eq!(plan.requested("TCP_KEEPIDLE"), None);
        let err = "keepalive=soon".parse::<SockOptRequest>().unwrap_err();
        assert!(
            err.contains("SO_KEEPALIVE") && err.contains("soon"),
            "{err}"
        );
    }
}
