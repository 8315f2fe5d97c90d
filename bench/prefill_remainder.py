"""How much of a CPU prefill is *not* the offloadable products: the same 64-token prefill with
every layer product handed to a provider that does no work (its outputs are left as they are, so
the logits are meaningless; only the time of everything else is real), interleaved with the
ordinary CPU prefill. Feeds the Hexagon estimate in docs/benchmarks.md.

  flock /tmp/edgegen-bench.lock python bench/prefill_remainder.py [--threads 2] [--reps 7]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edgegen import _native  # noqa: E402
from edgegen.accelerators.qnn_htp import _WEIGHT  # noqa: E402
from tests.engine.conftest import smollm2_path  # noqa: E402


class NoWork:
    def offer(self, name, qtype, rows, cols, data):
        return 0 if _WEIGHT.match(name) else -1

    def run(self, ids, x, outs):
        return True

    def observe(self, ids, x, outs):
        pass


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=smollm2_path())
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--tokens", type=int, default=64)
    args = ap.parse_args()
    cpu = _native.Model(args.model, args.threads)
    rest = _native.Model(args.model, args.threads, compute="offload", provider=NoWork(), min_batch=16)
    rest.offload_mode = "on"
    toks = [1] + [int(t) for t in np.random.default_rng(0).integers(100, 40000, args.tokens - 1)]
    times: dict[str, list[float]] = {"cpu": [], "without_products": []}
    for _ in range(args.reps):
        for name, m in (("cpu", cpu), ("without_products", rest)):
            c = m.new_cache(args.tokens + 64)
            t = time.perf_counter()
            m.eval(c, 0, toks)
            times[name].append(time.perf_counter() - t)
    med = {k: float(np.median(v)) for k, v in times.items()}
    print(json.dumps({"tokens": args.tokens, "threads": args.threads, "median_s": med,
                      "products_share": 1 - med["without_products"] / med["cpu"]}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
