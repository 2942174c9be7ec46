#!/usr/bin/env bash
# Figures for issue 7's extras, on loopback (not a test: numbers, no pass/fail):
#   1. connect -z over 4096 ports of 127.0.0.1 held closed by the script, --parallel 256.
#   2. listen --broker fan-out: one sender, three readers, 1 GiB; rate each reader receives.
# Usage: benches/extras.sh [path/to/sockkit]   (default: a release build made here)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-}
if [[ -z $BIN ]]; then
    cargo build --release --quiet
    BIN=target/release/sockkit
fi

# Only ports this script holds (bound, not listening) are checked: every one answers RST
# (closed), and no other program's server on this machine gets a stray connection.
echo "== connect -z over 4096 held ports of 127.0.0.1, --parallel 256"
python3 - "$BIN" <<'PY'
import socket, subprocess, sys, time
held, ports = [], []
for p in range(20000, 24096):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p))
    except OSError:
        s.close()
        continue
    held.append(s)
    ports.append(p)
spec = ",".join(map(str, ports))
t0 = time.perf_counter()
r = subprocess.run([sys.argv[1], "connect", "-z", "--parallel", "256", "-w", "1s", "127.0.0.1", spec],
                   capture_output=True, text=True)
dt = time.perf_counter() - t0
lines = r.stdout.splitlines()
print(r.stderr.strip())
print(f"{len(lines)} port lines ({sum(l.endswith(' closed') for l in lines)} closed) in {dt:.2f}s: {len(lines) / dt:.0f} ports/s")
PY

echo "== listen --broker: 1 sender -> 3 readers, 1 GiB"
err=/tmp/sockkit-bench-broker.$$
"$BIN" listen --broker 127.0.0.1 0 2>"$err" &
pid=$!
trap 'kill $pid 2>/dev/null || true; rm -f "$err"' EXIT
for _ in $(seq 100); do grep -q 'listening on' "$err" && break; sleep 0.05; done
port=$(grep -o 'listening on [^ ]*' "$err" | sed 's/.*://')
python3 - "$port" <<'PY'
import socket, sys, threading, time
port = int(sys.argv[1])
TOTAL = 1 << 30
readers = [socket.create_connection(("127.0.0.1", port)) for _ in range(3)]
sender = socket.create_connection(("127.0.0.1", port))
time.sleep(0.3)  # all four accepted before the first byte
done = []
def read(s):
    buf = bytearray(1 << 20)
    got = 0
    while got < TOTAL:
        n = s.recv_into(buf)
        if n == 0:
            break
        got += n
    done.append((got, time.perf_counter()))
threads = [threading.Thread(target=read, args=(r,)) for r in readers]
for t in threads:
    t.start()
chunk = b"z" * (1 << 20)
t0 = time.perf_counter()
for _ in range(TOTAL >> 20):
    sender.sendall(chunk)
for t in threads:
    t.join()
for got, t1 in done:
    print(f"reader got {got >> 20} MiB at {got / (t1 - t0) / (1 << 20):.0f} MiB/s")
PY
echo "broker stderr:"; cat "$err"
