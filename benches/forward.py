#!/usr/bin/env python3
"""The forward benchmark's driver (benches/forward.sh installs the peers and calls this).

Relays compared, each in front of the same target on 127.0.0.1: `sockkit forward`, socat
(`TCP-LISTEN,fork,reuseaddr TCP:`), haproxy (`mode tcp`, config written here), ncat
(`-lk --sh-exec 'ncat HOST PORT'`) and no relay at all. Scenarios:

  bulk   GIB GiB client -> relay -> sink, one connection; MB/s and the relay's CPU seconds
         per GiB (utime + stime of the relay and its reaped children, from /proc).
  rate   short connections (64 B request, half-close, 64 B reply, close) through each relay
         at 1 and 64 concurrent clients; connections/s.
  echo   1000 concurrent 64 B ping-pong clients through forward and haproxy to `sockkit
         echo` (benches/load's echo-bench drives them); msgs/s and p99.
  idle   10,000 idle pairs (each has echoed one byte) through forward and haproxy: the
         relay's RSS growth per pair. socat and ncat fork a process per client: not run.

Everything is one run; ratios are taken within it. Not part of `cargo test`.
"""

import argparse
import asyncio
import multiprocessing
import os
import resource
import shutil
import socket
import subprocess
import sys
import time

CHUNK = 4 << 20


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_port(port, limit=10.0):
    deadline = time.time() + limit
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"bench: nothing listens on {port} after {limit}s")


def cpu_seconds(pid):
    """utime + stime of a process and of its children it has reaped."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = sum(int(fields[i]) for i in (11, 12, 13, 14))
    return ticks / os.sysconf("SC_CLK_TCK")


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class Relay:
    """One relay process listening on a free port, forwarding to `target`."""

    def __init__(self, name, target, args):
        self.name, self.target = name, target
        self.port = target if name == "none" else free_port()
        self.proc = None
        if name == "none":
            return
        t = target
        if name == "sockkit":
            cmd = [args.sockkit, "forward", "-q", "--idle-timeout", "0", "--max-conns", "30000",
                   "127.0.0.1", str(self.port), "127.0.0.1", str(t)]
        elif name == "socat":
            cmd = ["socat", f"TCP-LISTEN:{self.port},bind=127.0.0.1,fork,reuseaddr,backlog=1024",
                   f"TCP:127.0.0.1:{t}"]
        elif name == "ncat":
            cmd = ["ncat", "-lk", "127.0.0.1", str(self.port), "--sh-exec", f"ncat 127.0.0.1 {t}"]
        elif name == "haproxy":
            cfg = os.path.join(args.workdir, f"haproxy-{self.port}.cfg")
            # haproxy sizes its descriptor table from maxconn (three per connection, here
            # about two) and refuses to start past RLIMIT_NOFILE.
            hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
            conns = (hard - 200) // 2
            with open(cfg, "w") as f:
                f.write(
                    f"global\n    maxconn {conns}\n    fd-hard-limit {hard}\n\n"
                    "defaults\n    mode tcp\n    timeout connect 5s\n"
                    "    timeout client 10m\n    timeout server 10m\n\n"
                    f"frontend fwd\n    bind 127.0.0.1:{self.port}\n    maxconn {conns}\n"
                    "    default_backend target\n\n"
                    f"backend target\n    server t 127.0.0.1:{t} maxconn {conns}\n"
                )
            cmd = ["haproxy", "-db", "-f", cfg]
        else:
            sys.exit(f"bench: unknown relay {name}")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        wait_port(self.port)

    def cpu(self):
        return cpu_seconds(self.proc.pid) if self.proc else 0.0

    def rss(self):
        return rss_kib(self.proc.pid) if self.proc else 0

    def stop(self):
        if self.proc:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def sink_server(port_q, total_q):
    """Accepts connections and reads each to EOF; reports the bytes of each."""
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", 0))
    ls.listen(128)
    port_q.put(ls.getsockname()[1])
    buf = bytearray(CHUNK)
    while True:
        c, _ = ls.accept()
        n = 0
        while True:
            got = c.recv_into(buf)
            if not got:
                break
            n += got
        c.close()
        if n:  # not the relay passing on wait_port's probe
            total_q.put(n)


def bulk(relays, args):
    port_q, total_q = multiprocessing.Queue(), multiprocessing.Queue()
    sink = multiprocessing.Process(target=sink_server, args=(port_q, total_q), daemon=True)
    sink.start()
    sink_port = port_q.get(timeout=10)
    total = int(args.gib * (1 << 30))
    data = memoryview(os.urandom(CHUNK))
    rows = {}
    for name in relays:
        r = Relay(name, sink_port, args)
        try:
            c0 = r.cpu()
            s = socket.create_connection(("127.0.0.1", r.port))
            t0 = time.perf_counter()
            sent = 0
            while sent < total:
                n = min(CHUNK, total - sent)
                s.sendall(data[:n])
                sent += n
            s.shutdown(socket.SHUT_WR)
            s.recv(1)  # the relay's EOF: the sink has read everything and closed
            got = total_q.get(timeout=600)
            secs = time.perf_counter() - t0
            s.close()
            time.sleep(0.5)  # let forking relays reap their children
            cpu = r.cpu() - c0
        finally:
            r.stop()
        if got != total:
            sys.exit(f"bench: {name}: the sink got {got} bytes of {total}")
        rows[name] = (total / secs / 1e6, cpu / args.gib if r.proc else None, secs)
        print(f"bulk {name}: {rows[name][0]:.0f} MB/s in {secs:.2f}s, "
              f"cpu/GiB {rows[name][1]}", file=sys.stderr)
    sink.terminate()
    return rows


async def one_exchange(port):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"x" * 64)
    await writer.drain()
    writer.write_eof()
    got = await reader.read()
    writer.close()
    if len(got) != 64:
        raise RuntimeError(f"reply of {len(got)} bytes")


async def rate_run(port, conc, secs):
    """Exchanges per second, and how many failed (a short reply, or none within 5 s)."""
    done = failed = 0
    deadline = time.perf_counter() + secs

    async def worker():
        nonlocal done, failed
        while time.perf_counter() < deadline:
            try:
                await asyncio.wait_for(one_exchange(port), 5)
                done += 1
            except (OSError, RuntimeError, asyncio.TimeoutError):
                failed += 1

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(conc)))
    return done / (time.perf_counter() - t0), failed


def rate_proc(port, conc, secs, q):
    q.put(asyncio.run(rate_run(port, conc, secs)))


def rate(relays, args, echo_port):
    rows = {}
    for name in relays:
        r = Relay(name, echo_port, args)
        try:
            out = []
            for conc in (1, 64):
                # Two load processes for 64 clients: one Python process would be the limit.
                procs = 1 if conc == 1 else 2
                q = multiprocessing.Queue()
                ps = [multiprocessing.Process(target=rate_proc,
                                              args=(r.port, conc // procs, args.secs, q))
                      for _ in range(procs)]
                for p in ps:
                    p.start()
                got = [q.get(timeout=args.secs + 60) for _ in ps]
                for p in ps:
                    p.join()
                out.append((sum(g[0] for g in got), sum(g[1] for g in got)))
        finally:
            r.stop()
        rows[name] = out
        print(f"rate {name}: {out[0][0]:.0f}/s at 1 ({out[0][1]} failed), "
              f"{out[1][0]:.0f}/s at 64 ({out[1][1]} failed)", file=sys.stderr)
    return rows


def echo(relays, args, echo_port):
    rows = {}
    for name in relays:
        r = Relay(name, echo_port, args)
        try:
            out = subprocess.run(
                [args.echo_bench, "--servers", "external", "--addr", f"127.0.0.1:{r.port}",
                 "--scenarios", "2", "--rounds", "1", "--secs", str(args.secs)],
                capture_output=True, text=True, timeout=300, check=True)
        finally:
            r.stop()
        rows[name] = out.stdout.strip()
        print(f"echo {name}:\n{out.stdout}", file=sys.stderr)
    return rows


def idle(relays, args, echo_port):
    rows = {}
    for name in relays:
        r = Relay(name, echo_port, args)
        socks = []
        try:
            time.sleep(0.3)
            before = r.rss()
            for _ in range(args.idle):
                s = socket.create_connection(("127.0.0.1", r.port), timeout=10)
                s.sendall(b"!")
                socks.append(s)
            for s in socks:
                if s.recv(1) != b"!":
                    sys.exit(f"bench: {name}: an idle pair did not echo")
            time.sleep(0.5)
            after = r.rss()
        finally:
            for s in socks:
                s.close()
            r.stop()
        rows[name] = (before, after, (after - before) / args.idle)
        print(f"idle {name}: RSS {before} -> {after} KiB, {rows[name][2]:.2f} KiB per pair",
              file=sys.stderr)
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sockkit", required=True)
    ap.add_argument("--echo-bench", required=True)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--gib", type=float, default=2.0)
    ap.add_argument("--secs", type=float, default=3.0)
    ap.add_argument("--idle", type=int, default=10_000)
    ap.add_argument("--only", default="bulk,rate,echo,idle")
    args = ap.parse_args()
    os.makedirs(args.workdir, exist_ok=True)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    # A relay holds two descriptors per pair; keep some for its listener, logs, pipes.
    if 2 * args.idle + 200 > hard:
        fit = (hard - 200) // 2
        print(f"bench: RLIMIT_NOFILE is {hard}: {args.idle} idle pairs need {2 * args.idle} "
              f"descriptors in the relay; running {fit}", file=sys.stderr)
        args.idle = fit
    only = args.only.split(",")
    for peer in ("socat", "haproxy", "ncat"):
        if not shutil.which(peer):
            sys.exit(f"bench: {peer} is not installed (benches/forward.sh installs it)")
    echo_port = free_port()
    echo_srv = subprocess.Popen([args.sockkit, "echo", "-q", "--idle-timeout", "0",
                                 "--max-conns", "30000", "127.0.0.1", str(echo_port)],
                                stdin=subprocess.DEVNULL)
    wait_port(echo_port)
    all_relays = ["none", "sockkit", "haproxy", "socat", "ncat"]
    try:
        b = bulk(all_relays, args) if "bulk" in only else {}
        rt = rate(all_relays, args, echo_port) if "rate" in only else {}
        e = echo(["none", "sockkit", "haproxy"], args, echo_port) if "echo" in only else {}
        i = idle(["sockkit", "haproxy"], args, echo_port) if "idle" in only else {}
    finally:
        echo_srv.terminate()
        echo_srv.wait()

    print(f"| relay | bulk {args.gib:g} GiB MB/s | CPU s/GiB | conn/s, 1 client | conn/s, 64 clients |")
    print("|---|---|---|---|---|")
    for name in all_relays:
        mbs = f"{b[name][0]:.0f}" if name in b else "-"
        cpu = f"{b[name][1]:.2f}" if name in b and b[name][1] is not None else "-"
        def cell(run):
            rate_, failed = run
            return f"{rate_:.0f}" + (f" ({failed} failed)" if failed else "")
        r1 = cell(rt[name][0]) if name in rt else "-"
        r64 = cell(rt[name][1]) if name in rt else "-"
        print(f"| {name} | {mbs} | {cpu} | {r1} | {r64} |")
    if "sockkit" in b and "haproxy" in b and "socat" in b:
        print(f"\nbulk: sockkit/haproxy {b['sockkit'][0] / b['haproxy'][0]:.2f}x, "
              f"sockkit/socat {b['sockkit'][0] / b['socat'][0]:.2f}x")
    if "sockkit" in rt and "haproxy" in rt:
        print(f"rate: sockkit/haproxy {rt['sockkit'][0][0] / rt['haproxy'][0][0]:.2f}x at 1, "
              f"{rt['sockkit'][1][0] / rt['haproxy'][1][0]:.2f}x at 64")
    for name, text in e.items():
        print(f"\necho-bench, 1000 clients, through {name}:\n{text}")
    for name, (before, after, per) in i.items():
        print(f"\nidle {args.idle} pairs through {name}: RSS {before} -> {after} KiB, "
              f"{per:.2f} KiB per pair")


if __name__ == "__main__":
    main()
