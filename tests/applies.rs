//! Every option on every transport and subcommand, from the table in `src/cmd/applies.rs`:
//! each cell is run through the real binary. A refused cell must be a usage error (exit 2)
//! whose one line is the table's reason; a cell clap refuses must be a one-line usage error;
//! an applying cell must get past the check to its first socket call (`-vv` narrates it) and,
//! where an option shows without traffic (a setsockopt, a bind, a line of `-v`, a file), show
//! its effect there.
//! What the wire stages do on the transports that used to miss them (UDP, Unix) is checked
//! byte for byte below, with `--broker -U` and `--max-conns` on a plain listen.

mod util;

use std::io::{Read, Write};
use std::net::{Shutdown, UdpSocket};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::thread;

use sockkit::cmd::applies::{Mode, TABLE, Transport, Verdict};
use util::*;

/// The command line of one cell: the subcommand in `mode` on `transport`, with `extra` (the
/// option under test) before the endpoint. `selector`: the option that makes a broker
/// (`--broker` or `--chat`), unless the option under test is one.
fn cell_args(mode: Mode, transport: Transport, extra: &[String], sock: &Path) -> Vec<String> {
    let mut v: Vec<String> = Vec::new();
    let push = |v: &mut Vec<String>, s: &str| v.push(s.to_string());
    match mode {
        Mode::Connect | Mode::Check => push(&mut v, "connect"),
        Mode::Listen | Mode::Broker => push(&mut v, "listen"),
        Mode::Echo => push(&mut v, "echo"),
        Mode::Knock => push(&mut v, "knock"),
    }
    if mode == Mode::Check && !extra.iter().any(|e| e == "-z") {
        push(&mut v, "-z");
    }
    if mode == Mode::Broker && !extra.iter().any(|e| e == "--broker" || e == "--chat") {
        push(&mut v, "--broker");
    }
    if matches!(transport, Transport::Udp | Transport::UnixDgram)
        && !extra.iter().any(|e| e == "-u")
    {
        push(&mut v, "-u");
    }
    v.extend(extra.iter().cloned());
    if transport.is_unix() {
        if !extra.iter().any(|e| e == "-U") {
            push(&mut v, "-U");
            v.push(sock.display().to_string());
        }
        return v;
    }
    let host = if extra.iter().any(|e| e == "-6") {
        "::1"
    } else {
        "127.0.0.1"
    };
    push(&mut v, host);
    push(
        &mut v,
        match mode {
            Mode::Connect | Mode::Check => "9",
            _ => "0",
        },
    );
    v
}

/// Whether a cell can be written down at all: `-u` means datagrams, `-U` a Unix socket, and
/// knock has no `-u`.
fn expressible(id: &str, transport: Transport, mode: Mode) -> bool {
    match id {
        "udp" if transport.is_stream() => false,
        "unix" if !transport.is_unix() => false,
        _ => mode != Mode::Knock || transport.is_stream(),
    }
}

/// The option's sample with `{dir}` filled in.
fn sample(row_sample: &[&str], dir: &TempDir) -> Vec<String> {
    row_sample
        .iter()
        .map(|s| s.replace("{dir}", &dir.root().display().to_string()))
        .collect()
}

/// The reason the binary must give for a cell: the first refusal, in table order, among the
/// options on its command line (the option under test and the selectors the cell implies).
fn expected_refusal(id: &str, mode: Mode, transport: Transport) -> Option<&'static str> {
    let mut given = vec![id];
    if mode == Mode::Check {
        given.push("scan");
    }
    if mode == Mode::Broker && id != "chat" {
        given.push("broker");
    }
    if !transport.is_stream() {
        given.push("udp");
    }
    if transport.is_unix() {
        given.push("unix");
    }
    TABLE
        .iter()
        .filter(|r| r.modes.contains(&mode) && given.contains(&r.id))
        .find_map(|r| match r.verdict(mode, transport) {
            Verdict::Refused(why) => Some(why),
            _ => None,
        })
}

#[test]
fn every_cell_of_the_table_is_honoured_or_refused() {
    let mut cells = 0;
    // A certificate and key for the TLS rows' samples (--ca, --cert/--key, --client-ca).
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let pair = (made.cert.pem(), made.signing_key.serialize_pem());
    for (n, row) in TABLE.iter().enumerate() {
        for &mode in row.modes {
            for transport in Transport::ALL {
                if !expressible(row.id, transport, mode) {
                    continue;
                }
                cells += 1;
                let dir = TempDir::new("applies");
                dir.file("jokes", "Lettuce\tLettuce in, it's cold out here!\n");
                dir.file("cert.pem", &pair.0);
                dir.file("ca.pem", &pair.0);
                dir.file("key.pem", &pair.1);
                let sock = dir.path(&format!("s{n}-{mode:?}-{transport:?}"));
                let extra = sample(row.sample, &dir);
                let args = cell_args(mode, transport, &extra, &sock);
                let what = format!("{} in {mode:?} over {transport:?}: {args:?}", row.flag);
                // clap decides first; then the table, in its order.
                let parser = row.verdict(mode, transport) == Verdict::Parser;
                match expected_refusal(row.id, mode, transport) {
                    _ if parser => {
                        let out = run(&args, b"", T);
                        assert_eq!(out.code(), Some(2), "{what}: {}", out.stderr);
                        assert!(
                            out.stderr.starts_with("sockkit: ") && out.stderr.lines().count() == 1,
                            "{what}: {}",
                            out.stderr
                        );
                    }
                    Some(why) => {
                        let out = run(&args, b"", T);
                        assert_eq!(out.code(), Some(2), "{what}: {}", out.stderr);
                        assert_eq!(out.stderr, format!("sockkit: {why}\n"), "{what}");
                    }
                    None => {
                        let shows = effect(row.id, mode, transport);
                        gets_to_its_first_socket(&args, shows, &what);
                        if row.id == "hexdump_file" {
                            assert!(dir.path("dump").exists(), "{what}: no dump file");
                        }
                    }
                }
            }
        }
    }
    println!("{cells} cells checked");
}

/// What an applying option shows on stderr at `-vv` before any byte moves, where it shows
/// without a peer: the call it causes or the line it adds. `None`: its effect needs traffic
/// (the wire stages, the endings, `-k`), proven by the tests below and in relay.rs,
/// udp_unix.rs, echo.rs.
fn effect(id: &str, mode: Mode, transport: Transport) -> Option<&'static str> {
    let server = !matches!(mode, Mode::Connect | Mode::Check);
    let scan_udp = mode == Mode::Check && transport == Transport::Udp;
    Some(match id {
        "opts" => "SO_RCVBUF, 65536",
        "udp" => "SOCK_DGRAM",
        "unix" => "socket(AF_UNIX",
        "ipv4" if !scan_udp => "socket(AF_INET,",
        "ipv6" if !scan_udp => "socket(AF_INET6",
        "source" => "(source for the connect)",
        "scan" if transport == Transport::Udp => "each port gets one empty datagram",
        "scan" => "checking 1 port",
        "show_opts" if server => "socket options of ",
        "threads" => "serving with 2 event-loop threads",
        "jokes" => "1 jokes from",
        "shuffle" => "in a random order per client",
        "broker" => "broker: each client's bytes go to every other client",
        "chat" => "chat: each client's bytes go to every other client",
        _ => return None,
    })
}

/// An applying cell: past the table check, the program makes its socket (`-vv` narrates the
/// call) and shows `effect` if given, whatever happens next (a refused port is fine: the flag
/// was not).
fn gets_to_its_first_socket(args: &[String], effect: Option<&str>, what: &str) {
    let mut all = vec!["-vv".to_string()];
    all.extend(args.iter().cloned());
    // The subcommand stays first.
    all.swap(0, 1);
    let mut child = ChildGuard::spawn(&mut sockkit(&all));
    let mut err = LineTap::new(child.stderr());
    let want = effect.unwrap_or(" socket(");
    let seen = err.wait_seen(T, |l| l.contains(want));
    if let Err(e) = seen {
        panic!("{what}: no `{want}`: {e}");
    }
    if let Some(status) = child.try_status() {
        assert_ne!(status.code(), Some(2), "{what}: {}", err.text());
    }
}

/// `printf 'abc\n' | sockkit connect -u --crlf -x HOST PORT`: the first example.
#[test]
fn connect_u_sends_crlf_and_dumps_each_datagram() {
    for file in [false, true] {
        let dir = TempDir::new("applies-cu");
        let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
        peer.set_read_timeout(Some(T)).unwrap();
        let port = peer.local_addr().unwrap().port().to_string();
        let dump = dir.path("dump");
        let mut args = vec!["connect", "-u", "--crlf", "--quit-after", "0s"];
        let dump_arg = dump.display().to_string();
        if file {
            args.extend(["--hexdump-file", &dump_arg]);
        } else {
            args.push("-x");
        }
        args.extend(["127.0.0.1", &port]);
        let mut child = ChildGuard::spawn(&mut sockkit(&args));
        let mut stdin = child.stdin();
        let mut out = LineTap::new(child.stdout());
        let mut err = LineTap::new(child.stderr());
        stdin.write_all(b"abc\n").unwrap();
        let mut buf = [0u8; 64];
        let (n, from) = peer.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"abc\r\n", "--crlf on connect -u");
        peer.send_to(b"hi\n", from).unwrap();
        out.wait_for(T, |l| l == "hi").unwrap();
        drop(stdin);
        assert!(
            child.status_within(T, "connect -u").success(),
            "{}",
            err.text()
        );
        let said = err.finish(T);
        let want = "> datagram: 5 bytes\n\
                    > 00000000  61 62 63 0d 0a                                    |abc..|\n\
                    < datagram: 3 bytes\n\
                    < 00000000  68 69 0a                                          |hi.|\n";
        if file {
            assert_eq!(std::fs::read_to_string(&dump).unwrap(), want);
            assert_eq!(said, "", "--hexdump-file keeps stderr clear");
        } else {
            assert_eq!(said, want);
        }
    }
}

#[test]
fn listen_u_sends_crlf_and_dumps_each_datagram() {
    for file in [false, true] {
        let dir = TempDir::new("applies-lu");
        let dump = dir.path("dump");
        let dump_arg = dump.display().to_string();
        let mut args = vec!["listen", "-u", "--crlf", "--quit-after", "0s"];
        if file {
            args.extend(["--hexdump-file", &dump_arg]);
        } else {
            args.push("-x");
        }
        args.extend(["127.0.0.1", "0"]);
        let mut server = Server::start(&args);
        let mut stdin = server.child.stdin();
        let mut out = LineTap::new(server.child.stdout());
        let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
        peer.set_read_timeout(Some(T)).unwrap();
        peer.send_to(b"hey\n", server.addr).unwrap();
        out.wait_for(T, |l| l == "hey").unwrap();
        stdin.write_all(b"abc\n").unwrap();
        let mut buf = [0u8; 64];
        let (n, _) = peer.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"abc\r\n", "--crlf on listen -u");
        drop(stdin);
        let status = server.child.status_within(T, "listen -u");
        let said = server.stderr.finish(T);
        assert!(status.success(), "{said}");
        let want = "< datagram: 4 bytes\n\
                    < 00000000  68 65 79 0a                                       |hey.|\n\
                    > datagram: 5 bytes\n\
                    > 00000000  61 62 63 0d 0a                                    |abc..|\n";
        let dumped: String = said
            .lines()
            .filter(|l| l.starts_with("> ") || l.starts_with("< "))
            .map(|l| format!("{l}\n"))
            .collect();
        if file {
            assert_eq!(std::fs::read_to_string(&dump).unwrap(), want);
            assert_eq!(dumped, "", "--hexdump-file keeps stderr clear");
        } else {
            assert_eq!(dumped, want);
        }
    }
}

/// The stream dump has no datagram labels: offsets run through the session.
const STREAM_DUMP: &str = "> 00000000  61 62 63 0d 0a                                    |abc..|\n\
                           < 00000000  68 69 0a                                          |hi.|\n";

#[test]
fn connect_unix_sends_crlf_and_dumps() {
    for file in [false, true] {
        let dir = TempDir::new("applies-cU");
        let path = dir.path("s");
        let listener = UnixListener::bind(&path).unwrap();
        let peer = thread::spawn(move || {
            let (mut c, _) = listener.accept().unwrap();
            c.set_read_timeout(Some(T)).unwrap();
            let mut got = Vec::new();
            c.read_to_end(&mut got).unwrap();
            c.write_all(b"hi\n").unwrap();
            got
        });
        let dump = dir.path("dump").display().to_string();
        let path = path.display().to_string();
        let mut args = vec!["connect", "--crlf", "-U", &path];
        if file {
            args.extend(["--hexdump-file", &dump]);
        } else {
            args.push("-x");
        }
        let out = run(&args, b"abc\n", T);
        assert_eq!(out.code(), Some(0), "{}", out.stderr);
        assert_eq!(join_within(peer, T), b"abc\r\n", "--crlf on connect -U");
        assert_eq!(out.stdout, b"hi\n");
        if file {
            assert_eq!(std::fs::read_to_string(&dump).unwrap(), STREAM_DUMP);
            assert_eq!(out.stderr, "");
        } else {
            assert_eq!(out.stderr, STREAM_DUMP);
        }
    }
}

#[test]
fn listen_unix_sends_crlf_and_dumps() {
    for file in [false, true] {
        let dir = TempDir::new("applies-lU");
        let path = dir.path("s").display().to_string();
        let dump = dir.path("dump").display().to_string();
        let mut args = vec!["listen", "--crlf", "-U", &path];
        if file {
            args.extend(["--hexdump-file", &dump]);
        } else {
            args.push("-x");
        }
        let (mut child, mut err) = start_unix(&args);
        let mut stdin = child.stdin();
        let stdout = collect(child.stdout());
        let mut c = UnixStream::connect(&path).unwrap();
        c.set_read_timeout(Some(T)).unwrap();
        c.write_all(b"hi\n").unwrap();
        c.shutdown(Shutdown::Write).unwrap();
        stdin.write_all(b"abc\n").unwrap();
        drop(stdin);
        let mut got = Vec::new();
        c.read_to_end(&mut got).unwrap();
        assert_eq!(got, b"abc\r\n", "--crlf on listen -U");
        let status = child.status_within(T, "listen -U");
        let said = err.finish(T);
        assert!(status.success(), "{said}");
        assert_eq!(join_within(stdout, T), b"hi\n");
        let dumped: String = said
            .lines()
            .filter(|l| l.starts_with("> ") || l.starts_with("< "))
            .map(|l| format!("{l}\n"))
            .collect();
        // Which direction is dumped first depends on which byte moved first: compare by
        // direction.
        let by_dir = |text: &str, mark: char| -> String {
            text.lines()
                .filter(|l| l.starts_with(mark))
                .map(|l| format!("{l}\n"))
                .collect()
        };
        let shown = if file {
            assert_eq!(dumped, "", "--hexdump-file keeps stderr clear");
            std::fs::read_to_string(&dump).unwrap()
        } else {
            dumped
        };
        for mark in ['>', '<'] {
            assert_eq!(by_dir(&shown, mark), by_dir(STREAM_DUMP, mark), "{mark}");
        }
    }
}

/// A server on a Unix socket, ready: its `listening on PATH` line was seen.
fn start_unix(args: &[&str]) -> (ChildGuard, LineTap) {
    let mut child = ChildGuard::spawn(&mut sockkit(args));
    let mut err = LineTap::new(child.stderr());
    err.wait_for(T, |l| l.contains("listening on "))
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    (child, err)
}

/// `listen --broker -U PATH` used to run a plain one-client listen: now it is the broker.
#[test]
fn broker_runs_on_a_unix_stream_socket() {
    let dir = TempDir::new("applies-bU");
    let path = dir.path("hub").display().to_string();
    let (_server, mut err) = start_unix(&["listen", "--broker", "-v", "-U", &path]);
    let mut a = UnixStream::connect(&path).unwrap();
    err.wait_for(T, |l| l.contains("accepted")).unwrap();
    let mut b = UnixStream::connect(&path).unwrap();
    err.wait_for(T, |l| l.contains("accepted")).unwrap();
    b.set_read_timeout(Some(T)).unwrap();
    a.write_all(b"to everyone\n").unwrap();
    let mut buf = [0u8; 12];
    b.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"to everyone\n");
}

/// `echo -U PATH -x` used to drop the dump: the Unix stream server now shows each client's
/// bytes as the TCP one does.
#[test]
fn echo_on_a_unix_socket_shows_the_hex_view() {
    let dir = TempDir::new("applies-eU");
    let path = dir.path("echo").display().to_string();
    let (_server, mut err) = start_unix(&["echo", "-x", "-U", &path]);
    let mut c = UnixStream::connect(&path).unwrap();
    c.set_read_timeout(Some(T)).unwrap();
    c.write_all(b"hi\n").unwrap();
    c.shutdown(Shutdown::Write).unwrap();
    let mut back = Vec::new();
    c.read_to_end(&mut back).unwrap();
    assert_eq!(back, b"hi\n");
    for mark in ['<', '>'] {
        let want = format!("{mark} 00000000  68 69 0a");
        err.wait_seen(T, |l| l.starts_with(&want))
            .unwrap_or_else(|e| panic!("{want}: {e}"));
    }
}

/// The fourth transport, a Unix datagram socket (`connect -U PATH -u`), through the same
/// stages: one datagram converted and dumped on its own.
#[test]
fn connect_unix_datagrams_send_crlf_and_dump_each_datagram() {
    use std::os::unix::net::UnixDatagram;
    let dir = TempDir::new("applies-cUu");
    let path = dir.path("d");
    let peer = UnixDatagram::bind(&path).unwrap();
    peer.set_read_timeout(Some(T)).unwrap();
    let path = path.display().to_string();
    let args = [
        "connect",
        "-u",
        "--crlf",
        "-x",
        "--quit-after",
        "0s",
        "-U",
        &path,
    ];
    let mut child = ChildGuard::spawn(&mut sockkit(&args));
    let mut stdin = child.stdin();
    let mut out = LineTap::new(child.stdout());
    let mut err = LineTap::new(child.stderr());
    stdin.write_all(b"abc\n").unwrap();
    let mut buf = [0u8; 64];
    let (n, from) = peer.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"abc\r\n", "--crlf on connect -U -u");
    // sockkit autobinds an abstract name so that replies can come back.
    peer.send_to_addr(b"hi\n", &from).unwrap();
    out.wait_for(T, |l| l == "hi").unwrap();
    drop(stdin);
    assert!(
        child.status_within(T, "connect -U -u").success(),
        "{}",
        err.text()
    );
    assert_eq!(
        err.finish(T),
        "> datagram: 5 bytes\n\
         > 00000000  61 62 63 0d 0a                                    |abc..|\n\
         < datagram: 3 bytes\n\
         < 00000000  68 69 0a                                          |hi.|\n"
    );
}
