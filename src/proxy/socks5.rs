//! SOCKS5 (RFC 1928) with username/password authentication (RFC 1929): the client's greeting,
//! credentials and CONNECT request, the proxy's method choice, auth status and reply, each
//! encoded or decoded here, with every reply code named in words. No I/O.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::step::{Bad, Step};
use super::url::{Credentials, Dest};

/// RFC 1928 method numbers sockkit offers.
pub const NO_AUTH: u8 = 0x00;
pub const USER_PASS: u8 = 0x02;
/// "No acceptable methods".
pub const NO_METHOD: u8 = 0xff;

/// The method's name, for narration.
pub fn method_name(m: u8) -> &'static str {
    match m {
        NO_AUTH => "no authentication",
        0x01 => "GSSAPI",
        USER_PASS => "username/password",
        NO_METHOD => "no acceptable method",
        _ => "a method sockkit does not know",
    }
}

/// The client's first message: version 5 and the methods it can do. With credentials both
/// are offered, so a proxy that wants none still works.
pub fn greeting(auth: bool) -> Vec<u8> {
    if auth {
        vec![5, 2, NO_AUTH, USER_PASS]
    } else {
        vec![5, 1, NO_AUTH]
    }
}

/// The proxy's choice of method (2 bytes).
pub fn choice(b: &[u8]) -> Result<Step<u8>, Bad> {
    if b.len() < 2 {
        return Ok(Step::Need(2));
    }
    if b[0] != 5 {
        return Err(Bad::new(format!(
            "its answer to the greeting starts with version {} where SOCKS5 has 5",
            b[0]
        )));
    }
    Ok(Step::Done(b[1], 2))
}

/// RFC 1929's request: version 1, the user name and the password, each length-prefixed.
pub fn auth_request(c: &Credentials) -> Vec<u8> {
    let (u, p) = (c.user.as_bytes(), c.pass.as_bytes());
    let mut out = vec![1, u.len().min(255) as u8];
    out.extend_from_slice(&u[..u.len().min(255)]);
    out.push(p.len().min(255) as u8);
    out.extend_from_slice(&p[..p.len().min(255)]);
    out
}

/// RFC 1929's status: `Done(true)` when the credentials were accepted.
pub fn auth_status(b: &[u8]) -> Result<Step<bool>, Bad> {
    if b.len() < 2 {
        return Ok(Step::Need(2));
    }
    if b[0] != 1 {
        return Err(Bad::new(format!(
            "its answer to the credentials starts with version {} where RFC 1929 has 1",
            b[0]
        )));
    }
    Ok(Step::Done(b[1] == 0, 2))
}

/// The address part of a request or reply: type, address, port.
fn put_addr(out: &mut Vec<u8>, dest: &Dest, port: u16) {
    match dest {
        Dest::Ip(IpAddr::V4(ip)) => {
            out.push(1);
            out.extend_from_slice(&ip.octets());
        }
        Dest::Ip(IpAddr::V6(ip)) => {
            out.push(4);
            out.extend_from_slice(&ip.octets());
        }
        Dest::Name(n) => {
            let n = n.as_bytes();
            out.push(3);
            out.push(n.len().min(255) as u8);
            out.extend_from_slice(&n[..n.len().min(255)]);
        }
    }
    out.extend_from_slice(&port.to_be_bytes());
}

/// CONNECT to `dest:port`. A name longer than SOCKS5's 255 bytes is refused by the caller
/// (`name_fits`) before this is sent.
pub fn connect_request(dest: &Dest, port: u16) -> Vec<u8> {
    let mut out = vec![5, 1, 0];
    put_addr(&mut out, dest, port);
    out
}

/// Whether a name fits SOCKS5's one-byte length.
pub fn name_fits(dest: &Dest) -> bool {
    !matches!(dest, Dest::Name(n) if n.len() > 255 || n.is_empty())
}

/// The words for a reply code (RFC 1928 §6).
pub fn reply_name(code: u8) -> &'static str {
    match code {
        0 => "succeeded",
        1 => "general SOCKS server failure",
        2 => "connection not allowed by ruleset",
        3 => "network unreachable",
        4 => "host unreachable",
        5 => "connection refused",
        6 => "TTL expired",
        7 => "command not supported",
        8 => "address type not supported",
        _ => "a reply code RFC 1928 does not define",
    }
}

/// The proxy's reply: the code and the address it bound for us (`None` when given as a
/// name, which RFC 1928 allows).
#[derive(Debug, PartialEq, Eq)]
pub struct Reply {
    pub code: u8,
    pub bound: Option<SocketAddr>,
}

/// Reads an address (type byte at `b[at]`) and port: `Need` until whole.
fn addr_at(b: &[u8], at: usize) -> Result<Step<(Dest, u16)>, Bad> {
    let Some(&atyp) = b.get(at) else {
        return Ok(Step::Need(at + 2));
    };
    let (start, len) = match atyp {
        1 => (at + 1, 4),
        4 => (at + 1, 16),
        3 => match b.get(at + 1) {
            Some(&n) => (at + 2, usize::from(n)),
            None => return Ok(Step::Need(at + 2)),
        },
        t => {
            return Err(Bad::new(format!(
                "address type {t}, which SOCKS5 does not have"
            )));
        }
    };
    let end = start + len + 2;
    if b.len() < end {
        return Ok(Step::Need(end));
    }
    let a = &b[start..start + len];
    let dest = match atyp {
        1 => Dest::Ip(IpAddr::V4(Ipv4Addr::new(a[0], a[1], a[2], a[3]))),
        4 => {
            let mut o = [0u8; 16];
            o.copy_from_slice(a);
            Dest::Ip(IpAddr::V6(Ipv6Addr::from(o)))
        }
        _ => Dest::Name(String::from_utf8_lossy(a).into_owned()),
    };
    let port = u16::from_be_bytes([b[start + len], b[start + len + 1]]);
    Ok(Step::Done((dest, port), end))
}

/// The reply to CONNECT: version, code, reserved, then the bound address.
pub fn reply(b: &[u8]) -> Result<Step<Reply>, Bad> {
    if b.len() < 5 {
        return Ok(Step::Need(5));
    }
    if b[0] != 5 {
        return Err(Bad::new(format!(
            "its reply starts with version {} where SOCKS5 has 5",
            b[0]
        )));
    }
    Ok(match addr_at(b, 3)? {
        Step::Done((dest, port), used) => {
            let bound = match dest {
                Dest::Ip(ip) => Some(SocketAddr::new(ip, port)),
                Dest::Name(_) => None,
            };
            Step::Done(Reply { code: b[1], bound }, used)
        }
        Step::Need(n) => Step::Need(n),
        Step::More => Step::More,
    })
}

// The server's side (`forward --socks5`): the client's messages decoded, the answers encoded.

/// The client's greeting: the methods it offers.
pub fn read_greeting(b: &[u8]) -> Result<Step<Vec<u8>>, Bad> {
    if b.len() < 2 {
        return Ok(Step::Need(2));
    }
    if b[0] != 5 {
        return Err(Bad::new(format!(
            "its greeting starts with version {} where SOCKS5 has 5",
            b[0]
        )));
    }
    let end = 2 + usize::from(b[1]);
    if b.len() < end {
        return Ok(Step::Need(end));
    }
    Ok(Step::Done(b[2..end].to_vec(), end))
}

/// The method answer: version 5 and the method chosen (`NO_METHOD` to refuse).
pub fn choose(method: u8) -> [u8; 2] {
    [5, method]
}

/// The client's RFC 1929 username and password.
pub fn read_auth(b: &[u8]) -> Result<Step<Credentials>, Bad> {
    if b.len() < 2 {
        return Ok(Step::Need(2));
    }
    if b[0] != 1 {
        return Err(Bad::new(format!(
            "its credentials start with version {} where RFC 1929 has 1",
            b[0]
        )));
    }
    let ulen = usize::from(b[1]);
    let Some(&plen) = b.get(2 + ulen) else {
        return Ok(Step::Need(3 + ulen));
    };
    let end = 3 + ulen + usize::from(plen);
    if b.len() < end {
        return Ok(Step::Need(end));
    }
    let user = String::from_utf8_lossy(&b[2..2 + ulen]).into_owned();
    let pass = String::from_utf8_lossy(&b[3 + ulen..end]).into_owned();
    Ok(Step::Done(Credentials { user, pass }, end))
}

/// The RFC 1929 status: 0 accepted, 1 refused.
pub fn auth_answer(ok: bool) -> [u8; 2] {
    [1, u8::from(!ok)]
}

/// The client's request: the command (1 CONNECT), where to and which port.
#[derive(Debug, PartialEq, Eq)]
pub struct Request {
    pub command: u8,
    pub dest: Dest,
    pub port: u16,
}

pub fn read_request(b: &[u8]) -> Result<Step<Request>, Bad> {
    if b.len() < 5 {
        return Ok(Step::Need(5));
    }
    if b[0] != 5 {
        return Err(Bad::new(format!(
            "its request starts with version {} where SOCKS5 has 5",
            b[0]
        )));
    }
    Ok(match addr_at(b, 3)? {
        Step::Done((dest, port), used) => Step::Done(
            Request {
                command: b[1],
                dest,
                port,
            },
            used,
        ),
        Step::Need(n) => Step::Need(n),
        Step::More => Step::More,
    })
}

/// The answer to a request: `code` (0 succeeded) and the address the server connected from
/// (all zeros when there is none).
pub fn answer(code: u8, bound: Option<SocketAddr>) -> Vec<u8> {
    let mut out = vec![5, code, 0];
    let bound = bound.unwrap_or_else(|| SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), 0));
    put_addr(&mut out, &Dest::Ip(bound.ip()), bound.port());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greeting_offers_user_pass_only_with_credentials() {
        assert_eq!(greeting(false), [5, 1, 0]);
        assert_eq!(greeting(true), [5, 2, 0, 2]);
        assert_eq!(choice(&[5]), Ok(Step::Need(2)));
        assert_eq!(choice(&[5, 0xff]), Ok(Step::Done(0xff, 2)));
        assert!(choice(&[4, 0]).is_err());
    }

    #[test]
    fn credentials_are_length_prefixed() {
        let c = Credentials {
            user: "al".into(),
            pass: "pw!".into(),
        };
        assert_eq!(auth_request(&c), [1, 2, b'a', b'l', 3, b'p', b'w', b'!']);
        assert_eq!(auth_status(&[1, 0]), Ok(Step::Done(true, 2)));
        assert_eq!(auth_status(&[1, 1]), Ok(Step::Done(false, 2)));
        assert!(auth_status(&[5, 0]).is_err());
    }

    #[test]
    fn connect_carries_a_name_or_an_address() {
        assert_eq!(
            connect_request(&Dest::Name("ab".into()), 443),
            [5, 1, 0, 3, 2, b'a', b'b', 1, 187]
        );
        assert_eq!(
            connect_request(&Dest::of("10.1.2.3"), 22),
            [5, 1, 0, 1, 10, 1, 2, 3, 0, 22]
        );
        let v6 = connect_request(&Dest::of("::1"), 80);
        assert_eq!((v6[3], v6.len()), (4, 3 + 1 + 16 + 2));
        assert!(!name_fits(&Dest::Name("x".repeat(256))));
        assert!(name_fits(&Dest::Name("x".repeat(255))));
    }

    #[test]
    fn replies_decode_in_pieces_and_name_their_code() {
        let whole = [5, 5, 0, 1, 127, 0, 0, 1, 0x1f, 0x90];
        assert_eq!(reply(&whole[..3]), Ok(Step::Need(5)));
        assert_eq!(reply(&whole[..5]), Ok(Step::Need(10)));
        let bound = Some("127.0.0.1:8080".parse().unwrap());
        assert_eq!(reply(&whole), Ok(Step::Done(Reply { code: 5, bound }, 10)));
        assert_eq!(reply_name(5), "connection refused");
        assert_eq!(reply_name(2), "connection not allowed by ruleset");
        let named = [5, 0, 0, 3, 1, b'h', 0, 1];
        assert_eq!(
            reply(&named),
            Ok(Step::Done(
                Reply {
                    code: 0,
                    bound: None
                },
                8
            ))
        );
        assert!(reply(&[5, 0, 0, 9, 0]).is_err());
        assert!(reply(b"HTTP/1.1 400").is_err());
    }

    #[test]
    fn the_server_side_reads_what_the_client_side_writes() {
        let c = Credentials {
            user: "u".into(),
            pass: "pw".into(),
        };
        let hello = greeting(true);
        assert_eq!(read_greeting(&hello[..3]), Ok(Step::Need(4)));
        assert_eq!(read_greeting(&hello), Ok(Step::Done(vec![0, 2], 4)));
        assert_eq!(read_auth(&auth_request(&c)), Ok(Step::Done(c, 6)));
        let req = connect_request(&Dest::Name("example.org".into()), 22);
        let want = Request {
            command: 1,
            dest: Dest::Name("example.org".into()),
            port: 22,
        };
        assert_eq!(read_request(&req), Ok(Step::Done(want, req.len())));
        let a = answer(5, None);
        assert_eq!(
            reply(&a),
            Ok(Step::Done(
                Reply {
                    code: 5,
                    bound: Some("0.0.0.0:0".parse().unwrap())
                },
                10
            ))
        );
        assert_eq!(auth_answer(false), [1, 1]);
        assert!(read_greeting(b"GET / HTTP/1.1").is_err());
    }
}
