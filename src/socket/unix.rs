//! Unix-domain sockets at a `-U PATH` address (`addr::UnixAddr`: a file path, or `@name` in
//! Linux's abstract namespace): making, binding, connecting and accepting them, the rules for
//! a path that is already taken (a stale socket file is replaced only with `--unlink`; a file
//! that is not a socket is never deleted), and the peer's credentials (SO_PEERCRED), which
//! stand in for the address a Unix client does not have. The calls themselves are
//! `call.rs`'s, the words for a failure `error`'s; no relaying here.

use std::io;
use std::os::fd::RawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Result, anyhow};
use socket2::{Domain, SockAddr, Socket, Type};

use super::call::{self, DEFAULT_BACKLOG, fd};
use super::state::After;
use crate::addr::UnixAddr;
use crate::error::{self, PathHolder};
use crate::narrate;
use crate::sockopt::{Fam, Plan, SockKind, Stage, Target};

/// The option-table target for a Unix-domain socket (stream or datagram).
pub fn target() -> Target {
    Target {
        kind: SockKind::Unix,
        family: Fam::Unix,
    }
}

/// A Unix address as narration and `-v` show it: the path, `@name`, or `(unnamed)` for a
/// socket that never bound (every client that only connects).
pub fn show(a: &SockAddr) -> String {
    if let Some(p) = a.as_pathname() {
        return p.display().to_string();
    }
    if let Some(name) = a.as_abstract_namespace() {
        return format!("@{}", String::from_utf8_lossy(name));
    }
    "(unnamed)".to_string()
}

/// `socket(AF_UNIX, SOCK_STREAM, 0) = fd 3`.
pub fn new_socket(ty: Type) -> io::Result<Socket> {
    call::open(Domain::UNIX, ty, None)
}

/// Connects a Unix socket of type `ty` to `addr`. A datagram client first binds an
/// autobound abstract name (Linux) so that replies have somewhere to go.
pub fn connect(
    addr: &UnixAddr,
    ty: Type,
    timeout: Option<Duration>,
    plan: &Plan,
) -> Result<Socket> {
    let sock = new_socket(ty).map_err(|e| anyhow!("socket(AF_UNIX): {}", error::plain(&e)))?;
    plan.apply(&sock, target(), Stage::Early)?;
    if ty == Type::DGRAM && cfg!(target_os = "linux") {
        // An address of only the family field asks Linux for a unique abstract name.
        let auto = SockAddr::unix("")?;
        call::bind(
            &sock,
            &auto,
            &"\"\" (autobind: the kernel picks an abstract name)",
            "",
        )
        .map_err(|e| anyhow!("binding a reply address: {}", error::plain(&e)))?;
    }
    let sa = addr
        .sockaddr()
        .map_err(|e| anyhow!("{addr}: {}", error::plain(&e)))?;
    narrate::info(format_args!(
        "connecting to {addr} (Unix, {})",
        call::type_name(ty)
    ));
    let result = call::connect(&sock, &sa, addr, timeout, After::Nothing);
    if let Err(e) = result {
        call::close(sock);
        let abstract_name = matches!(addr, UnixAddr::Abstract(_));
        // Linux refuses a connect to a file that is not a socket with ECONNREFUSED, the errno
        // of a stale socket file: look at the file so the words say which it is.
        let not_socket = match addr {
            UnixAddr::Path(path) if e.raw_os_error() == Some(libc::ECONNREFUSED) => {
                std::fs::metadata(path)
                    .ok()
                    .filter(|m| !m.file_type().is_socket())
                    .map(|m| file_kind(&m))
            }
            _ => None,
        };
        let why = match not_socket {
            Some(kind) => error::unix_not_a_socket(addr, kind),
            None => error::unix_connect_failure(addr, abstract_name, ty == Type::DGRAM, &e),
        };
        return Err(anyhow!("{why}"));
    }
    plan.apply(&sock, target(), Stage::Connected)?;
    Ok(sock)
}

/// Removes the socket file a server bound when the server is done with it, but only if the
/// file is still the one it bound (same device and inode): another server may have replaced it.
pub struct PathGuard {
    path: PathBuf,
    dev: u64,
    ino: u64,
}

impl Drop for PathGuard {
    fn drop(&mut self) {
        if self.ours() {
            let path = self.path.display().to_string();
            let _ = narrate::traced(
                || std::fs::remove_file(&self.path),
                |r| format!("unlink(\"{path}\") {}", narrate::outcome(r)),
            );
        }
    }
}

impl PathGuard {
    fn ours(&self) -> bool {
        std::fs::symlink_metadata(&self.path)
            .is_ok_and(|m| m.dev() == self.dev && m.ino() == self.ino)
    }

    /// A second guard for the same file, for a cleanup that runs elsewhere (the relay's
    /// signal thread, which ends the process before this guard's owner can drop it):
    /// whichever drops first removes the file, the other finds it gone (or replaced) and
    /// leaves it.
    pub fn twin(&self) -> PathGuard {
        PathGuard {
            path: self.path.clone(),
            dev: self.dev,
            ino: self.ino,
        }
    }
}

/// A bound Unix socket (listening, for a stream one), and what to announce about it.
pub struct UnixListener {
    pub socket: Socket,
    pub addr: UnixAddr,
    /// The plan as applied, with the backlog default, for `--show-opts`.
    pub plan: Plan,
    /// Unlinks the socket file when dropped (none for an abstract name).
    pub guard: Option<PathGuard>,
}

/// socket, setsockopt, bind, listen (stream only): a Unix server socket. A path that is taken
/// is diagnosed: a server still listening, a stale socket file (replaced with `unlink`), or a
/// file that is not a socket (never touched).
pub fn bind(addr: &UnixAddr, ty: Type, plan: &Plan, unlink: bool) -> Result<UnixListener> {
    let plan = plan.clone();
    let sock = new_socket(ty).map_err(|e| anyhow!("socket(AF_UNIX): {}", error::plain(&e)))?;
    plan.apply(&sock, target(), Stage::Early)?;
    let sa = addr
        .sockaddr()
        .map_err(|e| anyhow!("{addr}: {}", error::plain(&e)))?;
    if let Err(e) = call::bind(&sock, &sa, addr, "") {
        if e.raw_os_error() != Some(libc::EADDRINUSE) {
            return Err(anyhow!("{}", error::unix_bind_failure(addr, &e)));
        }
        match (taken(addr, ty), addr) {
            (PathHolder::Stale, UnixAddr::Path(path)) if unlink => {
                narrate::info(format_args!(
                    "{addr} is a stale socket file (nobody listens on it): replacing it (--unlink)"
                ));
                let p = path.display().to_string();
                narrate::traced(
                    || std::fs::remove_file(path),
                    |r| format!("unlink(\"{p}\") {}", narrate::outcome(r)),
                )
                .map_err(|e| anyhow!("removing the stale socket {addr}: {}", error::plain(&e)))?;
                call::bind(&sock, &sa, addr, "")
                    .map_err(|e| anyhow!("{}", error::unix_bind_failure(addr, &e)))?;
            }
            (holder, _) => return Err(anyhow!("{}", error::unix_path_taken(addr, holder))),
        }
    }
    if ty == Type::STREAM {
        let backlog = plan.backlog().unwrap_or(DEFAULT_BACKLOG);
        call::listen(&sock, backlog, After::Nothing)?;
    }
    let guard = match addr {
        UnixAddr::Path(path) => std::fs::symlink_metadata(path).ok().map(|m| PathGuard {
            path: path.clone(),
            dev: m.dev(),
            ino: m.ino(),
        }),
        UnixAddr::Abstract(_) => None,
    };
    Ok(UnixListener {
        socket: sock,
        addr: addr.clone(),
        plan,
        guard,
    })
}

/// Looks at what holds `addr`: the file's type, the kernel's list of bound Unix sockets
/// (/proc/net/unix, so a live server is not disturbed), and last a probe connect with a socket
/// of the same type (refused means nobody is listening). An abstract name is never stale: it
/// goes with its last socket.
fn taken(addr: &UnixAddr, ty: Type) -> PathHolder {
    let UnixAddr::Path(path) = addr else {
        return PathHolder::Listening;
    };
    match std::fs::symlink_metadata(path) {
        Ok(m) if !m.file_type().is_socket() => return PathHolder::NotSocket(file_kind(&m)),
        Ok(_) => {}
        Err(_) => return PathHolder::Listening,
    }
    if bound_in_proc(path) {
        return PathHolder::Listening;
    }
    let probe = new_socket(ty).and_then(|s| {
        let sa = addr.sockaddr()?;
        let r = narrate::traced(
            || s.connect(&sa),
            |r| {
                format!(
                    "connect(fd {}, {addr}) {} (is anyone there?)",
                    fd(&s),
                    narrate::outcome(r)
                )
            },
        );
        call::close(s);
        r
    });
    match probe {
        Err(e) if e.raw_os_error() == Some(libc::ECONNREFUSED) => PathHolder::Stale,
        _ => PathHolder::Listening,
    }
}

/// True when /proc/net/unix lists a socket bound to `path` (as given, or made absolute).
/// Linux shows the path as it was passed to bind(), so a relative one from another directory
/// is missed; the probe connect covers that case.
fn bound_in_proc(path: &Path) -> bool {
    let Ok(table) = std::fs::read_to_string("/proc/net/unix") else {
        return false;
    };
    let given = path.as_os_str().as_bytes();
    let absolute = std::env::current_dir().ok().map(|d| d.join(path));
    table.lines().skip(1).any(|line| {
        line.split_whitespace().nth(7).is_some_and(|p| {
            p.as_bytes() == given || absolute.as_deref().is_some_and(|a| Path::new(p) == a)
        })
    })
}

fn file_kind(m: &std::fs::Metadata) -> &'static str {
    let t = m.file_type();
    if t.is_dir() {
        "a directory"
    } else if t.is_symlink() {
        "a symbolic link"
    } else if t.is_fifo() {
        "a named pipe"
    } else if t.is_file() {
        "a regular file"
    } else {
        "a device or other special file"
    }
}

/// `accept()` on a Unix listener: the client's socket and who it is (its pid, uid and gid,
/// since a Unix client has no address worth showing).
pub fn accept(listener: &Socket) -> io::Result<(Socket, String)> {
    let (sock, _) = call::accept(listener, show, After::Nothing)?;
    let who = describe_peer(fd(&sock));
    Ok((sock, who))
}

/// `pid 1234 (uid 1000, gid 1000)`: who a Unix peer is.
pub fn describe_peer(fd: RawFd) -> String {
    #[cfg(target_os = "linux")]
    if let Some(c) = crate::sys::peer_cred(fd) {
        return format!("pid {} (uid {}, gid {})", c.pid, c.uid, c.gid);
    }
    let _ = fd;
    "a local peer".to_string()
}
