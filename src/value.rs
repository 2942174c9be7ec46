//! Values a user types that are not addresses: durations (`30s`, `500ms`, `1m30s`, or bare
//! seconds), parsed once at the edge so every deadline downstream is already in range.

use std::time::Duration;

/// Durations in humantime form: `30s`, `500ms`, `1m30s`; a bare number means seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let d = if let Ok(secs) = s.parse::<f64>() {
        if !(secs.is_finite() && secs >= 0.0) {
            return Err(format!(
                "'{s}' is not a duration (use e.g. 2s, 500ms, 1m30s)"
            ));
        }
        Duration::try_from_secs_f64(secs).map_err(|_| format!("'{s}' is too long a duration"))?
    } else {
        humantime::parse_duration(s)
            .map_err(|e| format!("'{s}' is not a duration ({e}; use e.g. 2s, 500ms, 1m30s)"))?
    };
    // Every duration becomes a deadline (now + d); one past the clock's range would panic
    // wherever it is added, so the edge refuses it once for all of them.
    if d > MAX_DURATION {
        return Err(format!("'{s}' is too long a duration (at most 100 years)"));
    }
    Ok(d)
}

/// The longest wait sockkit takes: far beyond any use, far within `Instant`'s range.
const MAX_DURATION: Duration = Duration::from_hours(876_000);

/// A connect timeout: a duration, but not zero, which would give up before trying.
pub fn parse_timeout(s: &str) -> Result<Duration, String> {
    match parse_duration(s)? {
        d if d.is_zero() => Err(format!(
            "a timeout of '{s}' gives up before the connection can start (use e.g. 2s)"
        )),
        d => Ok(d),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_humantime_and_bare_seconds() {
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("-1").is_err());
        assert!(
            parse_duration("soon")
                .unwrap_err()
                .contains("not a duration")
        );
    }
}
