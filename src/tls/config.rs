//! TLS options and the rustls configurations made from them, before any socket exists: a bad
//! certificate, key or CA file is a usage error (exit 2) found here, not after a bind. The
//! client trusts the system's roots (rustls-native-certs reads /etc/ssl/certs, the roots the
//! administrator manages) unless `--ca FILE` names the one to trust; a server with no
//! `--cert/--key` makes a self-signed certificate for the names it listens on (rcgen).
//! `SSLKEYLOGFILE` is honoured on both sides. Verification itself is verify.rs's.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Result;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore, ServerConfig};

use super::report;
use super::verify::{self, Checked};
use crate::error::UsageError;

/// What `connect --tls` was asked for.
#[derive(Debug, Clone, Default)]
pub struct ClientOptions {
    /// Trust this PEM file's certificates instead of the system's roots.
    pub ca: Option<PathBuf>,
    /// The name sent in SNI and checked against the certificate (default: HOST).
    pub sni: Option<String>,
    /// ALPN protocols to offer, in order of preference.
    pub alpn: Vec<String>,
    /// A client certificate chain and its key (PEM).
    pub cert: Option<(PathBuf, PathBuf)>,
    /// Accept any certificate (said once on stderr).
    pub insecure: bool,
}

/// What `listen --tls` was asked for.
#[derive(Debug, Clone, Default)]
pub struct ServerOptions {
    /// The certificate chain and key to serve (PEM); none: a self-signed one made at start.
    pub cert: Option<(PathBuf, PathBuf)>,
    /// Ask every client for a certificate and verify it against this PEM file.
    pub client_ca: Option<PathBuf>,
    /// ALPN protocols to accept, in order of preference.
    pub alpn: Vec<String>,
}

/// A client configuration and the name it connects to.
pub struct Client {
    pub config: Arc<ClientConfig>,
    pub name: ServerName<'static>,
    /// What the verifier saw, for `-v` and for the error sentence.
    pub checked: Arc<Checked>,
}

/// A server configuration and what a client can pin.
pub struct Server {
    pub config: Arc<ServerConfig>,
    /// `self-signed for localhost, 127.0.0.1` or the file the certificate came from.
    pub origin: String,
    /// SHA-256 of the leaf certificate, `AB:CD:...`.
    pub fingerprint: String,
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The certificates of a PEM file; none, or a file that does not parse, is a usage error.
pub fn load_certs(path: &Path, what: &str) -> Result<Vec<CertificateDer<'static>>> {
    let text = std::fs::read(path).map_err(|e| {
        UsageError::new(format!(
            "{what} {}: {}",
            path.display(),
            crate::error::plain(&e)
        ))
    })?;
    let certs: Vec<_> = CertificateDer::pem_slice_iter(&text)
        .collect::<Result<_, _>>()
        .map_err(|e| UsageError::new(format!("{what} {}: not PEM: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(UsageError::new(format!(
            "{what} {}: no CERTIFICATE block in it",
            path.display()
        ))
        .into());
    }
    Ok(certs)
}

/// The private key of a PEM file (PKCS#8, PKCS#1 or SEC1).
fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>> {
    let text = std::fs::read(path).map_err(|e| {
        UsageError::new(format!(
            "key file {}: {}",
            path.display(),
            crate::error::plain(&e)
        ))
    })?;
    PrivateKeyDer::from_pem_slice(&text).map_err(|e| {
        UsageError::new(format!(
            "key file {}: no private key in it ({e})",
            path.display()
        ))
        .into()
    })
}

/// A root store from a PEM file of CA certificates.
fn roots_from(path: &Path, what: &str) -> Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    for cert in load_certs(path, what)? {
        roots.add(cert).map_err(|e| {
            UsageError::new(format!(
                "{what} {}: not a usable CA certificate: {e}",
                path.display()
            ))
        })?;
    }
    Ok(roots)
}

/// The system's roots. Read rather than bundled so the machine's own trust decisions (an
/// added company CA, a removed root) apply to sockkit as to curl.
fn system_roots() -> Result<RootCertStore> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    let (added, _) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        return Err(anyhow::anyhow!(
            "no trusted root certificates found on this system (/etc/ssl/certs; Debian: apt-get install ca-certificates): pass --ca FILE"
        ));
    }
    Ok(roots)
}

/// A certificate chain and a key that belong together, or the usage error saying why not.
fn chain_and_key(
    cert: &Path,
    key: &Path,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)> {
    let chain = load_certs(cert, "certificate file")?;
    let key_der = load_key(key)?;
    let signing = provider()
        .key_provider
        .load_private_key(key_der.clone_key())
        .map_err(|e| {
            UsageError::new(format!(
                "key file {}: not a key rustls can sign with: {e}",
                key.display()
            ))
        })?;
    let certified = rustls::sign::CertifiedKey::new(chain.clone(), signing);
    match certified.keys_match() {
        // A key type whose public half rustls cannot derive: nothing to compare, and a
        // mismatch would show at the handshake.
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
        Err(rustls::Error::InconsistentKeys(_)) => {
            return Err(UsageError::new(format!(
                "key file {} does not match the certificate in {}",
                key.display(),
                cert.display()
            ))
            .into());
        }
        // The leaf itself does not parse as a certificate rustls can use (say, an X.509 v1
        // one, as `openssl x509 -req` makes without extensions): not the key's fault.
        Err(e) => {
            let hint = if format!("{e:?}").contains("UnsupportedCertVersion") {
                ": it is X.509 v1, and v3 is needed (openssl x509 -req makes v3 with -extfile, \
                 e.g. a subjectAltName)"
            } else {
                ""
            };
            return Err(UsageError::new(format!(
                "certificate file {}: its first certificate is not one rustls can use ({e}){hint}",
                cert.display()
            ))
            .into());
        }
    }
    Ok((chain, key_der))
}

fn alpn(list: &[String]) -> Vec<Vec<u8>> {
    list.iter().map(|p| p.as_bytes().to_vec()).collect()
}

/// The client configuration for `host` (the name SNI sends unless `--sni`).
pub fn client(opts: &ClientOptions, host: &str) -> Result<Client> {
    let name_text = opts.sni.as_deref().unwrap_or(host);
    let bare = name_text.trim_start_matches('[').trim_end_matches(']');
    let name = ServerName::try_from(bare.to_string()).map_err(|_| {
        UsageError::new(format!(
            "--sni {name_text}: not a DNS name or IP address a certificate can be checked against"
        ))
    })?;
    let roots = match &opts.ca {
        Some(path) => roots_from(path, "--ca")?,
        None if opts.insecure => RootCertStore::empty(),
        None => system_roots()?,
    };
    let checked = Arc::new(Checked::default());
    let verifier = verify::ServerCheck::new(roots, opts.insecure, checked.clone())?;
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier));
    let mut config = match &opts.cert {
        Some((cert, key)) => {
            let (chain, key) = chain_and_key(cert, key)?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| UsageError::new(format!("--cert/--key: {e}")))?
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = alpn(&opts.alpn);
    config.key_log = Arc::new(rustls::KeyLogFile::new());
    Ok(Client {
        config: Arc::new(config),
        name,
        checked,
    })
}

/// The server configuration; `names` are what a self-signed certificate is made for.
pub fn server(opts: &ServerOptions, names: &[String]) -> Result<Server> {
    let (chain, key, origin) = if let Some((cert, key)) = &opts.cert {
        let (chain, key) = chain_and_key(cert, key)?;
        (chain, key, format!("from {}", cert.display()))
    } else {
        let made = rcgen::generate_simple_self_signed(names.to_vec())
            .map_err(|e| anyhow::anyhow!("making a self-signed certificate: {e}"))?;
        let key = PrivateKeyDer::try_from(made.signing_key.serialize_der())
            .map_err(|e| anyhow::anyhow!("the self-signed certificate's key: {e}"))?;
        (
            vec![made.cert.der().clone()],
            key,
            format!("self-signed for {}", names.join(", ")),
        )
    };
    let fingerprint = report::fingerprint(&chain[0]);
    let builder =
        ServerConfig::builder_with_provider(provider()).with_safe_default_protocol_versions()?;
    let builder = match &opts.client_ca {
        Some(path) => {
            let roots = roots_from(path, "--client-ca")?;
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider(),
            )
            .build()
            .map_err(|e| UsageError::new(format!("--client-ca {}: {e}", path.display())))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(chain, key)
        .map_err(|e| UsageError::new(format!("--cert/--key: {e}")))?;
    config.alpn_protocols = alpn(&opts.alpn);
    config.key_log = Arc::new(rustls::KeyLogFile::new());
    Ok(Server {
        config: Arc::new(config),
        origin,
        fingerprint,
    })
}
