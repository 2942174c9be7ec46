//! The classic BPF program attached in the kernel (SO_ATTACH_FILTER) so that only this
//! session's packets are copied to the capture socket: IPv4 or IPv6, the transport asked
//! for (TCP or UDP), then the ports. A server's own ports match as source or destination; a
//! forwarder's target legs are matched by their two ports together (local and remote, either
//! way), or by the remote port alone while the local one is not known yet. The program is
//! rebuilt and attached again as legs come and go (the kernel swaps it atomically);
//! addresses are matched again in user space (handle.rs, legs.rs), where the direction is
//! decided too.
//!
//! A packet socket of type SOCK_DGRAM hands the program the packet from its network header
//! on; the link protocol comes from the ancillary load `SKF_AD_PROTOCOL`.

use libc::sock_filter;

// Instruction classes and modes (linux/bpf_common.h).
const LD: u16 = 0x00;
const LDX: u16 = 0x01;
const ST: u16 = 0x02;
const ALU: u16 = 0x04;
const JMP: u16 = 0x05;
const RET: u16 = 0x06;
const W: u16 = 0x00;
const H: u16 = 0x08;
const B: u16 = 0x10;
const ABS: u16 = 0x20;
const IND: u16 = 0x40;
const MEM: u16 = 0x60;
const MSH: u16 = 0xa0;
const JA: u16 = 0x00;
const JEQ: u16 = 0x10;
const JSET: u16 = 0x40;
const AND: u16 = 0x50;
const RSH: u16 = 0x70;
const K: u16 = 0x00;
/// `SKF_AD_OFF + SKF_AD_PROTOCOL`: the packet's ethertype, in host order.
const AD_PROTOCOL: u32 = (-0x1000_i32) as u32;
/// `SKF_AD_OFF + SKF_AD_PKTTYPE`: PACKET_HOST, PACKET_OUTGOING, ...
const AD_PKTTYPE: u32 = (-0x1000_i32 + 4) as u32;
/// `SKF_AD_OFF + SKF_AD_IFINDEX`: the interface the packet was seen on.
const AD_IFINDEX: u32 = (-0x1000_i32 + 8) as u32;
/// PACKET_OUTGOING (linux/if_packet.h).
const OUTGOING: u32 = 4;
/// How much of an accepted packet is kept for `--pcap`: all of it, as tcpdump does by default.
pub const SNAPLEN: u32 = 262_144;
/// How much is kept when only the headers are told (`--wire`, `--trace` without `--pcap`):
/// the longest IPv4 header (60) and TCP header (60), with room to spare. Copying 192 bytes
/// instead of a 64 KiB loopback segment is what lets the reader keep up with a bulk transfer.
pub const HEADERS: u32 = 192;
/// The most instructions the kernel takes in one classic program (BPF_MAXINSNS).
pub const MAX_INSNS: usize = 4096;

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

/// What a program lets through, besides the transport.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Match {
    /// Ports taken as source or destination: a server's own; a leg's remote port while its
    /// local port is not known yet.
    pub ports: Vec<u16>,
    /// Connections taken by their (local, remote) ports, either way.
    pub pairs: Vec<(u16, u16)>,
    /// Every packet of the transport (the fallback when the legs outgrow the program).
    pub all: bool,
    /// The loopback interface's index (0: none): each packet crosses `lo` twice, going out
    /// and coming in, and the copy going out is dropped here, so it is never copied to us.
    pub lo: u32,
}

impl Match {
    /// The program's length for this match (see [`program`]).
    pub fn insns(&self) -> usize {
        let ports = if self.ports.is_empty() {
            0
        } else {
            3 + 4 * self.ports.len()
        };
        let lo = if self.lo == 0 { 0 } else { 5 };
        lo + 17 + 4 * self.pairs.len() + ports
    }
}

/// The program for `proto` (6 TCP, 17 UDP) and `what`: accept (keep `snap` bytes of the
/// packet) or drop (0). Every test that accepts is followed by its own `ret`, so no jump is
/// longer than a few instructions however many ports and pairs there are.
pub fn program(proto: u8, what: &Match, snap: u32) -> Vec<sock_filter> {
    let proto = u32::from(proto);
    let mut code = Vec::new();
    if what.lo != 0 {
        code.extend([
            stmt(LD | W | ABS, AD_PKTTYPE),
            jump(JMP | JEQ | K, OUTGOING, 0, 3),
            stmt(LD | W | ABS, AD_IFINDEX),
            jump(JMP | JEQ | K, what.lo, 0, 1),
            stmt(RET | K, 0),
        ]);
    }
    // The jumps below are relative, so the lines above shift nothing.
    code.extend([
        stmt(LD | W | ABS, AD_PROTOCOL),
        jump(JMP | JEQ | K, 0x0800, 0, 7), // IPv4, else to the IPv6 test
        stmt(LD | B | ABS, 9),             // IPv4 protocol
        jump(JMP | JEQ | K, proto, 0, 10), // else drop
        stmt(LD | H | ABS, 6),             // flags + fragment offset
        // A later fragment has no ports: drop.
        jump(JMP | JSET | K, 0x1fff, 8, 0),
        stmt(LDX | B | MSH, 0), // X = IPv4 header length
        stmt(LD | W | IND, 0),  // A = source port << 16 | destination port
        stmt(JMP | JA, 6),      // to the tests
        // 9: IPv6 (no extension headers).
        jump(JMP | JEQ | K, 0x86dd, 0, 4),
        stmt(LD | B | ABS, 6), // next header
        jump(JMP | JEQ | K, proto, 0, 2),
        stmt(LD | W | ABS, 40), // the two ports
        stmt(JMP | JA, 1),
        // 14: drop.
        stmt(RET | K, 0),
        // 15: the tests, with both ports in A and in M[0].
        stmt(ST, 0),
    ]);
    let accept_if = |code: &mut Vec<sock_filter>, k: u32| {
        code.push(jump(JMP | JEQ | K, k, 0, 1));
        code.push(stmt(RET | K, snap));
    };
    if what.all {
        code.push(stmt(RET | K, snap));
        return code;
    }
    for &(local, remote) in &what.pairs {
        let (l, r) = (u32::from(local), u32::from(remote));
        accept_if(&mut code, l << 16 | r);
        accept_if(&mut code, r << 16 | l);
    }
    if !what.ports.is_empty() {
        code.push(stmt(ALU | RSH | K, 16)); // source port
        for &p in &what.ports {
            accept_if(&mut code, u32::from(p));
        }
        code.push(stmt(LD | W | MEM, 0));
        code.push(stmt(ALU | AND | K, 0xffff)); // destination port
        for &p in &what.ports {
            accept_if(&mut code, u32::from(p));
        }
    }
    code.push(stmt(RET | K, 0));
    code
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny interpreter for the instructions the program uses, over an IPv4 or IPv6
    /// packet (ethertype given as the kernel's ancillary load would). It checks, as the
    /// kernel's verifier does, that every jump lands inside the program.
    fn run(prog: &[sock_filter], ethertype: u32, pkt: &[u8]) -> u32 {
        run_on(prog, (ethertype, 0, 1), pkt)
    }

    /// `run` for a packet of `(ethertype, pkttype, ifindex)`.
    fn run_on(
        prog: &[sock_filter],
        (ethertype, pkttype, ifindex): (u32, u32, u32),
        pkt: &[u8],
    ) -> u32 {
        let (mut a, mut x, mut pc, mut m0) = (0u32, 0u32, 0usize, 0u32);
        let half = |at: usize| u32::from(u16::from_be_bytes([pkt[at], pkt[at + 1]]));
        let word = |at: usize| (half(at) << 16) | half(at + 2);
        loop {
            let ins = prog[pc];
            pc += 1;
            match ins.code {
                c if c == LD | W | ABS && ins.k == AD_PROTOCOL => a = ethertype,
                c if c == LD | W | ABS && ins.k == AD_PKTTYPE => a = pkttype,
                c if c == LD | W | ABS && ins.k == AD_IFINDEX => a = ifindex,
                c if c == LD | W | ABS => a = word(ins.k as usize),
                c if c == LD | W | IND => a = word(x as usize + ins.k as usize),
                c if c == LD | W | MEM => a = m0,
                c if c == ST => m0 = a,
                c if c == LD | B | ABS => a = u32::from(pkt[ins.k as usize]),
                c if c == LD | H | ABS => a = half(ins.k as usize),
                c if c == LDX | B | MSH => x = u32::from(pkt[ins.k as usize] & 0x0f) * 4,
                c if c == ALU | RSH | K => a >>= ins.k,
                c if c == ALU | AND | K => a &= ins.k,
                c if c == JMP | JA => pc += ins.k as usize,
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
            assert!(pc < prog.len(), "a jump leaves the program");
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

    /// Whether `prog` takes a TCP packet between ports `a` and `b` over both IP versions
    /// (and never a UDP one); panics if the versions disagree.
    fn takes(prog: &[sock_filter], a: u16, b: u16) -> bool {
        let four = run(prog, 0x0800, &v4(6, a, b));
        let six = run(prog, 0x86dd, &v6(6, a, b));
        assert_eq!(four, six, "IPv4 and IPv6 differ for {a} -> {b}");
        assert_eq!(run(prog, 0x0800, &v4(17, a, b)), 0, "UDP {a} -> {b}");
        four == SNAPLEN
    }

    #[test]
    fn the_program_takes_its_ports_either_way_and_drops_the_rest() {
        for ports in [&[80u16][..], &[80, 9000][..]] {
            let what = Match {
                ports: ports.to_vec(),
                ..Match::default()
            };
            let prog = program(6, &what, SNAPLEN);
            assert_eq!(prog.len(), what.insns());
            for &p in ports {
                assert!(takes(&prog, p, 40000) && takes(&prog, 40000, p));
            }
            assert!(!takes(&prog, 1234, 40000));
            assert_eq!(run(&prog, 0x0806, &v4(6, 80, 80)), 0, "ARP");
        }
    }

    #[test]
    fn a_leg_is_taken_by_both_its_ports_and_only_by_both() {
        let what = Match {
            ports: vec![7000],
            pairs: vec![(41000, 9000), (41001, 9000)],
            all: false,
            lo: 0,
        };
        let prog = program(6, &what, SNAPLEN);
        assert_eq!(prog.len(), what.insns());
        assert!(takes(&prog, 41000, 9000) && takes(&prog, 9000, 41000));
        assert!(takes(&prog, 41001, 9000) && takes(&prog, 9000, 41001));
        assert!(takes(&prog, 7000, 50000) && takes(&prog, 50000, 7000));
        // Another connection to the same target, not ours.
        assert!(!takes(&prog, 41002, 9000) && !takes(&prog, 9000, 41002));
        assert!(!takes(&prog, 41000, 9001));
        // No ports, no pairs: nothing (a forwarder on -U before its first target leg).
        let none = program(6, &Match::default(), SNAPLEN);
        assert!(!takes(&none, 7000, 9000));
        let all = program(
            6,
            &Match {
                all: true,
                ..Match::default()
            },
            SNAPLEN,
        );
        assert!(takes(&all, 1, 2));
    }

    #[test]
    fn many_legs_keep_every_jump_short_and_fit_the_kernels_bound() {
        let what = Match {
            ports: (1..=8).collect(),
            pairs: (0..500).map(|i| (40000 + i, 9000)).collect(),
            all: false,
            lo: 0,
        };
        let prog = program(6, &what, HEADERS);
        assert!(prog.len() <= MAX_INSNS);
        for ins in &prog {
            if ins.code & 0x07 == JMP && ins.code != JMP | JA {
                assert!(ins.jt <= 10 && ins.jf <= 10);
            }
        }
        assert_eq!(run(&prog, 0x0800, &v4(6, 9000, 40499)), HEADERS);
        assert_eq!(run(&prog, 0x86dd, &v6(6, 8, 50000)), HEADERS);
        assert_eq!(run(&prog, 0x86dd, &v6(6, 9000, 40500)), 0);
    }

    #[test]
    fn the_copy_going_out_on_lo_is_dropped_in_the_kernel_and_nothing_else() {
        const HOST: u32 = 0;
        let what = Match {
            ports: vec![7000],
            lo: 1,
            ..Match::default()
        };
        let prog = program(6, &what, SNAPLEN);
        assert_eq!(prog.len(), what.insns());
        let pkt = v4(6, 7000, 50000);
        assert_eq!(run_on(&prog, (0x0800, OUTGOING, 1), &pkt), 0, "out on lo");
        assert_eq!(run_on(&prog, (0x0800, HOST, 1), &pkt), SNAPLEN, "in on lo");
        assert_eq!(
            run_on(&prog, (0x0800, OUTGOING, 2), &pkt),
            SNAPLEN,
            "out on eth0"
        );
        assert_eq!(
            run_on(&prog, (0x0800, HOST, 1), &v4(6, 1, 2)),
            0,
            "not ours"
        );
    }
}
