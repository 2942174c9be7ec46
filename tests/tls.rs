//! `--tls` driven as a user would: the real binary on loopback, port 0, every wait bounded,
//! with a test PKI made here (rcgen: a CA, leaves for localhost, an expired one, one for
//! another name, one from an untrusted CA), against `openssl s_server`/`s_client`, `ncat
//! --ssl`, rustls servers written here (to half-close or truncate on cue) and sockkit itself.
//! Covers bytes both ways, 64 MiB each way, close_notify semantics, each bad certificate with
//! its sentence, `--insecure`, the pinned fingerprint, and bad certificate files (exit 2).

mod util;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::thread;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, date_time_ymd,
};
use util::{
    ChildGuard, LineTap, T, TempDir, assert_bytes_eq, collect, join_within, listening_port_of,
    peer_or_skip, random_bytes, run, sockkit,
};

/// A test PKI on disk: `ca.pem` and, per leaf, `NAME.pem` + `NAME.key`.
struct Pki {
    dir: TempDir,
}

impl Pki {
    fn new() -> Pki {
        let dir = TempDir::new("tls");
        let ca = make_ca("sockkit test CA");
        dir.file("ca.pem", &ca.pem());
        let other = make_ca("some other CA");
        let localhost = || vec!["localhost".to_string(), "127.0.0.1".to_string()];
        leaf(&dir, "good", localhost(), &ca, false);
        leaf(&dir, "expired", localhost(), &ca, true);
        leaf(
            &dir,
            "elsewhere",
            vec!["elsewhere.example".to_string()],
            &ca,
            false,
        );
        leaf(&dir, "untrusted", localhost(), &other, false);
        let own = rcgen::generate_simple_self_signed(localhost()).unwrap();
        dir.file("selfsigned.pem", &own.cert.pem());
        dir.file("selfsigned.key", &own.signing_key.serialize_pem());
        Pki { dir }
    }

    fn path(&self, name: &str) -> String {
        self.dir.path(name).display().to_string()
    }

    fn ca(&self) -> String {
        self.path("ca.pem")
    }

    fn cert(&self, name: &str) -> String {
        self.path(&format!("{name}.pem"))
    }

    fn key(&self, name: &str) -> String {
        self.path(&format!("{name}.key"))
    }
}

fn make_ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
}

fn leaf(
    dir: &TempDir,
    name: &str,
    sans: Vec<String>,
    ca: &CertifiedIssuer<'static, KeyPair>,
    expired: bool,
) {
    let mut params = CertificateParams::new(sans).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, format!("{name} leaf"));
    if expired {
        params.not_before = date_time_ymd(2020, 1, 1);
        params.not_after = date_time_ymd(2021, 1, 1);
    }
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, ca).unwrap();
    dir.file(&format!("{name}.pem"), &cert.pem());
    dir.file(&format!("{name}.key"), &key.serialize_pem());
}

/// `sockkit listen --tls ARGS 127.0.0.1 0`, stdin from `stdin`; returns the child, its
/// address and its stderr.
fn listen_tls(args: &[&str], stdin: Stdio) -> (ChildGuard, SocketAddr, LineTap) {
    let mut all = vec!["listen", "--tls"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["127.0.0.1", "0"]);
    let mut cmd = sockkit(&all);
    cmd.stdin(stdin);
    let mut child = ChildGuard::spawn(&mut cmd);
    let (addr, tap) = util::read_listening(child.stderr(), T);
    (child, addr, tap)
}

/// A peer program's pipes: stdin to write, stdout and stderr collected.
fn spawn_peer(cmd: &mut Command) -> ChildGuard {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    ChildGuard::spawn(cmd)
}

/// `openssl s_server` for one client, serving the `good` leaf on a port of the kernel's
/// choosing: the child and its port.
fn s_server(openssl: &std::path::Path, pki: &Pki) -> (ChildGuard, u16) {
    let server = spawn_peer(Command::new(openssl).args([
        "s_server",
        "-quiet",
        "-naccept",
        "1",
        "-accept",
        "127.0.0.1:0",
        "-cert",
        &pki.cert("good"),
        "-key",
        &pki.key("good"),
    ]));
    let port = listening_port_of(server.id(), T).expect("s_server's port");
    (server, port)
}

#[test]
fn connect_tls_with_ca_talks_both_ways_with_openssl_s_server() {
    let Some(openssl) = peer_or_skip("openssl") else {
        return;
    };
    let pki = Pki::new();
    let (mut server, port) = s_server(&openssl, &pki);
    let mut server_in = server.stdin();
    server_in.write_all(b"from s_server\n").unwrap();
    let server_out = collect(server.stdout());
    let out = run(
        &[
            "connect",
            "--tls",
            "--ca",
            &pki.ca(),
            "-v",
            "localhost",
            &port.to_string(),
        ],
        b"from sockkit\n",
        T,
    );
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    assert_eq!(out.stdout_text(), "from s_server\n", "{}", out.stderr);
    assert!(
        out.stderr
            .contains("server certificate: verified against the trusted roots"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("TLS handshake done"), "{}", out.stderr);
    assert!(
        out.stderr.contains("subject CN=good leaf"),
        "{}",
        out.stderr
    );
    drop(server_in);
    server.status_within(T, "s_server");
    let got = join_within(server_out, T);
    assert_eq!(String::from_utf8_lossy(&got), "from sockkit\n");
}

/// A line on `tap` within the bound, or the test fails saying what was seen.
fn line(tap: &mut LineTap, want: &str) {
    tap.wait_seen(T, |l| l == want)
        .unwrap_or_else(|e| panic!("waiting for {want:?}: {e}"));
}

/// `listen --tls --cert --key` and a TLS client program (`client`) exchange a line each way
/// with both stdins open; then listen's stdin ends and it sends close_notify. A client that
/// answers with its own (`answers`) ends the session cleanly (exit 0); one that does not
/// ends when its stdin does, and listen says the end may be a truncation (exit 1).
fn exchange_with_listen_tls(pki: &Pki, client: &mut Command, what: &str, answers: bool) {
    let (mut listener, _addr, mut tap) = listen_tls_at(
        &["--cert", &pki.cert("good"), "--key", &pki.key("good")],
        Stdio::piped(),
        client,
    );
    let mut listen_in = listener.stdin();
    listen_in.write_all(b"from sockkit\n").unwrap();
    let mut listen_out = LineTap::new(listener.stdout());
    let mut peer = spawn_peer(client);
    let mut peer_in = peer.stdin();
    peer_in
        .write_all(format!("from {what}\n").as_bytes())
        .unwrap();
    let mut peer_out = LineTap::new(peer.stdout());
    line(&mut listen_out, &format!("from {what}"));
    line(&mut peer_out, "from sockkit");
    drop(listen_in);
    if !answers {
        drop(peer_in);
        let status = listener.status_within(T, "listen --tls");
        assert_eq!(status.code(), Some(1), "{what}");
        tap.wait_seen(T, |l| {
            l == "sockkit: TLS: the peer closed the connection without close_notify after 10 \
                  bytes: the data may be truncated"
        })
        .unwrap_or_else(|e| panic!("{e}"));
        peer.status_within(T, what);
        return;
    }
    let status = listener.status_within(T, "listen --tls");
    assert_eq!(status.code(), Some(0), "{what}: {}", tap.text());
    peer.status_within(T, what);
    drop(peer_in);
}

/// `listen_tls`, with the port it got added to `client`'s arguments as HOST:PORT or HOST
/// PORT (`{port}` in them).
fn listen_tls_at(
    args: &[&str],
    stdin: Stdio,
    client: &mut Command,
) -> (ChildGuard, SocketAddr, LineTap) {
    let (child, addr, tap) = listen_tls(args, stdin);
    let filled: Vec<String> = client
        .get_args()
        .map(|a| {
            a.to_string_lossy()
                .replace("{port}", &addr.port().to_string())
        })
        .collect();
    let program = client.get_program().to_owned();
    *client = Command::new(program);
    client.args(filled);
    (child, addr, tap)
}

#[test]
fn openssl_s_client_reaches_listen_tls_with_cert_and_key() {
    let Some(openssl) = peer_or_skip("openssl") else {
        return;
    };
    let pki = Pki::new();
    let ca = pki.ca();
    let mut client = Command::new(openssl);
    client.args([
        "s_client",
        "-quiet",
        "-verify_return_error",
        "-CAfile",
        &ca,
        "-servername",
        "localhost",
        "-connect",
        "127.0.0.1:{port}",
    ]);
    exchange_with_listen_tls(&pki, &mut client, "s_client", true);
}

#[test]
fn ncat_ssl_connects_to_listen_tls() {
    let Some(ncat) = peer_or_skip("ncat") else {
        return;
    };
    let pki = Pki::new();
    let ca = pki.ca();
    let mut client = Command::new(ncat);
    client.args([
        "--ssl",
        "--ssl-verify",
        "--ssl-trustfile",
        &ca,
        // ncat checks a certificate's DNS names only, not its IP addresses.
        "localhost",
        "{port}",
    ]);
    // ncat as a client never sends close_notify: it closes at its stdin's EOF.
    exchange_with_listen_tls(&pki, &mut client, "ncat", false);
}

/// `ncat --ssl -l` on a port the kernel just handed out (ncat cannot bind port 0 and say
/// which it got), serving the good certificate.
fn ncat_listen(ncat: &std::path::Path, pki: &Pki) -> (ChildGuard, u16) {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let server = spawn_peer(Command::new(ncat).args([
        "--ssl",
        "--ssl-cert",
        &pki.cert("good"),
        "--ssl-key",
        &pki.key("good"),
        "-l",
        "127.0.0.1",
        &port.to_string(),
    ]));
    listening_port_of(server.id(), T).expect("ncat's port");
    (server, port)
}

#[test]
fn connect_tls_reaches_ncat_ssl_listen() {
    let Some(ncat) = peer_or_skip("ncat") else {
        return;
    };
    let pki = Pki::new();
    let (mut server, port) = ncat_listen(&ncat, &pki);
    let mut server_in = server.stdin();
    server_in.write_all(b"from ncat\n").unwrap();
    let mut server_out = LineTap::new(server.stdout());
    let mut client = ChildGuard::spawn(&mut sockkit(&[
        "connect",
        "--tls",
        "--ca",
        &pki.ca(),
        "127.0.0.1",
        &port.to_string(),
    ]));
    let mut client_in = client.stdin();
    client_in.write_all(b"from sockkit\n").unwrap();
    let mut client_out = LineTap::new(client.stdout());
    line(&mut client_out, "from ncat");
    line(&mut server_out, "from sockkit");
    // Our close_notify; ncat answers with its own and ends.
    drop(client_in);
    let status = client.status_within(T, "connect --tls");
    assert_eq!(status.code(), Some(0));
    server.status_within(T, "ncat --ssl -l");
    drop(server_in);
}

#[test]
fn ncat_ending_without_close_notify_is_reported_as_possible_truncation() {
    let Some(ncat) = peer_or_skip("ncat") else {
        return;
    };
    let pki = Pki::new();
    let (mut server, port) = ncat_listen(&ncat, &pki);
    // At its stdin's EOF ncat closes the TCP connection without a close_notify.
    let mut server_in = server.stdin();
    server_in.write_all(b"from ncat\n").unwrap();
    drop(server_in);
    let mut client = ChildGuard::spawn(&mut sockkit(&[
        "connect",
        "--tls",
        "--ca",
        &pki.ca(),
        "127.0.0.1",
        &port.to_string(),
    ]));
    let client_in = client.stdin();
    let out = collect(client.stdout());
    let err = collect(client.stderr());
    let status = client.status_within(T, "connect --tls");
    drop(client_in);
    assert_eq!(status.code(), Some(1));
    assert_eq!(join_within(out, T), b"from ncat\n");
    assert_eq!(
        String::from_utf8_lossy(&join_within(err, T)),
        "sockkit: TLS: the peer closed the connection without close_notify after 10 bytes: \
         the data may be truncated\n"
    );
    server.status_within(T, "ncat --ssl -l");
}

/// 64 MiB from one sockkit to the other over TLS, byte-exact; `upload`: connect sends.
fn sixty_four_mib(upload: bool) {
    let pki = Pki::new();
    let data = random_bytes(if upload { 1 } else { 2 }, 64 << 20);
    let (mut listener, addr, _tap) = listen_tls(
        &["--cert", &pki.cert("good"), "--key", &pki.key("good")],
        Stdio::piped(),
    );
    let mut listen_in = listener.stdin();
    let listen_out = collect(listener.stdout());
    let feeder = if upload {
        drop(listen_in);
        None
    } else {
        let d = data.clone();
        Some(thread::spawn(move || {
            listen_in.write_all(&d).unwrap();
        }))
    };
    let input: &[u8] = if upload { &data } else { b"" };
    let out = run(
        &[
            "connect",
            "--tls",
            "--ca",
            &pki.ca(),
            "127.0.0.1",
            &addr.port().to_string(),
        ],
        input,
        T,
    );
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    if let Some(f) = feeder {
        join_within(f, T);
    }
    listener.status_within(T, "listen --tls");
    let got_server = join_within(listen_out, T);
    if upload {
        assert_bytes_eq(&got_server, &data, "64 MiB connect -> listen over TLS");
        assert!(out.stdout.is_empty());
    } else {
        assert_bytes_eq(&out.stdout, &data, "64 MiB listen -> connect over TLS");
        assert!(got_server.is_empty());
    }
}

#[test]
fn sixty_four_mib_connect_to_listen_arrive_byte_exact() {
    sixty_four_mib(true);
}

#[test]
fn sixty_four_mib_listen_to_connect_arrive_byte_exact() {
    sixty_four_mib(false);
}

/// A rustls server in the test: one client, `serve` runs on the TLS stream.
fn rustls_server(
    pki: &Pki,
    serve: impl FnOnce(&mut rustls::StreamOwned<rustls::ServerConnection, std::net::TcpStream>)
    + Send
    + 'static,
) -> (u16, thread::JoinHandle<()>) {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<_> = CertificateDer::pem_file_iter(pki.cert("good"))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let key = PrivateKeyDer::from_pem_file(pki.key("good")).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    let (addr, h) = util::serve_once(move |tcp| {
        let conn = rustls::ServerConnection::new(Arc::new(config)).unwrap();
        let mut tls = rustls::StreamOwned::new(conn, tcp);
        serve(&mut tls);
    });
    (addr.port(), h)
}

/// `connect --tls FLAGS` with `input` to a rustls server that reads the request to its
/// close_notify, checks it is `request`, then answers `answer` and closes: only a half-closed
/// TLS 1.3 session carries the answer back. sockkit's output.
fn request_then_answer(
    flags: &[&str],
    input: &[u8],
    request: &'static [u8],
    answer: &'static [u8],
) -> util::Output {
    let pki = Pki::new();
    let (port, server) = rustls_server(&pki, move |tls| {
        let mut got = Vec::new();
        tls.read_to_end(&mut got).unwrap();
        assert_eq!(got, request);
        tls.write_all(answer).unwrap();
        tls.conn.send_close_notify();
        tls.flush().unwrap();
    });
    let ca = pki.ca();
    let port = port.to_string();
    let mut args = vec!["connect", "--tls", "--ca", &ca];
    args.extend_from_slice(flags);
    args.extend_from_slice(&["localhost", &port]);
    let out = run(&args, input, T);
    join_within(server, T);
    out
}

#[test]
fn request_then_close_notify_gets_the_whole_response_after_it() {
    let out = request_then_answer(
        &["-v"],
        b"GET /answer\n",
        b"GET /answer\n",
        b"the answer is 42\n",
    );
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    assert_eq!(out.stdout_text(), "the answer is 42\n");
    assert!(
        out.stderr.contains("sending close_notify"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("TLSv1.3"), "{}", out.stderr);
}

#[test]
fn crlf_and_the_hexdump_work_on_the_plaintext_of_a_tls_session() {
    // --crlf reaches the server: each LF goes out as CRLF, inside TLS.
    let out = request_then_answer(
        &["--crlf", "-x"],
        b"GET /\nHost: x\n",
        b"GET /\r\nHost: x\r\n",
        b"answer\n",
    );
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    assert_eq!(out.stdout, b"answer\n");
    // The dump shows plaintext, as the socket took it (after --crlf) and as it came.
    assert!(
        out.stderr
            .contains("> 00000000  47 45 54 20 2f 0d 0a 48  6f 73 74 3a 20 78 0d 0a"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("< 00000000  61 6e 73 77 65 72 0a"),
        "{}",
        out.stderr
    );
}

#[test]
fn listen_tls_writes_the_plaintext_to_hexdump_file() {
    let pki = Pki::new();
    let dump = pki.dir.path("dump");
    let dump_arg = dump.display().to_string();
    let (mut listener, addr, _tap) = listen_tls(
        &[
            "--hexdump-file",
            &dump_arg,
            "--cert",
            &pki.cert("good"),
            "--key",
            &pki.key("good"),
        ],
        Stdio::null(),
    );
    let listen_out = collect(listener.stdout());
    let out = tls_client(&pki, addr, b"dumped\n");
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    listener.status_within(T, "listen --tls --hexdump-file");
    assert_eq!(join_within(listen_out, T), b"dumped\n");
    let text = std::fs::read_to_string(&dump).unwrap();
    assert!(text.contains("< 00000000  64 75 6d 70 65 64 0a"), "{text}");
}

#[test]
fn eof_without_close_notify_is_reported_as_possible_truncation() {
    let pki = Pki::new();
    let (port, server) = rustls_server(&pki, |tls| {
        tls.write_all(b"partial").unwrap();
        tls.flush().unwrap();
        // The TCP connection ends here with no close_notify: as a cut cable would end it.
        tls.sock.shutdown(std::net::Shutdown::Both).unwrap();
    });
    let out = run(
        &[
            "connect",
            "--tls",
            "--ca",
            &pki.ca(),
            "localhost",
            &port.to_string(),
        ],
        b"",
        T,
    );
    join_within(server, T);
    assert_eq!(out.code(), Some(1), "{}", out.stderr);
    assert_eq!(out.stdout_text(), "partial");
    assert_eq!(
        out.stderr,
        "sockkit: TLS: the peer closed the connection without close_notify after 7 bytes: \
         the data may be truncated\n"
    );
}

/// `connect --tls --ca ca.pem` to a `listen --tls` serving certificate `name`: its stderr.
fn refused_by_connect(pki: &Pki, name: &str, extra: &[&str]) -> String {
    let (mut listener, addr, _tap) = listen_tls(
        &["--cert", &pki.cert(name), "--key", &pki.key(name)],
        Stdio::null(),
    );
    let mut args = vec!["connect", "--tls", "--ca"];
    let ca = pki.ca();
    args.push(&ca);
    args.extend_from_slice(extra);
    let port = addr.port().to_string();
    args.extend_from_slice(&["127.0.0.1", &port]);
    let out = run(&args, b"never sent\n", T);
    assert_eq!(out.code(), Some(1), "{name}: {}", out.stderr);
    assert!(out.stdout.is_empty());
    assert_eq!(out.stderr.lines().count(), 1, "{name}: {}", out.stderr);
    listener.status_within(T, "listen --tls after a refused handshake");
    out.stderr
}

const WAY_OUT: &str = "pass --ca FILE to trust its issuer, or --insecure to skip verification";

#[test]
fn an_expired_certificate_is_refused_in_one_line() {
    let pki = Pki::new();
    let err = refused_by_connect(&pki, "expired", &[]);
    assert!(
        err.starts_with(
            "sockkit: TLS: the server's certificate has expired (valid until Jan  1 00:00:00 2021"
        ),
        "{err}"
    );
    assert!(err.contains(WAY_OUT), "{err}");
}

#[test]
fn a_self_signed_certificate_is_refused_in_one_line() {
    let pki = Pki::new();
    let err = refused_by_connect(&pki, "selfsigned", &[]);
    assert!(
        err.starts_with("sockkit: TLS: the server's certificate is self-signed (CN=rcgen self signed cert) and not trusted"),
        "{err}"
    );
    assert!(err.contains(WAY_OUT), "{err}");
}

#[test]
fn a_certificate_for_another_name_is_refused_in_one_line() {
    let pki = Pki::new();
    let err = refused_by_connect(&pki, "elsewhere", &[]);
    assert!(
        err.starts_with("sockkit: TLS: the server's certificate is for elsewhere.example, not 127.0.0.1 (wrong name"),
        "{err}"
    );
    assert!(err.contains(WAY_OUT), "{err}");
}

#[test]
fn a_certificate_from_an_untrusted_ca_is_refused_in_one_line() {
    let pki = Pki::new();
    let err = refused_by_connect(&pki, "untrusted", &[]);
    assert!(
        err.starts_with("sockkit: TLS: the server's certificate was issued by CN=some other CA, which is not trusted"),
        "{err}"
    );
    assert!(err.contains(WAY_OUT), "{err}");
}

#[test]
fn insecure_accepts_a_self_signed_certificate_and_warns_once() {
    let (mut listener, addr, _tap) = listen_tls(&[], Stdio::null());
    let listen_out = collect(listener.stdout());
    let out = run(
        &[
            "connect",
            "--tls",
            "--insecure",
            "127.0.0.1",
            &addr.port().to_string(),
        ],
        b"trust me\n",
        T,
    );
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    assert_eq!(
        out.stderr,
        "sockkit: WARNING: --insecure: the server's certificate is not verified; anyone in the \
         middle can read and change this session\n"
    );
    listener.status_within(T, "listen --tls");
    assert_eq!(join_within(listen_out, T), b"trust me\n");
}

#[test]
fn the_printed_fingerprint_is_what_openssl_prints_for_the_served_certificate() {
    let Some(openssl) = peer_or_skip("openssl") else {
        return;
    };
    let (_listener, addr, mut tap) = listen_tls(&[], Stdio::null());
    let line = tap
        .wait_seen(T, |l| l.contains("SHA-256 fingerprint "))
        .unwrap_or_else(|e| panic!("{e}"));
    let printed = line
        .split("SHA-256 fingerprint ")
        .nth(1)
        .unwrap()
        .trim()
        .to_string();
    // The certificate as a client receives it, and openssl's own fingerprint of it.
    let fetched = Command::new(&openssl)
        .args(["s_client", "-connect", &addr.to_string()])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .unwrap();
    let mut x509 = Command::new(&openssl)
        .args(["x509", "-noout", "-fingerprint", "-sha256"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    x509.stdin
        .take()
        .unwrap()
        .write_all(&fetched.stdout)
        .unwrap();
    let said = x509.wait_with_output().unwrap();
    let said = String::from_utf8_lossy(&said.stdout);
    assert_eq!(said.trim(), format!("sha256 Fingerprint={printed}"));
}

#[test]
fn certificate_and_key_files_that_do_not_parse_or_match_fail_before_binding() {
    let pki = Pki::new();
    let junk = pki.dir.file("junk.pem", "not a certificate\n");
    let junk = junk.display().to_string();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec![
                "--cert".into(),
                junk.clone(),
                "--key".into(),
                pki.key("good"),
            ],
            "no CERTIFICATE block in it",
        ),
        (
            vec![
                "--cert".into(),
                pki.cert("good"),
                "--key".into(),
                junk.clone(),
            ],
            "no private key in it",
        ),
        (
            vec![
                "--cert".into(),
                pki.cert("good"),
                "--key".into(),
                pki.key("expired"),
            ],
            "does not match the certificate in",
        ),
    ];
    for (files, want) in cases {
        let mut args: Vec<String> = vec!["listen".into(), "--tls".into(), "-v".into()];
        args.extend(files.iter().cloned());
        args.extend(["127.0.0.1".into(), "0".into()]);
        let out = run(&args, b"", T);
        assert_eq!(out.code(), Some(2), "{args:?}: {}", out.stderr);
        assert!(out.stderr.contains(want), "{args:?}: {}", out.stderr);
        assert!(!out.stderr.contains("listening on"), "{}", out.stderr);
        assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
        // The client's --cert/--key are read before it connects, too.
        let mut args: Vec<String> = vec!["connect".into(), "--tls".into()];
        args.extend(files);
        args.extend(["127.0.0.1".into(), "9".into()]);
        let out = run(&args, b"", T);
        assert_eq!(out.code(), Some(2), "{args:?}: {}", out.stderr);
        assert!(out.stderr.contains(want), "{args:?}: {}", out.stderr);
    }
    let missing: PathBuf = pki.dir.path("absent.pem");
    let out = run(
        &[
            "connect",
            "--tls",
            "--ca",
            &missing.display().to_string(),
            "127.0.0.1",
            "9",
        ],
        b"",
        T,
    );
    assert_eq!(out.code(), Some(2), "{}", out.stderr);
    assert!(out.stderr.starts_with("sockkit: --ca "), "{}", out.stderr);
}

#[test]
fn a_plain_text_client_on_listen_k_tls_is_logged_and_the_next_client_is_served() {
    let pki = Pki::new();
    let (mut listener, addr, mut tap) = listen_tls(
        &[
            "-k",
            "-v",
            "--cert",
            &pki.cert("good"),
            "--key",
            &pki.key("good"),
        ],
        Stdio::null(),
    );
    let listen_out = collect(listener.stdout());
    let mut plain = std::net::TcpStream::connect(addr).unwrap();
    plain.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
    let line = tap
        .wait_for(T, |l| l.contains("did not answer in TLS"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(line.starts_with("sockkit: client 127.0.0.1:"), "{line}");
    drop(plain);
    let out = run(
        &[
            "connect",
            "--tls",
            "--ca",
            &pki.ca(),
            "127.0.0.1",
            &addr.port().to_string(),
        ],
        b"after the plain one\n",
        T,
    );
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    tap.wait_for(T, |l| l.contains("received 20 B of plaintext"))
        .unwrap_or_else(|e| panic!("{e}"));
    drop(listener);
    assert_eq!(join_within(listen_out, T), b"after the plain one\n");
}

#[test]
fn client_ca_admits_a_client_with_a_certificate_and_refuses_one_without() {
    let pki = Pki::new();
    let (mut listener, addr, mut tap) = listen_tls(
        &[
            "-k",
            "-v",
            "--cert",
            &pki.cert("good"),
            "--key",
            &pki.key("good"),
            "--client-ca",
            &pki.ca(),
        ],
        Stdio::null(),
    );
    let listen_out = collect(listener.stdout());
    let port = addr.port().to_string();
    let ca = pki.ca();
    let without = run(
        &["connect", "--tls", "--ca", &ca, "127.0.0.1", &port],
        b"no\n",
        T,
    );
    assert_eq!(without.code(), Some(1), "{}", without.stderr);
    assert!(
        without.stderr.contains("CertificateRequired"),
        "{}",
        without.stderr
    );
    let (cert, key) = (pki.cert("good"), pki.key("good"));
    let with = run(
        &[
            "connect",
            "--tls",
            "--ca",
            &ca,
            "--cert",
            &cert,
            "--key",
            &key,
            "127.0.0.1",
            &port,
        ],
        b"with a certificate\n",
        T,
    );
    assert_eq!(with.code(), Some(0), "{}", with.stderr);
    tap.wait_seen(T, |l| {
        l.contains("client certificate 0: subject CN=good leaf")
    })
    .unwrap_or_else(|e| panic!("{e}"));
    tap.wait_seen(T, |l| l.contains("received 19 B of plaintext"))
        .unwrap_or_else(|e| panic!("{e}"));
    drop(listener);
    assert_eq!(join_within(listen_out, T), b"with a certificate\n");
}

#[test]
fn alpn_is_negotiated_and_keys_are_logged_to_sslkeylogfile() {
    let pki = Pki::new();
    let (mut listener, addr, _tap) = listen_tls(
        &[
            "--cert",
            &pki.cert("good"),
            "--key",
            &pki.key("good"),
            "--alpn",
            "h2,http/1.1",
        ],
        Stdio::null(),
    );
    let keylog = pki.dir.path("keys.log");
    let mut cmd = sockkit(&[
        "connect",
        "--tls",
        "-v",
        "--ca",
        &pki.ca(),
        "--alpn",
        "http/1.1,spdy/1",
        "127.0.0.1",
        &addr.port().to_string(),
    ]);
    cmd.env("SSLKEYLOGFILE", &keylog);
    let out = util::run_cmd(&mut cmd, b"", T);
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    assert!(out.stderr.contains("ALPN http/1.1"), "{}", out.stderr);
    listener.status_within(T, "listen --tls");
    let logged = std::fs::read_to_string(&keylog).unwrap();
    assert!(
        logged
            .lines()
            .any(|l| l.starts_with("CLIENT_TRAFFIC_SECRET_0 ")),
        "{logged}"
    );
}

#[test]
fn a_recv_only_listener_ends_with_close_notify_so_its_client_exits_0() {
    let pki = Pki::new();
    // Its stdin stays open and unread: only the close_notify at the end lets the client go.
    let (mut listener, addr, _tap) = listen_tls(
        &[
            "--recv-only",
            "--cert",
            &pki.cert("good"),
            "--key",
            &pki.key("good"),
        ],
        Stdio::piped(),
    );
    let listen_in = listener.stdin();
    let listen_out = collect(listener.stdout());
    let out = run(
        &[
            "connect",
            "--tls",
            "--ca",
            &pki.ca(),
            "127.0.0.1",
            &addr.port().to_string(),
        ],
        b"one way\n",
        T,
    );
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    let status = listener.status_within(T, "listen --recv-only --tls");
    assert_eq!(status.code(), Some(0));
    drop(listen_in);
    assert_eq!(join_within(listen_out, T), b"one way\n");
}

#[test]
fn tls_options_without_tls_or_a_cert_without_its_key_are_usage_errors() {
    let cases: [(&[&str], &str); 4] = [
        (
            &["connect", "--ca", "ca.pem", "127.0.0.1", "9"],
            "sockkit: --ca, --sni, --alpn, --cert, --key and --insecure shape a TLS session, and need --tls\n",
        ),
        (
            &["listen", "--client-ca", "ca.pem", "127.0.0.1", "0"],
            "sockkit: --cert, --key, --client-ca and --alpn shape a TLS session, and need --tls\n",
        ),
        (
            &["connect", "--tls", "--cert", "c.pem", "127.0.0.1", "9"],
            "sockkit: --cert needs --key: the private key of the certificate\n",
        ),
        (
            &["listen", "--tls", "--key", "k.pem", "127.0.0.1", "0"],
            "sockkit: --key needs --cert: the certificate the key belongs to\n",
        ),
    ];
    for (args, want) in cases {
        let out = run(args, b"", T);
        assert_eq!(out.code(), Some(2), "{args:?}: {}", out.stderr);
        assert_eq!(out.stderr, want, "{args:?}");
    }
}

// ---- TLS on the server engine (echo, knock) and on forward ----

/// `sockkit SUBCOMMAND --tls ARGS 127.0.0.1 0` (an engine server); the child, its address,
/// its stderr.
fn engine_tls(sub: &str, args: &[&str]) -> (ChildGuard, SocketAddr, LineTap) {
    let mut all = vec![sub, "--tls"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["127.0.0.1", "0"]);
    let mut cmd = sockkit(&all);
    cmd.stdin(Stdio::null());
    let mut child = ChildGuard::spawn(&mut cmd);
    let (addr, tap) = util::read_listening(child.stderr(), T);
    (child, addr, tap)
}

/// Reads exactly `n` bytes from `r` on a thread, for a bounded join.
fn read_n<R: Read + Send + 'static>(r: R, n: usize) -> thread::JoinHandle<Vec<u8>> {
    read_n_counted(r, n, Arc::default())
}

/// `read_n`, telling `count` how many bytes have come so far.
fn read_n_counted<R: Read + Send + 'static>(
    mut r: R,
    n: usize,
    count: Arc<std::sync::atomic::AtomicUsize>,
) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut got = vec![0u8; n];
        let mut at = 0;
        while at < n {
            match r.read(&mut got[at..]) {
                Ok(0) | Err(_) => break,
                Ok(k) => at += k,
            }
            count.store(at, std::sync::atomic::Ordering::Relaxed);
        }
        got.truncate(at);
        got
    })
}

/// A TLS client program sends `payload` to `echo --tls` and must get exactly it back; the
/// echo server's `-v` shows that client's TLS summary.
fn echo_tls_round_trip(client: &mut Command, what: &str, lockstep: bool) {
    let pki = Pki::new();
    let (_echo, addr, mut tap) = engine_tls(
        "echo",
        &["-v", "--cert", &pki.cert("good"), "--key", &pki.key("good")],
    );
    let filled: Vec<String> = client
        .get_args()
        .map(|a| {
            a.to_string_lossy()
                .replace("{port}", &addr.port().to_string())
                .replace("{ca}", &pki.ca())
        })
        .collect();
    let mut cmd = Command::new(client.get_program());
    cmd.args(filled);
    let mut peer = spawn_peer(&mut cmd);
    let payload = random_bytes(18, 300_000);
    let echoed = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let back = read_n_counted(peer.stdout(), payload.len(), echoed.clone());
    let mut input = peer.stdin();
    let sent = payload.clone();
    let writer = thread::spawn(move || {
        if lockstep {
            // A piece at a time, each once the one before is back (see the ncat test).
            for (i, piece) in sent.chunks(4096).enumerate() {
                input.write_all(piece)?;
                while echoed.load(std::sync::atomic::Ordering::Relaxed) < (i + 1) * 4096
                    && echoed.load(std::sync::atomic::Ordering::Relaxed) < sent.len()
                {
                    thread::sleep(std::time::Duration::from_millis(1));
                }
            }
            Ok(input)
        } else {
            input.write_all(&sent).map(|()| input)
        }
    });
    let got = join_within(back, T);
    assert_bytes_eq(&got, &payload, what);
    drop(join_within(writer, T));
    let summary = tap
        .wait_seen(T, |l| l.contains(": TLS handshake done in "))
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(summary.starts_with("sockkit: 127.0.0.1:"), "{summary}");
    assert!(summary.contains("TLSv1.3, TLS13_"), "{summary}");
    assert!(summary.contains("ALPN none"), "{summary}");
}

#[test]
fn echo_tls_echoes_openssl_s_client_byte_exact() {
    let Some(openssl) = peer_or_skip("openssl") else {
        return;
    };
    let mut client = Command::new(openssl);
    client.args([
        "s_client",
        "-quiet",
        "-verify_return_error",
        "-CAfile",
        "{ca}",
        "-servername",
        "localhost",
        "-connect",
        "127.0.0.1:{port}",
    ]);
    echo_tls_round_trip(&mut client, "s_client", false);
}

#[test]
fn echo_tls_echoes_ncat_ssl_byte_exact() {
    let Some(ncat) = peer_or_skip("ncat") else {
        return;
    };
    let mut client = Command::new(ncat);
    // ncat checks a certificate's DNS names only, so it connects to `localhost`.
    client.args([
        "--ssl",
        "--ssl-verify",
        "--ssl-trustfile",
        "{ca}",
        "localhost",
        "{port}",
    ]);
    // ncat --ssl, fed its whole input at once, can leave the last record it decrypted
    // unwritten to its stdout until it reads again (seen with strace: sockkit had sent every
    // byte), so it is fed a piece at a time, each once the last one is back.
    echo_tls_round_trip(&mut client, "ncat --ssl", true);
}

/// `sockkit connect --tls --ca` to ADDR with `input`, as a client of an engine server.
fn tls_client(pki: &Pki, addr: SocketAddr, input: &[u8]) -> util::Output {
    run(
        &[
            "connect",
            "--tls",
            "--ca",
            &pki.ca(),
            "localhost",
            &addr.port().to_string(),
        ],
        input,
        T,
    )
}

#[test]
fn a_stalled_handshake_costs_only_its_slot_and_is_dropped_at_the_bound() {
    let pki = Pki::new();
    let (mut echo, addr, mut tap) = engine_tls(
        "echo",
        &[
            "--threads",
            "1",
            "--cert",
            &pki.cert("good"),
            "--key",
            &pki.key("good"),
        ],
    );
    // Half a record header, then nothing: the handshake can never finish.
    let mut stalled = std::net::TcpStream::connect(addr).unwrap();
    stalled.write_all(&[22, 3, 1]).unwrap();
    // Meanwhile another client (on the same event loop) is served in full.
    let out = tls_client(&pki, addr, b"served meanwhile\n");
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    assert_eq!(out.stdout, b"served meanwhile\n");
    assert!(
        !tap.text().contains("dropped"),
        "dropped before the bound: {}",
        tap.text()
    );
    // At the bound (10 s) the stalled one is dropped, with one line, and its socket closed.
    let line = tap
        .wait_for(T, |l| l.contains("TLS handshake not finished within 10s"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(line.starts_with("sockkit: dropped 127.0.0.1:"), "{line}");
    stalled.set_read_timeout(Some(T)).unwrap();
    let mut rest = Vec::new();
    let _ = stalled.read_to_end(&mut rest);
    assert!(echo.try_status().is_none(), "the server goes on");
    let out = tls_client(&pki, addr, b"and after\n");
    assert_eq!(out.stdout, b"and after\n", "{}", out.stderr);
}

#[test]
fn handshake_timeout_sets_the_bound_on_every_tls_server_and_others_stay_served() {
    let pki = Pki::new();
    let (cert, key) = (pki.cert("good"), pki.key("good"));
    let target = util::Server::start(&["echo", "127.0.0.1", "0"]);
    let target_port = target.port().to_string();
    let bound = ["--handshake-timeout", "1500ms"];
    // (subcommand, its own flags, what a served client gets back)
    let servers: [(&str, Vec<&str>, &[u8]); 4] = [
        ("echo", vec!["--threads", "1"], b"served meanwhile\n"),
        ("knock", vec!["--threads", "1"], b"Knock! Knock!\n"),
        ("listen", vec!["--broker"], b""),
        // forward's -w would allow 30s: --handshake-timeout is the client's bound.
        ("forward", vec!["-w", "30s"], b"served meanwhile\n"),
    ];
    for (sub, own, want) in servers {
        let mut all = vec![sub, "--tls", "--cert", &cert, "--key", &key];
        all.extend_from_slice(&bound);
        all.extend(own.iter().copied());
        all.extend_from_slice(&["127.0.0.1", "0"]);
        if sub == "forward" {
            all.extend_from_slice(&["127.0.0.1", &target_port]);
        }
        let mut cmd = sockkit(&all);
        cmd.stdin(Stdio::null());
        let mut server = ChildGuard::spawn(&mut cmd);
        let (addr, mut tap) = util::read_listening(server.stderr(), T);
        // Half a record header, then nothing: the handshake can never finish.
        let mut stalled = std::net::TcpStream::connect(addr).unwrap();
        stalled.write_all(&[22, 3, 1]).unwrap();
        let out = tls_client(&pki, addr, b"served meanwhile\n");
        assert_eq!(out.code(), Some(0), "{sub}: {}", out.stderr);
        assert!(
            out.stdout.starts_with(want),
            "{sub}: {:?}",
            out.stdout_text()
        );
        let line = tap
            .wait_for(T, |l| {
                l.contains("TLS handshake not finished within 1s 500ms")
            })
            .unwrap_or_else(|e| panic!("{sub}: {e}"));
        assert!(
            line.starts_with("sockkit: dropped 127.0.0.1:"),
            "{sub}: {line}"
        );
        stalled.set_read_timeout(Some(T)).unwrap();
        let mut rest = Vec::new();
        let _ = stalled.read_to_end(&mut rest);
        assert!(server.try_status().is_none(), "{sub}: the server goes on");
        let out = tls_client(&pki, addr, b"served meanwhile\n");
        assert_eq!(out.code(), Some(0), "{sub} after the drop: {}", out.stderr);
    }
}

#[test]
fn listen_k_tls_drops_a_stalled_handshake_at_its_bound_and_serves_the_next_client() {
    let pki = Pki::new();
    let (mut listener, addr, mut tap) = listen_tls(
        &[
            "-k",
            "--handshake-timeout",
            "1s",
            "--cert",
            &pki.cert("good"),
            "--key",
            &pki.key("good"),
        ],
        Stdio::null(),
    );
    let mut out = LineTap::new(listener.stdout());
    let mut stalled = std::net::TcpStream::connect(addr).unwrap();
    stalled.write_all(&[22, 3, 1]).unwrap();
    tap.wait_for(T, |l| l.contains("TLS handshake: no answer within 1s"))
        .unwrap_or_else(|e| panic!("{e}"));
    stalled.set_read_timeout(Some(T)).unwrap();
    let mut rest = Vec::new();
    let _ = stalled.read_to_end(&mut rest);
    assert!(listener.try_status().is_none(), "listen -k goes on");
    let client = tls_client(&pki, addr, b"the next one\n");
    assert_eq!(client.code(), Some(0), "{}", client.stderr);
    line(&mut out, "the next one");
}

#[test]
fn handshake_timeout_needs_tls_and_a_bound_above_zero() {
    let cases: [(&[&str], &str); 3] = [
        (
            &["echo", "--handshake-timeout", "5s", "127.0.0.1", "0"],
            "sockkit: --handshake-timeout bounds each client's TLS handshake, and needs --tls\n",
        ),
        (
            &["listen", "--handshake-timeout", "5s", "127.0.0.1", "0"],
            "sockkit: --handshake-timeout bounds each client's TLS handshake, and needs --tls\n",
        ),
        (
            &[
                "knock",
                "--tls",
                "--handshake-timeout",
                "0s",
                "127.0.0.1",
                "0",
            ],
            "sockkit: --handshake-timeout 0s would drop every client before its first byte: give a bound above zero\n",
        ),
    ];
    for (args, want) in cases {
        let out = run(args, b"", T);
        assert_eq!(out.code(), Some(2), "{args:?}: {}", out.stderr);
        assert_eq!(out.stderr, want, "{args:?}");
    }
}

#[test]
fn a_plain_text_client_on_echo_tls_is_logged_and_does_not_disturb_another() {
    let pki = Pki::new();
    let (_echo, addr, mut tap) = engine_tls(
        "echo",
        &["--cert", &pki.cert("good"), "--key", &pki.key("good")],
    );
    // A TLS client mid-session, before and after the plain one.
    let mut client = spawn_peer(&mut sockkit(&[
        "connect",
        "--tls",
        "--ca",
        &pki.ca(),
        "localhost",
        &addr.port().to_string(),
    ]));
    let mut client_in = client.stdin();
    let mut client_out = LineTap::new(client.stdout());
    client_in.write_all(b"before\n").unwrap();
    line(&mut client_out, "before");
    let mut plain = std::net::TcpStream::connect(addr).unwrap();
    plain.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
    let said = tap
        .wait_for(T, |l| l.contains("did not answer in TLS"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(said.starts_with("sockkit: dropped 127.0.0.1:"), "{said}");
    assert!(said.contains("is it speaking plain text?"), "{said}");
    // The plain client gets a TLS alert, not an echo, then the end.
    plain.set_read_timeout(Some(T)).unwrap();
    let mut answer = Vec::new();
    let _ = plain.read_to_end(&mut answer);
    assert_eq!(answer.first(), Some(&21), "an alert record: {answer:?}");
    client_in.write_all(b"after\n").unwrap();
    line(&mut client_out, "after");
    drop(client_in);
    let status = client.status_within(T, "connect --tls");
    assert_eq!(status.code(), Some(0));
}

#[test]
fn knock_tls_tells_its_joke_over_tls() {
    let pki = Pki::new();
    let (_knock, addr, _tap) = engine_tls(
        "knock",
        &["--cert", &pki.cert("good"), "--key", &pki.key("good")],
    );
    let out = tls_client(&pki, addr, b"Who's there?\n");
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    let text = out.stdout_text();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("Knock! Knock!"), "{text}");
    assert!(lines.next().is_some(), "the clue follows: {text}");
}

#[test]
fn echo_tls_without_cert_pins_the_printed_fingerprint() {
    let (_echo, addr, mut tap) = engine_tls("echo", &[]);
    // The line after `listening on`, which may still be on its way.
    let fp = tap
        .wait_seen(T, |l| l.contains("SHA-256 fingerprint "))
        .unwrap_or_else(|e| panic!("{e}"))
        .split("SHA-256 fingerprint ")
        .nth(1)
        .unwrap()
        .to_string();
    // The client that trusts nothing sees the same certificate (its -v chain shows it).
    let out = run(
        &[
            "connect",
            "-v",
            "--tls",
            "--insecure",
            "127.0.0.1",
            &addr.port().to_string(),
        ],
        b"x",
        T,
    );
    assert_eq!(out.stdout, b"x", "{}", out.stderr);
    assert!(
        out.stderr.contains(&format!("SHA-256 {fp}")),
        "{fp}: {}",
        out.stderr
    );
}

#[test]
fn vv_on_connect_tls_narrates_client_hello_then_server_hello_with_sizes() {
    let pki = Pki::new();
    let (_echo, addr, _tap) = engine_tls(
        "echo",
        &["--cert", &pki.cert("good"), "--key", &pki.key("good")],
    );
    let out = run(
        &[
            "connect",
            "-vv",
            "--tls",
            "--ca",
            &pki.ca(),
            "localhost",
            &addr.port().to_string(),
        ],
        b"hi\n",
        T,
    );
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    let lines: Vec<&str> = out.stderr.lines().collect();
    let at = |want: &str| {
        lines
            .iter()
            .position(|l| l.contains(want))
            .unwrap_or_else(|| panic!("no {want:?} in:\n{}", out.stderr))
    };
    let hello = at("-> TLS record handshake (TLS 1.0), ");
    let server = at("<- TLS record handshake (TLS 1.2), ");
    let encrypted = at("(encrypted handshake)");
    let done = at("TLS handshake done in ");
    let connected = at("connect(fd ");
    assert!(connected < hello && hello < server && server < encrypted && encrypted < done);
    // `N bytes: ClientHello (M bytes)`: one message, its 4-byte header inside the record.
    let sizes = |l: &str, name: &str| -> (usize, usize) {
        let rec = l.split("), ").nth(1).unwrap();
        let n: usize = rec.split(' ').next().unwrap().parse().unwrap();
        let m: usize = l
            .split(&format!("{name} ("))
            .nth(1)
            .unwrap()
            .split(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        (n, m)
    };
    let (n, m) = sizes(lines[hello], "ClientHello");
    assert_eq!(n, m + 4, "{}", lines[hello]);
    let (n, m) = sizes(lines[server], "ServerHello");
    assert_eq!(n, m + 4, "{}", lines[server]);
    // Each line carries the narration clock.
    assert!(
        lines[hello]
            .trim_start_matches("sockkit:")
            .trim_start()
            .starts_with('+')
    );
}

/// `sockkit forward ARGS 127.0.0.1 0 HOST PORT`: the child, its address, its stderr.
fn forward(args: &[&str], host: &str, port: u16) -> (ChildGuard, SocketAddr, LineTap) {
    let port = port.to_string();
    let mut all = vec!["forward"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["127.0.0.1", "0", host, &port]);
    let mut cmd = sockkit(&all);
    cmd.stdin(Stdio::null());
    let mut child = ChildGuard::spawn(&mut cmd);
    let (addr, tap) = util::read_listening(child.stderr(), T);
    (child, addr, tap)
}

#[test]
fn curl_through_forward_tls_to_a_plain_http_server_gets_the_file_byte_exact() {
    let (Some(curl), Some(python)) = (peer_or_skip("curl"), peer_or_skip("python3")) else {
        return;
    };
    let pki = Pki::new();
    let body = random_bytes(7, 1 << 20);
    std::fs::write(pki.dir.path("file"), &body).unwrap();
    let http = ChildGuard::spawn(
        Command::new(python)
            .args(["-m", "http.server", "--bind", "127.0.0.1", "0"])
            .current_dir(pki.dir.root())
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    );
    let http_port = listening_port_of(http.id(), T).expect("http.server's port");
    let (_fwd, addr, mut tap) = forward(
        &[
            "-v",
            "--tls",
            "--cert",
            &pki.cert("good"),
            "--key",
            &pki.key("good"),
        ],
        "127.0.0.1",
        http_port,
    );
    let got = pki.dir.path("got");
    let out = util::run_cmd(
        Command::new(curl).args([
            "-sS",
            "--cacert",
            &pki.ca(),
            "-o",
            &got.display().to_string(),
            &format!("https://localhost:{}/file", addr.port()),
        ]),
        b"",
        T,
    );
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    assert_bytes_eq(
        &std::fs::read(&got).unwrap(),
        &body,
        "through forward --tls",
    );
    tap.wait_seen(T, |l| l.contains("(client side): TLS handshake done in "))
        .unwrap_or_else(|e| panic!("{e}"));
    drop(http);
}

#[test]
fn forward_to_tls_in_front_of_openssl_s_server_is_byte_exact_for_a_plain_client() {
    let Some(openssl) = peer_or_skip("openssl") else {
        return;
    };
    let pki = Pki::new();
    let (mut server, port) = s_server(&openssl, &pki);
    let (_fwd, addr, mut tap) = forward(&["-v", "--to-tls", "--ca", &pki.ca()], "localhost", port);
    let up = random_bytes(3, 100_000);
    let mut server_in = server.stdin();
    let down = random_bytes(4, 100_000);
    // s_server reads its stdin once a client is there: written from a thread, so a full
    // pipe does not stop the test before the client connects.
    let sent = down.clone();
    let feeder = thread::spawn(move || server_in.write_all(&sent).map(|()| server_in));
    let at_server = read_n(server.stdout(), up.len());
    let mut client = std::net::TcpStream::connect(addr).unwrap();
    client.set_read_timeout(Some(T)).unwrap();
    let at_client = read_n(client.try_clone().unwrap(), down.len());
    client.write_all(&up).unwrap();
    assert_bytes_eq(&join_within(at_server, T), &up, "client -> s_server");
    assert_bytes_eq(&join_within(at_client, T), &down, "s_server -> client");
    drop(join_within(feeder, T));
    tap.wait_seen(T, |l| {
        l.contains("server certificate: verified against the trusted roots")
    })
    .unwrap_or_else(|e| panic!("{e}"));
}

/// `openssl s_server` for one client that requires a client certificate from the test CA
/// (`-Verify 1 -verify_return_error`) and accepts the ALPN protocols `alpn`.
fn s_server_verifying(openssl: &std::path::Path, pki: &Pki, alpn: &str) -> (ChildGuard, u16) {
    let server = spawn_peer(Command::new(openssl).args([
        "s_server",
        "-quiet",
        "-naccept",
        "1",
        "-accept",
        "127.0.0.1:0",
        "-cert",
        &pki.cert("good"),
        "-key",
        &pki.key("good"),
        "-Verify",
        "1",
        "-verify_return_error",
        "-CAfile",
        &pki.ca(),
        "-alpn",
        alpn,
    ]));
    let port = listening_port_of(server.id(), T).expect("s_server's port");
    (server, port)
}

#[test]
fn forward_to_tls_presents_its_client_certificate_and_alpn_to_the_target() {
    let Some(openssl) = peer_or_skip("openssl") else {
        return;
    };
    let pki = Pki::new();
    let (mut server, port) = s_server_verifying(&openssl, &pki, "other/1,sockkit/1");
    let (_fwd, addr, mut tap) = forward(
        &[
            "-v",
            "--to-tls",
            "--ca",
            &pki.ca(),
            "--to-cert",
            &pki.cert("good"),
            "--to-key",
            &pki.key("good"),
            "--to-alpn",
            "sockkit/1,http/1.1",
        ],
        "localhost",
        port,
    );
    let server_err = collect(server.stderr());
    let up = random_bytes(5, 70_000);
    let down = random_bytes(6, 70_000);
    let mut server_in = server.stdin();
    let sent = down.clone();
    let feeder = thread::spawn(move || server_in.write_all(&sent).map(|()| server_in));
    let at_server = read_n(server.stdout(), up.len());
    let mut client = std::net::TcpStream::connect(addr).unwrap();
    client.set_read_timeout(Some(T)).unwrap();
    let at_client = read_n(client.try_clone().unwrap(), down.len());
    client.write_all(&up).unwrap();
    assert_bytes_eq(&join_within(at_server, T), &up, "client -> s_server");
    assert_bytes_eq(&join_within(at_client, T), &down, "s_server -> client");
    drop(join_within(feeder, T));
    // s_server picked the one protocol both lists have, so ours was offered.
    tap.wait_seen(T, |l| {
        l.contains("(target side): TLS handshake done") && l.contains("ALPN sockkit/1")
    })
    .unwrap_or_else(|e| panic!("{e}"));
    drop(client);
    server.status_within(T, "s_server");
    let said = String::from_utf8_lossy(&join_within(server_err, T)).into_owned();
    // The leaf it verified is the one --to-cert named.
    assert!(
        said.contains("CN = good leaf") && !said.contains("error"),
        "{said}"
    );
}

#[test]
fn forward_to_tls_without_a_client_certificate_is_refused_by_a_server_that_requires_one() {
    let Some(openssl) = peer_or_skip("openssl") else {
        return;
    };
    let pki = Pki::new();
    let (_server, port) = s_server_verifying(&openssl, &pki, "sockkit/1");
    let (mut fwd, addr, mut tap) = forward(&["--to-tls", "--ca", &pki.ca()], "localhost", port);
    let out = run(
        &["connect", "127.0.0.1", &addr.port().to_string()],
        b"hello\n",
        T,
    );
    assert!(out.stdout.is_empty(), "{:?}", out.stdout);
    tap.wait_for(T, |l| {
        l.starts_with("sockkit: dropped ") && l.contains("the target: TLS")
    })
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(fwd.try_status().is_none(), "the forwarder goes on");
}

#[test]
fn forward_to_tls_client_certificate_flags_are_checked_before_anything_binds() {
    let pki = Pki::new();
    let (good, good_key, ca) = (pki.cert("good"), pki.key("good"), pki.ca());
    let other_key = pki.key("elsewhere");
    let base = ["forward", "127.0.0.1", "0", "127.0.0.1", "9"];
    let cases: Vec<(Vec<&str>, String)> = vec![
        (
            vec!["--to-alpn", "h2"],
            "sockkit: --to-cert, --to-key and --to-alpn shape the TLS session toward the target, and need --to-tls\n".into(),
        ),
        (
            vec!["--to-cert", &good, "--to-key", &good_key],
            "sockkit: --to-cert, --to-key and --to-alpn shape the TLS session toward the target, and need --to-tls\n".into(),
        ),
        (
            vec!["--to-tls", "--ca", &ca, "--to-cert", &good],
            "sockkit: --to-cert needs --to-key: the private key of the certificate\n".into(),
        ),
        (
            vec!["--to-tls", "--ca", &ca, "--to-key", &good_key],
            "sockkit: --to-key needs --to-cert: the certificate the key belongs to\n".into(),
        ),
        (
            vec!["--to-tls", "--ca", &ca, "--to-cert", &good, "--to-key", &other_key],
            format!("sockkit: key file {other_key} does not match the certificate in {good}\n"),
        ),
        (
            vec!["--to-tls", "--ca", &ca, "--to-cert", &ca, "--to-key", &ca],
            format!("sockkit: key file {ca}: no private key in it"),
        ),
    ];
    for (flags, want) in cases {
        let mut args: Vec<&str> = vec![base[0]];
        args.extend(flags.iter().copied());
        args.extend_from_slice(&base[1..]);
        let out = run(&args, b"", T);
        assert_eq!(out.code(), Some(2), "{args:?}: {}", out.stderr);
        assert!(out.stderr.starts_with(&want), "{args:?}: {}", out.stderr);
        assert!(!out.stderr.contains("listening on"), "{}", out.stderr);
    }
}

#[test]
fn an_x509_v1_certificate_is_named_as_such_not_as_a_key_mismatch() {
    let Some(openssl) = peer_or_skip("openssl") else {
        return;
    };
    let dir = TempDir::new("tls-v1");
    let (key, csr, cert) = (dir.path("v1.key"), dir.path("v1.csr"), dir.path("v1.pem"));
    let ok = |args: &[&std::ffi::OsStr]| {
        let out = Command::new(&openssl).args(args).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    ok(&[
        "req".as_ref(),
        "-newkey".as_ref(),
        "ec".as_ref(),
        "-pkeyopt".as_ref(),
        "ec_paramgen_curve:P-256".as_ref(),
        "-nodes".as_ref(),
        "-subj".as_ref(),
        "/CN=v1 client".as_ref(),
        "-keyout".as_ref(),
        key.as_os_str(),
        "-out".as_ref(),
        csr.as_os_str(),
    ]);
    // `x509 -req` without -extfile signs a version 1 certificate.
    ok(&[
        "x509".as_ref(),
        "-req".as_ref(),
        "-in".as_ref(),
        csr.as_os_str(),
        "-key".as_ref(),
        key.as_os_str(),
        "-out".as_ref(),
        cert.as_os_str(),
    ]);
    let (cert, key) = (cert.display().to_string(), key.display().to_string());
    for args in [
        vec![
            "connect",
            "--tls",
            "--cert",
            &cert,
            "--key",
            &key,
            "127.0.0.1",
            "9",
        ],
        vec![
            "forward",
            "--to-tls",
            "--to-cert",
            &cert,
            "--to-key",
            &key,
            "127.0.0.1",
            "0",
            "127.0.0.1",
            "9",
        ],
    ] {
        let out = run(&args, b"", T);
        assert_eq!(out.code(), Some(2), "{args:?}: {}", out.stderr);
        let want = format!(
            "sockkit: certificate file {cert}: its first certificate is not one rustls can use"
        );
        assert!(out.stderr.starts_with(&want), "{}", out.stderr);
        assert!(
            out.stderr.contains("it is X.509 v1, and v3 is needed"),
            "{}",
            out.stderr
        );
        assert!(!out.stderr.contains("does not match"), "{}", out.stderr);
    }
}

#[test]
fn forward_to_tls_with_a_bad_target_certificate_fails_that_pair_in_one_line_and_goes_on() {
    let pki = Pki::new();
    // The target serves a self-signed certificate, which --ca does not vouch for.
    let (_target, taddr, _ttap) = engine_tls(
        "echo",
        &[
            "--cert",
            &pki.cert("selfsigned"),
            "--key",
            &pki.key("selfsigned"),
        ],
    );
    let (mut fwd, addr, mut tap) =
        forward(&["--to-tls", "--ca", &pki.ca()], "localhost", taddr.port());
    for round in 0..2 {
        let out = run(
            &["connect", "127.0.0.1", &addr.port().to_string()],
            b"hello\n",
            T,
        );
        assert_ne!(out.code(), Some(0), "round {round}: {}", out.stderr);
        assert!(out.stdout.is_empty());
        let said = tap
            .wait_for(T, |l| {
                l.starts_with("sockkit: dropped ")
                    && l.contains("the target: TLS: the server's certificate")
            })
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
        // (When the client's bytes were waiting in the handshake, a pair line before it says
        // they were lost: forward_to_tls_counts_bytes_held_in_a_failed_handshake_...)
        assert!(said.starts_with("sockkit: dropped 127.0.0.1:"), "{said}");
        assert!(said.contains("pass --ca FILE"), "{said}");
        assert!(fwd.try_status().is_none(), "the forwarder goes on");
    }
    // TLS is refused where it cannot be: datagrams, and --socks5.
    for args in [
        vec!["forward", "-u", "--tls", "127.0.0.1", "0", "127.0.0.1", "9"],
        vec!["forward", "--socks5", "--to-tls", "127.0.0.1", "0"],
    ] {
        let out = run(&args, b"", T);
        assert_eq!(out.code(), Some(2), "{args:?}: {}", out.stderr);
        assert!(
            out.stderr.starts_with("sockkit: --tls and --to-tls "),
            "{}",
            out.stderr
        );
    }
}

#[test]
fn broker_tls_passes_one_tls_clients_bytes_to_another() {
    let pki = Pki::new();
    let (_hub, addr, mut tap) = engine_tls(
        "listen",
        &[
            "--broker",
            "-v",
            "--cert",
            &pki.cert("good"),
            "--key",
            &pki.key("good"),
        ],
    );
    let mut a = spawn_peer(&mut sockkit(&[
        "connect",
        "--tls",
        "--ca",
        &pki.ca(),
        "localhost",
        &addr.port().to_string(),
    ]));
    let a_in = a.stdin();
    let mut a_out = LineTap::new(a.stdout());
    tap.wait_for(T, |l| l.contains(": TLS handshake done in "))
        .unwrap_or_else(|e| panic!("{e}"));
    let out = tls_client(&pki, addr, b"to everyone\n");
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    line(&mut a_out, "to everyone");
    drop(a_in);
    assert_eq!(a.status_within(T, "connect --tls").code(), Some(0));
}

#[test]
fn forward_tls_drops_a_client_stalled_in_its_handshake_at_w() {
    let pki = Pki::new();
    let target = util::Server::start(&["echo", "127.0.0.1", "0"]);
    let (mut fwd, addr, mut tap) = forward(
        &[
            "-w",
            "1s",
            "--tls",
            "--cert",
            &pki.cert("good"),
            "--key",
            &pki.key("good"),
        ],
        "127.0.0.1",
        target.port(),
    );
    let mut stalled = std::net::TcpStream::connect(addr).unwrap();
    stalled.write_all(&[22, 3, 1]).unwrap();
    let said = tap
        .wait_for(T, |l| l.contains("TLS handshake not finished within 1s"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(said.starts_with("sockkit: dropped 127.0.0.1:"), "{said}");
    assert!(said.contains("the client: "), "{said}");
    assert!(fwd.try_status().is_none(), "the forwarder goes on");
    // A client that speaks TLS is forwarded to the plain echo and back.
    let out = tls_client(&pki, addr, b"through\n");
    assert_eq!(out.stdout, b"through\n", "{}", out.stderr);
}

#[test]
fn vv_on_echo_tls_narrates_each_clients_records_tagged_with_the_client() {
    let pki = Pki::new();
    let (_echo, addr, mut tap) = engine_tls(
        "echo",
        &[
            "-vv",
            "--cert",
            &pki.cert("good"),
            "--key",
            &pki.key("good"),
        ],
    );
    let out = tls_client(&pki, addr, b"hi\n");
    assert_eq!(out.stdout, b"hi\n", "{}", out.stderr);
    let hello = tap
        .wait_seen(T, |l| l.contains("<- TLS record handshake (TLS 1.0), "))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        hello.contains(" 127.0.0.1:") && hello.contains(": ClientHello ("),
        "{hello}"
    );
    let server = tap
        .wait_seen(T, |l| l.contains("-> TLS record handshake (TLS 1.2), "))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(server.contains(": ServerHello ("), "{server}");
    let text = tap.text();
    let at = |l: &str| text.find(l).unwrap();
    assert!(
        at(&hello) < at(&server),
        "ClientHello before ServerHello:\n{text}"
    );
}

/// A TLS client that ends with a bare TCP FIN (python's `SSLSocket.shutdown` drops the TLS
/// object and shuts the socket, no close_notify): forward says so, and passes the truncation
/// on as one, so `echo --tls` behind it sees it too instead of a clean close_notify.
#[test]
fn forward_tls_passes_a_truncation_on_and_says_so() {
    let Some(python) = peer_or_skip("python3") else {
        return;
    };
    let pki = Pki::new();
    let (_echo, eaddr, mut etap) = engine_tls(
        "echo",
        &["--cert", &pki.cert("good"), "--key", &pki.key("good")],
    );
    let (_fwd, addr, mut tap) = forward(
        &[
            "--tls",
            "--cert",
            &pki.cert("good"),
            "--key",
            &pki.key("good"),
            "--to-tls",
            "--insecure",
        ],
        "localhost",
        eaddr.port(),
    );
    let script = "import socket, ssl, sys\n\
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)\n\
        ctx.check_hostname = False\n\
        ctx.verify_mode = ssl.CERT_NONE\n\
        raw = socket.create_connection(('127.0.0.1', int(sys.argv[1])), timeout=10)\n\
        s = ctx.wrap_socket(raw, server_hostname='localhost')\n\
        s.sendall(b'cut short\\n')\n\
        got = b''\n\
        while len(got) < 10:\n\
        \x20   d = s.recv(100)\n\
        \x20   if not d: break\n\
        \x20   got += d\n\
        sys.stdout.write(got.decode())\n\
        s.shutdown(socket.SHUT_WR)\n\
        while s.recv(4096): pass\n";
    let mut child = ChildGuard::spawn(
        Command::new(python)
            .args(["-c", script, &addr.port().to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    );
    let mut out = LineTap::new(child.stdout());
    line(&mut out, "cut short");
    assert_eq!(child.status_within(T, "python3 client").code(), Some(0));
    let said = tap
        .wait_for(T, |l| l.contains("possible truncation"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(said.starts_with("sockkit: 127.0.0.1:"), "{said}");
    assert!(
        said.contains("(client side): TLS: EOF without close_notify after 10 B"),
        "{said}"
    );
    assert!(said.contains("bare FIN"), "{said}");
    let echo_said = etap
        .wait_for(T, |l| l.contains("close_notify"))
        .unwrap_or_else(|e| panic!("echo: {e}"));
    assert!(
        echo_said.contains("TLS: EOF without close_notify after 10 B: possible truncation"),
        "{echo_said}"
    );
}

/// Bytes forward hands to the target's TLS before its handshake ends are not delivered:
/// when the handshake then fails (a certificate --ca does not vouch for), the pair line
/// counts them undelivered, not "to the target". The test relays forward's connection to
/// the target only after the client's bytes are in, so they wait in the handshake.
#[test]
fn forward_to_tls_counts_bytes_held_in_a_failed_handshake_as_undelivered() {
    let pki = Pki::new();
    let (_target, taddr, _ttap) = engine_tls(
        "echo",
        &[
            "--cert",
            &pki.cert("selfsigned"),
            "--key",
            &pki.key("selfsigned"),
        ],
    );
    let gate = TcpListener::bind("127.0.0.1:0").unwrap();
    let gport = gate.local_addr().unwrap().port();
    let (mut fwd, addr, mut tap) = forward(&["--to-tls", "--ca", &pki.ca()], "localhost", gport);
    let mut client = std::net::TcpStream::connect(addr).unwrap();
    client.write_all(&[b'x'; 10_000]).unwrap();
    // Only now does the target side answer forward's ClientHello.
    let (from_fwd, _) = gate.accept().unwrap();
    let to_target = std::net::TcpStream::connect(taddr).unwrap();
    for (mut a, mut b) in [
        (
            from_fwd.try_clone().unwrap(),
            to_target.try_clone().unwrap(),
        ),
        (to_target, from_fwd),
    ] {
        thread::spawn(move || {
            let _ = std::io::copy(&mut a, &mut b);
            let _ = b.shutdown(std::net::Shutdown::Write);
        });
    }
    let said = tap
        .wait_for(T, |l| l.starts_with("sockkit: pair "))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        said.contains(": 0 B to the target, 0 B back, 9.77 KiB undelivered"),
        "{said}"
    );
    assert!(fwd.try_status().is_none(), "the forwarder goes on");
}

#[test]
fn data_and_close_notify_in_one_flight_get_the_echo_and_the_servers_close() {
    // A client that writes its request and its close_notify in one send (as Python's
    // unwrap() or Go's CloseWrite() do): echo --tls must see both, answer, and close.
    use rustls::pki_types::ServerName;
    use rustls::pki_types::pem::PemObject;
    let pki = Pki::new();
    let (_echo, addr, _tap) = engine_tls(
        "echo",
        &["--cert", &pki.cert("good"), "--key", &pki.key("good")],
    );
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls::pki_types::CertificateDer::pem_file_iter(pki.ca()).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let name = ServerName::try_from("localhost").unwrap();
    let mut conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let mut tcp = std::net::TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(T)).unwrap();
    while conn.is_handshaking() {
        conn.complete_io(&mut tcp).unwrap();
    }
    conn.writer().write_all(b"hello over tls\n").unwrap();
    conn.send_close_notify();
    // Both records, in one write.
    let mut flight = Vec::new();
    while conn.wants_write() {
        conn.write_tls(&mut flight).unwrap();
    }
    tcp.write_all(&flight).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        // A server that never saw the close_notify never closes: the read times out (T).
        match conn.reader().read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                let n = conn
                    .read_tls(&mut tcp)
                    .expect("the server's answer and close");
                assert!(n > 0, "TCP EOF before the server's close_notify");
                conn.process_new_packets().unwrap();
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(got, b"hello over tls\n");
}

/// A TLS peer that stops reading once its handshake is done: its socket's receive buffer is
/// set small before it connects (or listens), so the sender fills it and then forward's
/// buffers. Records are fed to rustls whole, so none is left half-read in rustls.
struct Stalled {
    tcp: std::net::TcpStream,
    conn: rustls::Connection,
    /// Plaintext it has read, in all.
    read: u64,
}

/// A socket with a 32 KiB receive buffer: a few whole records fit in it, with a piece of
/// the next one.
fn small_rcvbuf() -> socket2::Socket {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    s.set_recv_buffer_size(32 * 1024).unwrap();
    s
}

impl Stalled {
    /// Runs the handshake on a blocking `tcp`, a record at a time.
    fn handshake(tcp: std::net::TcpStream, conn: rustls::Connection) -> Stalled {
        tcp.set_read_timeout(Some(T)).unwrap();
        let mut s = Stalled { tcp, conn, read: 0 };
        loop {
            while s.conn.wants_write() {
                s.conn.write_tls(&mut s.tcp).unwrap();
            }
            if !s.conn.is_handshaking() {
                break;
            }
            let mut head = [0u8; 5];
            s.tcp.read_exact(&mut head).unwrap();
            let mut rec = head.to_vec();
            rec.resize(5 + usize::from(u16::from_be_bytes([head[3], head[4]])), 0);
            s.tcp.read_exact(&mut rec[5..]).unwrap();
            s.feed(&rec);
        }
        s
    }

    /// Gives rustls whole records and reads the plaintext they carry.
    fn feed(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            self.conn.read_tls(&mut data).unwrap();
            self.conn.process_new_packets().unwrap();
        }
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match self.conn.reader().read(&mut buf) {
                Ok(0) => break,
                Ok(n) => self.read += n as u64,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => panic!("reading the plaintext: {e}"),
            }
        }
    }

    /// Waits (bounded) until what waits in its receive queue stops growing (the sender is
    /// stalled on the full window), then reads, by peeking, the whole records there: peeking
    /// frees no room, so no more can arrive. Then resets the connection (SO_LINGER 0): what
    /// it read in all.
    fn read_queued_then_reset(mut self) -> u64 {
        self.tcp.set_nonblocking(true).unwrap();
        let mut buf = vec![0u8; 4 << 20];
        let peek = |tcp: &std::net::TcpStream, buf: &mut [u8]| match tcp.peek(buf) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => 0,
            Err(e) => panic!("peek: {e}"),
        };
        let deadline = std::time::Instant::now() + T;
        let (mut last, mut same) = (usize::MAX, 0);
        while same < 10 {
            assert!(
                std::time::Instant::now() < deadline,
                "the sender never stalled"
            );
            thread::sleep(std::time::Duration::from_millis(100));
            let n = peek(&self.tcp, &mut buf);
            if n == last && n > 0 {
                same += 1;
            } else {
                (last, same) = (n, 0);
            }
        }
        let n = peek(&self.tcp, &mut buf);
        let mut whole = 0;
        while whole + 5 <= n {
            let len = 5 + usize::from(u16::from_be_bytes([buf[whole + 3], buf[whole + 4]]));
            if whole + len > n {
                break;
            }
            whole += len;
        }
        self.feed(&buf[..whole]);
        socket2::SockRef::from(&self.tcp)
            .set_linger(Some(std::time::Duration::ZERO))
            .unwrap();
        self.read
    }
}

/// Writes to `tcp` until it fails (the reset), then says how many bytes reached the other
/// end's kernel: what write() took, less what was still unacknowledged in ours (SIOCOUTQ).
fn send_until_reset(mut tcp: std::net::TcpStream) -> u64 {
    use std::os::fd::AsRawFd;
    tcp.set_write_timeout(Some(T)).unwrap();
    let chunk = vec![0x5au8; 64 * 1024];
    let mut sent = 0u64;
    while sent < 64 << 20 {
        match tcp.write(&chunk) {
            Ok(n) => sent += n as u64,
            Err(e) => {
                assert!(
                    matches!(
                        e.kind(),
                        std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
                    ),
                    "the sender's write: {e}"
                );
                break;
            }
        }
    }
    assert!(sent < 64 << 20, "the sender was never reset");
    let mut outq: libc::c_int = 0;
    // SAFETY: TIOCOUTQ (SIOCOUTQ) writes one int to a live int.
    let rc = unsafe { libc::ioctl(tcp.as_raw_fd(), libc::TIOCOUTQ, &raw mut outq) };
    assert_eq!(rc, 0, "SIOCOUTQ: {}", std::io::Error::last_os_error());
    sent - u64::try_from(outq).unwrap()
}

/// The counts a forwarder's pair line shows, formatted as it formats them.
fn shown(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let (mut value, mut unit) = (n as f64 / 1024.0, 0);
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.2} {}", UNITS[unit])
}

fn server_config(pki: &Pki) -> Arc<rustls::ServerConfig> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<_> = CertificateDer::pem_file_iter(pki.cert("good"))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let key = PrivateKeyDer::from_pem_file(pki.key("good")).unwrap();
    Arc::new(
        rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap(),
    )
}

fn client_config(pki: &Pki) -> Arc<rustls::ClientConfig> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls::pki_types::CertificateDer::pem_file_iter(pki.ca()).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    Arc::new(
        rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth(),
    )
}

/// What the forwarder said of its one pair, reset by a stalled peer: (to the target, back,
/// undelivered), from the --json object or, without `json`, checked against the pair line.
fn pair_counts(tap: &mut LineTap, json: bool, want: (u64, u64, u64)) {
    if json {
        let said = tap
            .wait_for(T, |l| l.contains("\"kind\":\"pair\""))
            .unwrap_or_else(|e| panic!("{e}"));
        let o: serde_json::Value = serde_json::from_str(&said).unwrap();
        let got = (
            o["up"].as_u64().unwrap(),
            o["down"].as_u64().unwrap(),
            o["undelivered"].as_u64().unwrap(),
        );
        assert_eq!(got, want, "(up, down, undelivered): {said}");
        assert!(o["reason"].as_str().unwrap().starts_with("reset"), "{said}");
    } else {
        let said = tap
            .wait_for(T, |l| l.starts_with("sockkit: pair "))
            .unwrap_or_else(|e| panic!("{e}"));
        let counts = format!(
            ": {} to the target, {} back, {} undelivered,",
            shown(want.0),
            shown(want.1),
            shown(want.2)
        );
        assert!(said.contains(&counts), "want {counts:?} in {said}");
    }
}

/// `forward --to-tls` in front of a TLS target that stops reading and then resets: what the
/// client sent and the target never read is counted undelivered, to the byte (not "to the
/// target" because rustls or the kernel took it), and "to the target" is what it read.
fn forward_to_tls_target_reset(json: bool) {
    let pki = Pki::new();
    let listener = small_rcvbuf();
    listener
        .bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
        .unwrap();
    listener.listen(1).unwrap();
    let port = listener.local_addr().unwrap().as_socket().unwrap().port();
    let config = server_config(&pki);
    let target = thread::spawn(move || {
        let (tcp, _) = listener.accept().unwrap();
        let conn = rustls::ServerConnection::new(config).unwrap();
        Stalled::handshake(tcp.into(), conn.into()).read_queued_then_reset()
    });
    let flag = if json { "--json" } else { "-v" };
    let (_fwd, addr, mut tap) = forward(&["--to-tls", "--ca", &pki.ca(), flag], "localhost", port);
    let client = std::net::TcpStream::connect(addr).unwrap();
    let sender = thread::spawn(move || send_until_reset(client));
    let read = join_within(target, T);
    let sent = join_within(sender, T);
    assert!(sent > read + (1 << 20), "sent {sent}, read {read}");
    pair_counts(&mut tap, json, (read, 0, sent - read));
}

#[test]
fn forward_to_tls_counts_what_a_reset_target_never_read_as_undelivered() {
    forward_to_tls_target_reset(false);
}

#[test]
fn forward_to_tls_json_counts_what_a_reset_target_never_read_as_undelivered() {
    forward_to_tls_target_reset(true);
}

/// `forward --tls` toward a TLS client that stops reading and then resets, while a plain
/// target sends: what the target sent and the client never read is counted undelivered, to
/// the byte, and "back" is what the client read.
fn forward_tls_client_reset(json: bool) {
    let pki = Pki::new();
    let (taddr, target) = util::serve_once(send_until_reset);
    let flag = if json { "--json" } else { "-v" };
    let (_fwd, addr, mut tap) = forward(
        &[
            "--tls",
            "--cert",
            &pki.cert("good"),
            "--key",
            &pki.key("good"),
            flag,
        ],
        "127.0.0.1",
        taddr.port(),
    );
    let sock = small_rcvbuf();
    sock.connect(&addr.into()).unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let conn = rustls::ClientConnection::new(client_config(&pki), name).unwrap();
    let read = Stalled::handshake(sock.into(), conn.into()).read_queued_then_reset();
    let sent = join_within(target, T);
    assert!(sent > read + (1 << 20), "sent {sent}, read {read}");
    pair_counts(&mut tap, json, (0, read, sent - read));
}

#[test]
fn forward_tls_counts_what_a_reset_client_never_read_as_undelivered() {
    forward_tls_client_reset(false);
}

#[test]
fn forward_tls_json_counts_what_a_reset_client_never_read_as_undelivered() {
    forward_tls_client_reset(true);
}
