"""Matrix-vector throughput of edgegen's kernels on SmolLM2-135M's and Gemma 3 270M's shapes,
beside this machine's read bandwidth measured in the same run; with --batch, prefill products too.

    python bench/kernels.py [--threads 1 2] [--formats q4_0 q4_1 q8_0 ...] [--runs 5] [--markdown]
    python bench/kernels.py --batch 64 --threads 1 --formats q5_0 q4_K q5_K q6_K
    python bench/kernels.py --packed --formats q4_0 q4_1 q8_0    # the fast path beside the exact one

Shapes are written ggml-style, `cols x rows` (576x1536 = ffn_up: 1536 rows of 576 columns). Each
product cycles through enough copies of its matrix to exceed the last-level cache, so weights come
from memory as they do when decoding a whole model. GB/s counts weight bytes read per second;
`% bw` compares it with the read bandwidth at the same thread count. k-quants need rows of 256:
they run only on the shapes whose column count is a multiple of 256.

--packed also times Q4_0 / Q4_1 / Q8_0 through the fast decode path's repacked rows (native/repack.h;
rows "q4_0 packed"), right after the exact kernel on the same weights and activation.

--batch N times one product of N tokens (a prefill step; weights hot in cache) against N single-
token products of the same, hot, matrix (what a batch cost before the register-tiled gemm
kernels): `x` is how many times faster the batch is per token.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np

from edgegen import _native

SHAPES = [(576, 576), (576, 192), (576, 1536), (1536, 576), (576, 49152),  # SmolLM2-135M (cols, rows)
          (640, 1024), (640, 2048), (1024, 640), (2048, 640)]                 # Gemma 3 270M
FORMATS = ["q4_0", "q4_1", "q5_0", "q8_0", "q4_K", "q5_K", "q6_K", "f16", "bf16", "f32"]
PACKABLE = {"q4_0", "q4_1", "q8_0"}  # formats with a repacked fast path (native/repack.h)
CACHE_BUSTING_BYTES = 96 << 20  # > the L3 of the boards and servers we run on


def weight_copies(fmt: str, cols: int, rows: int, rng: np.random.Generator) -> list[np.ndarray]:
    w = _native.quantize(rng.standard_normal((rows, cols)).astype(np.float32), fmt)
    n = max(1, -(-CACHE_BUSTING_BYTES // w.nbytes))
    return [w] + [w.copy() for _ in range(n - 1)]


def bench_batch(formats: list[str], args: argparse.Namespace, pools: dict, rng: np.random.Generator) -> list[tuple]:
    out = []
    for fmt in formats:
        block = _native.type_info(fmt)["block_size"]
        for cols, rows in SHAPES:
            if cols % block or rows > 4096:
                continue
            w = _native.quantize(rng.standard_normal((rows, cols)).astype(np.float32), fmt)
            xs = rng.standard_normal((args.batch, cols)).astype(np.float32)
            layouts = [False, True] if args.packed and fmt in PACKABLE and rows % 8 == 0 else [False]
            for t in args.threads:
                for packed in layouts:
                    single = statistics.median(_native.time_matmul([w], fmt, xs[0], args.seconds, pools[t], packed)
                                               for _ in range(args.runs))
                    _native.matmul(w, fmt, xs, pools[t], packed)  # warm-up
                    times = []
                    for _ in range(args.runs):
                        t0, calls = time.perf_counter(), 0
                        while time.perf_counter() - t0 < args.seconds:
                            _native.matmul(w, fmt, xs, pools[t], packed)
                            calls += 1
                        times.append((time.perf_counter() - t0) / calls)
                    name = f"{fmt} packed" if packed else fmt
                    out.append((name, f"{cols}x{rows}", t, statistics.median(times) * 1e6, single * 1e6))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--formats", nargs="+", default=FORMATS)
    ap.add_argument("--runs", type=int, default=5, help="timed runs per case; the median is reported")
    ap.add_argument("--seconds", type=float, default=0.15, help="minimum length of one timed run")
    ap.add_argument("--markdown", action="store_true", help="print a markdown table")
    ap.add_argument("--batch", type=int, default=0, help="also time prefill products of this many tokens")
    ap.add_argument("--packed", action="store_true", help="also time the fast path's repacked Q4_0/Q4_1/Q8_0 rows")
    args = ap.parse_args(argv)

    supported = []
    for fmt in args.formats:
        try:
            _native.type_info(fmt)
            _native.quantize(np.zeros((1, 256), np.float32), fmt)
            supported.append(fmt)
        except ValueError:
            print(f"# skipping {fmt}: not supported by this build", file=sys.stderr)

    rng = np.random.default_rng(0)
    pools = {t: _native.ThreadPool(t) for t in args.threads}
    bandwidth = {t: statistics.median(_native.measure_read_bandwidth(256 << 20, 3, pools[t]) for _ in range(3))
                 for t in args.threads}
    print(f"# isa={_native.active_isa()} physical_cores={_native.physical_cores()} "
          f"date={time.strftime('%Y-%m-%d %H:%M')}")
    for t in args.threads:
        print(f"# read bandwidth, {t} thread(s), vector loads over 256 MiB: {bandwidth[t]:.1f} GB/s")

    rows_out = []
    for fmt in supported:
        block = _native.type_info(fmt)["block_size"]
        for cols, rows in SHAPES:
            if cols % block:  # k-quants need rows of 256: 576-wide matrices cannot be stored so
                continue
            ws = weight_copies(fmt, cols, rows, rng)
            x = rng.standard_normal(cols).astype(np.float32)
            layouts = [False, True] if args.packed and fmt in PACKABLE and rows % 8 == 0 else [False]
            for t in args.threads:
                for packed in layouts:
                    _native.time_matmul(ws, fmt, x, 0.02, pools[t], packed)  # warm-up
                    secs = statistics.median(_native.time_matmul(ws, fmt, x, args.seconds, pools[t], packed)
                                             for _ in range(args.runs))
                    gbs = ws[0].nbytes / secs / 1e9
                    name = f"{fmt} packed" if packed else fmt
                    rows_out.append((name, f"{cols}x{rows}", t, secs * 1e6, gbs, 100 * gbs / bandwidth[t]))
            del ws

    if args.batch:
        batch_rows = bench_batch(supported, args, pools, rng)
        print(f"# prefill: {args.batch} tokens per product vs {args.batch} single-token products, weights hot")
        print(f"{'format':11} {'shape':>10} {'thr':>3} {'us/batch':>9} {'us/tok':>8} {'1-tok us':>9} {'x':>5}")
        for fmt, shape, t, batch_us, single_us in batch_rows:
            print(f"{fmt:11} {shape:>10} {t:>3} {batch_us:9.1f} {batch_us / args.batch:8.2f} {single_us:9.2f} "
                  f"{single_us * args.batch / batch_us:5.2f}")

    if args.markdown:
        print("| format | shape (cols x rows) | threads | us / product | GB/s | % of read bw |")
        print("|---|---|---:|---:|---:|---:|")
        for fmt, shape, t, us, gbs, pct in rows_out:
            print(f"| {fmt} | {shape} | {t} | {us:.1f} | {gbs:.1f} | {pct:.0f}% |")
    else:
        print(f"{'format':11} {'shape':>10} {'thr':>3} {'us/prod':>9} {'GB/s':>7} {'%bw':>5}")
        for fmt, shape, t, us, gbs, pct in rows_out:
            print(f"{fmt:11} {shape:>10} {t:>3} {us:9.1f} {gbs:7.1f} {pct:5.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
