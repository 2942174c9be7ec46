//! `--report` and `sockkit report`: a --trace session drawn as one self-contained HTML page.
//! model.rs gathers what to draw from the trace's lines, bounded however long the session;
//! page.rs lays it out as HTML with inline SVG. Neither reads or writes a file: cmd does.

pub mod model;
pub mod page;

pub use model::Model;
pub use page::render;
