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

pub use doc::{help_in_args, help_text, man_roff, print_help};
pub use kernel::{read_sysctl, refusal};
pub use parse::{parse_bytes, parse_value};
pub use plan::{Origin, Plan};
pub use table::{NOT_OFFERED, TABLE, find, names_of};
pub use types::{
    Adjust, Applies, Fam, GetFn, Kind, Level, Probe, Row, SetFn, SockKind, SockOptRequest, Stage,
    Target, Value,
};
