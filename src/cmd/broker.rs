//! `sockkit listen --broker [ADDR] PORT` (and `--chat`): the hub on the connection engine. Glue
//! only: the endpoint and plan as `listen` makes them, limits from listen's own options, the
//! announcement, then the engine with the broker service. stdin is not read: the broker passes
//! clients' bytes between them and takes no part itself.

use anyhow::Result;

use crate::cli::ListenArgs;
use crate::narrate;
use crate::server::{self, Limits};
use crate::service::broker::Broker;
use crate::service::dumped::Dumped;

/// What one client may be owed before the engine watches whether it reads at all (and 16 times
/// this is the most it may ever be owed): a reader may fall this far behind a fast sender
/// without being suspected.
pub const MAX_OWED: usize = 256 * 1024;

pub fn run(args: ListenArgs) -> Result<()> {
    let listener = super::tcp_server(
        args.addr.as_deref(),
        args.port,
        None,
        args.net.family(),
        &args.sockopts,
    )?;
    let plan = listener.plan.clone();
    let limits = Limits {
        max_conns: args.broker.max_conns.max(1),
        idle_timeout: args.relay.idle_timeout,
        allow: Vec::new(),
        deny: Vec::new(),
        max_owed: MAX_OWED,
        threads: 1,
    };
    super::announce(&listener, args.verbosity);
    narrate::info(format_args!(
        "{}: each client's bytes go to every other client; stdin is not read",
        if args.broker.chat { "chat" } else { "broker" }
    ));
    let broker = Broker::new(args.broker.chat);
    match super::dump(&args.wire.dump)? {
        Some(dump) => server::serve(
            listener,
            &plan,
            limits,
            Dumped {
                inner: broker,
                dump,
            },
        ),
        None => server::serve(listener, &plan, limits, broker),
    }
}
