#!/usr/bin/env bash
# Builds the UniFFI library once, generates the Python, Kotlin and Swift
# bindings from it (outside the source tree), and runs the pytest suite over
# the Python ones. Kotlin and Swift are only generated (no compiler here).
#
#   bindings/uniffi/tests/run.sh          # build (debug), generate, pytest
#   bindings/uniffi/tests/run.sh bench    # build (release), generate, FFI benchmark
#
# Honours CARGO_TARGET_DIR (default: <workspace>/target).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
cd "$root"
target="${CARGO_TARGET_DIR:-$root/target}"
mode="${1:-test}"
case "$mode" in
    test) profile=debug ;;
    bench) profile=release ;;
    *) echo "usage: $0 [test|bench]" >&2; exit 2 ;;
esac

# One cargo invocation builds the cdylib and the generator (same features, so
# the library is compiled once).
cargo build -p ratchetbox-uniffi --features bindgen --lib --bin uniffi-bindgen
bindgen="$target/debug/uniffi-bindgen"
if [ "$mode" = bench ]; then
    # The optimized library only; the generator reads its metadata, which
    # does not depend on the profile.
    cargo build --release -p ratchetbox-uniffi --lib
fi
lib="$target/$profile/libratchetbox_uniffi.so"

out="$target/uniffi-bindings/$profile"
rm -rf "$out"
mkdir -p "$out/python"
"$bindgen" generate --library "$lib" --language python --no-format --out-dir "$out/python" >/dev/null
cp "$lib" "$out/python/"
test -s "$out/python/ratchetbox.py"

if [ "$mode" = bench ]; then
    PYTHONPATH="$out/python" python3 bindings/uniffi/tests/bench_overhead.py
    exit 0
fi

for language in kotlin swift; do
    mkdir -p "$out/$language"
    "$bindgen" generate --library "$lib" --language "$language" --no-format --out-dir "$out/$language" >/dev/null
    generated=$(find "$out/$language" -type f -size +0 | wc -l)
    if [ "$generated" -eq 0 ]; then
        echo "no $language bindings generated" >&2
        exit 1
    fi
    echo "$language bindings: $generated files in $out/$language"
done

python3 -m pytest --version >/dev/null 2>&1 || python3 -m pip install --quiet pytest==9.2.0
PYTHONDONTWRITEBYTECODE=1 PYTHONPATH="$out/python" python3 -m pytest -q -p no:cacheprovider bindings/uniffi/tests/python
