#!/usr/bin/env bash
# Kernel parity: every SIMD kernel against the scalar reference, on x86 and on emulated aarch64.
#   1. native build of native/tests/kernel_parity.cpp (x86: avx2 vs scalar)
#   2. aarch64 cross build (Debian's aarch64-linux-gnu-g++, static) run under qemu-aarch64 twice:
#      -cpu cortex-a53 (armv8.0, no dotprod: tests the neon table) and
#      -cpu cortex-a76 (armv8.2 + dotprod: tests neon and neon_dotprod)
# Exits non-zero if a build fails, any check fails, or a run did not test the ISA it exists for.
# Needs g++-aarch64-linux-gnu and qemu-user (scripts/setup.sh --test installs them).
set -uo pipefail
cd "$(dirname "$0")/.."

out=native/tests/build
mkdir -p "$out"
# -ffp-contract=off as in quant_ref.cpp's contract: a fused multiply-add would change rounding.
flags=(-O2 -std=c++17 -ffp-contract=off -Wall -Wextra -I native)
sources=(native/quant_*.cpp native/gemm_*.cpp native/repack_avx2.cpp native/activations_*.cpp native/cpu_isa.cpp native/tests/kernel_parity.cpp)
status=0

build() {  # build <compiler> <objdir> <binary> [extra flags]: one object per source, two at a time
    local cxx=$1 objdir=$2 bin=$3
    shift 3
    rm -rf "$objdir" && mkdir -p "$objdir"
    local pids=() src failed=0
    for src in "${sources[@]}"; do
        "$cxx" "${flags[@]}" "$@" -c "$src" -o "$objdir/$(basename "$src" .cpp).o" &
        pids+=($!)
        if [ "${#pids[@]}" -ge 2 ]; then
            wait "${pids[0]}" || failed=1
            pids=("${pids[@]:1}")
        fi
    done
    for p in "${pids[@]}"; do wait "$p" || failed=1; done
    [ "$failed" = 0 ] && "$cxx" "$@" -o "$bin" "$objdir"/*.o -pthread
}

run_check() {  # run_check <label> <must-test ISA or ""> <must-lack ISA or ""> <command...>
    local label=$1 must=$2 lack=$3
    shift 3
    local log="$out/$label.log"
    "$@" ${must:+--require "$must"} >"$log" 2>&1
    local rc=$?
    grep '^FAIL' "$log" | head -n 40
    echo "[$label] $(grep '^available ISAs' "$log")"
    grep '^tested isa=' "$log" | sed "s/^/[$label] /"
    echo "[$label] summary: $(tail -n 1 "$log")"
    if [ "$rc" != 0 ]; then
        echo "[$label] FAILED (exit $rc, full log: $log)"
        status=1
    fi
    if [ -n "$lack" ] && grep -q "^available ISAs:.* $lack\b" "$log"; then
        echo "[$label] FAILED: $lack should not be available on this emulated CPU"
        status=1
    fi
}

# ---- native ---------------------------------------------------------------------------------------
echo "==> native build ($(uname -m))"
if build "${CXX:-g++}" "$out/obj_native" "$out/kernel_parity_native"; then
    native_must=""
    # An x86 CPU with AVX2 must have its avx2 layer tested.
    if [ "$(uname -m)" = x86_64 ] && grep -qw avx2 /proc/cpuinfo && grep -qw f16c /proc/cpuinfo &&
        grep -qw fma /proc/cpuinfo; then
        native_must=avx2
    fi
    run_check native "$native_must" "" "$out/kernel_parity_native"
else
    echo "[native] BUILD FAILED"
    status=1
fi

# ---- aarch64 under qemu ---------------------------------------------------------------------------
if ! command -v aarch64-linux-gnu-g++ >/dev/null || ! command -v qemu-aarch64 >/dev/null; then
    echo "aarch64-linux-gnu-g++ or qemu-aarch64 missing: run scripts/setup.sh --test"
    exit 1
fi
echo "==> aarch64 cross build"
if build aarch64-linux-gnu-g++ "$out/obj_aarch64" "$out/kernel_parity_aarch64" -static; then
    run_check qemu-cortex-a53 neon neon_dotprod qemu-aarch64 -cpu cortex-a53 "$out/kernel_parity_aarch64"
    run_check qemu-cortex-a76 neon_dotprod "" qemu-aarch64 -cpu cortex-a76 "$out/kernel_parity_aarch64"
    # The baseline table must be tested on the dotprod CPU too (it is the layer under dotprod).
    if ! grep -q '^tested isa=neon ' "$out/qemu-cortex-a76.log"; then
        echo "[qemu-cortex-a76] FAILED: neon was not tested"
        status=1
    fi
else
    echo "[aarch64] BUILD FAILED"
    status=1
fi

if [ "$status" = 0 ]; then echo "arm_parity: OK"; else echo "arm_parity: FAILED"; fi
exit "$status"
