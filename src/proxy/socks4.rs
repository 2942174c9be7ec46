//! SOCKS4 and SOCKS4a: one CONNECT request (an IPv4 address, or with 4a the name after the
//! user id and the address 0.0.0.1) and the proxy's 8-byte reply, its codes named in words.
//! No I/O.

use std::net::Ipv4Addr;

use super::step::{Bad, Step};

/// The request's destination: an IPv4 address (SOCKS4) or a name the proxy resolves (4a).
pub enum Target<'a> {
    V4(Ipv4Addr),
    Name(&'a str),
}

/// CONNECT: version 4, command 1, port, address, the user id, NUL (and with 4a the name, NUL).
pub fn connect_request(target: &Target, port: u16, user: &str) -> Vec<u8> {
    let mut out = vec![4, 1];
    out.extend_from_slice(&port.to_be_bytes());
    match target {
        Target::V4(ip) => out.extend_from_slice(&ip.octets()),
        // 0.0.0.x with x != 0 tells a 4a proxy that the name follows.
        Target::Name(_) => out.extend_from_slice(&[0, 0, 0, 1]),
    }
    out.extend_from_slice(user.as_bytes());
    out.push(0);
    if let Target::Name(n) = target {
        out.extend_from_slice(n.as_bytes());
        out.push(0);
    }
    out
}

/// The words for a reply code.
pub fn reply_name(code: u8) -> &'static str {
    match code {
        90 => "request granted",
        91 => "request rejected or failed",
        92 => "request rejected: the proxy cannot reach an identd on this host",
        93 => "request rejected: identd reports a different user id",
        _ => "a reply code SOCKS4 does not define",
    }
}

/// The reply: version 0, the code, then port and address (ignored for CONNECT).
pub fn reply(b: &[u8]) -> Result<Step<u8>, Bad> {
    if b.len() < 8 {
        return Ok(Step::Need(8));
    }
    if b[0] != 0 {
        return Err(Bad::new(format!(
            "its reply starts with {} where SOCKS4 has 0",
            b[0]
        )));
    }
    Ok(Step::Done(b[1], 8))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn four_sends_an_address_four_a_a_name() {
        let v4 = connect_request(&Target::V4(Ipv4Addr::new(10, 0, 0, 9)), 22, "me");
        assert_eq!(v4, [4, 1, 0, 22, 10, 0, 0, 9, b'm', b'e', 0]);
        let a = connect_request(&Target::Name("h"), 80, "");
        assert_eq!(a, [4, 1, 0, 80, 0, 0, 0, 1, 0, b'h', 0]);
    }

    #[test]
    fn reply_is_eight_bytes_with_a_named_code() {
        assert_eq!(reply(&[0, 90, 0]), Ok(Step::Need(8)));
        assert_eq!(reply(&[0, 91, 0, 0, 0, 0, 0, 0]), Ok(Step::Done(91, 8)));
        assert!(reply(&[5, 0, 0, 0, 0, 0, 0, 0]).is_err());
        assert_eq!(reply_name(91), "request rejected or failed");
    }
}
