//! Socket options, driven by one table: one row per option, with its kernel name, level,
//! value kind, the sockets it applies to, when it is applied, what the kernel does to a value,
//! a short doc, and its set/get functions over `socket2::SockRef`. Parsing `-o`, applying,
//! `--show-opts`, `-o help` and the man page's SOCKET OPTIONS section all read the rows;
//! adding an option is adding a row (and its probe value, which the round-trip test in
//! tests/sockopt.rs uses).
//!
//! One file per concern, each naming the siblings it reads and never this module, so the
//! directory has no import cycle: `types` (what a row and a value are), `table` (the rows,
//! one file per level, and the lookup by name), `parse` (`-o NAME[=VALUE]`), `kernel` (what
//! the kernel does with a value: adjustments, refusals, sysctls), `plan` (applying at each
//! stage, `--show-opts`) and `doc` (`-o help`, the man page section). This file only
//! re-exports, so callers name everything as `crate::sockopt::X`.

mod doc;
mod kernel;
mod parse;
mod plan;
mod table;
mod types;

// What tests/sockopt.rs and tests/man.rs read: the rows, their probe values and the man page
// section. The rest is the crate's own.
pub use doc::man_roff;
pub use kernel::read_sysctl;
pub use parse::parse_value;
pub use table::{TABLE, find, names_of};
pub use types::{Fam, Probe, Row, SockKind, Stage, Target, Value};

pub(crate) use doc::{help_in_args, print_help};
pub(crate) use plan::Plan;
pub(crate) use types::SockOptRequest;
