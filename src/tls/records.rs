//! The TLS record layer, read off the bytes that pass between rustls and the socket, for the
//! `-vv` narration of a handshake: rustls has no message callback, so what a learner sees is
//! what is on the wire, each record's content type, version and length, and inside a
//! plaintext handshake record the handshake messages (ClientHello, ServerHello,
//! Certificate...). Encrypted records (TLS 1.3 after ServerHello, TLS 1.2 after
//! ChangeCipherSpec) are only named as such: their contents are rustls's alone. No I/O here:
//! bytes in (in whatever pieces the socket gave them), records out; the tap in stage.rs and
//! session.rs feeds it and narrates.

/// One record, complete (its last byte seen).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The content type byte (22 handshake, 23 application_data...).
    pub kind: u8,
    /// The record-layer version (TLS 1.3 still says 1.2 here, or 1.0 in a ClientHello).
    pub version: u16,
    /// The length of its body, the 5-byte header apart.
    pub len: usize,
    /// Handshake messages whose header is in this record: type and length.
    pub messages: Vec<(u8, usize)>,
    /// Its body is encrypted (its contents are not ours to read).
    pub encrypted: bool,
    /// A plaintext alert: level and description.
    pub alert: Option<(u8, u8)>,
}

/// One direction's records, fed in pieces.
#[derive(Debug, Default)]
pub struct Records {
    head: [u8; 5],
    head_have: usize,
    /// The record being read, and how many of its body bytes are still to come.
    current: Option<Record>,
    left: usize,
    /// A handshake message header split across reads or records, and bytes of a message
    /// still to skip (a message may span records).
    hs_head: [u8; 4],
    hs_have: usize,
    hs_left: usize,
    alert_body: Vec<u8>,
    /// This direction sent ChangeCipherSpec: what follows is encrypted (TLS 1.2).
    after_ccs: bool,
    /// The bytes are not TLS (the first byte of a header that is none): parsing stops.
    pub not_tls: Option<u8>,
}

impl Records {
    /// How many bytes end the header or record under way: a reader that takes no more than
    /// this sees one record at a time (None: no limit, the bytes are not TLS).
    pub fn want(&self) -> Option<usize> {
        if self.not_tls.is_some() {
            return None;
        }
        Some(match self.current {
            None => 5 - self.head_have,
            Some(_) => self.left,
        })
    }

    /// Takes the next bytes of this direction; returns the records they completed.
    pub fn feed(&mut self, mut data: &[u8]) -> Vec<Record> {
        let mut done = Vec::new();
        while !data.is_empty() && self.not_tls.is_none() {
            if self.current.is_none() {
                let take = (5 - self.head_have).min(data.len());
                self.head[self.head_have..self.head_have + take].copy_from_slice(&data[..take]);
                self.head_have += take;
                data = &data[take..];
                if self.head_have < 5 {
                    break;
                }
                self.head_have = 0;
                let kind = self.head[0];
                let version = u16::from_be_bytes([self.head[1], self.head[2]]);
                if !(20..=24).contains(&kind) || self.head[1] != 3 {
                    self.not_tls = Some(kind);
                    break;
                }
                let len = usize::from(u16::from_be_bytes([self.head[3], self.head[4]]));
                let encrypted = kind == 23 || (self.after_ccs && kind != 20);
                self.current = Some(Record {
                    kind,
                    version,
                    len,
                    messages: Vec::new(),
                    encrypted,
                    alert: None,
                });
                self.left = len;
                self.alert_body.clear();
            }
            let take = self.left.min(data.len());
            let (body, rest) = data.split_at(take);
            data = rest;
            self.left -= take;
            self.body(body);
            if self.left == 0
                && let Some(mut r) = self.current.take()
            {
                if r.kind == 20 {
                    self.after_ccs = true;
                }
                if r.kind == 21 && !r.encrypted && self.alert_body.len() >= 2 {
                    r.alert = Some((self.alert_body[0], self.alert_body[1]));
                }
                done.push(r);
            }
        }
        done
    }

    /// Body bytes of the current record: handshake headers counted, alerts kept.
    fn body(&mut self, mut body: &[u8]) {
        let Some(r) = self.current.as_mut() else {
            return;
        };
        if r.encrypted {
            return;
        }
        if r.kind == 21 {
            let room = 2usize.saturating_sub(self.alert_body.len()).min(body.len());
            self.alert_body.extend_from_slice(&body[..room]);
            return;
        }
        if r.kind != 22 {
            return;
        }
        while !body.is_empty() {
            if self.hs_left > 0 {
                let skip = self.hs_left.min(body.len());
                self.hs_left -= skip;
                body = &body[skip..];
                continue;
            }
            let take = (4 - self.hs_have).min(body.len());
            self.hs_head[self.hs_have..self.hs_have + take].copy_from_slice(&body[..take]);
            self.hs_have += take;
            body = &body[take..];
            if self.hs_have == 4 {
                self.hs_have = 0;
                let h = self.hs_head;
                let len = usize::from(h[1]) << 16 | usize::from(h[2]) << 8 | usize::from(h[3]);
                r.messages.push((h[0], len));
                self.hs_left = len;
            }
        }
    }
}

pub fn content_type(kind: u8) -> &'static str {
    match kind {
        20 => "change_cipher_spec",
        21 => "alert",
        22 => "handshake",
        23 => "application_data",
        24 => "heartbeat",
        _ => "unknown",
    }
}

pub fn handshake_type(t: u8) -> String {
    match t {
        0 => "HelloRequest",
        1 => "ClientHello",
        2 => "ServerHello",
        4 => "NewSessionTicket",
        5 => "EndOfEarlyData",
        8 => "EncryptedExtensions",
        11 => "Certificate",
        12 => "ServerKeyExchange",
        13 => "CertificateRequest",
        14 => "ServerHelloDone",
        15 => "CertificateVerify",
        16 => "ClientKeyExchange",
        20 => "Finished",
        24 => "KeyUpdate",
        other => return format!("handshake type {other}"),
    }
    .to_string()
}

fn version(v: u16) -> String {
    match v {
        0x0300 => "SSL 3.0".to_string(),
        0x0301 => "TLS 1.0".to_string(),
        0x0302 => "TLS 1.1".to_string(),
        0x0303 => "TLS 1.2".to_string(),
        0x0304 => "TLS 1.3".to_string(),
        other => format!("version 0x{other:04x}"),
    }
}

fn alert(level: u8, desc: u8) -> String {
    let level = match level {
        1 => "warning",
        2 => "fatal",
        _ => "level ?",
    };
    let what = match desc {
        0 => "close_notify",
        10 => "unexpected_message",
        20 => "bad_record_mac",
        22 => "record_overflow",
        40 => "handshake_failure",
        42 => "bad_certificate",
        43 => "unsupported_certificate",
        44 => "certificate_revoked",
        45 => "certificate_expired",
        46 => "certificate_unknown",
        47 => "illegal_parameter",
        48 => "unknown_ca",
        50 => "decode_error",
        51 => "decrypt_error",
        70 => "protocol_version",
        71 => "insufficient_security",
        80 => "internal_error",
        90 => "user_canceled",
        109 => "missing_extension",
        112 => "unrecognized_name",
        116 => "certificate_required",
        120 => "no_application_protocol",
        _ => return format!("{level} alert {desc}"),
    };
    format!("{level} {what}")
}

/// The narration line for one record: `out` is our side sending. `handshaking`: the
/// handshake was still going on, so an encrypted record is (most likely) a handshake message.
pub fn describe(out: bool, r: &Record, handshaking: bool) -> String {
    let arrow = if out { "->" } else { "<-" };
    let mut line = format!(
        "{arrow} TLS record {} ({}), {} byte{}",
        content_type(r.kind),
        version(r.version),
        r.len,
        if r.len == 1 { "" } else { "s" }
    );
    if r.encrypted {
        line.push_str(if handshaking {
            " (encrypted handshake)"
        } else {
            " (encrypted)"
        });
    } else if !r.messages.is_empty() {
        let names: Vec<String> = r
            .messages
            .iter()
            .map(|&(t, len)| format!("{} ({len} bytes)", handshake_type(t)))
            .collect();
        line.push_str(": ");
        line.push_str(&names.join(", "));
    } else if let Some((level, desc)) = r.alert {
        line.push_str(": ");
        line.push_str(&alert(level, desc));
    }
    line
}

/// The line for bytes that are not TLS at all, once.
pub fn not_tls(out: bool, first: u8) -> String {
    let arrow = if out { "->" } else { "<-" };
    let shown = if first.is_ascii_graphic() {
        format!("'{}'", first as char)
    } else {
        format!("0x{first:02x}")
    };
    format!("{arrow} not a TLS record (first byte {shown}): the peer is not speaking TLS")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Captured from `openssl s_client -connect` (OpenSSL 3, TLS 1.3) talking to
    /// `openssl s_server`, through a relay that saved each direction (see testdata/README).
    const CLIENT: &[u8] = include_bytes!("testdata/client-tls13.bin");
    const SERVER: &[u8] = include_bytes!("testdata/server-tls13.bin");
    /// The same pair forced to TLS 1.2 (`-tls1_2`): plaintext Certificate, CCS, then
    /// encrypted Finished.
    const CLIENT12: &[u8] = include_bytes!("testdata/client-tls12.bin");
    const SERVER12: &[u8] = include_bytes!("testdata/server-tls12.bin");

    fn all(data: &[u8], piece: usize) -> Vec<Record> {
        let mut r = Records::default();
        let mut out = Vec::new();
        for chunk in data.chunks(piece) {
            out.extend(r.feed(chunk));
        }
        assert!(r.not_tls.is_none());
        out
    }

    #[test]
    fn a_tls13_client_hello_then_the_servers_flight_encrypted_after_server_hello() {
        let c = all(CLIENT, 1 << 20);
        assert_eq!(c[0].kind, 22);
        assert_eq!(c[0].messages[0].0, 1, "ClientHello first");
        assert_eq!(c[0].len + 5, 5 + c[0].messages[0].1 + 4);
        let s = all(SERVER, 1 << 20);
        assert_eq!(s[0].messages[0].0, 2, "ServerHello");
        assert!(!s[0].encrypted);
        // Everything after ServerHello but the compatibility CCS is encrypted.
        assert!(s[1..].iter().all(|r| r.kind == 20 || r.encrypted));
        assert!(s[1..].iter().any(|r| r.kind == 23));
        // Every byte is accounted for by whole records.
        let total: usize = s.iter().map(|r| r.len + 5).sum();
        assert_eq!(total, SERVER.len());
        let line = describe(false, &s[0], true);
        assert!(
            line.starts_with("<- TLS record handshake (TLS 1.2), "),
            "{line}"
        );
        assert!(line.contains(": ServerHello ("), "{line}");
    }

    #[test]
    fn records_split_anywhere_parse_the_same() {
        let whole = all(SERVER12, 1 << 20);
        for piece in [1, 2, 3, 5, 7, 100] {
            assert_eq!(all(SERVER12, piece), whole, "in pieces of {piece}");
        }
        assert_eq!(all(CLIENT12, 1), all(CLIENT12, 1 << 20));
        assert_eq!(all(CLIENT, 3), all(CLIENT, 1 << 20));
    }

    #[test]
    fn tls12_shows_certificate_in_the_clear_and_finished_encrypted_after_ccs() {
        let s = all(SERVER12, 1 << 20);
        let names: Vec<u8> = s
            .iter()
            .flat_map(|r| r.messages.iter().map(|m| m.0))
            .collect();
        // ServerHello, Certificate, ServerKeyExchange, ServerHelloDone, then after the
        // client's Finished (maybe a NewSessionTicket), CCS and the encrypted Finished.
        assert_eq!(&names[..4], &[2, 11, 12, 14], "{names:?}");
        let ccs = s.iter().position(|r| r.kind == 20).expect("a CCS");
        assert!(s[ccs + 1].encrypted && s[ccs + 1].kind == 22);
        let c = all(CLIENT12, 1 << 20);
        let kinds: Vec<u8> = c.iter().map(|r| r.kind).collect();
        assert_eq!(&kinds[..4], &[22, 22, 20, 22], "{kinds:?}");
        assert_eq!(c[1].messages[0].0, 16, "ClientKeyExchange");
        assert!(c[3].encrypted, "the client's Finished is encrypted");
        assert!(describe(true, &c[3], true).ends_with("(encrypted handshake)"));
    }

    #[test]
    fn reading_what_want_says_completes_one_record_at_a_time() {
        let mut r = Records::default();
        let mut at = 0;
        let mut seen = Vec::new();
        while at < SERVER.len() {
            let n = r.want().unwrap().min(SERVER.len() - at);
            let done = r.feed(&SERVER[at..at + n]);
            assert!(done.len() <= 1);
            seen.extend(done);
            at += n;
        }
        assert_eq!(seen, all(SERVER, 1 << 20));
    }

    #[test]
    fn plain_text_is_named_once_and_parsing_stops() {
        let mut r = Records::default();
        assert!(r.feed(b"GET / HTTP/1.1\r\n").is_empty());
        assert_eq!(r.not_tls, Some(b'G'));
        assert!(r.feed(CLIENT).is_empty());
        assert!(not_tls(false, b'G').contains("'G'"));
    }

    #[test]
    fn an_alert_in_the_clear_is_read() {
        let mut r = Records::default();
        let got = r.feed(&[21, 3, 3, 0, 2, 2, 40]);
        assert_eq!(got[0].alert, Some((2, 40)));
        assert!(describe(true, &got[0], true).ends_with(": fatal handshake_failure"));
    }
}
