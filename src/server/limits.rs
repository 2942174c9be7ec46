//! What a server lets its clients cost it (`Limits`): how many at once, how long silent, from
//! which networks, how many unsent bytes each. The values only; the acceptor enforces the
//! counts and networks, the connection the owed bytes and the idle clock.

use std::net::IpAddr;
use std::time::Duration;

use crate::addr::Cidr;

/// What every server puts on what its clients can cost it: how many at once, how long silent,
/// from where, and how many unsent bytes one may be owed before the server stops reading it.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_conns: usize,
    /// `None`: a silent client may stay forever.
    pub idle_timeout: Option<Duration>,
    pub allow: Vec<Cidr>,
    pub deny: Vec<Cidr>,
    /// Bytes owed to one client (written by the service, not yet taken by the kernel) at which
    /// the engine stops reading from it: a client that sends but never reads costs at most this.
    pub max_owed: usize,
    /// Event-loop threads; clients are shared out among them at accept.
    pub threads: usize,
}

/// The default cap on what one client may be owed: a few socket buffers' worth.
pub const DEFAULT_MAX_OWED: usize = 64 * 1024;

impl Limits {
    /// Why a client at `ip` is refused by `--deny`/`--allow`, or `None` when it may come in.
    /// Deny rules are checked first, so a denied host inside an allowed network stays out.
    pub fn refuses(&self, ip: IpAddr) -> Option<String> {
        if let Some(net) = self.deny.iter().find(|n| n.contains(ip)) {
            return Some(format!("matches --deny {net}"));
        }
        if !self.allow.is_empty() && !self.allow.iter().any(|n| n.contains(ip)) {
            return Some("outside every --allow network".to_string());
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(allow: &[&str], deny: &[&str]) -> Limits {
        Limits {
            max_conns: 1,
            idle_timeout: None,
            allow: allow.iter().map(|s| s.parse().unwrap()).collect(),
            deny: deny.iter().map(|s| s.parse().unwrap()).collect(),
            max_owed: DEFAULT_MAX_OWED,
            threads: 1,
        }
    }

    #[test]
    fn deny_wins_over_allow_and_mapped_ipv4_matches() {
        let l = limits(&["127.0.0.0/8"], &["127.0.0.2"]);
        assert_eq!(l.refuses("127.0.0.1".parse().unwrap()), None);
        assert_eq!(l.refuses("::ffff:127.0.0.1".parse().unwrap()), None);
        assert!(
            l.refuses("127.0.0.2".parse().unwrap())
                .unwrap()
                .contains("--deny 127.0.0.2/32")
        );
        assert!(
            l.refuses("::1".parse().unwrap())
                .unwrap()
                .contains("--allow")
        );
        assert_eq!(limits(&[], &[]).refuses("::1".parse().unwrap()), None);
    }
}
