#!/usr/bin/env bash
# Builds the C ABI's static library once, compiles the C tests against the
# committed header with AddressSanitizer (leak detection on) and UBSan, and
# runs them. Honours CARGO_TARGET_DIR (else target/ at the workspace root).
set -euo pipefail
target_dir="${CARGO_TARGET_DIR:-}"
if [[ -n "$target_dir" && "$target_dir" != /* ]]; then
    target_dir="$PWD/$target_dir"
fi
cd "$(dirname "$0")/../../.."
target_dir="${target_dir:-$PWD/target}"
export CARGO_TARGET_DIR="$target_dir"
cargo build -p ratchetbox-ffi
lib="$target_dir/debug/libratchetbox_ffi.a"
out="$target_dir/ctests"
mkdir -p "$out"
cflags=(-std=c11 -Wall -Wextra -Werror -g -fsanitize=address,undefined
        -fno-omit-frame-pointer -fno-sanitize-recover=all -I bindings/c/include)
export ASAN_OPTIONS=detect_leaks=1:halt_on_error=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
for test in conversation readme_snippet; do
    gcc "${cflags[@]}" "bindings/c/tests/$test.c" "$lib" -lpthread -ldl -lm -o "$out/$test"
    echo "== $test"
    "$out/$test"
done
