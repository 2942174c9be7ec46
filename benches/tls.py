#!/usr/bin/env python3
"""Bulk TLS throughput over 127.0.0.1: 1 GiB from a client's stdin to a server's stdout,
sockkit connect --tls -> listen --tls against openssl s_client -> s_server, ncat --ssl and
socat OPENSSL. Reports wall seconds, MiB/s and CPU seconds (user + sys of both ends) per GiB,
median of --rounds. Not part of cargo test; run through benches/tls.sh."""

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(port, limit=10.0):
    deadline = time.time() + limit
    while time.time() < deadline:
        with open("/proc/net/tcp") as f:
            if any(f":{port:04X} 00000000:0000 0A" in line for line in f):
                return
        time.sleep(0.01)
    raise SystemExit(f"nothing listened on {port}")


def peers(sockkit, d):
    cert, key, ca = f"{d}/server.pem", f"{d}/server.key", f"{d}/ca.pem"
    return {
        "sockkit": (
            lambda p: [sockkit, "listen", "--recv-only", "--tls", "--cert", cert, "--key", key, "127.0.0.1", str(p)],
            lambda p: [sockkit, "connect", "--tls", "--ca", ca, "127.0.0.1", str(p)],
        ),
        "openssl": (
            lambda p: ["openssl", "s_server", "-quiet", "-naccept", "1", "-accept",
                       f"127.0.0.1:{p}", "-cert", cert, "-key", key],
            lambda p: ["openssl", "s_client", "-quiet", "-no_ign_eof", "-CAfile", ca,
                       "-connect", f"127.0.0.1:{p}"],
        ),
        "ncat": (
            lambda p: ["ncat", "--ssl", "--ssl-cert", cert, "--ssl-key", key, "--recv-only",
                       "-l", "127.0.0.1", str(p)],
            lambda p: ["ncat", "--ssl", "--ssl-verify", "--ssl-trustfile", ca, "--send-only",
                       "localhost", str(p)],
        ),
        "socat": (
            lambda p: ["socat", "-u", f"OPENSSL-LISTEN:{p},bind=127.0.0.1,cert={cert},"
                       f"key={key},verify=0", "STDOUT"],
            lambda p: ["socat", "-u", "STDIN", f"OPENSSL:127.0.0.1:{p},cafile={ca},"
                       "commonname=localhost"],
        ),
    }


def one(server_cmd, client_cmd, nbytes):
    port = free_port()
    counter = subprocess.Popen(["wc", "-c"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    # Each server's stdin stays open (a server at its stdin's EOF may end the session).
    # ncat --recv-only never reads it, and ends with its client.
    cmd = server_cmd(port)
    keep_stdin = cmd[0] != "ncat"
    server = subprocess.Popen(cmd, stdin=subprocess.PIPE if keep_stdin else subprocess.DEVNULL,
                              stdout=counter.stdin, stderr=subprocess.DEVNULL)
    wait_listening(port)
    source = subprocess.Popen(["head", "-c", str(nbytes), "/dev/zero"], stdout=subprocess.PIPE)
    start = time.perf_counter()
    client = subprocess.Popen(client_cmd(port), stdin=source.stdout, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    source.stdout.close()
    cpu = 0.0
    for proc in (client, server):
        if proc is server and server.stdin:
            server.stdin.close()
        _, _, ru = os.wait4(proc.pid, 0)
        proc.returncode = 0
        cpu += ru.ru_utime + ru.ru_stime
    wall = time.perf_counter() - start
    source.wait()
    counter.stdin.close()
    got = int(counter.stdout.read().split()[0])
    counter.wait()
    return wall, cpu, nbytes - got


def make_pki(d):
    """A CA and a P-256 server certificate for localhost and 127.0.0.1, by the openssl CLI."""
    run = lambda *a: subprocess.run(a, check=True, capture_output=True, cwd=d)
    run("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
        "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-subj", "/CN=bench CA", "-days", "1")
    run("openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost")
    with open(f"{d}/ext", "w") as f:
        f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n")
    run("openssl", "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "server.pem", "-days", "1", "-extfile", "ext")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sockkit", required=True)
    ap.add_argument("--gib", type=float, default=1.0)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    nbytes = int(args.gib * (1 << 30))
    with tempfile.TemporaryDirectory() as d:
        make_pki(d)
        print(f"| {args.gib:g} GiB client -> server over TLS (127.0.0.1), median of {args.rounds} "
              "| wall s | MiB/s | CPU s/GiB |")
        print("|---|---|---|---|")
        for name, (srv, cli) in peers(args.sockkit, d).items():
            results = [one(srv, cli, nbytes) for _ in range(args.rounds)]
            wall = statistics.median(r[0] for r in results)
            cpu = statistics.median(r[1] for r in results)
            lost = max(r[2] for r in results)
            note = f" (lost up to {lost} B: a truncated run)" if lost else ""
            print(f"| {name}{note} | {wall:.2f} | {nbytes / wall / (1 << 20):.0f} | "
                  f"{cpu / args.gib:.2f} |", flush=True)


if __name__ == "__main__":
    sys.exit(main())
