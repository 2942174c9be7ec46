//! The `-v` account of TLS: what a handshake settled (version, cipher suite, key exchange
//! group, ALPN, whether the session was resumed) and the peer's certificate chain, one
//! certificate at a time (subject, issuer, validity, SANs, SHA-256 fingerprint), with the
//! verification result. The fields come from x509-parser; the lines go through narrate.

use rustls::pki_types::CertificateDer;
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

use crate::json::{self, Object};
use crate::narrate;

/// The fields of a certificate a person checks.
pub struct Cert {
    pub subject: String,
    pub issuer: String,
    pub not_before: String,
    pub not_after: String,
    pub sans: Vec<String>,
}

impl Cert {
    /// None for bytes that are not a certificate.
    pub fn parse(der: &CertificateDer<'_>) -> Option<Cert> {
        let (_, x) = X509Certificate::from_der(der.as_ref()).ok()?;
        let sans = x
            .subject_alternative_name()
            .ok()
            .flatten()
            .map(|ext| {
                ext.value
                    .general_names
                    .iter()
                    .map(|n| match n {
                        GeneralName::DNSName(d) => format!("DNS:{d}"),
                        GeneralName::IPAddress(ip) => match ip.len() {
                            4 => format!(
                                "IP:{}",
                                std::net::Ipv4Addr::from(
                                    <[u8; 4]>::try_from(*ip).unwrap_or_default()
                                )
                            ),
                            16 => format!(
                                "IP:{}",
                                std::net::Ipv6Addr::from(
                                    <[u8; 16]>::try_from(*ip).unwrap_or_default()
                                )
                            ),
                            _ => "IP:?".to_string(),
                        },
                        other => other.to_string(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        Some(Cert {
            subject: name_or_empty(&x.subject().to_string()),
            issuer: name_or_empty(&x.issuer().to_string()),
            not_before: x.validity().not_before.to_string(),
            not_after: x.validity().not_after.to_string(),
            sans,
        })
    }
}

fn name_or_empty(s: &str) -> String {
    if s.is_empty() {
        "(empty name)".to_string()
    } else {
        s.to_string()
    }
}

/// SHA-256 of a certificate's DER, as `openssl x509 -fingerprint -sha256` prints it.
pub fn fingerprint(der: &CertificateDer<'_>) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, der.as_ref());
    digest
        .as_ref()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The `-v` line for what the handshake settled.
pub fn handshake(conn: &rustls::Connection, took: std::time::Duration) {
    if narrate::verbose() {
        narrate::emit(format_args!("{}", summary(conn, took)));
    }
}

/// What a handshake settled, in one line: version, suite, group, ALPN, resumption.
pub fn summary(conn: &rustls::Connection, took: std::time::Duration) -> String {
    let version = conn
        .protocol_version()
        .map_or_else(|| "?".to_string(), |v| format!("{v:?}").replace('_', "."));
    let suite = conn
        .negotiated_cipher_suite()
        .map_or_else(|| "?".to_string(), |s| format!("{:?}", s.suite()));
    let group = conn
        .negotiated_key_exchange_group()
        .map_or_else(|| "none".to_string(), |g| format!("{:?}", g.name()));
    let alpn = conn.alpn_protocol().map_or_else(
        || "none".to_string(),
        |p| String::from_utf8_lossy(p).into_owned(),
    );
    let resumed = match conn.handshake_kind() {
        Some(rustls::HandshakeKind::Resumed) => "yes",
        _ => "no",
    };
    format!(
        "TLS handshake done in {}: {version}, {suite}, key exchange {group}, ALPN {alpn}, resumed {resumed}",
        narrate::short(took)
    )
}

/// `--json`'s `tls` object: what the handshake settled and the peer's chain, the fields of
/// `-v`'s lines; the caller adds how the TLS session ended.
pub fn json(conn: &rustls::Connection) -> Object {
    let version = conn
        .protocol_version()
        .map(|v| format!("{v:?}").replace('_', "."));
    let suite = conn
        .negotiated_cipher_suite()
        .map(|s| format!("{:?}", s.suite()));
    let group = conn
        .negotiated_key_exchange_group()
        .map(|g| format!("{:?}", g.name()));
    let alpn = conn
        .alpn_protocol()
        .map(|p| String::from_utf8_lossy(p).into_owned());
    let resumed = matches!(conn.handshake_kind(), Some(rustls::HandshakeKind::Resumed));
    let chain: Vec<String> = conn
        .peer_certificates()
        .unwrap_or_default()
        .iter()
        .map(|der| {
            let o = match Cert::parse(der) {
                Some(c) => {
                    let sans: Vec<String> = c.sans.iter().map(|n| json::string(n)).collect();
                    Object::default()
                        .str("subject", &c.subject)
                        .str("issuer", &c.issuer)
                        .str("not_before", &c.not_before)
                        .str("not_after", &c.not_after)
                        .raw("names", format!("[{}]", sans.join(",")))
                }
                None => Object::default().raw("subject", "null"),
            };
            o.str("sha256", &fingerprint(der)).text()
        })
        .collect();
    Object::default()
        .opt_str("version", version.as_deref())
        .opt_str("suite", suite.as_deref())
        .opt_str("group", group.as_deref())
        .opt_str("alpn", alpn.as_deref())
        .raw("resumed", resumed.to_string())
        .raw("peer_certificates", format!("[{}]", chain.join(",")))
}

/// The `-v` lines for a peer's chain, leaf first, and the verdict on it.
pub fn chain(whose: &str, certs: &[CertificateDer<'_>], verdict: &str) {
    if !narrate::verbose() {
        return;
    }
    if certs.is_empty() {
        narrate::info(format_args!("{whose} sent no certificate"));
    }
    for (i, der) in certs.iter().enumerate() {
        let Some(c) = Cert::parse(der) else {
            narrate::info(format_args!("{whose} certificate {i}: does not parse"));
            continue;
        };
        let sans = if c.sans.is_empty() {
            "none".to_string()
        } else {
            c.sans.join(", ")
        };
        narrate::info(format_args!(
            "{whose} certificate {i}: subject {}",
            c.subject
        ));
        narrate::info(format_args!("  issuer {}", c.issuer));
        narrate::info(format_args!("  valid {} to {}", c.not_before, c.not_after));
        narrate::info(format_args!("  names {sans}"));
        narrate::info(format_args!("  SHA-256 {}", fingerprint(der)));
    }
    narrate::info(format_args!("{whose} certificate: {verdict}"));
}
