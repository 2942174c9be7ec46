//! The classic BPF program attached in the kernel (SO_ATTACH_FILTER) so that only this
//! connection's packets are copied to the capture socket: IPv4 or IPv6, the transport asked
//! for (TCP or UDP), and the port as source or destination. Addresses are matched again in
//! user space (handle.rs), where the direction is decided too.
//!
//! A packet socket of type SOCK_DGRAM hands the program the packet from its network header
//! on; the link protocol comes from the ancillary load `SKF_AD_PROTOCOL`.

use libc::sock_filter;

// Instruction classes and modes (linux/bpf_common.h).
const LD: u16 = 0x00;
const LDX: u16 = 0x01;
const JMP: u16 = 0x05;
const RET: u16 = 0x06;
const W: u16 = 0x00;
const H: u16 = 0x08;
const B: u16 = 0x10;
const ABS: u16 = 0x20;
const IND: u16 = 0x40;
const MSH: u16 = 0xa0;
const JEQ: u16 = 0x10;
const JSET: u16 = 0x40;
const K: u16 = 0x00;
/// `SKF_AD_OFF + SKF_AD_PROTOCOL`: the packet's ethertype, in host order.
const AD_PROTOCOL: u32 = (-0x1000_i32) as u32;
/// How much of an accepted packet is kept: all of it, as tcpdump does by default.
pub const SNAPLEN: u32 = 262_144;

fn stmt(code: u16, k: u32) -> sock_filter {
    sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump(code: u16, k: u32, jt: u8, jf: u8) -> sock_filter {
    sock_filter { code, jt, jf, k }
}

/// The program for `proto` (6 TCP, 17 UDP) on `port`: accept (return SNAPLEN) or drop (0).
pub fn program(proto: u8, port: u16) -> Vec<sock_filter> {
    let p = u32::from(port);
    let proto = u32::from(proto);
    vec![
        /* 0 */ stmt(LD | W | ABS, AD_PROTOCOL),
        /* 1 */ jump(JMP | JEQ | K, 0x0800, 0, 9), // IPv4? else to 11
        /* 2 */ stmt(LD | B | ABS, 9), // IPv4 protocol
        /* 3 */ jump(JMP | JEQ | K, proto, 0, 15), // else drop (19)
        /* 4 */ stmt(LD | H | ABS, 6), // flags + fragment offset
        /* 5 */
        jump(JMP | JSET | K, 0x1fff, 13, 0), // a later fragment has no ports: drop
        /* 6 */ stmt(LDX | B | MSH, 0), // X = IPv4 header length
        /* 7 */ stmt(LD | H | IND, 0), // source port
        /* 8 */ jump(JMP | JEQ | K, p, 9, 0), // accept (18)
        /* 9 */ stmt(LD | H | IND, 2), // destination port
        /* 10 */ jump(JMP | JEQ | K, p, 7, 8), // accept (18) or drop (19)
        /* 11 */ jump(JMP | JEQ | K, 0x86dd, 0, 7), // IPv6? else drop (19)
        /* 12 */ stmt(LD | B | ABS, 6), // next header (no extension headers)
        /* 13 */ jump(JMP | JEQ | K, proto, 0, 5), // else drop (19)
        /* 14 */ stmt(LD | H | ABS, 40), // source port
        /* 15 */ jump(JMP | JEQ | K, p, 2, 0), // accept (18)
        /* 16 */ stmt(LD | H | ABS, 42), // destination port
        /* 17 */ jump(JMP | JEQ | K, p, 0, 1), // accept (18) or drop (19)
        /* 18 */ stmt(RET | K, SNAPLEN),
        /* 19 */ stmt(RET | K, 0),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every jump lands inside the program on a return or a load, never past its end.
    #[test]
    fn jumps_stay_inside_the_program() {
        let prog = program(6, 80);
        for (i, ins) in prog.iter().enumerate() {
            if ins.code & 0x07 == JMP {
                for off in [ins.jt, ins.jf] {
                    assert!(i + 1 + usize::from(off) < prog.len(), "jump at {i}");
                }
            }
        }
        assert_eq!(prog[18].k, SNAPLEN);
        assert_eq!(prog[19].k, 0);
        assert_eq!(prog.len(), 20);
    }
}
