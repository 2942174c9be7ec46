#!/usr/bin/env bash
# Bulk TLS throughput: `sockkit connect --tls -> listen --tls` (release build) against
# openssl s_client/s_server, ncat --ssl and socat OPENSSL, 1 GiB over 127.0.0.1, with CPU
# seconds per GiB. One command; not part of `cargo test`. Figures: benches/README.md. Extra
# arguments go to benches/tls.py (e.g. --gib 0.25 --rounds 1).
set -euo pipefail
cd "$(dirname "$0")/.."
for need in openssl ncat socat python3; do
    command -v "$need" >/dev/null || { echo "bench: $need is missing (apt-get install $need)" >&2; exit 1; }
done
target="${CARGO_TARGET_DIR:-$PWD/target}"
cargo build --release --quiet
exec python3 benches/tls.py --sockkit "$target/release/sockkit" "$@"
