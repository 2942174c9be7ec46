//! JSON text for scripts (`--json`): string literals escaped as RFC 8259 requires, and flat
//! objects built field by field. The objects' schemas are their writers' (scan.rs for `-z`,
//! relay/report.rs for a session's summary); this file only spells JSON.

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
