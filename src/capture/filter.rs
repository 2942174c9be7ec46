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
/// How much of an accepted packet is kept for `--pcap`: all of it, as tcpdump does by default.
pub const SNAPLEN: u32 = 262_144;
/// How much is kept when only the headers are told (`--wire`, `--trace` without `--pcap`):
/// the longest IPv4 header (60) and TCP header (60), with room to spare. Copying 192 bytes
/// instead of a 64 KiB loopback segment is what lets the reader keep up with a bulk transfer.
pub const HEADERS: u32 = 192;

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

/// Where a jump goes: the next instruction, or one of the program's three places.
#[derive(Clone, Copy, PartialEq, Eq)]
enum To {
    Next,
    V6,
    Accept,
    Drop,
}

/// The program for `proto` (6 TCP, 17 UDP) on any of `ports` (a server's own, and for a
/// forwarder its target's): accept (keep `snap` bytes of the packet) or drop (0).
pub fn program(proto: u8, ports: &[u16], snap: u32) -> Vec<sock_filter> {
    let proto = u32::from(proto);
    // (instruction, where it jumps when true, when false), resolved below.
    let mut code: Vec<(sock_filter, To, To)> = Vec::new();
    let plain = |ins: sock_filter| (ins, To::Next, To::Next);
    let port_checks = |code: &mut Vec<(sock_filter, To, To)>, last: To| {
        for (i, &p) in ports.iter().enumerate() {
            let otherwise = if i + 1 == ports.len() { last } else { To::Next };
            code.push((
                jump(JMP | JEQ | K, u32::from(p), 0, 0),
                To::Accept,
                otherwise,
            ));
        }
    };
    code.push(plain(stmt(LD | W | ABS, AD_PROTOCOL)));
    code.push((jump(JMP | JEQ | K, 0x0800, 0, 0), To::Next, To::V6));
    code.push(plain(stmt(LD | B | ABS, 9))); // IPv4 protocol
    code.push((jump(JMP | JEQ | K, proto, 0, 0), To::Next, To::Drop));
    code.push(plain(stmt(LD | H | ABS, 6))); // flags + fragment offset
    // A later fragment has no ports: drop.
    code.push((jump(JMP | JSET | K, 0x1fff, 0, 0), To::Drop, To::Next));
    code.push(plain(stmt(LDX | B | MSH, 0))); // X = IPv4 header length
    code.push(plain(stmt(LD | H | IND, 0))); // source port
    port_checks(&mut code, To::Next);
    code.push(plain(stmt(LD | H | IND, 2))); // destination port
    port_checks(&mut code, To::Drop);
    let v6 = code.len();
    code.push((jump(JMP | JEQ | K, 0x86dd, 0, 0), To::Next, To::Drop));
    code.push(plain(stmt(LD | B | ABS, 6))); // next header (no extension headers)
    code.push((jump(JMP | JEQ | K, proto, 0, 0), To::Next, To::Drop));
    code.push(plain(stmt(LD | H | ABS, 40))); // source port
    port_checks(&mut code, To::Next);
    code.push(plain(stmt(LD | H | ABS, 42))); // destination port
    port_checks(&mut code, To::Drop);
    let accept = code.len();
    code.push(plain(stmt(RET | K, snap)));
    let drop = code.len();
    code.push(plain(stmt(RET | K, 0)));
    let offset = |from: usize, to: To| -> u8 {
        let target = match to {
            To::Next => from + 1,
            To::V6 => v6,
            To::Accept => accept,
            To::Drop => drop,
        };
        // Forward jumps only, within a u8: a handful of ports keeps them short.
        u8::try_from(target - from - 1).unwrap_or(u8::MAX)
    };
    code.iter()
        .enumerate()
        .map(|(i, &(mut ins, t, f))| {
            if ins.code & 0x07 == JMP {
                ins.jt = offset(i, t);
                ins.jf = offset(i, f);
            }
            ins
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny interpreter for the instructions the program uses, over an IPv4 or IPv6
    /// packet (ethertype given as the kernel's ancillary load would).
    fn run(prog: &[sock_filter], ethertype: u32, pkt: &[u8]) -> u32 {
        let (mut a, mut x, mut pc) = (0u32, 0u32, 0usize);
        let half = |at: usize| u32::from(u16::from_be_bytes([pkt[at], pkt[at + 1]]));
        loop {
            let ins = prog[pc];
            pc += 1;
            match ins.code {
                c if c == LD | W | ABS => a = ethertype,
                c if c == LD | B | ABS => a = u32::from(pkt[ins.k as usize]),
                c if c == LD | H | ABS => a = half(ins.k as usize),
                c if c == LD | H | IND => a = half(x as usize + ins.k as usize),
                c if c == LDX | B | MSH => x = u32::from(pkt[ins.k as usize] & 0x0f) * 4,
                c if c == JMP | JEQ | K || c == JMP | JSET | K => {
                    let hit = if c == JMP | JEQ | K {
                        a == ins.k
                    } else {
                        a & ins.k != 0
                    };
                    pc += usize::from(if hit { ins.jt } else { ins.jf });
                }
                c if c == RET | K => return ins.k,
                c => panic!("instruction {c:#x}"),
            }
        }
    }

    fn v4(proto: u8, src: u16, dst: u16) -> Vec<u8> {
        let mut p = vec![0u8; 28];
        p[0] = 0x45;
        p[9] = proto;
        p[20..22].copy_from_slice(&src.to_be_bytes());
        p[22..24].copy_from_slice(&dst.to_be_bytes());
        p
    }

    fn v6(proto: u8, src: u16, dst: u16) -> Vec<u8> {
        let mut p = vec![0u8; 48];
        p[0] = 0x60;
        p[6] = proto;
        p[40..42].copy_from_slice(&src.to_be_bytes());
        p[42..44].copy_from_slice(&dst.to_be_bytes());
        p
    }

    #[test]
    fn the_program_takes_its_ports_either_way_and_drops_the_rest() {
        for ports in [&[80u16][..], &[80, 9000][..]] {
            let prog = program(6, ports, SNAPLEN);
            for (i, ins) in prog.iter().enumerate() {
                if ins.code & 0x07 == JMP {
                    for off in [ins.jt, ins.jf] {
                        assert!(i + 1 + usize::from(off) < prog.len(), "jump at {i}");
                    }
                }
            }
            for &p in ports {
                assert_eq!(run(&prog, 0x0800, &v4(6, p, 40000)), SNAPLEN);
                assert_eq!(run(&prog, 0x0800, &v4(6, 40000, p)), SNAPLEN);
                assert_eq!(run(&prog, 0x86dd, &v6(6, p, 40000)), SNAPLEN);
                assert_eq!(run(&prog, 0x86dd, &v6(6, 40000, p)), SNAPLEN);
                assert_eq!(run(&prog, 0x0800, &v4(17, p, 40000)), 0, "UDP");
            }
            assert_eq!(run(&prog, 0x0800, &v4(6, 1234, 40000)), 0);
            assert_eq!(run(&prog, 0x86dd, &v6(6, 1234, 40000)), 0);
            assert_eq!(run(&prog, 0x0806, &v4(6, 80, 80)), 0, "ARP");
        }
    }
}
