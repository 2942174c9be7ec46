//! The IPPROTO_IPV6 rows (ipv6(7)): dual-stack behaviour and the fields of the IPv6 header a
//! socket sends.

use crate::sockopt::types::{Adjust, Applies, Kind, Level, Probe, Row, Stage, Value};

/// The rows of this level, in the order `-o help` lists them.
pub(super) const ROWS: &[Row] = &[
    Row {
        name: "IPV6_V6ONLY",
        aliases: &[],
        level: Level::Ipv6,
        kind: Kind::Bool,
        valid: "",
        applies: Applies::INET6,
        stage: Stage::Early,
        doc: "Keeps an IPv6 socket to IPv6. Off, a socket bound to [::] also serves IPv4 \
              clients, seen as ::ffff:a.b.c.d.",
        notes: "Must be set before bind. sockkit's servers turn it off for their default [::] \
                bind and on with -6; -o v6only takes precedence over both, and the 'listening \
                on' line says which families are served.",
        set: Some(|s, v| s.set_only_v6(v.as_bool())),
        get: |s| s.only_v6().map(Value::Bool),
        adjust: Adjust::Exact,
        probe: Probe::Set("on"),
    },
    Row {
        name: "IPV6_UNICAST_HOPS",
        aliases: &["hops", "hoplimit"],
        level: Level::Ipv6,
        kind: Kind::Int(-1, 255),
        valid: "1-255, or -1 for net.ipv6.conf.all.hop_limit",
        applies: Applies::INET6,
        stage: Stage::Early,
        doc: "Hop limit of outgoing IPv6 unicast packets: IPv6's time to live.",
        notes: "",
        set: Some(|s, v| s.set_unicast_hops_v6(v.as_c_uint())),
        get: |s| {
            s.unicast_hops_v6()
                .map(|n| Value::Int(i64::from(n.cast_signed())))
        },
        adjust: Adjust::Exact,
        probe: Probe::Set("9"),
    },
    Row {
        name: "IPV6_TCLASS",
        aliases: &[],
        level: Level::Ipv6,
        kind: Kind::Int(-1, 255),
        valid: "0-255, or -1 for the default; DSCP is the top six bits",
        applies: Applies::INET6,
        stage: Stage::Early,
        doc: "The Traffic Class byte of outgoing IPv6 packets: IPv6's TOS, with the same DSCP \
              bits.",
        notes: "On TCP the kernel keeps the two low (ECN) bits for itself.",
        set: Some(|s, v| s.set_tclass_v6(v.as_c_uint())),
        get: |s| {
            s.tclass_v6()
                .map(|n| Value::Int(i64::from(n.cast_signed())))
        },
        adjust: Adjust::EcnMasked,
        probe: Probe::Set("0x20"),
    },
];
