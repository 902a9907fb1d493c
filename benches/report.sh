#!/usr/bin/env bash
# Runs the protocol benches once and prints the medians and the ratios to their
# floors (all from that one run). Pass --native for `-C target-cpu=native`
# (built in target/native so it does not disturb the default build); any further
# arguments go to criterion.
#
#   benches/report.sh            # default build flags
#   benches/report.sh --native   # with -C target-cpu=native
set -euo pipefail
cd "$(dirname "$0")/.."
flags="default (no RUSTFLAGS)"
if [[ "${1:-}" == "--native" ]]; then
    shift
    export RUSTFLAGS="-C target-cpu=native"
    export CARGO_TARGET_DIR=target/native
    flags="RUSTFLAGS=\"-C target-cpu=native\""
fi
cargo bench --bench protocol -- "$@" >&2
python3 benches/report.py "${CARGO_TARGET_DIR:-target}/criterion" "$flags"
