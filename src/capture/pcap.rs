//! `--pcap FILE`: the captured packets as a classic pcap file (the libpcap format tcpdump -r
//! and Wireshark read): a 24-byte global header, then per packet a 16-byte record header and
//! the bytes. The link type is LINUX_SLL (113): a packet socket of type SOCK_DGRAM gives the
//! packet from its IP header on, and the 16-byte "cooked" header made here from its
//! sockaddr_ll says which way it went and what protocol it carries.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::sys::PacketMeta;

const MAGIC: u32 = 0xa1b2_c3d4;
const LINKTYPE_LINUX_SLL: u32 = 113;
/// The SLL header's `packet type` for what this host sent (PACKET_OUTGOING).
pub const OUTGOING: u8 = 4;

pub struct PcapWriter {
    out: BufWriter<File>,
}

impl PcapWriter {
    /// Creates `path` and writes the global header.
    pub fn create(path: &Path, snaplen: u32) -> io::Result<PcapWriter> {
        let mut out = BufWriter::new(File::create(path)?);
        out.write_all(&global_header(snaplen))?;
        Ok(PcapWriter { out })
    }

    /// One packet, seen at `when`.
    pub fn packet(&mut self, when: SystemTime, meta: &PacketMeta, data: &[u8]) -> io::Result<()> {
        let sll = sll_header(meta);
        let since = when.duration_since(UNIX_EPOCH).unwrap_or_default();
        let len = (sll.len() + data.len()) as u32;
        let mut rec = Vec::with_capacity(16);
        rec.extend_from_slice(&(since.as_secs() as u32).to_le_bytes());
        rec.extend_from_slice(&since.subsec_micros().to_le_bytes());
        rec.extend_from_slice(&len.to_le_bytes());
        rec.extend_from_slice(&len.to_le_bytes());
        self.out.write_all(&rec)?;
        self.out.write_all(&sll)?;
        self.out.write_all(data)
    }

    pub fn finish(mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// Magic, version 2.4, zone 0, sigfigs 0, snaplen, link type; little-endian (the magic says
/// which).
fn global_header(snaplen: u32) -> [u8; 24] {
    let mut h = [0u8; 24];
    h[0..4].copy_from_slice(&MAGIC.to_le_bytes());
    h[4..6].copy_from_slice(&2u16.to_le_bytes());
    h[6..8].copy_from_slice(&4u16.to_le_bytes());
    h[16..20].copy_from_slice(&(snaplen + 16).to_le_bytes());
    h[20..24].copy_from_slice(&LINKTYPE_LINUX_SLL.to_le_bytes());
    h
}

/// The LINUX_SLL header (big-endian fields): packet type, ARPHRD type, address length, 8
/// address bytes, protocol.
fn sll_header(meta: &PacketMeta) -> [u8; 16] {
    let mut h = [0u8; 16];
    h[0..2].copy_from_slice(&u16::from(meta.pkttype).to_be_bytes());
    h[2..4].copy_from_slice(&meta.hatype.to_be_bytes());
    h[4..6].copy_from_slice(&u16::from(meta.halen.min(8)).to_be_bytes());
    h[6..14].copy_from_slice(&meta.addr);
    h[14..16].copy_from_slice(&meta.protocol.to_be_bytes());
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_global_header_is_libpcaps() {
        let h = global_header(262_144);
        assert_eq!(&h[0..4], &[0xd4, 0xc3, 0xb2, 0xa1]);
        assert_eq!(u32::from_le_bytes(h[20..24].try_into().unwrap()), 113);
    }

    #[test]
    fn the_sll_header_names_the_protocol() {
        let meta = PacketMeta {
            ifindex: 1,
            pkttype: OUTGOING,
            hatype: 772,
            protocol: 0x0800,
            halen: 6,
            addr: [0; 8],
        };
        let h = sll_header(&meta);
        assert_eq!(&h[0..2], &[0, 4]);
        assert_eq!(&h[14..16], &[0x08, 0x00]);
    }
}
