//! One captured packet, from its IP header on (perhaps only its headers), decoded into what `--wire` tells: addresses,
//! ports, and for TCP the flags, sequence numbers, window and options. Decoding is
//! etherparse's (a maintained, allocation-free parser of IPv4/IPv6/TCP/UDP with checked
//! lengths), so a truncated or odd packet is an error here, never a panic or a misread.

use std::net::{IpAddr, SocketAddr};

use etherparse::{LaxNetSlice, LaxSlicedPacket, TcpOptionElement, TransportSlice};

/// A decoded packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub body: Body,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    Tcp(Tcp),
    /// A UDP datagram and its payload length.
    Udp {
        len: usize,
    },
}

/// A TCP segment's header fields, as on the wire (absolute sequence numbers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tcp {
    pub seq: u32,
    pub ack: u32,
    pub win: u16,
    pub syn: bool,
    pub fin: bool,
    pub rst: bool,
    pub psh: bool,
    pub urg: bool,
    pub ece: bool,
    pub cwr: bool,
    pub has_ack: bool,
    /// Payload bytes.
    pub len: usize,
    /// tcpdump's spelling: `mss 65495`, `sackOK`, `TS`, `nop`, `wscale 7`.
    pub options: Vec<String>,
}

/// Decodes `data` (an IP packet, perhaps cut after its headers: see `filter::HEADERS`);
/// `None` for what is neither TCP nor UDP over IP, or is cut inside a header. Payload
/// lengths come from the IP header, so a packet captured headers-only still says its length.
pub fn decode(data: &[u8]) -> Option<Packet> {
    let sliced = LaxSlicedPacket::from_ip(data).ok()?;
    let (src_ip, dst_ip, ip_payload): (IpAddr, IpAddr, usize) = match sliced.net? {
        LaxNetSlice::Ipv4(v4) => {
            let h = v4.header();
            let payload = usize::from(h.total_len()).checked_sub(usize::from(h.ihl()) * 4)?;
            (h.source_addr().into(), h.destination_addr().into(), payload)
        }
        LaxNetSlice::Ipv6(v6) => {
            let h = v6.header();
            // Extension headers would count in payload_length: only plain TCP/UDP is decoded.
            if !v6.extensions().is_empty() {
                return None;
            }
            (
                h.source_addr().into(),
                h.destination_addr().into(),
                usize::from(h.payload_length()),
            )
        }
        LaxNetSlice::Arp(_) => return None,
    };
    match sliced.transport? {
        TransportSlice::Tcp(t) => Some(Packet {
            src: SocketAddr::new(src_ip, t.source_port()),
            dst: SocketAddr::new(dst_ip, t.destination_port()),
            body: Body::Tcp(Tcp {
                seq: t.sequence_number(),
                ack: t.acknowledgment_number(),
                win: t.window_size(),
                syn: t.syn(),
                fin: t.fin(),
                rst: t.rst(),
                psh: t.psh(),
                urg: t.urg(),
                ece: t.ece(),
                cwr: t.cwr(),
                has_ack: t.ack(),
                len: ip_payload.checked_sub(usize::from(t.data_offset()) * 4)?,
                options: t
                    .options_iterator()
                    .map_while(Result::ok)
                    .map(option_name)
                    .collect(),
            }),
        }),
        TransportSlice::Udp(u) => Some(Packet {
            src: SocketAddr::new(src_ip, u.source_port()),
            dst: SocketAddr::new(dst_ip, u.destination_port()),
            body: Body::Udp {
                len: usize::from(u.length()).checked_sub(8)?,
            },
        }),
        _ => None,
    }
}

fn option_name(o: TcpOptionElement) -> String {
    match o {
        TcpOptionElement::Noop => "nop".into(),
        TcpOptionElement::MaximumSegmentSize(m) => format!("mss {m}"),
        TcpOptionElement::WindowScale(w) => format!("wscale {w}"),
        TcpOptionElement::SelectiveAcknowledgementPermitted => "sackOK".into(),
        TcpOptionElement::SelectiveAcknowledgement(..) => "sack".into(),
        TcpOptionElement::Timestamp(..) => "TS".into(),
    }
}

impl Tcp {
    /// tcpdump's flag letters: `S`, `S.`, `P.`, `F.`, `R`, `FP.`.
    pub fn flags(&self) -> String {
        let mut s = String::new();
        for (on, c) in [
            (self.fin, 'F'),
            (self.syn, 'S'),
            (self.rst, 'R'),
            (self.psh, 'P'),
            (self.urg, 'U'),
            (self.ece, 'E'),
            (self.cwr, 'W'),
            (self.has_ack, '.'),
        ] {
            if on {
                s.push(c);
            }
        }
        if s.is_empty() {
            s.push_str("none");
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::PacketBuilder;

    #[test]
    fn a_syn_decodes_with_its_options() {
        let builder = PacketBuilder::ipv4([127, 0, 0, 1], [127, 0, 0, 1], 64)
            .tcp(40000, 80, 1000, 65495)
            .syn()
            .options(&[
                TcpOptionElement::MaximumSegmentSize(65495),
                TcpOptionElement::SelectiveAcknowledgementPermitted,
                TcpOptionElement::Noop,
                TcpOptionElement::WindowScale(7),
            ])
            .unwrap();
        let mut buf = Vec::new();
        builder.write(&mut buf, &[]).unwrap();
        let p = decode(&buf).unwrap();
        assert_eq!(p.src, "127.0.0.1:40000".parse().unwrap());
        let Body::Tcp(t) = p.body else {
            panic!("not tcp")
        };
        assert_eq!(t.flags(), "S");
        assert_eq!(t.seq, 1000);
        assert_eq!(
            t.options[..2],
            ["mss 65495".to_string(), "sackOK".to_string()]
        );
        assert!(t.options.contains(&"wscale 7".to_string()));
    }

    #[test]
    fn a_udp_datagram_has_its_length() {
        let builder = PacketBuilder::ipv6([0; 16], [0; 16], 64).udp(5000, 53);
        let mut buf = Vec::new();
        builder.write(&mut buf, b"hello").unwrap();
        assert_eq!(decode(&buf).unwrap().body, Body::Udp { len: 5 });
        assert_eq!(decode(&buf[..10]), None);
        // Cut after the headers, as --wire captures: the length is still the datagram's.
        assert_eq!(decode(&buf[..48]).unwrap().body, Body::Udp { len: 5 });
    }

    #[test]
    fn a_segment_cut_after_its_headers_keeps_its_payload_length() {
        let builder = PacketBuilder::ipv4([127, 0, 0, 1], [127, 0, 0, 1], 64)
            .tcp(40000, 80, 1000, 65495)
            .ack(5)
            .psh();
        let mut buf = Vec::new();
        builder.write(&mut buf, &[7u8; 3000]).unwrap();
        let Body::Tcp(t) = decode(&buf[..super::super::filter::HEADERS as usize])
            .unwrap()
            .body
        else {
            panic!("not tcp")
        };
        assert_eq!((t.len, t.flags()), (3000, "P.".to_string()));
        assert_eq!(decode(&buf[..30]), None, "cut inside the TCP header");
    }
}
