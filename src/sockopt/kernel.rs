//! What the kernel makes of a request: how it adjusts a value it accepts (Adjust's
//! predictions, which the round-trip tests check, and its explanations, which `--show-opts`
//! prints), why it refuses one (in words a learner can act on), and the sysctls behind both.
//! The `Adjust` type itself is a row field, in `types`; applying is `plan`'s.

use std::io;

use super::types::{Adjust, Row, Value};
use crate::narrate;

impl Adjust {
    /// What getsockopt should report right after `req` was set on a socket that is not
    /// connected (where `Negotiated` and `Transient` have not yet moved it).
    pub fn expected(self, req: &Value) -> Value {
        match (self, req) {
            (Adjust::Doubled(sysctl), Value::Bytes(n)) if cfg!(target_os = "linux") => {
                let max = read_sysctl(sysctl).unwrap_or(u64::MAX);
                Value::Bytes((*n).min(max) * 2)
            }
            (Adjust::EcnMasked, Value::Int(n)) if *n >= 0 => Value::Int(n & !3),
            (Adjust::Capped(sysctl), Value::Int(n)) => {
                let max =
                    read_sysctl(sysctl).map_or(i64::MAX, |m| i64::try_from(m).unwrap_or(i64::MAX));
                Value::Int((*n).min(max))
            }
            _ => req.clone(),
        }
    }

    /// Why `got` differs from `req`, in a few words for `--show-opts`.
    pub fn explain(self, req: &Value, got: &Value) -> String {
        match (self, req, got) {
            (Adjust::Doubled(_), Value::Bytes(r), Value::Bytes(g)) if *g == r * 2 => {
                "Linux doubles the request: half is for its bookkeeping".to_string()
            }
            (Adjust::Doubled(sysctl), Value::Bytes(r), Value::Bytes(g)) if g < r => {
                match read_sysctl(sysctl) {
                    Some(max) => format!(
                        "clamped to {sysctl} = {max} (doubled: {}); raise the sysctl",
                        max * 2
                    ),
                    None => format!("clamped to {sysctl} (doubled); raise the sysctl"),
                }
            }
            (Adjust::Doubled(_), Value::Bytes(r), Value::Bytes(g)) if *g > r * 2 => {
                "raised to the kernel's minimum buffer size".to_string()
            }
            (Adjust::Doubled(_), _, _) => {
                "the kernel adjusted it (doubling, clamping, minimum)".to_string()
            }
            (Adjust::EcnMasked, _, _) => {
                "on TCP the kernel keeps the two ECN bits for itself".to_string()
            }
            (Adjust::Capped(sysctl), _, _) => match read_sysctl(sysctl) {
                Some(max) => format!("capped by {sysctl} = {max}"),
                None => format!("capped by {sysctl}"),
            },
            (Adjust::Negotiated, _, _) => {
                "MSS is negotiated: the smaller side's, less TCP options (timestamps: 12)"
                    .to_string()
            }
            (Adjust::Transient, _, _) => {
                "transient: the kernel leaves and re-enters quick-ack mode by itself".to_string()
            }
            (Adjust::Exact, _, _) => "the kernel reports a different value".to_string(),
        }
    }
}

/// When another requested option changed this row's value (`requested` looks one up by name),
/// which one and how, for `--show-opts`: setting IP_TOS makes Linux derive SO_PRIORITY from
/// the TOS bits (rt_tos2priority), replacing a priority asked for before it.
pub(super) fn caused_by(row: &Row, requested: &dyn Fn(&str) -> Option<Value>) -> Option<String> {
    match row.name {
        "SO_PRIORITY" => {
            let tos = requested("IP_TOS")?;
            Some(format!(
                "set by IP_TOS={tos}, applied after it: Linux derives the priority from the \
                 TOS bits (rt_tos2priority)"
            ))
        }
        _ => None,
    }
}

/// Reads a numeric sysctl such as `net.core.rmem_max` from /proc/sys.
pub fn read_sysctl(name: &str) -> Option<u64> {
    read_sysctl_text(name)?.trim().parse().ok()
}

fn read_sysctl_text(name: &str) -> Option<String> {
    std::fs::read_to_string(format!("/proc/sys/{}", name.replace('.', "/"))).ok()
}

/// A few words for `--show-opts` on why a getsockopt failed.
pub(super) fn errno_note(e: &io::Error) -> &'static str {
    match e.raw_os_error() {
        Some(libc::ENOPROTOOPT) => "not supported here",
        Some(libc::ENOTCONN) => "only once connected",
        _ => "could not be read",
    }
}

/// Why the kernel refused `row=value`, worded for a learner: `setting SO_PRIORITY=7:
/// operation not permitted (EPERM): priorities above 6 need CAP_NET_ADMIN`.
pub fn refusal(row: &Row, value: &Value, e: &io::Error) -> String {
    let code = e.raw_os_error();
    let errno = match code {
        Some(c) => format!("{} ({})", crate::error::plain(e), narrate::errno_name(c)),
        None => crate::error::plain(e),
    };
    let hint = match (row.name, code) {
        ("SO_PRIORITY", Some(libc::EPERM)) => {
            "priorities above 6 need CAP_NET_ADMIN (run as root, or use 0-6)".to_string()
        }
        ("SO_BINDTODEVICE", Some(libc::EPERM)) => {
            "changing the interface binding needs CAP_NET_RAW".to_string()
        }
        ("SO_BINDTODEVICE", Some(libc::ENODEV)) => {
            format!("no network interface is named '{value}' ('ip link' lists them)")
        }
        ("TCP_CONGESTION", Some(libc::ENOENT)) => format!(
            "no congestion control algorithm named '{value}' is loaded; available: {} \
             (net.ipv4.tcp_available_congestion_control; 'modprobe tcp_{value}' may load it)",
            sysctl_list("net.ipv4.tcp_available_congestion_control")
        ),
        ("TCP_CONGESTION", Some(libc::EPERM)) => format!(
            "'{value}' is loaded, but without CAP_NET_ADMIN only these may be chosen: {} \
             (net.ipv4.tcp_allowed_congestion_control)",
            sysctl_list("net.ipv4.tcp_allowed_congestion_control")
        ),
        (_, Some(libc::EINVAL)) if !row.valid.is_empty() => {
            format!(
                "the kernel refuses this value; {} takes {}",
                row.name, row.valid
            )
        }
        (_, Some(libc::EINVAL)) => "the kernel refuses this value".to_string(),
        (_, Some(libc::ENOPROTOOPT)) => "this kernel does not support the option".to_string(),
        (_, Some(libc::EPERM | libc::EACCES)) => {
            "it needs a privilege this process lacks".to_string()
        }
        _ => String::new(),
    };
    let sep = if hint.is_empty() { "" } else { ": " };
    format!("setting {}={value}: {errno}{sep}{hint}", row.name)
}

/// A space-separated sysctl such as the available congestion controls, or a pointer to it.
fn sysctl_list(name: &str) -> String {
    match read_sysctl_text(name) {
        Some(text) if !text.trim().is_empty() => {
            text.split_whitespace().collect::<Vec<_>>().join(", ")
        }
        _ => format!("(could not read {name})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(name: &str) -> &'static Row {
        crate::sockopt::table::find(name).unwrap_or_else(|| panic!("{name} is not a row"))
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn kernel_refusals_are_explained() {
        let eperm = io::Error::from_raw_os_error(libc::EPERM);
        let text = refusal(row("SO_PRIORITY"), &Value::Int(7), &eperm);
        assert_eq!(
            text,
            "setting SO_PRIORITY=7: operation not permitted (EPERM): priorities above 6 need \
             CAP_NET_ADMIN (run as root, or use 0-6)"
        );
        let enoent = io::Error::from_raw_os_error(libc::ENOENT);
        let text = refusal(row("TCP_CONGESTION"), &Value::Name("vegas".into()), &enoent);
        assert!(
            text.starts_with("setting TCP_CONGESTION=vegas:")
                && text.contains("available:")
                && text.contains("modprobe tcp_vegas"),
            "{text}"
        );
        if let Some(avail) = read_sysctl_text("net.ipv4.tcp_available_congestion_control") {
            for name in avail.split_whitespace() {
                assert!(text.contains(name), "{text} lacks {name}");
            }
        }
        let einval = io::Error::from_raw_os_error(libc::EINVAL);
        let text = refusal(row("IP_TTL"), &Value::Int(300), &einval);
        assert_eq!(
            text,
            "setting IP_TTL=300: invalid argument (EINVAL): the kernel refuses this value; \
             IP_TTL takes 1-255, or -1 for net.ipv4.ip_default_ttl"
        );
        let text = refusal(row("SO_BINDTODEVICE"), &Value::Name("lo".into()), &eperm);
        assert!(
            text.contains("EPERM") && text.contains("CAP_NET_RAW"),
            "{text}"
        );
        let text = refusal(row("TCP_CONGESTION"), &Value::Name("cubic".into()), &eperm);
        assert!(
            text.contains("CAP_NET_ADMIN") && text.contains("tcp_allowed_congestion_control"),
            "{text}"
        );
        let enodev = io::Error::from_raw_os_error(libc::ENODEV);
        let text = refusal(row("SO_BINDTODEVICE"), &Value::Name("eth9".into()), &enodev);
        assert!(
            text.contains("'eth9'") && text.contains("ip link"),
            "{text}"
        );
    }

    #[test]
    fn adjustments_predict_and_explain() {
        let req = Value::Bytes(100_000);
        if cfg!(target_os = "linux")
            && read_sysctl("net.core.rmem_max").is_some_and(|m| m >= 100_000)
        {
            let exp = Adjust::Doubled("net.core.rmem_max").expected(&req);
            assert_eq!(exp, Value::Bytes(200_000));
            let why = Adjust::Doubled("net.core.rmem_max").explain(&req, &exp);
            assert!(why.contains("doubles"), "{why}");
        }
        let why = Adjust::Doubled("net.core.rmem_max").explain(&req, &Value::Bytes(50_000));
        assert!(why.contains("net.core.rmem_max"), "{why}");
        assert_eq!(
            Adjust::EcnMasked.expected(&Value::Int(0x13)),
            Value::Int(0x10)
        );
        assert_eq!(Adjust::Exact.expected(&Value::Int(5)), Value::Int(5));
    }
}
