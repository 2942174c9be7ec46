//! How a failure reaches the user. `exit.rs` picks the exit status (in one place) and shapes
//! the one line main prints, `sockkit: <what>: <why>`; `hints.rs` holds the table that turns
//! an errno into a sentence a learner can act on, for each situation a call fails in. This
//! file only names them, so callers write `error::plain`, `error::connect_failure`, ...

mod exit;
mod hints;

pub use exit::{
    EXIT_FAILURE, EXIT_OK, EXIT_USAGE, UsageError, end_by_signal, exit_status, is_broken_pipe,
    message, note_stop_signal, report, usage_line,
};
pub use hints::{
    PathHolder, bind_failure, client_io_failure, connect_failure, connect_timed_out,
    datagram_failure, is_out_of_fds, plain, plain_named, resolve_failure, source_failure,
    udp_bind_failure, undelivered, unix_bind_failure, unix_connect_failure, unix_not_a_socket,
    unix_path_taken,
};
