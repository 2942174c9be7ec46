#!/usr/bin/env bash
# Forwarding throughput, connection rate, echo load and idle memory: `sockkit forward`
# (release build) against socat, haproxy (mode tcp), ncat --sh-exec and no relay, over
# 127.0.0.1 only. One command; not part of `cargo test`. The figures and how to read them:
# benches/README.md. Extra arguments go to benches/forward.py (e.g. --only bulk --gib 1).
set -euo pipefail
cd "$(dirname "$0")/.."

# Finds each peer, installing the Debian/Ubuntu package when it is missing.
missing=()
for need in socat:socat haproxy:haproxy ncat:ncat python3:python3; do
    command -v "${need%%:*}" >/dev/null || missing+=("${need#*:}")
done
if ((${#missing[@]})); then
    echo "bench: installing ${missing[*]}" >&2
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo=sudo
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}" ||
        { $sudo apt-get update && $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}"; }
fi

# 10,000 pairs are 20,000 descriptors in the relay and as many in the load generator.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

target="${CARGO_TARGET_DIR:-$PWD/target}"
load_target="${LOAD_TARGET_DIR:-$PWD/benches/load/target}"
cargo build --release --quiet
CARGO_TARGET_DIR="$load_target" cargo build --release --quiet --manifest-path benches/load/Cargo.toml
exec python3 benches/forward.py --sockkit "$target/release/sockkit" \
    --echo-bench "$load_target/release/echo-bench" --workdir "$target/bench-forward" "$@"
