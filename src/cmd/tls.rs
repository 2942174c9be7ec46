//! `--tls` on connect, listen and the engine's servers (echo, knock, --broker): the TLS arguments become tls/'s options, checked before
//! anything opens (a bad file is exit 2), and the relay of a stream socket becomes the TLS
//! relay. Which transports and modes take `--tls` at all is applies.rs's table; the TLS
//! work itself is tls/'s.

use std::time::Duration;

use anyhow::Result;
use rustls::{ClientConnection, Connection, ServerConnection};
use socket2::Socket;

use crate::cli::{TlsClientArgs, TlsServerArgs, ToTlsArgs};
use crate::error::UsageError;
use crate::narrate;
use crate::relay::{Channel, End, Ending, Relay, Wire};
use crate::tls::config::{self, Client, Server};
use crate::tls::session::Role;
pub use crate::tls::stage::{Accept, Originate};
use crate::tls::{ClientOptions, ServerOptions, TlsRelay};

/// How long a handshake may take when `-w` does not say.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// --cert and --key come together: a certificate is no use without its key.
fn pair_given(cert: bool, key: bool) -> Result<()> {
    flags_paired(cert, key, "--cert", "--key")
}

/// A certificate flag and its key flag come together, whatever they are called.
fn flags_paired(cert: bool, key: bool, cert_flag: &str, key_flag: &str) -> Result<()> {
    match (cert, key) {
        (true, false) => Err(UsageError::new(format!(
            "{cert_flag} needs {key_flag}: the private key of the certificate"
        ))
        .into()),
        (false, true) => Err(UsageError::new(format!(
            "{key_flag} needs {cert_flag}: the certificate the key belongs to"
        ))
        .into()),
        _ => Ok(()),
    }
}

/// `connect --tls`: the client configuration for HOST (None without --tls), made before any
/// socket.
pub fn client(args: &TlsClientArgs, host: Option<&str>) -> Result<Option<Client>> {
    let shaping = args.ca.is_some()
        || args.sni.is_some()
        || !args.alpn.is_empty()
        || args.cert.is_some()
        || args.key.is_some()
        || args.insecure;
    if !args.tls {
        if shaping {
            return Err(UsageError::new(
                "--ca, --sni, --alpn, --cert, --key and --insecure shape a TLS session, and \
                 need --tls",
            )
            .into());
        }
        return Ok(None);
    }
    pair_given(args.cert.is_some(), args.key.is_some())?;
    // A Unix socket has no host name: the certificate is checked for `localhost`.
    let host = host.unwrap_or("localhost");
    let opts = ClientOptions {
        ca: args.ca.clone(),
        sni: args.sni.clone(),
        alpn: args.alpn.clone(),
        cert: args.cert.clone().zip(args.key.clone()),
        insecure: args.insecure,
    };
    let client = config::client(&opts, host)?;
    if args.insecure {
        narrate::emit(format_args!(
            "WARNING: --insecure: the server's certificate is not verified; anyone in the \
             middle can read and change this session"
        ));
    }
    Ok(Some(client))
}

/// Relays stdio over `sock`, through TLS as `client` says, with the wire stages `wire` on
/// the plaintext.
pub fn connect_session(
    client: Client,
    sock: &Socket,
    ending: Ending,
    wire: Wire,
    timeout: Option<Duration>,
    json: bool,
    progress: bool,
) -> Result<End> {
    let conn = ClientConnection::new(client.config, client.name)
        .map_err(|e| anyhow::anyhow!("TLS: {e}"))?;
    let mut relay = TlsRelay::new(ending, wire, timeout.unwrap_or(HANDSHAKE_TIMEOUT))
        .json(json)
        .progress(progress);
    relay.session(
        sock,
        Connection::Client(conn),
        &Role::Client(client.checked),
    )
}

/// `listen --tls`: the server configuration (None without --tls), made before the bind.
pub fn server(args: &TlsServerArgs, addr: Option<&str>) -> Result<Option<Server>> {
    engine_server(args, addr)
}

/// `--tls` on a server of the connection engine (echo, knock, --broker): the configuration,
/// made before the bind. The engine's services see plaintext, so -x shows it as it is.
pub fn engine_server(args: &TlsServerArgs, addr: Option<&str>) -> Result<Option<Server>> {
    let shaping = args.cert.is_some()
        || args.key.is_some()
        || args.client_ca.is_some()
        || !args.alpn.is_empty();
    if !args.tls {
        if shaping {
            return Err(UsageError::new(
                "--cert, --key, --client-ca and --alpn shape a TLS session, and need --tls",
            )
            .into());
        }
        if args.handshake_timeout.is_some() {
            return Err(UsageError::new(
                "--handshake-timeout bounds each client's TLS handshake, and needs --tls",
            )
            .into());
        }
        return Ok(None);
    }
    if args.handshake_timeout == Some(Duration::ZERO) {
        return Err(UsageError::new(
            "--handshake-timeout 0s would drop every client before its first byte: give a \
             bound above zero",
        )
        .into());
    }
    pair_given(args.cert.is_some(), args.key.is_some())?;
    let names: Vec<String> = match addr {
        Some(a) => vec![a.trim_start_matches('[').trim_end_matches(']').to_string()],
        None => vec!["localhost".into(), "127.0.0.1".into(), "::1".into()],
    };
    let opts = ServerOptions {
        cert: args.cert.clone().zip(args.key.clone()),
        client_ca: args.client_ca.clone(),
        alpn: args.alpn.clone(),
    };
    Ok(Some(config::server(&opts, &names)?))
}

/// The line that goes with `listening on`: what a client can check or pin.
pub fn announce(server: &Server, quiet: bool) {
    if !quiet {
        narrate::emit(format_args!(
            "TLS certificate {}, SHA-256 fingerprint {}",
            server.origin, server.fingerprint
        ));
    }
}

/// How long a client of a TLS server may take over its handshake: `--handshake-timeout`,
/// else `fallback` (forward's -w), else the default.
pub fn handshake_bound(args: &TlsServerArgs, fallback: Option<Duration>) -> Duration {
    args.handshake_timeout
        .or(fallback)
        .unwrap_or(HANDSHAKE_TIMEOUT)
}

/// After `listening on`: the certificate line, and what the engine needs for each client,
/// whose handshake may take `handshake`.
pub fn engine_accept(server: Option<Server>, quiet: bool, handshake: Duration) -> Option<Accept> {
    server.map(|s| {
        announce(&s, quiet);
        Accept {
            config: s.config,
            handshake,
        }
    })
}

/// `forward --to-tls`: the client configuration for the target HOST (None without
/// --to-tls), made before anything listens; `--insecure` warns once, as on connect.
pub fn originate(args: &ToTlsArgs, host: &str) -> Result<Option<Originate>> {
    let shaping = args.to_cert.is_some() || args.to_key.is_some() || !args.to_alpn.is_empty();
    if !args.to_tls {
        if shaping {
            return Err(UsageError::new(
                "--to-cert, --to-key and --to-alpn shape the TLS session toward the target, \
                 and need --to-tls",
            )
            .into());
        }
        return Ok(None);
    }
    flags_paired(
        args.to_cert.is_some(),
        args.to_key.is_some(),
        "--to-cert",
        "--to-key",
    )?;
    let opts = ClientOptions {
        ca: args.ca.clone(),
        sni: args.sni.clone(),
        alpn: args.to_alpn.clone(),
        cert: args.to_cert.clone().zip(args.to_key.clone()),
        insecure: args.insecure,
    };
    let client = config::client(&opts, host)?;
    if args.insecure {
        narrate::emit(format_args!(
            "WARNING: --insecure: the target's certificate is not verified; anyone in the \
             middle can read and change what is forwarded"
        ));
    }
    Ok(Some(Originate {
        config: client.config,
        name: client.name,
        checked: client.checked,
        handshake: HANDSHAKE_TIMEOUT,
    }))
}

/// The relay a listener runs each client through: plain, or TLS.
pub enum ServerRelay {
    Plain(Relay),
    Tls(TlsRelay, Server),
}

impl ServerRelay {
    pub fn session(&mut self, sock: &Socket, channel: Channel) -> Result<End> {
        match self {
            ServerRelay::Plain(relay) => relay.session(sock, channel),
            ServerRelay::Tls(relay, server) => {
                let conn = ServerConnection::new(server.config.clone())
                    .map_err(|e| anyhow::anyhow!("TLS: {e}"))?;
                relay.session(sock, Connection::Server(conn), &Role::Server)
            }
        }
    }
}
