#!/usr/bin/env bash
# Relay throughput and latency: sockkit (release build) against nc (OpenBSD), ncat, socat and
# iperf3, over 127.0.0.1 only. One command; not part of `cargo test`. The figures and how to
# read them: benches/README.md. Extra arguments go to benches/relay.py (e.g. --only A).
set -euo pipefail
cd "$(dirname "$0")/.."

# Finds each peer, installing the Debian/Ubuntu package when it is missing.
missing=()
is_openbsd_nc() { command -v nc >/dev/null && [[ "$(nc -h 2>&1)" == *OpenBSD* ]]; }
is_openbsd_nc || missing+=(netcat-openbsd)
command -v ncat >/dev/null || missing+=(ncat)
command -v socat >/dev/null || missing+=(socat)
command -v iperf3 >/dev/null || missing+=(iperf3)
command -v python3 >/dev/null || missing+=(python3)
if ((${#missing[@]})); then
    echo "bench: installing ${missing[*]}" >&2
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo=sudo
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}" ||
        { $sudo apt-get update && $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}"; }
fi
is_openbsd_nc || { echo "bench: nc is not OpenBSD netcat (update-alternatives --config nc)" >&2; exit 1; }

cargo build --release --quiet
target="${CARGO_TARGET_DIR:-$PWD/target}"
exec python3 benches/relay.py --sockkit "$target/release/sockkit" --workdir "$target/bench" "$@"
