"""Aggregate decode with several sequences per step: the native engine's Model.step against
llama.cpp's batched llama_decode (its C API: bench/llama_cpp_bench.c --parallel S), same files,
same thread count, interleaved in one run.

    python bench/parallel.py [--threads 2] [--runs 3] [--seqs 1 2 4 8] [--decode 64] [--models ...]
    python bench/parallel.py --kv-sharing     # 8 sessions sharing a 400-token system prompt

Per file and S sequences: S prompts of --ttft-tokens (16, distinct ids) in one step, then
--decode greedy steps each holding S tokens (one per sequence, argmax per sequence); aggregate
tok/s = S * decode / time. Also the engine's own batched prompt processing (a 512-token prompt in
64-token steps) in the same worker: the issue's ceiling for aggregate decode. Each engine runs in
a fresh process per round (one warm-up, one timed run); medians over rounds.

--cold-start: process start to first token of a chat whose ~400-token system prompt is in a
prompt cache file (LLM.load_prefix) or not, each in a fresh process; and the warm time to first
token in a running process (the system prompt computed / already cached).

--kv-sharing: KV bytes in use while 8 sessions (LLM, max_parallel=8) each hold a ~400-token
system prompt plus a question, against one session alone (edgegen.scheduler's kv_usage).
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from llm import MODELS, PROMPT_TEXT, requantize, store_file, tokenize  # noqa: E402


def native_worker(path: str, ids_file: str, threads: int, seqs: int, ttft: int, n_decode: int) -> dict[str, Any]:
    from edgegen import _native

    ids = json.loads(Path(ids_file).read_text())
    model = _native.Model(path, threads)
    n_vocab = model.spec["n_vocab"]
    cache = model.new_cache(max(len(ids), ttft + n_decode) * seqs + 64, "f16", seqs)
    out: dict[str, Any] = {}
    for timed in (False, True):
        for s in range(seqs):
            cache.seq_clear(s)
        samplers = [_native.Sampler(n_vocab) for _ in range(seqs)]
        prompts = [[(t + 97 * s) % n_vocab for t in ids[:ttft]] for s in range(seqs)]
        per = max(1, 64 // ttft)  # a step holds at most 64 rows
        toks = []
        for s0 in range(0, seqs, per):
            toks += model.step(cache, [(s, prompts[s], samplers[s], True) for s in range(s0, min(seqs, s0 + per))])
        t0 = time.perf_counter()
        for _ in range(n_decode):
            toks = model.step(cache, [(s, [toks[s]], samplers[s], True) for s in range(seqs)])
        dt = time.perf_counter() - t0
        cache.seq_clear(0)
        t1 = time.perf_counter()
        model.eval(cache, 0, ids)  # 64-token steps: the engine's batched throughput
        pp = len(ids) / (time.perf_counter() - t1)
        if timed:
            out = {"aggregate": seqs * n_decode / dt, "prefill": pp}
    return out


def run_native(args: argparse.Namespace, path: str, ids_file: str, seqs: int) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--native-worker", path, ids_file, str(seqs), "--threads", str(args.threads),
           "--ttft-tokens", str(args.ttft_tokens), "--decode", str(args.decode)]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"native worker failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_llama(args: argparse.Namespace, binary: Path, path: str, ids_file: str, seqs: int) -> dict[str, Any]:
    ctx = 576 * max(seqs, 1)  # llama.cpp splits n_ctx over n_seq_max; its prefill needs 512 per sequence
    cmd = [str(binary), path, "--threads", str(args.threads), "--ctx", str(ctx), "--prompt-file", ids_file,
           "--ttft-tokens", str(args.ttft_tokens), "--decode", str(args.decode), "--runs", "1", "--warmup", "1",
           "--parallel", str(max(seqs, 1))]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"llama.cpp harness failed:\n{' '.join(cmd)}\n{out.stderr}")
    r = json.loads(out.stdout.strip().splitlines()[-1])
    return {"aggregate": r["parallel_decode"] if seqs > 1 else r["decode"], "prefill": r["prefill"]}


def bench_decode(args: argparse.Namespace) -> None:
    from llama_cpp_build import ensure_built

    binary = ensure_built()
    work = tempfile.mkdtemp(prefix="edgegen-parallel-")
    med = statistics.median
    print(f"# threads {args.threads}, {args.ttft_tokens}-token prompts, {args.decode} decode steps, "
          f"{args.runs} rounds (medians); ours: prompt processing of 512 tokens in 64-token steps")
    print("| file | seqs | edgegen agg tok/s | llama.cpp agg tok/s | ratio | edgegen / own prefill | edgegen / own 1 seq |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name in args.models:
        model, ftype = MODELS[name]
        path = store_file(model)
        if ftype is not None:
            path = requantize(path, name, ftype, work)
        ids = tokenize(path, PROMPT_TEXT)[:512]
        ids_file = str(Path(work) / f"{name}.json")
        Path(ids_file).write_text(json.dumps(ids))
        single = None
        for seqs in args.seqs:
            ours, theirs = [], []
            for r in range(args.runs):
                order = (0, 1) if r % 2 == 0 else (1, 0)
                for side in order:
                    if side == 0:
                        ours.append(run_native(args, path, ids_file, seqs))
                    else:
                        theirs.append(run_llama(args, binary, path, ids_file, seqs))
            a = med(o["aggregate"] for o in ours)
            b = med(t["aggregate"] for t in theirs)
            pp = med(o["prefill"] for o in ours)
            if seqs == 1:
                single = a
            vs1 = f"{a / single:.2f}x" if single else "–"
            print(f"| {name} | {seqs} | {a:.1f} | {b:.1f} | {a / b:.2f}x | {a / pp:.0%} | {vs1} |", flush=True)


def bench_kv_sharing(args: argparse.Namespace) -> None:
    import threading

    import edgegen

    path = store_file("smollm2")
    system = SYSTEM_400
    llm = edgegen.load(path, backend="native", n_ctx=1024, n_threads=args.threads, max_parallel=8, n_saved_prefixes=0)
    n_sys = len(llm.prepare_chat([{"role": "system", "content": system}], add_generation_prompt=False).ids)
    be = llm.backend
    peak: dict[int, int] = {}

    def usage(n: int) -> None:
        streams = [llm.chat([{"role": "system", "content": system}, {"role": "user", "content": f"Question {i}?"}],
                            stream=True, max_tokens=8, temperature=0.0) for i in range(n)]
        firsts = [next(s) for s in streams]  # every session holds its prompt now
        del firsts
        peak[n] = be.kv_usage()["used"]
        for s in streams:
            s.close()

    t = threading.Thread(target=usage, args=(1,))
    t.start()
    t.join()
    t = threading.Thread(target=usage, args=(8,))
    t.start()
    t.join()
    one_alloc = be._model.cache_layout(1024, 1, "f16")["nbytes"]  # what one session's cache allocates
    print(f"system prompt {n_sys} tokens; KV in use: one session {peak[1] / 2**20:.2f} MiB, eight sessions "
          f"{peak[8] / 2**20:.2f} MiB = {peak[8] / peak[1]:.2f}x one session in use, "
          f"{peak[8] / one_alloc:.2f}x one session's allocated cache (n_ctx 1024: {one_alloc / 2**20:.2f} MiB)")


COLD_CHILD = r"""
import sys, time
import edgegen
path, cache, threads, system = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
llm = edgegen.load(path, backend="native", n_ctx=1024, n_threads=threads)
if cache != "-":
    llm.load_prefix(cache)
s = llm.chat([{"role": "system", "content": system}, {"role": "user", "content": "Where are the toilets?"}],
             stream=True, max_tokens=4, temperature=0.0)
next(s)
print(time.time())
"""

SYSTEM_400 = " ".join(f"Rule {i}: answer kindly, briefly and truthfully about the museum's room {i}." for i in range(20))


def bench_cold_start(args: argparse.Namespace) -> None:
    import edgegen

    path = store_file("smollm2")
    work = Path(tempfile.mkdtemp(prefix="edgegen-cold-"))
    cache = work / "system.egkv"
    system = [{"role": "system", "content": SYSTEM_400}]
    llm = edgegen.load(path, backend="native", n_ctx=1024, n_threads=args.threads)
    n_sys = llm.save_prefix(system, cache)
    user = [{"role": "user", "content": "Where are the toilets?"}]

    def ttft(messages):
        t0 = time.perf_counter()
        s = llm.chat(messages, stream=True, max_tokens=4, temperature=0.0)
        next(s)
        dt = time.perf_counter() - t0
        s.close()
        return dt

    warm_cached, warm_new, cold_cache, cold_none = [], [], [], []
    for r in range(args.runs):
        # a system prompt of the same length that shares no prefix with the cached one (a suffix
        # would let the prefix cache serve all but its last tokens)
        other = [{"role": "system", "content": f"Run {r}. " + SYSTEM_400}]
        warm_new.append(ttft(other + user))        # a system prompt it has not seen
        ttft(system + user)
        warm_cached.append(ttft(system + user))    # the same system prompt again: kept in memory
        for target, arg in ((cold_cache, str(cache)), (cold_none, "-")):
            t0 = time.time()
            out = subprocess.run([sys.executable, "-c", COLD_CHILD, path, arg, str(args.threads), SYSTEM_400],
                                 capture_output=True, text=True, cwd=str(ROOT))
            if out.returncode != 0:
                raise SystemExit(out.stderr)
            target.append(float(out.stdout.strip().splitlines()[-1]) - t0)
    med = statistics.median
    print(f"system prompt {n_sys} tokens, {args.threads} threads, medians of {args.runs}")
    print("| case | time to first token (ms) | / warm, new system prompt |")
    print("|---|---:|---:|")
    base = med(warm_new)
    for name, vals in (("warm process, system prompt cached in memory", warm_cached),
                       ("warm process, new system prompt", warm_new),
                       ("cold start (process start included), prompt cache file", cold_cache),
                       ("cold start (process start included), no cache", cold_none)):
        print(f"| {name} | {med(vals) * 1000:.0f} | {med(vals) / base:.2f}x |")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seqs", type=int, nargs="+", default=[1, 2, 4, 8])
    ap.add_argument("--models", nargs="+", default=["smollm2-q4_1", "smollm2-q4_0", "smollm2-q8_0"],
                    choices=[m for m in MODELS if m.startswith("smollm2")])
    ap.add_argument("--ttft-tokens", type=int, default=16)
    ap.add_argument("--decode", type=int, default=64)
    ap.add_argument("--kv-sharing", action="store_true")
    ap.add_argument("--cold-start", action="store_true")
    ap.add_argument("--native-worker", nargs=3, metavar=("PATH", "IDS", "SEQS"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.native_worker:
        path, ids_file, seqs = args.native_worker
        print(json.dumps(native_worker(path, ids_file, args.threads, int(seqs), args.ttft_tokens, args.decode)))
        return 0
    if args.kv_sharing:
        bench_kv_sharing(args)
        return 0
    if args.cold_start:
        bench_cold_start(args)
        return 0
    bench_decode(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
