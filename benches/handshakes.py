#!/usr/bin/env python3
"""TLS handshakes per second against a server with many short clients: --count connections
from --clients parallel client processes (Python's ssl module, OpenSSL underneath), each a
full TLS 1.3 handshake (no resumption), one line sent, its answer read, then a close.
Servers: sockkit echo --tls (the server engine), ncat --ssl -l -k -e /bin/cat (a process per
client) and openssl s_server -rev (one client at a time). Reports wall seconds, handshakes
per second and the server's CPU seconds (user + sys, its reaped children included, from
/proc/PID/stat) per 1000 handshakes. The clients' CPU is the same work for every server and
is left out. Not part of cargo test; run through benches/tls.sh."""

import argparse
import multiprocessing
import os
import socket
import ssl
import subprocess
import sys
import time

from tls import free_port, make_pki, wait_listening


def servers(sockkit, d):
    cert, key = f"{d}/server.pem", f"{d}/server.key"
    return {
        "sockkit echo --tls": lambda p: [sockkit, "echo", "-q", "--tls", "--cert", cert,
                                         "--key", key, "127.0.0.1", str(p)],
        "ncat --ssl -l -k -e /bin/cat": lambda p: ["ncat", "--ssl", "--ssl-cert", cert,
                                                   "--ssl-key", key, "-l", "-k", "-e",
                                                   "/bin/cat", "127.0.0.1", str(p)],
        "openssl s_server -rev": lambda p: ["openssl", "s_server", "-quiet", "-rev",
                                            "-accept", f"127.0.0.1:{p}", "-cert", cert,
                                            "-key", key],
    }


def client(port, ca, n, failures):
    ctx = ssl.create_default_context(cafile=ca)
    for _ in range(n):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
                with ctx.wrap_socket(s, server_hostname="localhost") as t:
                    t.sendall(b"hello\n")
                    got = b""
                    while not got.endswith(b"\n"):
                        more = t.recv(100)
                        if not more:
                            break
                        got += more
                    if len(got) != 6:
                        raise OSError(f"answer {got!r}")
        except OSError:
            with failures.get_lock():
                failures.value += 1


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # utime, stime, cutime, cstime: fields 14-17 of stat(5), 12-15 after the name.
    return sum(int(x) for x in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def one(cmd, port, ca, count, clients):
    server = subprocess.Popen(cmd(port), stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        wait_listening(port)
        failures = multiprocessing.Value("i", 0)
        before = cpu_seconds(server.pid)
        start = time.perf_counter()
        procs = [multiprocessing.Process(target=client,
                                         args=(port, ca, count // clients, failures))
                 for _ in range(clients)]
        for p in procs:
            p.start()
        for p in procs:
            p.join()
        wall = time.perf_counter() - start
        # ncat reaps its /bin/cat children as they end: their CPU is in cutime/cstime.
        time.sleep(0.2)
        cpu = cpu_seconds(server.pid) - before
        return wall, cpu, failures.value
    finally:
        server.kill()
        server.wait()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sockkit", required=True)
    ap.add_argument("--count", type=int, default=2000)
    ap.add_argument("--clients", type=int, default=2)
    args = ap.parse_args()
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        make_pki(d)
        print(f"| {args.count} TLS 1.3 handshakes, {args.clients} parallel clients "
              "| wall s | handshakes/s | server CPU s per 1000 |")
        print("|---|---|---|---|")
        for name, cmd in servers(args.sockkit, d).items():
            wall, cpu, failed = one(cmd, free_port(), f"{d}/ca.pem", args.count, args.clients)
            note = f" ({failed} failed)" if failed else ""
            print(f"| {name}{note} | {wall:.2f} | {args.count / wall:.0f} | "
                  f"{cpu * 1000 / args.count:.2f} |", flush=True)


if __name__ == "__main__":
    sys.exit(main())
