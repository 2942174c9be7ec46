//! Every libc call sockkit makes itself and every `unsafe` block in the crate: socket2 and std
//! cover the rest. Each wrapper is safe to call, returns `io::Result` (errno in the error), and
//! carries a `// SAFETY:` line saying why its block is sound. Keeping them here means the rest
//! of the crate is `unsafe`-free, which `tests/layers.rs` checks.
//!
//! Socket options go through one generic pair, [`getsockopt`] and [`setsockopt`], over plain
//! old data types ([`Pod`]), as socket2 does it in its own `sys` module.

use std::fs::File;
use std::io;
use std::mem::{ManuallyDrop, MaybeUninit};
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

/// A C value the kernel may fill byte by byte: plain old data for which all zero bytes is a
/// valid value (so it can be zeroed before getsockopt writes it).
///
/// # Safety
/// Implement only for `#[repr(C)]` structs and integers with no padding-sensitive invariants,
/// no references and no niche.
pub unsafe trait Pod: Copy {}

// SAFETY: integers are valid for every bit pattern.
unsafe impl Pod for libc::c_int {}
// SAFETY: linger is two c_ints.
unsafe impl Pod for libc::linger {}
// SAFETY: ucred is three integers.
#[cfg(target_os = "linux")]
unsafe impl Pod for libc::ucred {}
// SAFETY: tcp_info is integers only; the kernel defines every byte it writes.
#[cfg(target_os = "linux")]
unsafe impl Pod for libc::tcp_info {}

// SAFETY: arrays of integers are valid for every bit pattern (SO_MEMINFO's u32 vector).
unsafe impl<const N: usize> Pod for [u32; N] {}

fn cvt(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

fn cvt_size(rc: isize) -> io::Result<usize> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc.unsigned_abs())
    }
}

fn socklen_of<T>() -> libc::socklen_t {
    libc::socklen_t::try_from(std::mem::size_of::<T>()).unwrap_or(libc::socklen_t::MAX)
}

/// `getsockopt(fd, level, name, &value, &len)`; a value shorter than `T` (an older kernel's
/// tcp_info) leaves the rest zero.
pub fn getsockopt<T: Pod>(fd: RawFd, level: libc::c_int, name: libc::c_int) -> io::Result<T> {
    let mut value = MaybeUninit::<T>::zeroed();
    let mut len = socklen_of::<T>();
    // SAFETY: `value` is writable for `len` bytes, the size of T, and the kernel writes at
    // most `len`; T is Pod, so the zeroed bytes it leaves are a valid T too.
    cvt(unsafe { libc::getsockopt(fd, level, name, value.as_mut_ptr().cast(), &raw mut len) })?;
    // SAFETY: zeroed then (partly) overwritten by the kernel: every byte is initialised.
    Ok(unsafe { value.assume_init() })
}

/// `setsockopt(fd, level, name, &value, sizeof value)`.
pub fn setsockopt<T: Pod>(
    fd: RawFd,
    level: libc::c_int,
    name: libc::c_int,
    value: &T,
) -> io::Result<()> {
    // SAFETY: the kernel reads exactly size_of::<T>() bytes from a live reference.
    cvt(unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            std::ptr::from_ref(value).cast(),
            socklen_of::<T>(),
        )
    })
    .map(drop)
}

// SAFETY: tpacket_stats is two unsigned ints.
#[cfg(target_os = "linux")]
unsafe impl Pod for libc::tpacket_stats {}
// SAFETY: timeval is two integers (SO_RCVTIMEO).
unsafe impl Pod for libc::timeval {}

/// A packet socket for `--wire`: `socket(AF_PACKET, SOCK_DGRAM, 0)`. Protocol 0 receives
/// nothing until [`packet_bind`] names one, so the filter can be attached before the first
/// packet is queued (none slips in unfiltered).
#[cfg(target_os = "linux")]
pub fn packet_socket() -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2) with constant arguments; the returned descriptor is new and
    // owned by nobody else.
    let fd =
        cvt(unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) })?;
    // SAFETY: `fd` was just returned by socket(2) and is owned by this OwnedFd alone.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `setsockopt(SO_ATTACH_FILTER)`: a classic BPF program run by the kernel on every packet,
/// so only the ones it accepts are copied to this socket.
#[cfg(target_os = "linux")]
pub fn attach_filter(fd: RawFd, program: &[libc::sock_filter]) -> io::Result<()> {
    let prog = libc::sock_fprog {
        len: u16::try_from(program.len())
            .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?,
        filter: program.as_ptr().cast_mut(),
    };
    // SAFETY: `prog` points at `program`, alive for the call; the kernel copies the program
    // (it reads `len` instructions and never writes through the pointer).
    cvt(unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_ATTACH_FILTER,
            std::ptr::from_ref(&prog).cast(),
            socklen_of::<libc::sock_fprog>(),
        )
    })
    .map(drop)
}

/// `bind(2)` a packet socket to every protocol (ETH_P_ALL) on interface `ifindex` (0: all).
#[cfg(target_os = "linux")]
pub fn packet_bind(fd: RawFd, ifindex: u32) -> io::Result<()> {
    // SAFETY: all-zero is a valid sockaddr_ll.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
    sll.sll_ifindex = ifindex as i32;
    // SAFETY: `sll` is a live sockaddr_ll and the length passed is its size.
    cvt(unsafe {
        libc::bind(
            fd,
            std::ptr::from_ref(&sll).cast(),
            socklen_of::<libc::sockaddr_ll>(),
        )
    })
    .map(drop)
}

/// What the kernel says about one captured packet besides its bytes.
#[derive(Debug, Clone, Copy)]
pub struct PacketMeta {
    pub ifindex: u32,
    /// PACKET_HOST, PACKET_OUTGOING, ...
    pub pkttype: u8,
    pub hatype: u16,
    /// The network protocol (ETH_P_IP, ETH_P_IPV6), host order.
    pub protocol: u16,
    pub halen: u8,
    pub addr: [u8; 8],
}

impl PacketMeta {
    /// Read off the sockaddr_ll the kernel gives with each packet (recvmsg, or the ring).
    fn of(sll: &libc::sockaddr_ll) -> PacketMeta {
        PacketMeta {
            ifindex: sll.sll_ifindex as u32,
            pkttype: sll.sll_pkttype,
            hatype: sll.sll_hatype,
            protocol: u16::from_be(sll.sll_protocol),
            halen: sll.sll_halen,
            addr: sll.sll_addr,
        }
    }
}

/// `recvmsg(2)` on a packet socket: the packet (from its network header on, SOCK_DGRAM),
/// the sockaddr_ll that says where it was seen and which way it went, and the kernel's
/// receive timestamp (SCM_TIMESTAMPNS, wall clock) when SO_TIMESTAMPNS is on: one call, so a
/// captured segment is timed by the kernel, not by when the reader thread got to it.
#[cfg(target_os = "linux")]
pub fn packet_recv(
    fd: RawFd,
    buf: &mut [u8],
) -> io::Result<(usize, PacketMeta, Option<std::time::SystemTime>)> {
    // SAFETY: all-zero is a valid sockaddr_ll.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // Room for one cmsghdr and a timespec, aligned as cmsghdr wants.
    let mut control = [0u64; 8];
    // SAFETY: all-zero is a valid msghdr; the pointers are set below.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_name = std::ptr::from_mut(&mut sll).cast();
    msg.msg_namelen = socklen_of::<libc::sockaddr_ll>();
    msg.msg_iov = &raw mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control) as _;
    // SAFETY: `msg` points at `sll`, `iov` (over `buf`) and `control`, all live and writable
    // for their stated lengths during the call; the kernel writes within them.
    let n = cvt_size(unsafe { libc::recvmsg(fd, &raw mut msg, libc::MSG_TRUNC) })?;
    let mut stamp = None;
    // SAFETY: `msg` was filled by recvmsg; CMSG_FIRSTHDR/CMSG_NXTHDR walk only within
    // msg_control[..msg_controllen], and a header is read only when the walk returns one.
    let mut c = unsafe { libc::CMSG_FIRSTHDR(&raw const msg) };
    while !c.is_null() {
        // SAFETY: `c` is a cmsghdr inside `control` (CMSG_FIRSTHDR/CMSG_NXTHDR said so).
        let h = unsafe { &*c };
        if h.cmsg_level == libc::SOL_SOCKET && h.cmsg_type == libc::SCM_TIMESTAMPNS {
            // SAFETY: an SCM_TIMESTAMPNS message carries one timespec, possibly unaligned.
            let ts: libc::timespec = unsafe { std::ptr::read_unaligned(libc::CMSG_DATA(c).cast()) };
            let d = std::time::Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32);
            stamp = Some(std::time::UNIX_EPOCH + d);
        }
        // SAFETY: as for CMSG_FIRSTHDR: the walk stays within msg_control.
        c = unsafe { libc::CMSG_NXTHDR(&raw const msg, c) };
    }
    Ok((n.min(buf.len()), PacketMeta::of(&sll), stamp))
}

// SAFETY: tpacket_req3 is seven unsigned ints.
#[cfg(target_os = "linux")]
unsafe impl Pod for libc::tpacket_req3 {}

/// A packet socket's receive ring (PACKET_RX_RING, TPACKET_V3): `blocks` blocks of
/// `block_size` bytes mapped from the kernel, which fills a block with packets and hands it
/// over when it is full or after `retire` (so a quiet line still shows its packets soon);
/// the reader walks a block's packets in place and gives the block back. No copy and no
/// system call per packet, and a fixed size: when every block is the reader's, the kernel
/// drops and counts (PACKET_STATISTICS).
#[cfg(target_os = "linux")]
pub struct PacketRing {
    map: std::ptr::NonNull<u8>,
    len: usize,
    block_size: usize,
    blocks: usize,
    next: usize,
}

// SAFETY: the mapping is owned by this value alone and only read and written through
// `&mut self`; it may move to the reader thread.
#[cfg(target_os = "linux")]
unsafe impl Send for PacketRing {}

/// One packet in a ring block: its bytes (from the network header on), what the kernel says
/// about it, and when the kernel saw it.
#[cfg(target_os = "linux")]
pub struct RingPacket<'a> {
    pub data: &'a [u8],
    pub meta: PacketMeta,
    pub stamp: std::time::SystemTime,
}

#[cfg(target_os = "linux")]
impl PacketRing {
    /// TPACKET_V3, then the ring, then its mapping, on the packet socket `fd` (before it is
    /// bound, so no packet comes before the ring is there). On a failure the socket is left
    /// as it was (no ring, TPACKET_V1), so recvmsg reads it: a ring left attached unmapped
    /// would take every packet and hand none over.
    pub fn new(
        fd: RawFd,
        block_size: usize,
        blocks: usize,
        retire: std::time::Duration,
    ) -> io::Result<PacketRing> {
        /// The frame size the kernel is told (see below).
        const FRAME: usize = 2048;
        let version = libc::tpacket_versions::TPACKET_V3 as libc::c_int;
        setsockopt(fd, libc::SOL_PACKET, libc::PACKET_VERSION, &version)?;
        // Frames do not apply to TPACKET_V3 (packets are packed in a block), but the kernel
        // checks that they tile the blocks.
        let too_big = || io::Error::from_raw_os_error(libc::EINVAL);
        let req = libc::tpacket_req3 {
            tp_block_size: u32::try_from(block_size).map_err(|_| too_big())?,
            tp_block_nr: u32::try_from(blocks).map_err(|_| too_big())?,
            tp_frame_size: FRAME as u32,
            tp_frame_nr: u32::try_from(block_size / FRAME * blocks).map_err(|_| too_big())?,
            tp_retire_blk_tov: u32::try_from(retire.as_millis()).unwrap_or(u32::MAX).max(1),
            tp_sizeof_priv: 0,
            tp_feature_req_word: 0,
        };
        let undo_version = || {
            let v1 = libc::tpacket_versions::TPACKET_V1 as libc::c_int;
            let _ = setsockopt(fd, libc::SOL_PACKET, libc::PACKET_VERSION, &v1);
        };
        if let Err(e) = setsockopt(fd, libc::SOL_PACKET, libc::PACKET_RX_RING, &req) {
            undo_version();
            return Err(e);
        }
        let Some(len) = block_size.checked_mul(blocks) else {
            return Err(too_big());
        };
        // SAFETY: a fresh shared mapping of the ring the kernel just made for `fd`, of its
        // exact size; nothing else in this process refers to it.
        let map = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd,
                0,
            )
        };
        if map == libc::MAP_FAILED {
            let e = io::Error::last_os_error();
            // A zeroed request frees the ring (nothing maps it); then the version can go back.
            let none = libc::tpacket_req3 {
                tp_block_size: 0,
                tp_block_nr: 0,
                tp_frame_size: 0,
                tp_frame_nr: 0,
                tp_retire_blk_tov: 0,
                tp_sizeof_priv: 0,
                tp_feature_req_word: 0,
            };
            let _ = setsockopt(fd, libc::SOL_PACKET, libc::PACKET_RX_RING, &none);
            undo_version();
            return Err(e);
        }
        let map = std::ptr::NonNull::new(map.cast::<u8>()).ok_or_else(too_big)?;
        Ok(PacketRing {
            map,
            len,
            block_size,
            blocks,
            next: 0,
        })
    }

    /// The status word of block `i`, shared with the kernel.
    fn status(&self, i: usize) -> &std::sync::atomic::AtomicU32 {
        let at = std::mem::offset_of!(libc::tpacket_block_desc, hdr)
            + std::mem::offset_of!(libc::tpacket_hdr_v1, block_status);
        // SAFETY: block `i` lies inside the mapping (i < blocks) and starts with a
        // tpacket_block_desc, whose block_status is an aligned u32 the kernel also writes:
        // so it is read and written only atomically.
        unsafe {
            std::sync::atomic::AtomicU32::from_ptr(
                self.map.as_ptr().add(i * self.block_size + at).cast(),
            )
        }
    }

    /// Waits up to `timeout` for the next block the kernel hands over, calls `each` on its
    /// packets in order, and gives it back. `Ok(false)`: nothing came in time.
    pub fn next_block(
        &mut self,
        fd: RawFd,
        timeout: std::time::Duration,
        mut each: impl FnMut(RingPacket<'_>),
    ) -> io::Result<bool> {
        use std::sync::atomic::Ordering;
        let i = self.next;
        if self.status(i).load(Ordering::Acquire) & libc::TP_STATUS_USER == 0 {
            let mut fds = [libc::pollfd {
                fd,
                events: libc::POLLIN | libc::POLLERR,
                revents: 0,
            }];
            let ms = libc::c_int::try_from(timeout.as_millis()).unwrap_or(libc::c_int::MAX);
            match poll(&mut fds, ms) {
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => return Ok(false),
                Err(e) => return Err(e),
                Ok(_) => {}
            }
            if self.status(i).load(Ordering::Acquire) & libc::TP_STATUS_USER == 0 {
                return Ok(false);
            }
        }
        // SAFETY: block `i` is inside the mapping and the kernel has handed it to us
        // (TP_STATUS_USER, read with Acquire): it does not write it until we give it back.
        let block = unsafe {
            std::slice::from_raw_parts(self.map.as_ptr().add(i * self.block_size), self.block_size)
        };
        walk_block(block, &mut each);
        self.status(i)
            .store(libc::TP_STATUS_KERNEL, Ordering::Release);
        self.next = (i + 1) % self.blocks;
        Ok(true)
    }
}

/// The packets of one TPACKET_V3 block, each read from its header; a header that points
/// outside the block ends the walk (the kernel never writes one, but nothing is trusted).
#[cfg(target_os = "linux")]
fn walk_block(block: &[u8], each: &mut impl FnMut(RingPacket<'_>)) {
    let u32_at = |at: usize| -> Option<u32> {
        block
            .get(at..at.checked_add(4)?)
            .map(|b| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
    };
    let u16_at = |at: usize| -> Option<u16> {
        block
            .get(at..at.checked_add(2)?)
            .map(|b| u16::from_ne_bytes([b[0], b[1]]))
    };
    let bh = std::mem::offset_of!(libc::tpacket_block_desc, hdr);
    let (Some(count), Some(first)) = (
        u32_at(bh + std::mem::offset_of!(libc::tpacket_hdr_v1, num_pkts)),
        u32_at(bh + std::mem::offset_of!(libc::tpacket_hdr_v1, offset_to_first_pkt)),
    ) else {
        return;
    };
    let hdr = std::mem::size_of::<libc::tpacket3_hdr>();
    let sll_at = (hdr + libc::TPACKET_ALIGNMENT - 1) & !(libc::TPACKET_ALIGNMENT - 1);
    let mut at = first as usize;
    for _ in 0..count {
        let field = |off: usize| at.checked_add(off);
        let got = (|| {
            let next = u32_at(field(std::mem::offset_of!(
                libc::tpacket3_hdr,
                tp_next_offset
            ))?)?;
            let sec = u32_at(field(std::mem::offset_of!(libc::tpacket3_hdr, tp_sec))?)?;
            let nsec = u32_at(field(std::mem::offset_of!(libc::tpacket3_hdr, tp_nsec))?)?;
            let snap = u32_at(field(std::mem::offset_of!(libc::tpacket3_hdr, tp_snaplen))?)?;
            let net = u16_at(field(std::mem::offset_of!(libc::tpacket3_hdr, tp_net))?)?;
            let sll_start = at.checked_add(sll_at)?;
            let sll = block
                .get(sll_start..sll_start.checked_add(std::mem::size_of::<libc::sockaddr_ll>())?)?;
            // SAFETY: `sll` is exactly size_of::<sockaddr_ll>() bytes of the block, and
            // sockaddr_ll is integers only; read_unaligned copies it out.
            let sll: libc::sockaddr_ll = unsafe { std::ptr::read_unaligned(sll.as_ptr().cast()) };
            let start = at.checked_add(usize::from(net))?;
            let data = block.get(start..start.checked_add(snap as usize)?)?;
            let stamp = std::time::UNIX_EPOCH
                + std::time::Duration::new(u64::from(sec), nsec.min(999_999_999));
            let meta = PacketMeta::of(&sll);
            Some((next, RingPacket { data, meta, stamp }))
        })();
        let Some((next, packet)) = got else {
            return;
        };
        each(packet);
        if next == 0 {
            return;
        }
        let Some(to) = at.checked_add(next as usize) else {
            return;
        };
        at = to;
    }
}

#[cfg(target_os = "linux")]
impl Drop for PacketRing {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`, of `len` bytes, unmapped once; no reference
        // into it outlives `&mut self` (RingPacket borrows end with `next_block`).
        unsafe {
            libc::munmap(self.map.as_ptr().cast(), self.len);
        }
    }
}

/// PACKET_STATISTICS: packets the kernel queued and dropped (its buffer full) since the last
/// call; reading resets the counters.
#[cfg(target_os = "linux")]
pub fn packet_stats(fd: RawFd) -> io::Result<(u32, u32)> {
    let st: libc::tpacket_stats = getsockopt(fd, libc::SOL_PACKET, libc::PACKET_STATISTICS)?;
    Ok((st.tp_packets, st.tp_drops))
}

/// SO_RCVTIMEO: how long a blocking recv waits before EAGAIN, so a reader thread can look up.
pub fn set_recv_timeout(fd: RawFd, d: std::time::Duration) -> io::Result<()> {
    let tv = libc::timeval {
        tv_sec: d.as_secs() as libc::time_t,
        tv_usec: libc::suseconds_t::from(d.subsec_micros() as i32),
    };
    setsockopt(fd, libc::SOL_SOCKET, libc::SO_RCVTIMEO, &tv)
}

/// if_nametoindex(3): `lo` -> 1; 0 when there is no such interface.
pub fn if_index(name: &str) -> u32 {
    let Ok(c) = std::ffi::CString::new(name) else {
        return 0;
    };
    // SAFETY: `c` is a NUL-terminated string alive for the call.
    unsafe { libc::if_nametoindex(c.as_ptr()) }
}

/// getsockopt(TCP_INFO): the kernel's own view of a TCP connection (Linux; socket2 lacks it).
#[cfg(target_os = "linux")]
pub fn tcp_info(fd: RawFd) -> Option<libc::tcp_info> {
    getsockopt(fd, libc::IPPROTO_TCP, libc::TCP_INFO).ok()
}

/// The peer's credentials as the kernel recorded them at connect() (SO_PEERCRED, Linux).
#[cfg(target_os = "linux")]
pub fn peer_cred(fd: RawFd) -> Option<libc::ucred> {
    getsockopt(fd, libc::SOL_SOCKET, libc::SO_PEERCRED).ok()
}

/// fstat(2).
pub fn fstat(fd: RawFd) -> io::Result<libc::stat> {
    let mut st = MaybeUninit::<libc::stat>::zeroed();
    // SAFETY: st is a valid, writable stat for the duration of the call.
    cvt(unsafe { libc::fstat(fd, st.as_mut_ptr()) })?;
    // SAFETY: fstat succeeded and filled the struct (which was zeroed before).
    Ok(unsafe { st.assume_init() })
}

/// isatty(3): whether `fd` is a terminal.
pub fn isatty(fd: RawFd) -> bool {
    // SAFETY: isatty only inspects the descriptor.
    unsafe { libc::isatty(fd) == 1 }
}

/// The file position of `fd` (lseek(fd, 0, SEEK_CUR)).
pub fn position(fd: RawFd) -> io::Result<u64> {
    // SAFETY: lseek with SEEK_CUR and offset 0 only reads the position.
    let pos = unsafe { libc::lseek(fd, 0, libc::SEEK_CUR) };
    u64::try_from(pos).map_err(|_| io::Error::last_os_error())
}

/// poll(2) over `fds` for at most `ms` milliseconds (-1: no limit); the number ready.
pub fn poll(fds: &mut [libc::pollfd], ms: libc::c_int) -> io::Result<usize> {
    let n = libc::nfds_t::try_from(fds.len()).unwrap_or(libc::nfds_t::MAX);
    // SAFETY: `fds` is a valid, initialised array of `n` pollfd for the duration of the call.
    cvt(unsafe { libc::poll(fds.as_mut_ptr(), n, ms) }).map(|n| n.unsigned_abs() as usize)
}

/// read(2) into `buf`.
pub fn read(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: buf is valid for writes of buf.len() bytes.
    cvt_size(unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) })
}

/// write(2) from `buf`.
pub fn write(fd: RawFd, buf: &[u8]) -> io::Result<usize> {
    // SAFETY: buf is valid for reads of buf.len() bytes.
    cvt_size(unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) })
}

/// recv(2) into `buf`, with MSG_PEEK when `peek` (the bytes stay queued for the next recv).
pub fn recv(fd: RawFd, buf: &mut [u8], peek: bool) -> io::Result<usize> {
    let flags = if peek { libc::MSG_PEEK } else { 0 };
    // SAFETY: buf is valid for writes of buf.len() bytes.
    cvt_size(unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), flags) })
}

/// An unbuffered `File` over a descriptor the process keeps open for its whole life (0, 1, 2),
/// never closed when dropped. Unbuffered on purpose: one read is one datagram, and std's
/// `Stdin` would merge reads.
pub fn stdio_file(fd: RawFd) -> ManuallyDrop<File> {
    debug_assert!((0..=2).contains(&fd));
    // SAFETY: fds 0-2 are open for the whole process; ManuallyDrop never closes them.
    ManuallyDrop::new(unsafe { File::from_raw_fd(fd) })
}

/// The first `n` bytes of a buffer that recv/recvfrom has just written.
pub fn received(buf: &[MaybeUninit<u8>], n: usize) -> &[u8] {
    let n = n.min(buf.len());
    // SAFETY: the receive call initialised the first `n` bytes (at most the buffer), and
    // MaybeUninit<u8> has the layout of u8.
    unsafe { std::slice::from_raw_parts(buf.as_ptr().cast(), n) }
}

/// The soft and hard RLIMIT_NOFILE.
pub fn nofile_limit() -> io::Result<(u64, u64)> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct passed.
    cvt(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &raw mut lim) })?;
    Ok((lim.rlim_cur, lim.rlim_max))
}

/// Sets the soft and hard RLIMIT_NOFILE.
pub fn set_nofile_limit(soft: u64, hard: u64) -> io::Result<()> {
    let lim = libc::rlimit {
        rlim_cur: soft,
        rlim_max: hard,
    };
    // SAFETY: setrlimit only reads the struct passed.
    cvt(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raw const lim) }).map(drop)
}

/// fcntl(F_DUPFD_CLOEXEC): `fd` again at the lowest number from `at_least` up, then the old
/// number closed. For sockkit's own plumbing (the signal pipe), so the learner's first
/// socket is fd 3, as in every textbook transcript.
pub fn renumber(fd: OwnedFd, at_least: RawFd) -> io::Result<OwnedFd> {
    use std::os::fd::AsRawFd;
    // SAFETY: F_DUPFD_CLOEXEC only reads the descriptor number; the new one is ours alone.
    let new = cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, at_least) })?;
    // SAFETY: `new` was just made by fcntl and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(new) })
}

/// On signal `sig`, write one byte to `fd` (the self-pipe trick), from the handler itself.
/// One write end can serve every signal this way, where signal-hook's safe pipe registration
/// takes a descriptor per signal: a server at its descriptor limit has few to spare. `fd`
/// must stay open (and non-blocking) for the life of the process.
pub fn wake_on_signal(sig: libc::c_int, fd: RawFd) -> io::Result<()> {
    // SAFETY: the action only calls write(2), which is async-signal-safe, on a descriptor the
    // caller keeps open; a full pipe (EAGAIN) already holds a wake-up, so the result is moot.
    unsafe {
        signal_hook::low_level::register(sig, move || {
            let _ = libc::write(fd, b"!".as_ptr().cast(), 1);
        })
    }
    .map(drop)
}

/// raise(3): sends `sig` to this process (tests of the signal paths).
#[cfg(test)]
pub fn raise(sig: libc::c_int) -> io::Result<()> {
    // SAFETY: raise only delivers a signal to the calling thread.
    cvt(unsafe { libc::raise(sig) }).map(drop)
}

/// sendfile(2) from `inp`'s file position.
#[cfg(target_os = "linux")]
pub fn sendfile(out: RawFd, inp: RawFd, count: usize) -> io::Result<usize> {
    // SAFETY: a null offset makes the kernel use and advance inp's file position.
    cvt_size(unsafe { libc::sendfile(out, inp, std::ptr::null_mut(), count) })
}

/// splice(2) between `inp` and `out`, one of which is a pipe (SPLICE_F_MOVE always set).
#[cfg(target_os = "linux")]
pub fn splice(inp: RawFd, out: RawFd, len: usize, flags: libc::c_uint) -> io::Result<usize> {
    // SAFETY: null offsets: both descriptors use (or, for pipes and sockets, have no) position.
    cvt_size(unsafe {
        libc::splice(
            inp,
            std::ptr::null_mut(),
            out,
            std::ptr::null_mut(),
            len,
            libc::SPLICE_F_MOVE | flags,
        )
    })
}

/// pipe2(O_CLOEXEC): (read end, write end).
#[cfg(target_os = "linux")]
pub fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: fds has room for the two descriptors pipe2 writes.
    cvt(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) })?;
    // SAFETY: pipe2 succeeded, so both are fresh descriptors nobody else owns.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Grows a pipe to `size` bytes if it is smaller (F_SETPIPE_SZ); returns the capacity it has.
#[cfg(target_os = "linux")]
pub fn grow_pipe(fd: RawFd, size: libc::c_int) -> io::Result<usize> {
    // SAFETY: F_GETPIPE_SZ only inspects the pipe.
    let now = cvt(unsafe { libc::fcntl(fd, libc::F_GETPIPE_SZ) })?;
    if now >= size {
        return Ok(now.unsigned_abs() as usize);
    }
    // SAFETY: F_SETPIPE_SZ only resizes the pipe.
    let set = cvt(unsafe { libc::fcntl(fd, libc::F_SETPIPE_SZ, size) })?;
    Ok(set.unsigned_abs() as usize)
}

/// recv(MSG_TRUNC): TCP discards up to `buf.len()` bytes without copying them.
#[cfg(target_os = "linux")]
pub fn recv_trunc(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: buf is valid for buf.len() bytes; with MSG_TRUNC TCP does not even write it.
    cvt_size(unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), libc::MSG_TRUNC) })
}

/// Bytes waiting unread in a socket's receive queue (ioctl FIONREAD, SIOCINQ for TCP): a
/// close() with any makes Linux send a RST instead of a FIN.
pub fn unread(fd: RawFd) -> io::Result<usize> {
    let mut n: libc::c_int = 0;
    // SAFETY: FIONREAD writes one int to a live, writable int.
    cvt(unsafe { libc::ioctl(fd, libc::FIONREAD, &raw mut n) })?;
    Ok(usize::try_from(n).unwrap_or(0))
}

/// `struct inet_diag_sockid` (linux/inet_diag.h): ports and addresses in network order.
#[cfg(target_os = "linux")]
#[repr(C)]
#[derive(Clone, Copy)]
struct InetDiagSockId {
    sport: u16,
    dport: u16,
    src: [u32; 4],
    dst: [u32; 4],
    interface: u32,
    cookie: [u32; 2],
}

/// `struct inet_diag_req_v2`: which socket to look up.
#[cfg(target_os = "linux")]
#[repr(C)]
#[derive(Clone, Copy)]
struct InetDiagReqV2 {
    family: u8,
    protocol: u8,
    ext: u8,
    pad: u8,
    states: u32,
    id: InetDiagSockId,
}

/// `struct inet_diag_msg`: the kernel's answer, one socket.
#[cfg(target_os = "linux")]
#[repr(C)]
#[derive(Clone, Copy)]
struct InetDiagMsg {
    family: u8,
    state: u8,
    timer: u8,
    retrans: u8,
    id: InetDiagSockId,
    expires: u32,
    rqueue: u32,
    wqueue: u32,
    uid: u32,
    inode: u32,
}

/// The request as it goes on the wire: the netlink header, then the inet_diag request.
#[cfg(target_os = "linux")]
#[repr(C)]
#[derive(Clone, Copy)]
struct DiagRequest {
    header: libc::nlmsghdr,
    req: InetDiagReqV2,
}

/// What sock_diag says of one TCP connection: its state number (as TCP_INFO numbers them),
/// the milliseconds left on its timer (TIME_WAIT's, for one), and its socket's inode (0 once
/// no descriptor holds it: TIME_WAIT and orphaned FIN_WAIT sockets).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Diag {
    pub state: u8,
    pub expires_ms: u32,
    pub inode: u32,
}

#[cfg(target_os = "linux")]
fn diag_sockid(local: std::net::SocketAddr, peer: std::net::SocketAddr) -> InetDiagSockId {
    fn words(ip: std::net::IpAddr) -> [u32; 4] {
        let mut w = [0u32; 4];
        match ip {
            std::net::IpAddr::V4(v4) => w[0] = u32::from_ne_bytes(v4.octets()),
            std::net::IpAddr::V6(v6) => {
                for (i, chunk) in v6.octets().chunks_exact(4).enumerate() {
                    w[i] = u32::from_ne_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
                }
            }
        }
        w
    }
    InetDiagSockId {
        sport: local.port().to_be(),
        dport: peer.port().to_be(),
        src: words(local.ip()),
        dst: words(peer.ip()),
        interface: 0,
        // INET_DIAG_NOCOOKIE: look up by the addresses alone.
        cookie: [u32::MAX, u32::MAX],
    }
}

/// Looks one TCP connection up by its two ends, the way `ss` does it: a NETLINK_SOCK_DIAG
/// request (SOCK_DIAG_BY_FAMILY, an exact lookup, no root needed) on a netlink socket of its
/// own. `Ok(None)`: the kernel holds nothing for those ends any more. Written here rather
/// than with a netlink crate: one request and one fixed-size answer need three structs, where
/// the crates bring a generic message framework and their own socket type.
#[cfg(target_os = "linux")]
pub fn tcp_diag(
    local: std::net::SocketAddr,
    peer: std::net::SocketAddr,
) -> io::Result<Option<Diag>> {
    const SOCK_DIAG_BY_FAMILY: u16 = 20;
    // SAFETY: socket(2) with constant arguments; the descriptor is owned at once below.
    let fd = cvt(unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
            libc::NETLINK_SOCK_DIAG,
        )
    })?;
    // SAFETY: fd was just returned by socket() and nothing else owns it.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    let family = if local.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    };
    let request = DiagRequest {
        header: libc::nlmsghdr {
            nlmsg_len: u32::try_from(std::mem::size_of::<DiagRequest>()).unwrap_or(u32::MAX),
            nlmsg_type: SOCK_DIAG_BY_FAMILY,
            nlmsg_flags: u16::try_from(libc::NLM_F_REQUEST).unwrap_or(1),
            nlmsg_seq: 1,
            nlmsg_pid: 0,
        },
        req: InetDiagReqV2 {
            family: u8::try_from(family).unwrap_or(0),
            protocol: u8::try_from(libc::IPPROTO_TCP).unwrap_or(6),
            ext: 0,
            pad: 0,
            states: u32::MAX,
            id: diag_sockid(local, peer),
        },
    };
    // SAFETY: the kernel reads size_of::<DiagRequest>() bytes from a live, repr(C) value.
    cvt_size(unsafe {
        libc::send(
            owned_fd(&owned),
            std::ptr::from_ref(&request).cast(),
            std::mem::size_of::<DiagRequest>(),
            0,
        )
    })?;
    let mut answer = [0u8; 512];
    // SAFETY: `answer` is writable for its whole length.
    let n = cvt_size(unsafe {
        libc::recv(
            owned_fd(&owned),
            answer.as_mut_ptr().cast(),
            answer.len(),
            0,
        )
    })?;
    let header_len = std::mem::size_of::<libc::nlmsghdr>();
    if n < header_len {
        return Err(io::Error::from(io::ErrorKind::UnexpectedEof));
    }
    // SAFETY: at least a header's bytes were received; read_unaligned copes with the buffer's
    // alignment, and nlmsghdr is integers only.
    let header: libc::nlmsghdr = unsafe { std::ptr::read_unaligned(answer.as_ptr().cast()) };
    if header.nlmsg_type == u16::try_from(libc::NLMSG_ERROR).unwrap_or(2) {
        // nlmsgerr: a negative errno (ENOENT: no such connection), or 0.
        let code = answer
            .get(header_len..header_len + 4)
            .map_or(0, |b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]));
        return match -code {
            0 | libc::ENOENT => Ok(None),
            errno => Err(io::Error::from_raw_os_error(errno)),
        };
    }
    if header.nlmsg_type != SOCK_DIAG_BY_FAMILY
        || n < header_len + std::mem::size_of::<InetDiagMsg>()
    {
        return Err(io::Error::from(io::ErrorKind::InvalidData));
    }
    // SAFETY: a whole inet_diag_msg was received after the header; integers only.
    let msg: InetDiagMsg =
        unsafe { std::ptr::read_unaligned(answer[header_len..].as_ptr().cast()) };
    // An exact look-up falls back to a listening socket on the local port: that is not the
    // connection asked about, which is gone.
    if msg.id.dport != request.req.id.dport || msg.id.dst != request.req.id.dst {
        return Ok(None);
    }
    Ok(Some(Diag {
        state: msg.state,
        expires_ms: msg.expires,
        inode: msg.inode,
    }))
}

#[cfg(target_os = "linux")]
fn owned_fd(fd: &OwnedFd) -> RawFd {
    std::os::fd::AsRawFd::as_raw_fd(fd)
}

/// Off Linux there is no sock_diag: nothing is known after close().
#[cfg(not(target_os = "linux"))]
pub fn tcp_diag(_: std::net::SocketAddr, _: std::net::SocketAddr) -> io::Result<Option<Diag>> {
    Err(io::Error::from_raw_os_error(libc::ENOSYS))
}

#[cfg(not(target_os = "linux"))]
mod elsewhere {
    //! Not reached but for recv_trunc: the relay's zero-copy paths are off off Linux.
    use std::io;
    use std::os::fd::{OwnedFd, RawFd};

    fn no() -> io::Error {
        io::Error::from_raw_os_error(libc::ENOSYS)
    }
    pub fn sendfile(_: RawFd, _: RawFd, _: usize) -> io::Result<usize> {
        Err(no())
    }
    pub fn splice(_: RawFd, _: RawFd, _: usize, _: libc::c_uint) -> io::Result<usize> {
        Err(no())
    }
    pub fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
        Err(no())
    }
    pub fn grow_pipe(_: RawFd, _: libc::c_int) -> io::Result<usize> {
        Err(no())
    }
    /// A plain read: the bytes land in the buffer and are dropped there.
    pub fn recv_trunc(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
        super::read(fd, buf)
    }
}
#[cfg(not(target_os = "linux"))]
pub use elsewhere::*;

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn setsockopt_then_getsockopt_round_trips_an_int() {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let fd = s.as_raw_fd();
        setsockopt(fd, libc::SOL_SOCKET, libc::SO_BROADCAST, &1).unwrap();
        let v: libc::c_int = getsockopt(fd, libc::SOL_SOCKET, libc::SO_BROADCAST).unwrap();
        assert_eq!(v, 1);
        let e = getsockopt::<libc::c_int>(-1, libc::SOL_SOCKET, libc::SO_BROADCAST).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EBADF));
    }

    /// A block laid out as the kernel lays one out: two packets, each with its header, its
    /// sockaddr_ll and its bytes at `tp_net`, then a third header pointing past the block.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_ring_block_is_walked_packet_by_packet_and_a_bad_offset_ends_the_walk() {
        use std::mem::offset_of;
        let mut block = vec![0u8; 4096];
        let put32 =
            |b: &mut [u8], at: usize, v: u32| b[at..at + 4].copy_from_slice(&v.to_ne_bytes());
        let put16 =
            |b: &mut [u8], at: usize, v: u16| b[at..at + 2].copy_from_slice(&v.to_ne_bytes());
        let bh = offset_of!(libc::tpacket_block_desc, hdr);
        put32(
            &mut block,
            bh + offset_of!(libc::tpacket_hdr_v1, num_pkts),
            3,
        );
        put32(
            &mut block,
            bh + offset_of!(libc::tpacket_hdr_v1, offset_to_first_pkt),
            64,
        );
        let sll_at = (std::mem::size_of::<libc::tpacket3_hdr>() + 15) & !15;
        let packet = |b: &mut Vec<u8>, at: usize, next: u32, bytes: &[u8], ifindex: i32| {
            put32(b, at + offset_of!(libc::tpacket3_hdr, tp_next_offset), next);
            put32(
                b,
                at + offset_of!(libc::tpacket3_hdr, tp_sec),
                1_700_000_000,
            );
            put32(b, at + offset_of!(libc::tpacket3_hdr, tp_nsec), 5);
            put32(
                b,
                at + offset_of!(libc::tpacket3_hdr, tp_snaplen),
                bytes.len() as u32,
            );
            put16(b, at + offset_of!(libc::tpacket3_hdr, tp_net), 96);
            let sll = at + sll_at;
            b[sll + offset_of!(libc::sockaddr_ll, sll_ifindex)..][..4]
                .copy_from_slice(&ifindex.to_ne_bytes());
            b[sll + offset_of!(libc::sockaddr_ll, sll_pkttype)] = 4;
            b[at + 96..at + 96 + bytes.len()].copy_from_slice(bytes);
        };
        packet(&mut block, 64, 256, b"first", 1);
        packet(&mut block, 320, 256, b"second", 2);
        // The third says its bytes are far beyond the block.
        packet(&mut block, 576, 0, b"x", 3);
        put32(
            &mut block,
            576 + offset_of!(libc::tpacket3_hdr, tp_snaplen),
            1 << 20,
        );
        let mut seen = Vec::new();
        walk_block(&block, &mut |p: RingPacket<'_>| {
            seen.push((p.data.to_vec(), p.meta.ifindex, p.meta.pkttype, p.stamp));
        });
        let at = std::time::UNIX_EPOCH + std::time::Duration::new(1_700_000_000, 5);
        assert_eq!(
            seen,
            [
                (b"first".to_vec(), 1, 4, at),
                (b"second".to_vec(), 2, 4, at)
            ]
        );
    }
}
