#!/usr/bin/env bash
# TLS, two tables: bulk throughput, `sockkit connect --tls -> listen --tls` (release build)
# against openssl s_client/s_server, ncat --ssl and socat OPENSSL, 1 GiB over 127.0.0.1 with
# CPU seconds per GiB (benches/tls.py); then handshakes per second against `sockkit echo
# --tls`, `ncat --ssl -l -k -e /bin/cat` and `openssl s_server -rev` with 2 parallel short
# clients (benches/handshakes.py). One command; not part of `cargo test`. Figures:
# benches/README.md. Extra arguments go to benches/tls.py (e.g. --gib 0.25 --rounds 1);
# HANDSHAKES=N sets the handshake count (default 2000).
set -euo pipefail
cd "$(dirname "$0")/.."
for need in openssl ncat socat python3; do
    command -v "$need" >/dev/null || { echo "bench: $need is missing (apt-get install $need)" >&2; exit 1; }
done
target="${CARGO_TARGET_DIR:-$PWD/target}"
cargo build --release --quiet
python3 benches/tls.py --sockkit "$target/release/sockkit" "$@"
echo
python3 benches/handshakes.py --sockkit "$target/release/sockkit" --count "${HANDSHAKES:-2000}"
