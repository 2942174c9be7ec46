//! Checking the server's certificate, and saying why one is refused. The check is rustls's
//! own (webpki against the roots config.rs chose); this wrapper keeps what it saw (the chain,
//! the verdict) for the `-v` report, skips the check for `--insecure`, and turns a refusal
//! into one sentence that names the problem (expired, self-signed, wrong name, untrusted
//! issuer) and the way out (`--ca`, `--insecure`).

use std::sync::{Arc, Mutex};

use anyhow::Result;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, Error, RootCertStore, SignatureScheme};

use super::report;

/// What the verifier saw, shared with the session that reports it.
#[derive(Debug, Default)]
pub struct Checked {
    inner: Mutex<Seen>,
}

#[derive(Debug, Default, Clone)]
pub struct Seen {
    /// The chain the server presented, leaf first.
    pub chain: Vec<CertificateDer<'static>>,
    /// `verified`, `NOT verified (--insecure)` or why it failed.
    pub verdict: String,
}

impl Checked {
    pub fn seen(&self) -> Seen {
        self.inner.lock().map(|s| s.clone()).unwrap_or_default()
    }

    fn record(&self, chain: Vec<CertificateDer<'static>>, verdict: String) {
        if let Ok(mut s) = self.inner.lock() {
            *s = Seen { chain, verdict };
        }
    }
}

/// rustls's webpki verifier, or none with `--insecure`, recording what it saw.
#[derive(Debug)]
pub struct ServerCheck {
    webpki: Option<Arc<WebPkiServerVerifier>>,
    /// Signatures on the handshake are still checked with --insecure: the schemes' code.
    algorithms: rustls::crypto::WebPkiSupportedAlgorithms,
    checked: Arc<Checked>,
}

impl ServerCheck {
    pub fn new(roots: RootCertStore, insecure: bool, checked: Arc<Checked>) -> Result<Self> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let algorithms = provider.signature_verification_algorithms;
        let webpki = if insecure {
            None
        } else {
            Some(WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider).build()?)
        };
        Ok(ServerCheck {
            webpki,
            algorithms,
            checked,
        })
    }
}

impl ServerCertVerifier for ServerCheck {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        let mut chain = vec![end_entity.clone().into_owned()];
        chain.extend(intermediates.iter().map(|c| c.clone().into_owned()));
        let Some(webpki) = &self.webpki else {
            self.checked
                .record(chain, "NOT verified (--insecure)".to_string());
            return Ok(ServerCertVerified::assertion());
        };
        let result = webpki.verify_server_cert(end_entity, intermediates, server_name, ocsp, now);
        let verdict = match &result {
            Ok(_) => "verified against the trusted roots".to_string(),
            Err(e) => format!("refused: {}", problem(e, &chain)),
        };
        self.checked.record(chain, verdict);
        result
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// What is wrong with a certificate, in words: the part of the sentence after `the server's
/// certificate`.
pub fn problem(e: &Error, chain: &[CertificateDer<'static>]) -> String {
    let leaf = chain.first().and_then(|c| report::Cert::parse(c));
    let Error::InvalidCertificate(cert) = e else {
        return e.to_string();
    };
    match cert {
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => match &leaf {
            Some(l) => format!("has expired (valid until {})", l.not_after),
            None => "has expired".to_string(),
        },
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
            match &leaf {
                Some(l) => format!("is not valid yet (valid from {})", l.not_before),
                None => "is not valid yet".to_string(),
            }
        }
        CertificateError::NotValidForNameContext {
            expected,
            presented,
        } => {
            let names = if presented.is_empty() {
                "no names".to_string()
            } else {
                presented
                    .iter()
                    .map(|p| unquoted(p))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            format!(
                "is for {names}, not {} (wrong name; --sni NAME checks another)",
                expected.to_str()
            )
        }
        CertificateError::NotValidForName => "is not valid for this name (wrong name)".into(),
        CertificateError::UnknownIssuer => match &leaf {
            Some(l) if l.subject == l.issuer && chain.len() == 1 => {
                format!("is self-signed ({}) and not trusted", l.subject)
            }
            Some(l) => format!(
                "was issued by {}, which is not trusted (untrusted issuer)",
                l.issuer
            ),
            None => "was issued by an untrusted issuer".to_string(),
        },
        CertificateError::BadSignature => "has a bad signature".to_string(),
        CertificateError::Revoked => "has been revoked".to_string(),
        CertificateError::Other(o) if format!("{o:?}").contains("CaUsedAsEndEntity") => {
            "is a CA certificate, which webpki does not accept as a server's own (CA:TRUE \
             in its basicConstraints)"
                .to_string()
        }
        other => format!("was refused: {other}"),
    }
}

/// `DnsName("a.example")` (how rustls lists a presented name) -> `a.example`.
fn unquoted(name: &str) -> String {
    match (name.find('"'), name.rfind('"')) {
        (Some(a), Some(b)) if b > a => name[a + 1..b].to_string(),
        _ => name.to_string(),
    }
}

/// The one line for a handshake that failed on the certificate, with the way out.
pub fn refusal(e: &Error, checked: &Checked) -> Option<String> {
    if !matches!(e, Error::InvalidCertificate(_)) {
        return None;
    }
    let seen = checked.seen();
    Some(format!(
        "TLS: the server's certificate {}: pass --ca FILE to trust its issuer, or --insecure to skip verification",
        problem(e, &seen.chain)
    ))
}
