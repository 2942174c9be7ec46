//! JSON text for scripts (`--json`): string literals escaped as RFC 8259 requires, and flat
//! objects built field by field, and the values more than one object holds (an address, a
//! rate). The objects' schemas are their writers' (scan.rs for `-z`, relay/summary.rs for a
//! session, server/summary.rs for a server's clients and totals); this file only spells JSON.

use socket2::SockAddr;

/// `s` as a JSON string literal (quote, backslash and control characters escaped).
pub fn string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// An address as a JSON value: `"127.0.0.1:4444"`, `"[::1]:80"` (IPv4 on a dual-stack
/// socket unmapped), a Unix path, `"@name"` (abstract), or null (an unnamed Unix socket).
pub fn address(a: Option<&SockAddr>) -> String {
    let Some(a) = a else {
        return "null".to_string();
    };
    if let Some(ip) = a.as_socket() {
        // Unmapped as addr::plain does (spelled here: addr is above this file).
        let ip = std::net::SocketAddr::new(ip.ip().to_canonical(), ip.port());
        return string(&ip.to_string());
    }
    if let Some(path) = a.as_pathname() {
        return string(&path.to_string_lossy());
    }
    match a.as_abstract_namespace() {
        Some(name) => string(&format!("@{}", String::from_utf8_lossy(name))),
        None => "null".to_string(),
    }
}

/// `n` bytes over `secs` seconds, in bytes per second (0 for no time at all).
pub fn rate(n: u64, secs: f64) -> f64 {
    if secs > 0.0 { n as f64 / secs } else { 0.0 }
}

/// A JSON object written in field order: `{"a":1,"b":"x"}`.
#[derive(Debug, Default)]
pub struct Object(Vec<String>);

impl Object {
    /// A field whose value is already JSON text (a number, `null`, a nested object).
    pub fn raw(mut self, key: &str, json: impl Into<String>) -> Self {
        self.0.push(format!("{}:{}", string(key), json.into()));
        self
    }

    pub fn str(self, key: &str, value: &str) -> Self {
        self.raw(key, string(value))
    }

    pub fn num(self, key: &str, value: u64) -> Self {
        self.raw(key, value.to_string())
    }

    /// A string, or null for none.
    pub fn opt_str(self, key: &str, value: Option<&str>) -> Self {
        match value {
            Some(v) => self.str(key, v),
            None => self.raw(key, "null"),
        }
    }

    /// Seconds (or any real quantity), to the microsecond.
    pub fn real(self, key: &str, value: f64) -> Self {
        self.raw(key, format!("{value:.6}"))
    }

    pub fn text(&self) -> String {
        format!("{{{}}}", self.0.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_escape_what_json_requires() {
        assert_eq!(string("a\"b\\c\n\u{1}"), "\"a\\\"b\\\\c\\n\\u0001\"");
        let o = Object::default()
            .str("k", "v\"")
            .num("n", 3)
            .raw("z", "null");
        assert_eq!(o.text(), "{\"k\":\"v\\\"\",\"n\":3,\"z\":null}");
    }
}
