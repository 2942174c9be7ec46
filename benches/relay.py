#!/usr/bin/env python3
"""Relay throughput and latency of sockkit against nc (OpenBSD), ncat, socat and iperf3.

Run through benches/relay.sh, which finds or installs the peers and builds sockkit in release
mode. Everything runs over 127.0.0.1 on ports the kernel hands out (bind port 0, read it,
close). Each run is bounded in time; a run that hangs is killed and the benchmark fails.

Variants of sockkit: `sockkit-vv` (-vv narration), `sockkit-wire` (--wire on both ends),
`sockkit-pcap` (--pcap /dev/null on both ends), `sockkit-rw*` (read/write paths).

Scenario A: a 2 GiB regular file -> client -> server -> /dev/null (iperf3, sending 2 GiB from
memory, as the kernel's own reference). Scenario B: `head -c 4G /dev/zero` -> client -> server
-> `wc -c`. Tools alternate within each round, 3 rounds, median. Every run's byte count is
verified (see CHECKS below); a wrong count fails the benchmark, it is never averaged in.
"""

import argparse
import ctypes
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

GiB = 1 << 30
A_BYTES = 2 * GiB
B_BYTES = 4 * GiB
RUN_LIMIT = 120  # seconds; a run slower than this is a hang

CHECKS = """\
- A, sockkit: the receiver's own `-v` count (`received N B`) and, from the kernel, its
  TCP_INFO `bytes_received` (= N + 1: the FIN takes a sequence number), both printed by -v.
- A, nc / ncat / socat: each writes what it receives to stdout with write(2), so the kernel's
  `wchar` in /proc/PID/io counts it. The receiver runs under ptrace with only
  PTRACE_O_TRACEEXIT set (it stops once, at exit, before its /proc entry goes): the benchmark
  reads `wchar` there and subtracts the same tool's `wchar` for a 0-byte transfer (its own
  messages). The difference must equal the file size.
- A, iperf3: the JSON reports: the client's end.sum_sent.bytes must equal 2 GiB; the
  server's end.sum_received.bytes is shown (iperf3 stops counting when the client's TEST_END
  message arrives on its control connection, which can overtake the last few MB in flight).
- B: `wc -c` prints the count.
"""

# --- ptrace: stop the receiver once, at exit, to read its /proc/PID/io -------------------

_libc = ctypes.CDLL(None, use_errno=True)
_libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
PTRACE_TRACEME, PTRACE_CONT, PTRACE_SETOPTIONS = 0, 7, 0x4200
PTRACE_O_TRACEEXIT, PTRACE_O_EXITKILL, PTRACE_EVENT_EXIT = 0x40, 0x100000, 6


class Timeout(Exception):
    pass


def _alarm(_sig, _frame):
    raise Timeout()


signal.signal(signal.SIGALRM, _alarm)


class Kid:
    def __init__(self, name, pid, traced):
        self.name, self.pid, self.traced = name, pid, traced
        self.status = None  # exit code, or -signal
        self.rusage = None
        self.io = None
        self.end = None
        self.session = False
        self.hwm_kib = None  # peak RSS of the program itself (VmHWM at the exit stop)

    @property
    def cpu(self):
        return self.rusage.ru_utime + self.rusage.ru_stime

    @property
    def maxrss_kib(self):
        # Not ru_maxrss: across fork+exec it keeps the high-water mark of the forking Python
        # process. VmHWM, read at the exit stop, belongs to the program's own address space.
        return self.hwm_kib


class Group:
    """Children of one run: spawned with fork/exec so that a receiver can be traced, reaped
    with wait4 for their rusage, and all killed if the run overstays RUN_LIMIT."""

    def __init__(self):
        self.kids = {}

    def spawn(self, name, argv, stdin=None, stdout=None, stderr=None, trace=False, env=None,
              session=False):
        pid = os.fork()
        if pid == 0:
            try:
                if session:
                    os.setsid()
                for fd, target in ((0, stdin), (1, stdout), (2, stderr)):
                    if target is not None:
                        os.dup2(target, fd)
                if trace:
                    _libc.ptrace(PTRACE_TRACEME, 0, None, None)
                os.execvpe(argv[0], argv, env if env is not None else os.environ)
            finally:
                os._exit(127)
        kid = Kid(name, pid, trace)
        kid.session = session
        self.kids[pid] = kid
        if trace:
            _, st = os.waitpid(pid, 0)  # the stop at exec
            if os.WIFSTOPPED(st):
                opts = PTRACE_O_TRACEEXIT | PTRACE_O_EXITKILL
                _libc.ptrace(PTRACE_SETOPTIONS, pid, None, opts)
                _libc.ptrace(PTRACE_CONT, pid, None, None)
            else:
                kid.status = os.waitstatus_to_exitcode(st)
        return kid

    def _handle(self, pid, st, ru):
        kid = self.kids.get(pid)
        if kid is None:
            return
        if os.WIFSTOPPED(st):
            if st >> 8 == (signal.SIGTRAP | (PTRACE_EVENT_EXIT << 8)):
                with open(f"/proc/{pid}/io") as f:
                    kid.io = dict(line.split(": ") for line in f.read().splitlines() if line)
                with open(f"/proc/{pid}/status") as f:
                    for line in f:
                        if line.startswith("VmHWM:"):
                            kid.hwm_kib = int(line.split()[1])
                _libc.ptrace(PTRACE_CONT, pid, None, None)
            else:
                _libc.ptrace(PTRACE_CONT, pid, None, os.WSTOPSIG(st))
            return
        kid.status = os.waitstatus_to_exitcode(st)
        kid.rusage = ru
        kid.end = time.monotonic()

    def running(self):
        return [k for k in self.kids.values() if k.status is None]

    def poll(self):
        while self.running():
            pid, st, ru = os.wait4(-1, os.WNOHANG)
            if pid == 0:
                return
            self._handle(pid, st, ru)

    def wait(self, limit=RUN_LIMIT):
        signal.setitimer(signal.ITIMER_REAL, limit)
        try:
            while self.running():
                pid, st, ru = os.wait4(-1, 0)
                self._handle(pid, st, ru)
        except Timeout:
            names = [k.name for k in self.running()]
            self.kill()
            raise SystemExit(f"bench: a run overstayed {limit}s; killed {names}")
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)

    def kill(self):
        for k in self.running():
            try:
                if k.session:
                    os.killpg(k.pid, signal.SIGKILL)
                os.kill(k.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        signal.setitimer(signal.ITIMER_REAL, 0)
        while self.running():
            pid, st, ru = os.wait4(-1, 0)
            self._handle(pid, st, ru)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def is_listening(port):
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                rows = f.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            cols = row.split()
            if int(cols[1].rsplit(":", 1)[1], 16) == port and cols[3] == "0A":
                return True
    return False


def wait_listening(group, port, limit=10):
    """Waits for a LISTEN socket on `port` (from /proc/net/tcp, without connecting to it)."""
    deadline = time.monotonic() + limit
    while not is_listening(port):
        group.poll()
        dead = [k for k in group.kids.values() if k.status is not None]
        if dead:
            group.kill()
            raise SystemExit(f"bench: {dead[0].name} exited ({dead[0].status}) before listening")
        if time.monotonic() > deadline:
            group.kill()
            raise SystemExit(f"bench: nothing listened on port {port} within {limit}s")
        time.sleep(0.002)


# --- the tools ---------------------------------------------------------------------------

def commands(tool, port, sockkit):
    """(server argv, client argv, server env, client env) for a one-way transfer client ->
    server. `sockkit-rw` runs both ends with SOCKKIT_RELAY=buffered (read/write on every
    path); `sockkit-rw-send` only the sending end, `sockkit-rw-recv` only the receiving end,
    so each direction's zero-copy path is measured on its own."""
    p = str(port)
    if tool == "sockkit" or tool.startswith(("sockkit-", "sockkit+")):
        srv_env, cli_env = dict(os.environ), dict(os.environ)
        # `sockkit+NAME=VALUE+...`: both ends with extra environment, to try a variant; a
        # named variant takes it too (`sockkit-wire+SOCKKIT_CAPTURE=recvmsg` is --wire at
        # both ends with that variable set).
        tool, *assignments = tool.split("+")
        for assignment in assignments:
            name, _, value = assignment.partition("=")
            srv_env[name] = cli_env[name] = value
        if tool in ("sockkit-rw", "sockkit-rw-recv"):
            srv_env["SOCKKIT_RELAY"] = "buffered"
        if tool in ("sockkit-rw", "sockkit-rw-send"):
            cli_env["SOCKKIT_RELAY"] = "buffered"
        # `sockkit-vv`: both ends narrating (-vv), to measure what narration costs when on.
        vv = ["-vv"] if tool == "sockkit-vv" else []
        # `sockkit-progress`: both ends drawing the live --progress line (forced: stderr is a
        # file here), to show what the line costs: its thread reads counters kept anyway.
        if tool == "sockkit-progress":
            vv = ["--progress"]
        # `sockkit-wire`: both ends capture and tell every segment (--wire); `sockkit-pcap`:
        # both capture into a pcap file each, nothing told. Each end has its own capture.
        srv_x, cli_x = [], []
        if tool == "sockkit-wire":
            srv_x, cli_x = ["--wire"], ["--wire"]
        elif tool == "sockkit-pcap":
            # Written whole, to /dev/null: the cost of capturing and writing, not of a disk.
            srv_x, cli_x = ["--pcap", os.devnull], ["--pcap", os.devnull]
        return ([sockkit, "listen", "-v", *vv, *srv_x, "127.0.0.1", p],
                [sockkit, "connect", *vv, *cli_x, "127.0.0.1", p], srv_env, cli_env)
    if tool == "nc":
        return (["nc", "-l", "127.0.0.1", p], ["nc", "-N", "127.0.0.1", p], None, None)
    if tool == "ncat":
        return (["ncat", "-l", "127.0.0.1", p], ["ncat", "127.0.0.1", p], None, None)
    if tool == "socat":
        # -u: one way. Without it socat ends 0.5 s after the server's stdin (/dev/null) EOF.
        return (["socat", "-u", f"TCP-LISTEN:{p},bind=127.0.0.1,reuseaddr", "STDOUT"],
                ["socat", "-u", "STDIN", f"TCP:127.0.0.1:{p}"], None, None)
    raise ValueError(tool)


def captured_by_sockkit(stderr_text):
    """The receiving end's `wire: N packets captured, D dropped` line, if it captured."""
    m = re.search(r"wire: (\d+) packets captured, (\d+) dropped", stderr_text)
    return (int(m.group(1)), int(m.group(2))) if m else None


def devnull(mode=os.O_RDWR):
    return os.open(os.devnull, mode)


class Result:
    def __init__(self, tool, seconds, cpu, rss, verified, all_cpu=None, captured=None):
        self.tool, self.seconds, self.cpu, self.rss, self.verified = tool, seconds, cpu, rss, verified
        # (packets, dropped) the receiving end's capture counted, for the --wire variants.
        self.captured = captured
        # Every process of the run (B: with head and wc), against the machine's CPUs.
        self.all_cpu = all_cpu


def received_by_sockkit(stderr_text, n):
    m = re.search(r"received .*?\((\d+) B\)", stderr_text)
    k = re.search(r"bytes_received[: ](\d+)", stderr_text)
    if not m or not k:
        raise SystemExit(f"bench: sockkit -v did not report its count:\n{stderr_text}")
    got, kernel = int(m.group(1)), int(k.group(1))
    if got != n or kernel != n + 1:
        raise SystemExit(f"bench: sockkit received {got} (kernel {kernel}), expected {n}")
    return f"-v: {got} B, TCP_INFO bytes_received {kernel}"


def run_a(tool, path, n, sockkit, baseline):
    """Scenario A with one tool: file -> client -> server -> /dev/null."""
    port = free_port()
    g = Group()
    null = devnull()
    with tempfile.TemporaryFile() as err, open(path, "rb") as src:
        if tool == "iperf3":
            out = tempfile.TemporaryFile()
            server = g.spawn("iperf3 -s", ["iperf3", "-s", "-1", "-J", "-B", "127.0.0.1",
                                          "-p", str(port)], stdin=null, stdout=out.fileno(),
                             stderr=err.fileno())
            wait_listening(g, port)
            t0 = time.monotonic()
            cout = tempfile.TemporaryFile()
            client = g.spawn("iperf3 -c", ["iperf3", "-c", "127.0.0.1", "-p", str(port),
                                           "-n", str(n), "-J"], stdin=null, stdout=cout.fileno(),
                             stderr=null)
        else:
            srv, cli, srv_env, cli_env = commands(tool, port, sockkit)
            server = g.spawn(f"{tool} server", srv, stdin=null, stdout=null,
                             stderr=err.fileno(), trace=True, env=srv_env)
            wait_listening(g, port)
            t0 = time.monotonic()
            client = g.spawn(f"{tool} client", cli, stdin=src.fileno(), stdout=null,
                             stderr=null, env=cli_env, trace=True)
        g.wait()
        os.close(null)
        seconds = max(k.end for k in g.kids.values()) - t0
        err.seek(0)
        err_text = err.read().decode(errors="replace")
        for k in g.kids.values():
            if k.status != 0:
                raise SystemExit(f"bench: {k.name} exited {k.status}: {err_text}")
        if tool == "iperf3":
            out.seek(0)
            cout.seek(0)
            got = json.loads(out.read())["end"]["sum_received"]["bytes"]
            sent = json.loads(cout.read())["end"]["sum_sent"]["bytes"]
            # iperf3's server stops counting when the client's TEST_END arrives on the control
            # connection, which can overtake the last megabytes still in flight: its count may
            # be short by that much. The client's count must be exact.
            if sent != n or not n - 64 * 2**20 <= got <= n:
                raise SystemExit(f"bench: iperf3 sent {sent}, server received {got}, expected {n}")
            verified = f"iperf3 JSON: client sum_sent {sent} B, server sum_received {got} B"
        elif tool.startswith("sockkit"):
            verified = received_by_sockkit(err_text, n)
        else:
            got = int(server.io["wchar"]) - baseline.get(tool, 0)
            if got != n:
                raise SystemExit(f"bench: {tool} server wrote {got} bytes to stdout, expected {n}")
            verified = f"wchar {server.io['wchar']} - {baseline.get(tool, 0)} = {got} B"
        captured = captured_by_sockkit(err_text) \
            if tool.split("+")[0] in ("sockkit-wire", "sockkit-pcap") \
            else None
        if captured:
            verified += f"; server captured {captured[0]} packets, {captured[1]} dropped"
    return Result(tool, seconds, server.cpu + client.cpu, (client.maxrss_kib, server.maxrss_kib),
                  verified, sum(k.cpu for k in g.kids.values()), captured)


def wchar_baseline(tool, sockkit, empty):
    """What `tool`'s server writes with nothing received (its own messages, if any)."""
    return int(run_a_empty(tool, sockkit, empty))


def run_a_empty(tool, sockkit, empty):
    port = free_port()
    g = Group()
    null = devnull()
    srv, cli, srv_env, cli_env = commands(tool, port, sockkit)
    with open(empty, "rb") as src:
        server = g.spawn(f"{tool} server", srv, stdin=null, stdout=null, stderr=null,
                         trace=True, env=srv_env)
        wait_listening(g, port)
        g.spawn(f"{tool} client", cli, stdin=src.fileno(), stdout=null, stderr=null,
                env=cli_env)
        g.wait()
    os.close(null)
    return server.io["wchar"]


def run_b(tool, n, sockkit):
    """Scenario B: head -c N /dev/zero | client -> server | wc -c."""
    port = free_port()
    g = Group()
    null = devnull()
    srv, cli, srv_env, cli_env = commands(tool, port, sockkit)
    with tempfile.TemporaryFile() as err, tempfile.TemporaryFile() as count:
        to_wc_r, to_wc_w = os.pipe()
        server = g.spawn(f"{tool} server", srv, stdin=null, stdout=to_wc_w, stderr=err.fileno(),
                         env=srv_env, trace=True)
        g.spawn("wc -c", ["wc", "-c"], stdin=to_wc_r, stdout=count.fileno())
        os.close(to_wc_r)
        os.close(to_wc_w)
        wait_listening(g, port)
        t0 = time.monotonic()
        from_head_r, from_head_w = os.pipe()
        g.spawn("head", ["head", "-c", str(n), "/dev/zero"], stdout=from_head_w)
        client = g.spawn(f"{tool} client", cli, stdin=from_head_r, stdout=null, stderr=null,
                         env=cli_env, trace=True)
        os.close(from_head_r)
        os.close(from_head_w)
        g.wait()
        os.close(null)
        seconds = max(k.end for k in g.kids.values()) - t0
        err.seek(0)
        err_text = err.read().decode(errors="replace")
        for k in g.kids.values():
            if k.status != 0:
                raise SystemExit(f"bench: {k.name} exited {k.status}: {err_text}")
        count.seek(0)
        got = int(count.read().split()[0])
        if got != n:
            raise SystemExit(f"bench: wc -c counted {got}, expected {n}")
        verified = f"wc -c {got}"
        captured = captured_by_sockkit(err_text) \
            if tool.split("+")[0] in ("sockkit-wire", "sockkit-pcap") \
            else None
        if captured:
            verified += f"; server captured {captured[0]} packets, {captured[1]} dropped"
    return Result(tool, seconds, server.cpu + client.cpu, (client.maxrss_kib, server.maxrss_kib),
                  verified, sum(k.cpu for k in g.kids.values()), captured)


# --- latency -----------------------------------------------------------------------------

ECHO = r"""
import socket, sys
l = socket.socket()
l.bind(("127.0.0.1", int(sys.argv[1])))
l.listen(1)
c, _ = l.accept()
c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
while True:
    d = c.recv(65536)
    if not d:
        break
    c.sendall(d)
c.close()
"""


def ping_pong(port, rounds, size=32):
    msg = b"x" * size
    rtts = []
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for i in range(rounds + 200):
            t0 = time.perf_counter_ns()
            s.sendall(msg)
            got = 0
            while got < size:
                chunk = s.recv(size - got)
                if not chunk:
                    raise SystemExit("bench: the echo path closed during the ping-pong")
                got += len(chunk)
            if i >= 200:  # warm-up rounds are not counted
                rtts.append(time.perf_counter_ns() - t0)
    rtts.sort()
    return rtts[len(rtts) // 2] / 1000, rtts[len(rtts) * 99 // 100] / 1000


def latency(via, sockkit, rounds, fifo_dir):
    """Median and p99 round trip (µs) of 32-byte ping-pongs to an echo server, directly or
    through a relay pair `listen L < fifo | connect E > fifo`."""
    g = Group()
    echo_port = free_port()
    g.spawn("echo", [sys.executable, "-c", ECHO, str(echo_port)])
    wait_listening(g, echo_port)
    port = echo_port
    if via != "direct":
        port = free_port()
        fifo = os.path.join(fifo_dir, f"fifo-{port}")
        os.mkfifo(fifo)
        if via == "sockkit":
            pair = (f"'{sockkit}' listen 127.0.0.1 {port} < {fifo} | "
                    f"'{sockkit}' connect 127.0.0.1 {echo_port} > {fifo}")
        else:  # nc
            pair = f"nc -l 127.0.0.1 {port} < {fifo} | nc -N 127.0.0.1 {echo_port} > {fifo}"
        null = devnull()
        pair_kid = g.spawn(f"{via} pair", ["sh", "-c", pair], stderr=null, session=True)
        os.close(null)
        wait_listening(g, port)
    median, p99 = ping_pong(port, rounds)
    if via != "direct":
        # A relay pair joined by a fifo never ends by itself: each side keeps sending its stdin
        # (the other side's output) until EOF, as DESIGN.md's rule 2 says for a pipe.
        os.killpg(pair_kid.pid, signal.SIGTERM)
    g.wait(30)
    return median, p99


# --- report ------------------------------------------------------------------------------

def median_of(results, attr):
    return statistics.median(getattr(r, attr) for r in results)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sockkit", required=True)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--workdir", required=True, help="where the 2 GiB file lives")
    ap.add_argument("--only", default="A,B,lat", help="A, B, lat, rss (comma-separated)")
    ap.add_argument("--tools", default="sockkit,nc,ncat,socat,sockkit-rw,sockkit-rw-send,"
                    "sockkit-rw-recv", help="B skips sockkit-rw-send: a stdin pipe is "
                    "read/write either way")
    args = ap.parse_args()
    only = set(args.only.split(","))
    tools = args.tools.split(",")
    peers = [t for t in tools if t in ("nc", "ncat", "socat")]

    os.makedirs(args.workdir, exist_ok=True)
    path = os.path.join(args.workdir, "a-2GiB.bin")
    if not os.path.exists(path) or os.path.getsize(path) != A_BYTES:
        print(f"bench: writing {path} (2 GiB of random bytes, once)", file=sys.stderr)
        subprocess.run(["head", "-c", str(A_BYTES), "/dev/urandom"], stdout=open(path, "wb"),
                       check=True)
    empty = os.path.join(args.workdir, "empty")
    open(empty, "wb").close()
    # Scenario A reads the file from the page cache, for every tool alike.
    subprocess.run(["cat", path], stdout=subprocess.DEVNULL, check=True)

    load_before = open("/proc/loadavg").read().split()[:3]
    started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    out = []
    say = out.append

    a, b = {}, {}
    if "A" in only:
        baseline = {t: wchar_baseline(t, args.sockkit, empty) for t in peers}
        a_tools = tools + ["iperf3"]
        for r in range(args.rounds):
            order = a_tools[r % len(a_tools):] + a_tools[:r % len(a_tools)]
            for t in order:
                res = run_a(t, path, A_BYTES, args.sockkit, baseline)
                a.setdefault(t, []).append(res)
                print(f"A round {r + 1} {t:11} {res.seconds:6.3f} s  cpu {res.cpu:5.2f} s  "
                      f"[{res.verified}]", file=sys.stderr)
    if "B" in only:
        b_tools = [t for t in tools if t != "sockkit-rw-send"]
        for r in range(args.rounds):
            order = b_tools[r % len(b_tools):] + b_tools[:r % len(b_tools)]
            for t in order:
                res = run_b(t, B_BYTES, args.sockkit)
                b.setdefault(t, []).append(res)
                print(f"B round {r + 1} {t:11} {res.seconds:6.3f} s  cpu {res.cpu:5.2f} s  "
                      f"all {res.all_cpu:5.2f} s  "
                      f"[{res.verified}]", file=sys.stderr)
    small = None
    if "rss" in only or "A" in only:
        small = run_a("sockkit", os.path.join(args.workdir, "small"), 16 << 20, args.sockkit, {}) \
            if _small_file(args.workdir) else None
    lat = {}
    if "lat" in only:
        with tempfile.TemporaryDirectory() as d:
            for via in ("direct", "sockkit", "nc", "direct", "sockkit", "nc"):
                lat.setdefault(via, []).append(latency(via, args.sockkit, 5000, d))
                print(f"latency {via:8} median {lat[via][-1][0]:.1f} µs  p99 "
                      f"{lat[via][-1][1]:.1f} µs", file=sys.stderr)
    load_after = open("/proc/loadavg").read().split()[:3]

    # The command as typed: relay.sh adds --sockkit and --workdir itself.
    extra, argv = [], iter(sys.argv[1:])
    for arg in argv:
        if arg in ("--sockkit", "--workdir"):
            next(argv, None)
        elif not arg.startswith(("--sockkit=", "--workdir=")):
            extra.append(arg)
    say(f"Command: `benches/relay.sh{''.join(' ' + a for a in extra)}`")
    say("")
    say(f"Run {started} on {os.cpu_count()} CPUs, kernel {os.uname().release}; load average "
        f"before {' '.join(load_before)}, after {' '.join(load_after)}.")
    say("")
    for name, res, size in (("A: 2 GiB file -> client -> server -> /dev/null", a, A_BYTES),
                            ("B: head -c 4G /dev/zero -> client -> server -> wc -c", b, B_BYTES)):
        if not res:
            continue
        sk = median_of(res["sockkit"], "seconds")
        say(f"### {name}")
        say("")
        say("| tool | median s | runs | GiB/s | sockkit speed-up (tool s / sockkit s) "
            "| CPU s per GiB (client+server) | CPU busy, all processes (of 2 CPUs x wall) |")
        say("|---|---|---|---|---|---|---|")
        for t, rs in res.items():
            m = median_of(rs, "seconds")
            cpu = median_of(rs, "cpu") / (size / GiB)
            runs = " ".join(f"{r.seconds:.2f}" for r in rs)
            busy = statistics.median(r.all_cpu / (r.seconds * os.cpu_count()) for r in rs)
            say(f"| {t} | {m:.3f} | {runs} | {size / GiB / m:.2f} | {m / sk:.2f}x | {cpu:.2f} "
                f"| {busy * 100:.0f}% |")
        say("")
        fastest = min(((median_of(res[t], "seconds"), t) for t in peers if t in res),
                      default=None)
        if fastest:
            target = 2.5 if name.startswith("A") else 1.4
            ratio = fastest[0] / sk
            verdict = "met" if ratio >= target else f"missed by {(1 - ratio / target) * 100:.0f}%"
            say(f"sockkit vs the fastest of nc/ncat/socat ({fastest[1]}): {ratio:.2f}x "
                f"(target {target}x: {verdict})")
        if "iperf3" in res:
            ratio = median_of(res["iperf3"], "seconds") / sk
            verdict = "met" if ratio >= 1.0 else f"missed by {(1 - ratio) * 100:.0f}%"
            say(f"sockkit vs iperf3: {ratio:.2f}x (target 1.0x: {verdict})")
        for t, rs in res.items():
            caught = [r.captured for r in rs if r.captured]
            if caught:
                wire = median_of(rs, "seconds") / sk
                say(f"{t}: {wire:.2f}x the time of sockkit without capture; the receiving end "
                    "captured (packets/dropped by the kernel) "
                    + ", ".join(f"{p}/{d}" for p, d in caught))
        rss = [r.rss for r in res["sockkit"]]
        say(f"sockkit peak RSS (client, server): "
            + ", ".join(f"{c / 1024:.1f}/{s / 1024:.1f} MiB" for c, s in rss))
        say("")
    if small:
        say(f"sockkit peak RSS for a 16 MiB transfer (client, server): {small.rss[0] / 1024:.1f}/"
            f"{small.rss[1] / 1024:.1f} MiB")
        say("")
    if lat:
        d = statistics.median(m for m, _ in lat["direct"])
        say("### Round-trip latency, 32-byte ping-pong (5000 rounds, 2 runs)")
        say("")
        say("| path | median µs | p99 µs | added by the relay pair (median) |")
        say("|---|---|---|---|")
        for via, rs in lat.items():
            m = statistics.median(x for x, _ in rs)
            p = statistics.median(y for _, y in rs)
            added = "-" if via == "direct" else f"{m - d:+.1f} µs"
            say(f"| {via} | {m:.1f} | {p:.1f} | {added} |")
        say("")
    say("How each run's byte count was verified:")
    say("")
    say(CHECKS)
    print("\n".join(out))


def _small_file(workdir):
    path = os.path.join(workdir, "small")
    if not os.path.exists(path) or os.path.getsize(path) != 16 << 20:
        with open(path, "wb") as f:
            f.write(os.urandom(16 << 20))
    return True


if __name__ == "__main__":
    main()
