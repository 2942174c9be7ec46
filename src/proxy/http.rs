//! HTTP CONNECT (RFC 9110 §9.3.6): the request line and headers a client sends (Basic
//! credentials in `Proxy-Authorization`), and the proxy's status line, found at the end of
//! its header, with the status named in words. No I/O.

use super::step::{Bad, Step};
use super::url::Credentials;

/// A proxy's answer header larger than this is not an answer.
pub const MAX_HEADER: usize = 16 * 1024;

/// RFC 4648 base64, for Basic credentials.
fn base64(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// `host:port` as the request line writes it (IPv6 in brackets).
pub fn authority(host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// The CONNECT request, whole.
pub fn connect_request(host: &str, port: u16, auth: Option<&Credentials>) -> Vec<u8> {
    let a = authority(host, port);
    let mut req = format!("CONNECT {a} HTTP/1.1\r\nHost: {a}\r\n");
    if let Some(c) = auth {
        let token = base64(format!("{}:{}", c.user, c.pass).as_bytes());
        req.push_str(&format!("Proxy-Authorization: Basic {token}\r\n"));
    }
    req.push_str("\r\n");
    req.into_bytes()
}

/// The proxy's status line, decoded.
#[derive(Debug, PartialEq, Eq)]
pub struct Status {
    pub code: u16,
    /// The reason phrase the proxy gave (may be empty).
    pub reason: String,
}

impl Status {
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.code)
    }
}

/// The words for a status a proxy answers CONNECT with.
pub fn status_name(code: u16) -> &'static str {
    match code {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden: the proxy does not allow this target",
        404 => "Not Found",
        405 => "Method Not Allowed: the proxy does not do CONNECT",
        407 => "Proxy Authentication Required: wrong or missing credentials",
        408 => "Request Timeout",
        500 => "Internal Server Error",
        502 => "Bad Gateway: the proxy could not connect to the target",
        503 => "Service Unavailable: the proxy could not connect to the target",
        504 => "Gateway Timeout: the target did not answer the proxy in time",
        c if (200..300).contains(&c) => "success",
        c if (400..500).contains(&c) => "a client error",
        c if (500..600).contains(&c) => "a server error",
        _ => "a status HTTP does not define",
    }
}

/// The answer header: `More` until its blank line; then the status line.
pub fn response(b: &[u8]) -> Result<Step<Status>, Bad> {
    if b.len() >= 5 && !b.starts_with(b"HTTP/") {
        return Err(Bad::new("its answer does not start with HTTP/"));
    }
    let Some(end) = b.windows(4).position(|w| w == b"\r\n\r\n") else {
        if b.len() >= MAX_HEADER {
            return Err(Bad::new(format!(
                "its answer header is over {} KiB without ending",
                MAX_HEADER / 1024
            )));
        }
        return Ok(Step::More);
    };
    let line_end = b.windows(2).position(|w| w == b"\r\n").unwrap_or(end);
    let line = String::from_utf8_lossy(&b[..line_end]);
    let mut parts = line.splitn(3, ' ');
    let _version = parts.next();
    let code = parts
        .next()
        .and_then(|c| c.parse::<u16>().ok())
        .filter(|c| (100..1000).contains(c))
        .ok_or_else(|| Bad::new(format!("`{line}` is not an HTTP status line")))?;
    let reason = parts.next().unwrap_or("").trim().to_string();
    Ok(Step::Done(Status { code, reason }, end + 4))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_names_the_target_and_carries_basic_credentials() {
        assert_eq!(
            connect_request("::1", 22, None),
            b"CONNECT [::1]:22 HTTP/1.1\r\nHost: [::1]:22\r\n\r\n"
        );
        let c = Credentials {
            user: "Aladdin".into(),
            pass: "open sesame".into(),
        };
        let req = String::from_utf8(connect_request("h", 443, Some(&c))).unwrap();
        assert!(req.contains("Proxy-Authorization: Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==\r\n"));
        assert_eq!(base64(b"ab"), "YWI=");
        assert_eq!(base64(b"a"), "YQ==");
    }

    #[test]
    fn response_waits_for_the_blank_line_and_leaves_the_tunnel_bytes() {
        assert_eq!(response(b"HTTP/1.1 200 Conn"), Ok(Step::More));
        let r = b"HTTP/1.1 200 Connection established\r\nX: y\r\n\r\nSSH-2.0";
        assert_eq!(
            response(r),
            Ok(Step::Done(
                Status {
                    code: 200,
                    reason: "Connection established".into()
                },
                r.len() - 7
            ))
        );
        let r = b"HTTP/1.0 403 Access violation\r\n\r\n";
        let Ok(Step::Done(s, _)) = response(r) else {
            panic!("not decoded")
        };
        assert!(!s.ok());
        assert_eq!(
            status_name(s.code),
            "Forbidden: the proxy does not allow this target"
        );
        assert!(response(b"\x05\x00\x00\x01\x00").is_err());
        assert!(response(b"HTTP/1.1 abc\r\n\r\n").is_err());
        assert!(response(&[b'H'; MAX_HEADER]).is_err());
    }
}
