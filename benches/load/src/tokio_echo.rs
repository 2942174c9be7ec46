//! The reference peer for the echo benchmark: the usual tokio echo server, one task per
//! client running a read / write_all loop over its own buffer (8 KiB unless `--buf N`; Nagle's
//! algorithm on unless `--nodelay`), on
//! tokio's default multi-threaded runtime (one worker per core). It prints the same
//! `listening on ADDR` line as sockkit so the driver treats both alike.

use std::io;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

fn main() -> io::Result<()> {
    let mut addr = "127.0.0.1:0".to_string();
    let mut buf_size = 8192usize;
    let mut nodelay = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--buf" => buf_size = args.next().and_then(|v| v.parse().ok()).unwrap_or(8192),
            "--nodelay" => nodelay = true,
            other => addr = other.to_string(),
        }
    }
    raise_fd_limit();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_io()
        .build()?;
    rt.block_on(async move {
        let listener = TcpListener::bind(&addr).await?;
        eprintln!(
            "tokio-echo: listening on {} (buf {buf_size})",
            listener.local_addr()?
        );
        loop {
            let (mut sock, _) = match listener.accept().await {
                Ok(c) => c,
                Err(_) => continue,
            };
            if nodelay {
                let _ = sock.set_nodelay(true);
            }
            tokio::spawn(async move {
                let mut buf = vec![0u8; buf_size];
                loop {
                    let n = match sock.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    if sock.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                }
            });
        }
    })
}

/// Same as sockkit does for itself: soft RLIMIT_NOFILE up to the hard limit.
fn raise_fd_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain getrlimit/setrlimit on a local struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}
