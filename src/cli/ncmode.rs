//! The drop-in nc: OpenBSD netcat's command line (`nc -lk -p 4444`, `nc -zv host 20-30`,
//! `nc -N host 80 < req`), read the way OpenBSD nc reads it (getopt: clustered flags, a value
//! in the same word or the next) and rewritten as the sockkit command line that does the same.
//! Where nc's semantics differ from sockkit's defaults (no half-close without -N, -q, -w as an
//! idle timeout, `-z` quiet on stdout) the parser marks the parsed arguments (`nc_rules`) and
//! the engines follow nc. Every option outside the supported subset is refused by name, never
//! ignored. The parser (`cli.rs`) decides when argv is nc's; this file only reads the words.

use std::ffi::OsString;
use std::net::IpAddr;

/// OpenBSD nc's options that take a value (its getopt string's `x:` letters).
const TAKES_VALUE: &[char] = &[
    'I', 'i', 'M', 'm', 'O', 'P', 'p', 'q', 's', 'T', 'V', 'W', 'w', 'X', 'x',
];

/// nc options sockkit's nc mode does not offer, with why.
const REFUSED: &[(char, &str)] = &[
    (
        'D',
        "socket debugging (SO_DEBUG) is not offered; -vv shows every socket call instead",
    ),
    ('F', "passing the socket to a parent (-F) is not offered"),
    ('i', "a delay between lines (-i) is not offered"),
    ('m', "a minimum TTL (-m) is not offered"),
    (
        'P',
        "proxy authentication (-P) asks for the password at the terminal, which nc mode does \
         not do: use `sockkit connect --proxy http://USER:PASS@HOST:PORT`",
    ),
    ('r', "random port order (-r) is not offered"),
    ('S', "TCP MD5 signatures (-S) are not offered"),
    ('t', "telnet negotiation (-t) is not offered"),
    ('V', "routing tables (-V) are OpenBSD's and not offered"),
    ('W', "a receive limit (-W) is not offered"),
    ('Z', "DCCP (-Z) is not offered"),
    (
        'e',
        "-e runs a program for each client, which sockkit never does; see `sockkit forward`",
    ),
    (
        'c',
        "-c runs a shell command, which sockkit never does; see `sockkit forward`",
    ),
];

/// nc's `-T` keywords and the TOS byte each stands for (OpenBSD nc's map_tos and DSCP names).
const TOS: &[(&str, u8)] = &[
    ("lowdelay", 0x10),
    ("throughput", 0x08),
    ("reliability", 0x04),
    ("critical", 0xa0),
    ("inetcontrol", 0xc0),
    ("netcontrol", 0xe0),
    ("af11", 0x28),
    ("af12", 0x30),
    ("af13", 0x38),
    ("af21", 0x48),
    ("af22", 0x50),
    ("af23", 0x58),
    ("af31", 0x68),
    ("af32", 0x70),
    ("af33", 0x78),
    ("af41", 0x88),
    ("af42", 0x90),
    ("af43", 0x98),
    ("cs0", 0x00),
    ("cs1", 0x20),
    ("cs2", 0x40),
    ("cs3", 0x60),
    ("cs4", 0x80),
    ("cs5", 0xa0),
    ("cs6", 0xc0),
    ("cs7", 0xe0),
    ("ef", 0xb8),
];

/// True when argv is nc's: the program was invoked as `nc` (a symlink), or as `sockkit nc`.
/// Returns the nc arguments (after the program name, or after `nc`).
pub fn nc_args(args: &[OsString]) -> Option<Vec<String>> {
    let prog = args.first()?;
    let base = std::path::Path::new(prog).file_name()?;
    let rest = if base == "nc" {
        &args[1..]
    } else if args.get(1).is_some_and(|a| a == "nc") {
        &args[2..]
    } else {
        return None;
    };
    Some(
        rest.iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect(),
    )
}

/// What nc's command line asked for, as flags and values.
#[derive(Debug, Default)]
struct Nc {
    flags: Vec<char>,
    values: Vec<(char, String)>,
    operands: Vec<String>,
}

impl Nc {
    fn has(&self, c: char) -> bool {
        self.flags.contains(&c)
    }

    /// The last value given for `c` (getopt: a repeated option's last value wins).
    fn value(&self, c: char) -> Option<&str> {
        self.values
            .iter()
            .rev()
            .find(|(k, _)| *k == c)
            .map(|(_, v)| v.as_str())
    }
}

/// Reads nc's words as POSIX getopt does: options until the first operand or `--`.
fn getopt(words: &[String]) -> Result<Nc, String> {
    let mut nc = Nc::default();
    let mut i = 0;
    while i < words.len() {
        let w = &words[i];
        i += 1;
        if w == "--" {
            nc.operands.extend(words[i..].iter().cloned());
            break;
        }
        if !w.starts_with('-') || w == "-" {
            // OpenBSD's getopt stops at the first operand; GNU-style `nc host -v` is not nc's.
            nc.operands.push(w.clone());
            nc.operands.extend(words[i..].iter().cloned());
            break;
        }
        let letters: Vec<char> = w[1..].chars().collect();
        let mut j = 0;
        while j < letters.len() {
            let c = letters[j];
            j += 1;
            if TAKES_VALUE.contains(&c) {
                let rest: String = letters[j..].iter().collect();
                let value = if rest.is_empty() {
                    let Some(v) = words.get(i) else {
                        return Err(format!("-{c} needs a value"));
                    };
                    i += 1;
                    v.clone()
                } else {
                    rest
                };
                nc.values.push((c, value));
                break;
            }
            nc.flags.push(c);
        }
    }
    Ok(nc)
}

/// A whole number of seconds as nc takes it (`-w 2`, `-q 0`), as a sockkit duration.
fn seconds(opt: char, s: &str) -> Result<String, String> {
    match s.parse::<u64>() {
        Ok(n) => Ok(format!("{n}s")),
        Err(_) => Err(format!("-{opt} {s}: not a number of seconds")),
    }
}

/// A buffer length (`-I 65536`) as nc takes it: a positive number of bytes.
fn length(opt: char, s: &str) -> Result<u64, String> {
    match s.parse::<u64>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("-{opt} {s}: not a buffer length in bytes")),
    }
}

/// nc's `-T`: a keyword or a number (decimal or 0x hex) up to 255.
fn tos(s: &str) -> Result<u8, String> {
    let lower = s.to_ascii_lowercase();
    if let Some((_, v)) = TOS.iter().find(|(k, _)| *k == lower) {
        return Ok(*v);
    }
    let n = match lower.strip_prefix("0x") {
        Some(hex) => u8::from_str_radix(hex, 16).ok(),
        None => lower.parse::<u8>().ok(),
    };
    n.ok_or_else(|| format!("-T {s}: not a TOS keyword or a number 0-255"))
}

/// nc's `-x proxy[:port]` with `-X 4|5|connect` as a `--proxy` URL: SOCKS5 when -X is not
/// given, port 1080 for SOCKS and 3128 for HTTP CONNECT when the proxy's has none (OpenBSD
/// nc's defaults). `-X 4` is SOCKS4, whose target address nc resolves itself: `socks4://`.
fn proxy_url(proxy: &str, protocol: Option<&str>) -> Result<String, String> {
    let (scheme, default_port) = match protocol.map(str::to_ascii_lowercase).as_deref() {
        None | Some("5") => ("socks5", 1080),
        Some("4") => ("socks4", 1080),
        Some("connect") => ("http", 3128),
        Some(other) => {
            return Err(format!(
                "-X {other}: not a proxy protocol (4, 5 or connect)"
            ));
        }
    };
    // `[::1]:1080`, `[::1]`, `host:1080`, `host`, or a bare IPv6 address (no port).
    let (host, port) = if let Some(rest) = proxy.strip_prefix('[') {
        match rest.split_once(']') {
            Some((h, "")) => (format!("[{h}]"), None),
            Some((h, p)) if p.starts_with(':') => (format!("[{h}]"), Some(&p[1..])),
            _ => return Err(format!("-x {proxy}: not proxy[:port]")),
        }
    } else {
        match proxy.split_once(':') {
            Some((h, p)) if !p.contains(':') => (h.to_string(), Some(p)),
            Some(_) => (format!("[{proxy}]"), None),
            None => (proxy.to_string(), None),
        }
    };
    if host.is_empty() || host == "[]" {
        return Err(format!("-x {proxy}: names no proxy host"));
    }
    let port = match port {
        None => default_port,
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|&p| p != 0)
            .ok_or_else(|| format!("-x {proxy}: {p} is not a port (1-65535)"))?,
    };
    Ok(format!("{scheme}://{host}:{port}"))
}

/// The sockkit command line (program name first) for nc's `words`, or the one-line reason it
/// cannot be run (`sockkit: ...`, exit 2).
pub fn translate(words: &[String]) -> Result<Vec<OsString>, String> {
    let nc = getopt(words).map_err(|e| format!("sockkit: nc {e}"))?;
    let fail = |why: String| format!("sockkit: nc {why}");
    for c in &nc.flags {
        if let Some((_, why)) = REFUSED.iter().find(|(k, _)| k == c) {
            return Err(fail(format!("-{c}: {why}")));
        }
        if !"46CdklNnUuvz".contains(*c) {
            return Err(fail(format!(
                "-{c}: not an option sockkit's nc mode knows (see `sockkit help`)"
            )));
        }
    }
    for (c, _) in &nc.values {
        if let Some((_, why)) = REFUSED.iter().find(|(k, _)| k == c) {
            return Err(fail(format!("-{c}: {why}")));
        }
    }
    let listen = nc.has('l');
    let scan = nc.has('z');
    let unix = nc.has('U');
    let mut out: Vec<String> = vec![
        "sockkit".into(),
        if listen { "listen" } else { "connect" }.into(),
    ];
    if nc.has('k') {
        if !listen {
            return Err(fail("-k: keeping the server open needs -l".into()));
        }
        out.push("-k".into());
    }
    if listen && scan {
        return Err(fail("-l and -z: a port check does not listen".into()));
    }
    for c in ['4', '6', 'u', 'v'] {
        if nc.has(c) {
            out.push(format!("-{c}"));
        }
    }
    if scan {
        out.push("-z".into());
    }
    if nc.has('C') {
        out.push("--crlf".into());
    }
    if nc.has('d') {
        out.push("--recv-only".into());
    }
    let stream_relay = !scan && !nc.has('u');
    if stream_relay && !nc.has('N') {
        // nc keeps its sending side open at stdin EOF unless -N.
        out.push("--no-shutdown".into());
    }
    if let Some(q) = nc.value('q') {
        // Debian's -q: negative waits for ever, which is what no -q does.
        if !q.starts_with('-') {
            if scan {
                return Err(fail("-q with -z: a port check reads no stdin".into()));
            }
            out.push("--quit-after".into());
            out.push(seconds('q', q)?);
        }
    }
    if let Some(w) = nc.value('w') {
        let d = seconds('w', w).map_err(fail)?;
        // A connect timeout, for TCP and Unix streams (a UDP connect() waits for nothing).
        if !listen && !nc.has('u') {
            out.push("-w".into());
            out.push(d.clone());
        }
        if !scan {
            // nc's -w also ends a connection idle that long (exit 0).
            out.push("--idle-timeout".into());
            out.push(d);
        }
    }
    if let Some(v) = nc.value('I') {
        out.push("-o".into());
        out.push(format!("rcvbuf={}", length('I', v).map_err(fail)?));
    }
    if let Some(v) = nc.value('O') {
        out.push("-o".into());
        out.push(format!("sndbuf={}", length('O', v).map_err(fail)?));
    }
    if let Some(v) = nc.value('T') {
        out.push("-o".into());
        out.push(format!("tos={}", tos(v).map_err(fail)?));
    }
    if let Some(v) = nc.value('M') {
        out.push("-o".into());
        out.push(format!("ttl={v}"));
    }
    match (nc.value('x'), nc.value('X')) {
        (Some(proxy), protocol) => {
            if listen {
                return Err(fail("-x: a listener goes through no proxy".into()));
            }
            if nc.has('u') || unix {
                return Err(fail(
                    "-x: a proxy carries TCP connections, not -u datagrams or -U sockets".into(),
                ));
            }
            out.push("--proxy".into());
            out.push(proxy_url(proxy, protocol).map_err(fail)?);
        }
        (None, Some(_)) => {
            return Err(fail(
                "-X names the proxy's protocol and needs -x proxy[:port]".into(),
            ));
        }
        (None, None) => {}
    }
    let numeric = nc.has('n');
    let check_numeric = |host: &str| -> Result<(), String> {
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        if numeric && bare.parse::<IpAddr>().is_err() {
            return Err(format!(
                "sockkit: nc -n: '{host}' is not a numeric address (-n looks up no names)"
            ));
        }
        Ok(())
    };
    let source = nc.value('s');
    let port_opt = nc.value('p');
    let mut ops = nc.operands.iter();
    if unix {
        let Some(path) = ops.next() else {
            return Err(fail("-U needs a socket PATH".into()));
        };
        if ops.next().is_some() {
            return Err(fail("-U takes one PATH and no port".into()));
        }
        if source.is_some() || port_opt.is_some() {
            return Err(fail("-s and -p are for IP, not -U".into()));
        }
        out.push("-U".into());
        out.push(path.clone());
    } else if listen {
        // nc -l PORT, nc -l ADDR PORT, nc -l -p PORT, nc -l -s ADDR -p PORT.
        let rest: Vec<&String> = ops.collect();
        let (addr, port) = match (rest.as_slice(), port_opt) {
            ([], Some(p)) => (source.map(str::to_string), p.to_string()),
            ([p], None) => (source.map(str::to_string), (*p).clone()),
            ([a, p], None) if source.is_none() => (Some((*a).clone()), (*p).clone()),
            ([], None) => return Err(fail("-l needs a PORT (nc -l PORT or nc -l -p PORT)".into())),
            _ => {
                return Err(fail(
                    "-l takes [ADDR] PORT once (as operands or -s/-p)".into(),
                ));
            }
        };
        if let Some(a) = &addr {
            check_numeric(a)?;
            out.push(a.clone());
        }
        out.push(port);
    } else {
        let Some(host) = ops.next() else {
            return Err(fail("needs HOST PORT (or -l to listen)".into()));
        };
        check_numeric(host)?;
        let ports: Vec<&String> = ops.collect();
        if ports.is_empty() {
            return Err(fail(format!("{host}: needs a PORT after the host")));
        }
        if ports.len() > 1 && !scan {
            return Err(fail("several ports are for -z only".into()));
        }
        if let Some(s) = source {
            check_numeric(s)?;
            out.push("-s".into());
            out.push(s.to_string());
        }
        if let Some(p) = port_opt {
            out.push("-p".into());
            out.push(p.to_string());
        }
        out.push("--".into());
        out.push(host.clone());
        let list: Vec<&str> = ports.iter().map(|p| p.as_str()).collect();
        out.push(list.join(","));
    }
    Ok(out.into_iter().map(OsString::from).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tr(line: &str) -> Result<String, String> {
        let words: Vec<String> = line.split_whitespace().map(str::to_string).collect();
        translate(&words).map(|v| {
            v.iter()
                .map(|w| w.to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join(" ")
        })
    }

    #[test]
    fn nc_lines_become_sockkit_lines() {
        for (nc, sockkit) in [
            ("-l 4444", "sockkit listen --no-shutdown 4444"),
            ("-lkp 4444", "sockkit listen -k --no-shutdown 4444"),
            (
                "-l -s 127.0.0.1 -p 4444",
                "sockkit listen --no-shutdown 127.0.0.1 4444",
            ),
            ("-N host 80", "sockkit connect -- host 80"),
            (
                "-zv host 20-30 80",
                "sockkit connect -v -z -- host 20-30,80",
            ),
            (
                "-w2 -q0 host 80",
                "sockkit connect --no-shutdown --quit-after 0s -w 2s --idle-timeout 2s -- host 80",
            ),
            (
                "-u -q1 host 53",
                "sockkit connect -u --quit-after 1s -- host 53",
            ),
            (
                "-u -w1 host 53",
                "sockkit connect -u --idle-timeout 1s -- host 53",
            ),
            ("-U /tmp/s", "sockkit connect --no-shutdown -U /tmp/s"),
            (
                "-I 65536 -T lowdelay -M 9 -N h 1",
                "sockkit connect -o rcvbuf=65536 -o tos=16 -o ttl=9 -- h 1",
            ),
            ("-Cd -N h 25", "sockkit connect --crlf --recv-only -- h 25"),
            (
                "-x 127.0.0.1 -N h 80",
                "sockkit connect --proxy socks5://127.0.0.1:1080 -- h 80",
            ),
            (
                "-X 5 -x proxy:9050 -N h 80",
                "sockkit connect --proxy socks5://proxy:9050 -- h 80",
            ),
            (
                "-X4 -xproxy -N h 80",
                "sockkit connect --proxy socks4://proxy:1080 -- h 80",
            ),
            (
                "-X connect -x proxy -N h 443",
                "sockkit connect --proxy http://proxy:3128 -- h 443",
            ),
            (
                "-X CONNECT -x [::1]:8080 -N h 443",
                "sockkit connect --proxy http://[::1]:8080 -- h 443",
            ),
            (
                "-x ::1 -zv h 22",
                "sockkit connect -v -z --proxy socks5://[::1]:1080 -- h 22",
            ),
        ] {
            assert_eq!(tr(nc).as_deref(), Ok(sockkit), "nc {nc}");
        }
    }

    #[test]
    fn unsupported_and_wrong_lines_are_refused_by_name() {
        for (nc, says) in [
            ("-P alice -X connect -x p host 80", "-P"),
            ("-X 6 -x p host 80", "-X 6: not a proxy protocol"),
            ("-X connect host 80", "needs -x"),
            ("-x p -l 4444", "-x: a listener"),
            ("-x p -u host 53", "not -u datagrams"),
            ("-x p:99999 host 80", "not a port"),
            ("-r host 80", "-r"),
            ("-e /bin/sh -l 4444", "-e"),
            ("-n localhost 80", "not a numeric address"),
            ("-k host 80", "needs -l"),
            ("-w soon host 80", "not a number of seconds"),
            ("-T fast host 80", "not a TOS keyword"),
            ("-l", "needs a PORT"),
            ("-p", "needs a value"),
            ("-j host 80", "-j"),
        ] {
            let err = tr(nc).unwrap_err();
            assert!(
                err.starts_with("sockkit: nc ") && err.contains(says),
                "nc {nc}: {err}"
            );
        }
    }

    #[test]
    fn invoked_as_nc_or_as_sockkit_nc() {
        let os = |v: &[&str]| v.iter().map(OsString::from).collect::<Vec<_>>();
        assert_eq!(
            nc_args(&os(&["/tmp/x/nc", "-l", "1"])),
            Some(vec!["-l".into(), "1".into()])
        );
        assert_eq!(
            nc_args(&os(&["sockkit", "nc", "-z"])),
            Some(vec!["-z".into()])
        );
        assert_eq!(nc_args(&os(&["sockkit", "connect", "nc", "1"])), None);
        assert_eq!(nc_args(&os(&["ncat", "-l"])), None);
    }
}
