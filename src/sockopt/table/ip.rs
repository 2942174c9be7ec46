//! The IPPROTO_IP rows (ip(7)): fields of the IPv4 header a socket sends. On an IPv6 socket
//! they apply only to IPv4-mapped traffic; `ipv6` has the IPv6 equivalents.

use crate::sockopt::types::{Adjust, Applies, Kind, Level, Probe, Row, Stage, Value};

/// The rows of this level, in the order `-o help` lists them.
pub(super) const ROWS: &[Row] = &[
    Row {
        name: "IP_TTL",
        aliases: &[],
        level: Level::Ip,
        kind: Kind::Int(-1, 255),
        valid: "1-255, or -1 for net.ipv4.ip_default_ttl",
        applies: Applies::ANY_INET,
        stage: Stage::Early,
        doc: "Time to live of outgoing IPv4 packets: how many routers may forward one before \
              it is dropped (the field traceroute plays with).",
        notes: "On an IPv6 socket it applies only to IPv4-mapped traffic (a dual-stack \
                server's IPv4 clients); IPv6 packets use IPV6_UNICAST_HOPS.",
        set: Some(|s, v| s.set_ttl_v4(v.as_c_uint())),
        get: |s| s.ttl_v4().map(|n| Value::Int(i64::from(n.cast_signed()))),
        adjust: Adjust::Exact,
        probe: Probe::Set("9"),
    },
    Row {
        name: "IP_TOS",
        aliases: &[],
        level: Level::Ip,
        kind: Kind::Int(0, 255),
        valid: "0-255 (0x10 style accepted); DSCP is the top six bits",
        applies: Applies::ANY_INET,
        stage: Stage::Early,
        doc: "The Type of Service byte of outgoing IPv4 packets; its top six bits are the DSCP \
              class routers may prioritise by (0xb8 is EF, expedited forwarding).",
        notes: "On TCP the kernel keeps the two low (ECN) bits for itself. On Linux it also \
                sets SO_PRIORITY. On an IPv6 socket it applies only to IPv4-mapped traffic; \
                use IPV6_TCLASS.",
        set: Some(|s, v| s.set_tos_v4(v.as_c_uint())),
        get: |s| s.tos_v4().map(|n| Value::Int(i64::from(n.cast_signed()))),
        adjust: Adjust::EcnMasked,
        probe: Probe::Set("0x10"),
    },
];
