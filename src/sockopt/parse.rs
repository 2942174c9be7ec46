//! Reading `-o NAME[=VALUE]`: the option by any of its spellings (with suggestions for a
//! mistyped one), and its value by the row's kind: booleans, byte sizes with units, durations
//! (through `crate::value`), integers, names. What the values mean is `types`'; what is done
//! with them is `plan`'s.

use std::str::FromStr;
use std::time::Duration;

use super::table::{TABLE, find, names_of, spelling};
use super::types::{Kind, Level, SockOptRequest, Value};

/// `-o NAME[=VALUE]` against the table: the row by any spelling (or "did you mean"), then the
/// value by the row's kind. The error is clap's message, so it names the option and its syntax.
impl FromStr for SockOptRequest {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (name, value) = match s.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (s, None),
        };
        if is_help_word(name) {
            return Ok(SockOptRequest::Help);
        }
        let Some(row) = find(name) else {
            let near = suggest(name);
            return Err(if near.is_empty() {
                format!("unknown socket option '{name}' (-o help lists them)")
            } else {
                format!(
                    "unknown socket option '{name}'; did you mean {}? (-o help lists them)",
                    near.join(", ")
                )
            });
        };
        if row.set.is_none() && !matches!(row.level, Level::Call(_)) {
            return Err(format!(
                "{} is read-only: it cannot be set, only read (--show-opts shows it)",
                row.name
            ));
        }
        let value = parse_value(row.kind, value).map_err(|why| {
            let valid = if row.valid.is_empty() {
                String::new()
            } else {
                format!("; {}", row.valid)
            };
            format!(
                "{}: {why} ({} takes {}{valid})",
                row.name,
                row.name,
                row.kind.describe()
            )
        })?;
        Ok(SockOptRequest::Set { row, value })
    }
}

/// `-o help` and `-o list` ask for the listing instead of naming an option.
pub(super) fn is_help_word(name: &str) -> bool {
    name.eq_ignore_ascii_case("help") || name.eq_ignore_ascii_case("list")
}

/// Parses a value for a row of the given kind. `None` is a bare `-o NAME`.
pub fn parse_value(kind: Kind, text: Option<&str>) -> Result<Value, String> {
    let Some(text) = text.map(str::trim) else {
        return match kind {
            Kind::Bool | Kind::Keepalive => Ok(Value::Bool(true)),
            _ => Err(format!("needs a value: {}", kind.describe())),
        };
    };
    match kind {
        Kind::Bool => parse_bool(text)
            .map(Value::Bool)
            .ok_or_else(|| format!("'{text}' is not on or off")),
        Kind::Keepalive => match parse_bool(text) {
            Some(b) => Ok(Value::Bool(b)),
            None if find("TCP_KEEPIDLE").is_none() => Err(format!(
                "'{text}' is not on or off (an idle time needs TCP_KEEPIDLE, which this \
                 system lacks)"
            )),
            None => parse_seconds(text)
                .map_err(|_| format!("'{text}' is neither on/off nor an idle time"))
                .map(Value::Duration),
        },
        Kind::Bytes => parse_bytes(text).map(Value::Bytes),
        Kind::Seconds => parse_seconds(text).map(Value::Duration),
        Kind::Linger if is_off(text) => Ok(Value::Toggle(None)),
        Kind::Linger => parse_seconds(text).map(|d| Value::Toggle(Some(d))),
        Kind::Millis if is_off(text) => Ok(Value::Toggle(None)),
        Kind::Millis => {
            let d = crate::value::parse_duration(text)?;
            if d.subsec_nanos() % 1_000_000 != 0 {
                return Err(format!(
                    "'{text}' is finer than a millisecond (the kernel keeps milliseconds)"
                ));
            }
            Ok(Value::Toggle((!d.is_zero()).then_some(d)))
        }
        Kind::Int(lo, hi) => match parse_int(text)? {
            n if n < lo || n > hi => Err(format!(
                "{n} is outside {lo}-{hi}, the values the kernel keeps for it"
            )),
            n => Ok(Value::Int(n)),
        },
        Kind::Name if text.is_empty() => Err("needs a name".to_string()),
        Kind::Name => Ok(Value::Name(text.to_string())),
    }
}

/// The spellings of on and off a learner might type.
fn parse_bool(text: &str) -> Option<bool> {
    match text.to_ascii_lowercase().as_str() {
        "1" | "on" | "true" | "yes" => Some(true),
        "0" | "off" | "false" | "no" => Some(false),
        _ => None,
    }
}

/// Off for the kinds whose on takes a value (SO_LINGER, TCP_USER_TIMEOUT).
fn is_off(text: &str) -> bool {
    matches!(
        text.to_ascii_lowercase().as_str(),
        "off" | "false" | "no" | "none"
    )
}

/// A duration the kernel keeps in whole seconds (it takes a C int of seconds).
fn parse_seconds(text: &str) -> Result<Duration, String> {
    let d = crate::value::parse_duration(text)?;
    if d.subsec_nanos() != 0 {
        return Err(format!(
            "'{text}' is not a whole number of seconds (the kernel keeps seconds)"
        ));
    }
    if d.as_secs() > i32::MAX as u64 {
        return Err(format!("'{text}' is too long"));
    }
    Ok(d)
}

/// Whole numbers as C's `int`: decimal, negative, or hex with 0x (TOS bytes are written so).
fn parse_int(text: &str) -> Result<i64, String> {
    let (neg, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let parsed = match digits
        .strip_prefix("0x")
        .or_else(|| digits.strip_prefix("0X"))
    {
        Some(hex) => i64::from_str_radix(hex, 16),
        None => digits.parse::<i64>(),
    };
    let n = parsed.map_err(|_| format!("'{text}' is not a whole number"))?;
    let n = if neg { -n } else { n };
    if i32::try_from(n).is_err() {
        return Err(format!("'{text}' does not fit in a C int"));
    }
    Ok(n)
}

/// Byte sizes: `65536`, `256K`, `256KiB`, `4M`, `4MiB`, `1G` (binary units, as buffers are).
pub fn parse_bytes(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("'{text}' is not a size (use e.g. 65536, 256K, 4MiB)"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => return Err(format!("'{text}': unknown size unit (use K, M or G)")),
    };
    n.checked_mul(mult)
        .filter(|v| i32::try_from(*v).is_ok())
        .ok_or_else(|| format!("'{text}' is too large (at most 2GiB)"))
}

/// The names closest to a mistyped one, for "did you mean".
fn suggest(name: &str) -> Vec<&'static str> {
    let want = spelling(name);
    let mut scored: Vec<(usize, &'static str)> = TABLE
        .iter()
        .map(|row| {
            let best = names_of(row)
                .map(|n| edit_distance(&want, &n))
                .min()
                .unwrap_or(usize::MAX);
            (best, row.name)
        })
        .filter(|(d, _)| *d <= 3.max(want.len() / 3))
        .collect();
    scored.sort_unstable();
    scored.into_iter().take(3).map(|(_, n)| n).collect()
}

/// Levenshtein distance, for ranking the suggestions.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur.push((prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_parse_by_kind() {
        assert_eq!(parse_value(Kind::Bool, None), Ok(Value::Bool(true)));
        assert_eq!(parse_value(Kind::Bool, Some("0")), Ok(Value::Bool(false)));
        assert_eq!(
            parse_value(Kind::Bytes, Some("256K")),
            Ok(Value::Bytes(262_144))
        );
        assert_eq!(
            parse_value(Kind::Bytes, Some("4MiB")),
            Ok(Value::Bytes(4 << 20))
        );
        assert!(parse_value(Kind::Bool, Some("maybe")).is_err());
        assert!(parse_value(Kind::Bytes, Some("12Q")).is_err());
        assert!(parse_value(Kind::Bytes, Some("8G")).is_err());
        let int = Kind::Int(-1, 2_147_483_647);
        assert!(parse_value(int, None).is_err());
        assert_eq!(parse_value(int, Some("0x10")), Ok(Value::Int(16)));
        assert_eq!(parse_value(int, Some("-1")), Ok(Value::Int(-1)));
        assert!(parse_value(int, Some("3000000000")).is_err());
        // A byte-sized option: 256 would be stored as 0, so it is refused with the range.
        let tos = Kind::Int(0, 255);
        assert_eq!(parse_value(tos, Some("0xff")), Ok(Value::Int(255)));
        let e = parse_value(tos, Some("256")).unwrap_err();
        assert!(e.contains("256 is outside 0-255"), "{e}");
        assert!(parse_value(tos, Some("-1")).is_err());
        assert_eq!(
            parse_value(Kind::Seconds, Some("2m")),
            Ok(Value::Duration(Duration::from_mins(2)))
        );
        assert!(parse_value(Kind::Seconds, Some("1.5s")).is_err());
    }

    #[test]
    fn linger_zero_is_not_off() {
        assert_eq!(
            parse_value(Kind::Linger, Some("0")),
            Ok(Value::Toggle(Some(Duration::ZERO)))
        );
        assert_eq!(
            parse_value(Kind::Linger, Some("off")),
            Ok(Value::Toggle(None))
        );
        assert!(parse_value(Kind::Linger, None).is_err());
        let rst = Value::Toggle(Some(Duration::ZERO));
        assert_eq!(rst.c_arg(Kind::Linger), "{l_onoff=1, l_linger=0}");
        assert_eq!(
            Value::Toggle(None).c_arg(Kind::Linger),
            "{l_onoff=0, l_linger=0}"
        );
    }

    #[test]
    fn millisecond_timeouts_treat_zero_as_off() {
        assert_eq!(
            parse_value(Kind::Millis, Some("0")),
            Ok(Value::Toggle(None))
        );
        let v = parse_value(Kind::Millis, Some("1500ms")).unwrap();
        assert_eq!(v, Value::Toggle(Some(Duration::from_millis(1500))));
        assert_eq!(v.c_arg(Kind::Millis), "1500");
    }

    #[test]
    fn unknown_names_get_suggestions_and_bad_values_name_the_option() {
        let err = "rcvbfu=1".parse::<SockOptRequest>().unwrap_err();
        assert!(err.contains("did you mean SO_RCVBUF"), "{err}");
        let err = "nodelay=maybe".parse::<SockOptRequest>().unwrap_err();
        assert!(
            err.contains("TCP_NODELAY") && err.contains("'maybe'") && err.contains("on|off"),
            "{err}"
        );
        let err = "ttl=far".parse::<SockOptRequest>().unwrap_err();
        assert!(err.contains("IP_TTL") && err.contains("1-255"), "{err}");
    }
}
