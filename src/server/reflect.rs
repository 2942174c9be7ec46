//! Why a datagram server stays silent to some senders: so it can never be made into a
//! reflector, or into one end of a loop. A UDP source address is only what the datagram says,
//! and anyone can write anything there; answering blindly lets one forged datagram start an
//! endless exchange (the old echo/chargen loop: a datagram "from" the server's own port, or
//! from another echo server, is answered forever at full speed). The rules, as inetd's
//! built-in services have them:
//!
//! - never answer the server's own port (a datagram from itself, or from its twin elsewhere);
//! - never answer a service port: every port below 1024 and the well-known high ones
//!   (`REFLECTOR_PORTS`); clients send from ephemeral ports, services answer from theirs;
//! - answer each source address at most `BURST` datagrams at once and `RATE` a second after
//!   that, so two servers that do get talking (two `echo -u` on high ports) stop within a
//!   burst: the first datagram held back ends their exchange, since a loop carries only the
//!   datagrams that started it.
//!
//! This file only decides; the datagram loop (`dgram.rs`) counts and says what was not
//! answered. A Unix datagram sender cannot forge its address (the kernel fills it in), so
//! only IP senders are checked.

use std::hash::{BuildHasher, RandomState};
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

/// Replies one source address may get at once.
pub const BURST: u32 = 256;
/// Replies a second one source address may get after its burst.
pub const RATE: u32 = 256;

/// Source-address buckets kept. Sources are hashed into them (with a per-process random
/// key), so a flood of forged addresses costs no memory: at worst two sources share a budget.
const BUCKETS: usize = 4096;

/// Well-known UDP services above 1024 that answer what they are sent (the ports below 1024
/// are all refused).
const REFLECTOR_PORTS: &[(u16, &str)] = &[
    (1900, "SSDP"),
    (2049, "NFS"),
    (3283, "ARD"),
    (3702, "WS-Discovery"),
    (5353, "mDNS"),
    (5683, "CoAP"),
    (11211, "memcached"),
];

/// Names for the service ports a learner is most likely to meet in a log line.
const SERVICE_NAMES: &[(u16, &str)] = &[
    (7, "echo"),
    (9, "discard"),
    (13, "daytime"),
    (17, "qotd"),
    (19, "chargen"),
    (37, "time"),
    (53, "DNS"),
    (69, "TFTP"),
    (111, "portmap"),
    (123, "NTP"),
    (137, "NetBIOS"),
    (161, "SNMP"),
    (389, "LDAP"),
    (500, "IKE"),
];

/// Why a datagram goes unanswered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Silence {
    /// From the server's own port: answering could be answering itself.
    OwnPort,
    /// From a service port (another server would answer the answer).
    ServicePort(u16, Option<&'static str>),
    /// Over the per-source budget.
    RateLimited,
}

impl Silence {
    /// The reason, for the `-v` line.
    pub fn why(&self) -> String {
        match self {
            Silence::OwnPort => {
                "it comes from this server's own port: answering could loop forever".to_string()
            }
            Silence::ServicePort(port, name) => format!(
                "port {port}{} is a service's, not a client's: a reply could start a loop",
                name.map(|n| format!(" ({n})")).unwrap_or_default()
            ),
            Silence::RateLimited => format!(
                "over {RATE} replies a second to one address (after a burst of {BURST}): a loop or a flood"
            ),
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    filled: Instant,
}

/// The rules for one server socket.
pub struct Guard {
    own_port: u16,
    buckets: Vec<Bucket>,
    keys: RandomState,
}

impl Guard {
    /// For a server bound to `local`.
    pub fn new(local: SocketAddr, now: Instant) -> Guard {
        Guard {
            own_port: local.port(),
            buckets: vec![
                Bucket {
                    tokens: f64::from(BURST),
                    filled: now,
                };
                BUCKETS
            ],
            keys: RandomState::new(),
        }
    }

    /// Whether a datagram from `from` may be answered now; `Some`: why not. An answered one
    /// is charged to its source's budget.
    pub fn check(&mut self, from: SocketAddr, now: Instant) -> Option<Silence> {
        let port = from.port();
        if port == self.own_port {
            return Some(Silence::OwnPort);
        }
        if port < 1024 {
            return Some(Silence::ServicePort(port, name_of(SERVICE_NAMES, port)));
        }
        if let Some(name) = name_of(REFLECTOR_PORTS, port) {
            return Some(Silence::ServicePort(port, Some(name)));
        }
        self.spend(from.ip(), now).then_some(Silence::RateLimited)
    }

    /// Takes a token from `ip`'s bucket; true when there was none.
    fn spend(&mut self, ip: IpAddr, now: Instant) -> bool {
        let i = (self.keys.hash_one(ip.to_canonical()) as usize) % BUCKETS;
        let b = &mut self.buckets[i];
        let since = now.saturating_duration_since(b.filled).as_secs_f64();
        b.tokens = (b.tokens + since * f64::from(RATE)).min(f64::from(BURST));
        b.filled = now;
        if b.tokens < 1.0 {
            return true;
        }
        b.tokens -= 1.0;
        false
    }
}

fn name_of(table: &[(u16, &'static str)], port: u16) -> Option<&'static str> {
    table.iter().find(|(p, _)| *p == port).map(|(_, n)| *n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn own_port_and_service_ports_are_never_answered() {
        let now = Instant::now();
        let mut g = Guard::new(at("[::]:40000"), now);
        assert_eq!(g.check(at("127.0.0.1:40000"), now), Some(Silence::OwnPort));
        assert_eq!(g.check(at("192.0.2.1:40000"), now), Some(Silence::OwnPort));
        assert_eq!(
            g.check(at("127.0.0.1:19"), now),
            Some(Silence::ServicePort(19, Some("chargen")))
        );
        assert_eq!(
            g.check(at("127.0.0.1:1000"), now),
            Some(Silence::ServicePort(1000, None))
        );
        assert_eq!(
            g.check(at("[::1]:11211"), now),
            Some(Silence::ServicePort(11211, Some("memcached")))
        );
        assert_eq!(g.check(at("127.0.0.1:40001"), now), None);
        assert!(Silence::OwnPort.why().contains("own port"));
    }

    #[test]
    fn each_source_gets_a_burst_then_the_rate() {
        let t0 = Instant::now();
        let mut g = Guard::new(at("0.0.0.0:7777"), t0);
        let a = at("127.0.0.1:50000");
        let answered = (0..1000).filter(|_| g.check(a, t0).is_none()).count();
        assert_eq!(answered, BURST as usize);
        assert_eq!(g.check(a, t0), Some(Silence::RateLimited));
        // Another port of the same address shares the budget: a victim's address is what
        // a reflection attack forges, whatever port it picks.
        assert_eq!(
            g.check(at("127.0.0.1:50001"), t0),
            Some(Silence::RateLimited)
        );
        let t1 = t0 + Duration::from_millis(100);
        let refilled = (0..1000).filter(|_| g.check(a, t1).is_none()).count();
        assert_eq!(refilled, RATE as usize / 10);
    }
}
