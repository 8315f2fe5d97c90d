"""Native engine vs llama-cpp-python on the same GGUF files, same thread count, one run of this script.

    python bench/llm.py [--threads 2] [--runs 5] [--quants q4_1 q4_0 q8_0] [--markdown]

Per engine and file (each measured in its own process, so peak RSS is its own):
  decode tok/s  greedy, 128 tokens after a 16-token prompt
  prefill tok/s one 512-token prompt into an empty cache
  TTFT          16-token prompt -> first sampled token
  load          open the file and build the model (mmap; a warm page cache)
  peak RSS      of the measuring process (VmHWM)
--runs rounds, alternating which engine goes first, each engine in a fresh process per round
(one warm-up run, then one timed run); values are medians over rounds, ratios medians of the
per-round ratios, peak RSS the largest seen. Q4_0 and Q8_0 are made from the packaged Q4_1 file
with llama.cpp's own quantizer. The bandwidth bound is this machine's read bandwidth (measured in the same run with
vector loads) divided by the weight bytes one decode step reads.
"""
from __future__ import annotations

import argparse
import ctypes
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PROMPT_TEXT = ("The history of the bicycle begins in the early nineteenth century, when inventors across Europe "
               "tried to build a practical human-powered vehicle. ") * 40


def worker(engine: str, path: str, threads: int, runs: int, ids: list[int], skip_first: bool = False) -> dict:
    # the prompt arrives tokenized, so this process's peak RSS is the engine's alone
    short, long_ = ids[:16], ids[:512]
    loads, decode, prefill, ttft = [], [], [], []
    if engine == "native":
        from edgegen import _native

        for _ in range(runs):
            t = time.perf_counter()
            model = _native.Model(path, threads)
            loads.append(time.perf_counter() - t)
        for _ in range(runs):
            cache = model.new_cache(1024)
            sampler = _native.Sampler(model.config["n_vocab"])
            t = time.perf_counter()
            nxt = model.decode(cache, 0, short, sampler)
            ttft.append(time.perf_counter() - t)
            t = time.perf_counter()
            for _ in range(128):
                nxt = model.decode(cache, 0, [nxt], sampler)
            decode.append(128 / (time.perf_counter() - t))
            cache = model.new_cache(1024)
            t = time.perf_counter()
            model.eval(cache, 0, long_)
            prefill.append(512 / (time.perf_counter() - t))
    else:
        import llama_cpp
        from llama_cpp import Llama

        for _ in range(runs):
            t = time.perf_counter()
            ll = Llama(model_path=path, n_ctx=1024, n_threads=threads, n_threads_batch=threads, n_batch=512,
                       verbose=False)
            loads.append(time.perf_counter() - t)
            if _ < runs - 1:
                ll.close()
        for _ in range(runs):
            ll.reset()
            t = time.perf_counter()
            gen = ll.generate(short, temp=0.0, top_k=1, reset=True)
            next(gen)
            ttft.append(time.perf_counter() - t)
            t = time.perf_counter()
            for _i, _tok in zip(range(128), gen):
                pass
            decode.append(128 / (time.perf_counter() - t))
            gen.close()
            ll.reset()
            t = time.perf_counter()
            ll.eval(long_)
            prefill.append(512 / (time.perf_counter() - t))
    if skip_first and runs > 1:  # the first run of a fresh process pays its page faults: a warm-up
        decode, prefill, ttft = decode[1:], prefill[1:], ttft[1:]
    med = statistics.median
    return {"engine": engine, "decode": med(decode), "prefill": med(prefill), "ttft_ms": 1000 * med(ttft),
            "load_ms": 1000 * med(loads), "rss_mb": peak_rss_mb()}


def peak_rss_mb() -> float:
    # VmHWM, not ru_maxrss: after fork+exec ru_maxrss still carries the parent's peak
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def weight_bytes_per_token(path: str) -> int:
    from edgegen.gguf import GGUFFile

    with GGUFFile(path) as f:
        t = f.tensors
        total = sum(i.nbytes for n, i in t.items() if n.startswith("blk.") and len(i.shape) == 2)
        head = t.get("output.weight") or t["token_embd.weight"]
        return total + head.nbytes


def requantize(src: str, name: str, ftype: int, out_dir: str) -> str:
    import llama_cpp

    dst = os.path.join(out_dir, f"smollm2-{name}.gguf")
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = ftype
    params.allow_requantize = True
    if os.path.exists(dst):
        return dst
    if llama_cpp.llama_model_quantize(src.encode(), dst.encode(), ctypes.byref(params)) != 0:
        raise SystemExit(f"llama.cpp failed to make {name}")
    return dst


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--quants", nargs="+", default=["q4_1", "q4_0", "q8_0"])
    ap.add_argument("--markdown", action="store_true")
    ap.add_argument("--worker", nargs=3, metavar=("ENGINE", "PATH", "IDS"), help=argparse.SUPPRESS)
    ap.add_argument("--skip-first", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        ids = json.loads(Path(args.worker[2]).read_text())
        print(json.dumps(worker(args.worker[0], args.worker[1], args.threads, args.runs, ids, args.skip_first)))
        return 0

    from edgegen import _native
    from edgegen.store import resolve_model

    src = str(resolve_model("smollm2", "llm"))
    tmp = tempfile.mkdtemp(prefix="edgegen-bench-")
    files = {"q4_1": src}
    for q, ftype in (("q4_0", 2), ("q8_0", 7)):
        if q in args.quants:
            files[q] = requantize(src, q, ftype, tmp)
    bw = _native.measure_read_bandwidth(256 << 20, 5, _native.ThreadPool(args.threads))
    load = os.getloadavg()[0]
    print(f"# {time.strftime('%Y-%m-%d %H:%M')} isa={_native.active_isa()} threads={args.threads} rounds={args.runs} "
          f"load average at start {load:.2f}")
    print(f"# read bandwidth ({args.threads} threads, vector loads): {bw:.1f} GB/s")
    rows = []
    for q in args.quants:
        bound = bw * 1e9 / weight_bytes_per_token(files[q])
        from edgegen.tokenizer import Tokenizer

        ids_file = os.path.join(tmp, f"ids-{q}.json")
        Path(ids_file).write_text(json.dumps(Tokenizer.from_gguf(files[q]).encode(PROMPT_TEXT, add_special=False)))
        # Rounds alternate the engines (native first, then llama.cpp first, ...), each round a fresh
        # process per engine with one warm-up run, so drifting load on a shared machine hits both
        # alike; the ratios are medians of the per-round ratios.
        per = {"native": [], "llama.cpp": []}
        for rnd in range(args.runs):
            order = ("native", "llama.cpp") if rnd % 2 == 0 else ("llama.cpp", "native")
            for engine in order:
                out = subprocess.run([sys.executable, __file__, "--threads", str(args.threads), "--runs", "2",
                                      "--skip-first", "--worker", engine, files[q], ids_file],
                                     capture_output=True, text=True, check=True)
                per[engine].append(json.loads(out.stdout.strip().splitlines()[-1]))
        res = {e: {k: (statistics.median(r[k] for r in rs) if k != "engine" else e) for k in rs[0]}
               for e, rs in per.items()}
        for key in ("decode", "prefill"):
            res["native"][key + "_ratio"] = statistics.median(
                n[key] / ll[key] for n, ll in zip(per["native"], per["llama.cpp"]))
            res["llama.cpp"][key + "_ratio"] = 1.0
        res["native"]["rss_mb"] = max(r["rss_mb"] for r in per["native"])
        res["llama.cpp"]["rss_mb"] = max(r["rss_mb"] for r in per["llama.cpp"])
        rows.append((q, bound, res["native"], res["llama.cpp"]))
    hdr = ("| file | engine | decode tok/s | prefill tok/s | TTFT ms | load ms | peak RSS MB | decode ratio | prefill ratio | decode bound tok/s |",
           "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    print("\n".join(hdr))
    for q, bound, n, l in rows:
        for r in (n, l):
            ratio_d, ratio_p = r["decode_ratio"], r["prefill_ratio"]
            print(f"| {q} | {r['engine']} | {r['decode']:.1f} | {r['prefill']:.1f} | {r['ttft_ms']:.1f} | "
                  f"{r['load_ms']:.0f} | {r['rss_mb']:.0f} | {ratio_d:.2f}x | {ratio_p:.2f}x | {bound:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
