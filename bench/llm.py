"""Native engine vs llama.cpp (its C API, its defaults) on the same GGUF files and thread count.

    python bench/llm.py [--threads 2] [--runs 5] [--models ...] [--ctx 8192] [--markdown]

Models: the packaged SmolLM2-135M Q4_1, Q4_0 and Q8_0 made from it with llama.cpp's own quantizer,
and the packaged Gemma 3 270M Q4_K_M (assembled into the model store from its installed PyPI chunk
packages on first use; nothing is downloaded).

llama.cpp runs as bench/llama_cpp_bench.c, compiled on first use against the llama.h/libllama.so of
the installed llama-cpp-python wheel (bench/llama_cpp_build.py): llama_model_default_params() and
llama_context_default_params() except n_threads/n_threads_batch and n_ctx, so weight repacking is on,
flash attention "auto", n_batch/n_ubatch the defaults; greedy argmax in C, one llama_decode per
generated token, no Python in that process. edgegen runs in a Python worker process calling
`_native` directly (each step one native call), on its default path (Q4_0/Q4_1/Q8_0 weights repacked
at load: native/repack.h); --exact adds its exact path (bit-identical to llama.cpp's x86 decode) as
a third engine, "native exact", in the same rounds.

Per engine and file, each measured in its own process so peak RSS is its own:
  decode tok/s  greedy, --decode tokens (128) after a --ttft-tokens (16) prompt
  prefill tok/s a --prompt-tokens (512) prompt into an empty cache
  TTFT          the 16-token prompt -> first greedy token
  load          open the file and build the model (mmap; a warm page cache; llama.cpp: the model,
                repacking included, not the context)
  peak RSS      VmHWM of the measuring process, KV cache for --ctx included as each engine allocates it
  KV            bytes of the KV cache for --ctx tokens, one sequence, f16: edgegen's cache nbytes;
                llama.cpp's "KV buffer size" log lines (its allocation, swa_full default included)
--runs rounds, alternating which engine goes first, each engine in a fresh process per round
(one warm-up run, then one timed run); values are medians over rounds, ratios medians of the
per-round ratios, peak RSS the largest seen. The bound is this machine's read bandwidth (measured
in the same run with vector loads) divided by the weight bytes one decode step reads. A model the
native engine refuses (UnsupportedModelError) shows "unsupported" on its side.
"""
from __future__ import annotations

import argparse
import atexit
import ctypes
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Optional

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PROMPT_TEXT = ("The history of the bicycle begins in the early nineteenth century, when inventors across Europe "
               "tried to build a practical human-powered vehicle. ") * 40

# name -> (store model, llama.cpp ftype to requantize to, or None for the packaged file)
MODELS: dict[str, tuple[str, Optional[int]]] = {
    "smollm2-q4_1": ("smollm2", None),
    "smollm2-q4_0": ("smollm2", 2),   # LLAMA_FTYPE_MOSTLY_Q4_0
    "smollm2-q8_0": ("smollm2", 7),   # LLAMA_FTYPE_MOSTLY_Q8_0
    "gemma3-270m-q4_k_m": ("gemma3-270m", None),
}
ENGINES = ("native", "llama.cpp")


# ---- the native side (runs in a worker process) ------------------------------------------------

def native_worker(path: str, ids_file: str, threads: int, ctx: int, ttft_tokens: int, n_decode: int,
                  runs: int, warmup: int, exact: bool = False) -> dict[str, Any]:
    # the prompt arrives tokenized, so this process's peak RSS is the engine's alone
    from edgegen import _native
    from edgegen.errors import UnsupportedModelError

    prompt = json.loads(Path(ids_file).read_text())
    short = prompt[:ttft_tokens]
    rss_base = current_rss_mb()  # the interpreter and the imports, before any model: llama.cpp's side has none
    t = time.perf_counter()
    try:
        model = _native.Model(path, threads, exact=exact)
    except UnsupportedModelError as exc:
        return {"engine": "native", "unsupported": str(exc)}
    load_s = time.perf_counter() - t
    decode, prefill, ttft = [], [], []
    kv_bytes = 0
    for r in range(-warmup, runs):
        cache = model.new_cache(ctx)
        kv_bytes = cache.nbytes
        sampler = _native.Sampler(model.config["n_vocab"])
        t = time.perf_counter()
        nxt = model.decode(cache, 0, short, sampler)
        ttft_s = time.perf_counter() - t
        t = time.perf_counter()
        for _ in range(n_decode):
            nxt = model.decode(cache, 0, [nxt], sampler)
        decode_s = time.perf_counter() - t
        del cache
        cache = model.new_cache(ctx)
        t = time.perf_counter()
        model.eval(cache, 0, prompt)
        prefill_s = time.perf_counter() - t
        del cache
        if r >= 0:
            ttft.append(ttft_s)
            decode.append(n_decode / decode_s)
            prefill.append(len(prompt) / prefill_s)
    med = statistics.median
    out = {"engine": "native", "decode": med(decode), "prefill": med(prefill), "ttft_ms": 1000 * med(ttft),
           "load_ms": 1000 * load_s, "rss_mb": peak_rss_mb(), "rss_base_mb": rss_base, "kv_bytes": kv_bytes}
    # What the native backend (edgegen.load) allocates for this n_ctx, after the RSS reading:
    # it keeps room for saved prompt prefixes, so it can differ from the one-sequence cache above.
    try:
        from edgegen.backends.native import NativeBackend

        backend = NativeBackend(path, n_ctx=ctx, n_threads=threads)
        out["kv_bytes_backend"] = backend.kv_cache.nbytes
        backend.close()
    except Exception as exc:  # informational only; never fail the measurement for it
        out["kv_bytes_backend_error"] = f"{type(exc).__name__}: {exc}"
    return out


def current_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def peak_rss_mb() -> float:
    # VmHWM, not ru_maxrss: after fork+exec ru_maxrss still carries the parent's peak
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ---- the parent: files, rounds, table ----------------------------------------------------------

def weight_bytes_per_token(path: str) -> int:
    """Bytes of weights one decode step reads: every 2-D block tensor plus the output head (the tied
    embedding when there is no output.weight; one embedding row per token is negligible)."""
    from edgegen.gguf import GGUFFile

    with GGUFFile(path) as f:
        t = f.tensors
        total = sum(i.nbytes for n, i in t.items() if n.startswith("blk.") and len(i.shape) == 2)
        head = t.get("output.weight") or t["token_embd.weight"]
        return total + head.nbytes


def requantize(src: str, name: str, ftype: int, out_dir: str) -> str:
    import llama_cpp

    dst = os.path.join(out_dir, f"{name}.gguf")
    if os.path.exists(dst):
        return dst
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = ftype
    params.allow_requantize = True
    if llama_cpp.llama_model_quantize(src.encode(), dst.encode(), ctypes.byref(params)) != 0:
        raise SystemExit(f"llama.cpp failed to make {name}")
    return dst


def store_file(model: str) -> str:
    """The model's file from the store; a model split over installed chunk packages (Gemma 3) is
    assembled into the store from them first (a local copy, no download)."""
    from edgegen.errors import ModelNotFoundError
    from edgegen.store import ModelStore, resolve_model

    try:
        return str(resolve_model(model, "llm"))
    except ModelNotFoundError:
        print(f"# {model}: assembling the file from its installed packages into the model store", file=sys.stderr)
        return str(ModelStore().pull(model, source="package"))


def tokenize(path: str, text: str) -> list[int]:
    try:
        from edgegen.tokenizer import Tokenizer

        return Tokenizer.from_gguf(path).encode(text, add_special=False)
    except Exception as exc:  # a vocabulary edgegen's tokenizer does not read yet: ask llama.cpp
        print(f"# edgegen's tokenizer failed on {os.path.basename(path)} ({exc}); using llama.cpp's", file=sys.stderr)
        from llama_cpp import Llama

        ll = Llama(model_path=path, vocab_only=True, verbose=False)
        try:
            return ll.tokenize(text.encode(), add_bos=False, special=False)
        finally:
            ll.close()


def run_native(args: argparse.Namespace, path: str, ids_file: str, exact: bool = False) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--native-worker", path, ids_file, "--threads", str(args.threads),
           "--ctx", str(args.ctx), "--ttft-tokens", str(args.ttft_tokens), "--decode", str(args.decode)]
    cmd += ["--exact"] if exact else []
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"native worker failed on {path}:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_llama_cpp(args: argparse.Namespace, binary: Path, path: str, ids_file: str) -> dict[str, Any]:
    cmd = [str(binary), path, "--threads", str(args.threads), "--ctx", str(args.ctx), "--prompt-file", ids_file,
           "--ttft-tokens", str(args.ttft_tokens), "--decode", str(args.decode), "--runs", "1", "--warmup", "1"]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"llama.cpp harness failed on {path}:\n{' '.join(cmd)}\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def summarize(per: list[dict[str, Any]]) -> dict[str, Any]:
    if not per or "unsupported" in per[0]:
        return {"unsupported": per[0]["unsupported"] if per else "not run"}
    med = statistics.median
    res = {k: med(r[k] for r in per) for k in ("decode", "prefill", "ttft_ms", "load_ms")}
    res["rss_mb"] = max(r["rss_mb"] for r in per)
    res["kv_bytes"] = per[-1]["kv_bytes"]
    res["last"] = per[-1]
    return res


def fmt_row(model: str, engine: str, r: dict[str, Any], ratios: dict[str, float], bound: float) -> str:
    if "unsupported" in r:
        return f"| {model} | {engine} | unsupported | unsupported | – | – | – | – | – | – | {bound:.0f} |"
    d, p = ratios.get("decode"), ratios.get("prefill")
    rd = f"{d:.2f}x" if d is not None else "–"
    rp = f"{p:.2f}x" if p is not None else "–"
    return (f"| {model} | {engine} | {r['decode']:.1f} | {r['prefill']:.1f} | {r['ttft_ms']:.1f} | {r['load_ms']:.0f} | "
            f"{r['rss_mb']:.0f} | {r['kv_bytes'] / 2**20:.1f} | {rd} | {rp} | {bound:.0f} |")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2, help="threads on both sides (default 2)")
    ap.add_argument("--runs", type=int, default=5, help="rounds (default 5)")
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    ap.add_argument("--ctx", type=int, default=8192, help="context both engines allocate; KV bytes are for it")
    ap.add_argument("--prompt-tokens", type=int, default=512, help="prefill prompt length")
    ap.add_argument("--ttft-tokens", type=int, default=16, help="prompt length for TTFT and before decode")
    ap.add_argument("--decode", type=int, default=128, help="greedy tokens timed for decode tok/s")
    ap.add_argument("--markdown", action="store_true", help="print for docs/benchmarks.md: notes fenced, then the table")
    ap.add_argument("--exact", action="store_true",
                    help="also run the native engine's exact path (Model(exact=True), bit-identical to llama.cpp's "
                         "x86 decode) as a third engine, 'native exact', beside the default fast path")
    ap.add_argument("--native-worker", nargs=2, metavar=("PATH", "IDS"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.native_worker:
        print(json.dumps(native_worker(args.native_worker[0], args.native_worker[1], args.threads, args.ctx,
                                       args.ttft_tokens, args.decode, runs=1, warmup=1, exact=args.exact)))
        return 0

    sys.path.insert(0, str(ROOT / "bench"))
    from llama_cpp_build import ensure_built

    from edgegen import _native

    binary = ensure_built()
    tmp = tempfile.mkdtemp(prefix="edgegen-bench-")  # requantized files and prompt ids
    atexit.register(shutil.rmtree, tmp, True)
    files: dict[str, str] = {}
    for name in args.models:
        model, ftype = MODELS[name]
        src = store_file(model)
        files[name] = src if ftype is None else requantize(src, name, ftype, tmp)
    bw = _native.measure_read_bandwidth(256 << 20, 5, _native.ThreadPool(args.threads))
    lines = [f"# {time.strftime('%Y-%m-%d %H:%M')} isa={_native.active_isa()} threads={args.threads} "
             f"rounds={args.runs} ctx={args.ctx} load average at start {os.getloadavg()[0]:.2f}",
             f"# read bandwidth ({args.threads} threads, vector loads): {bw:.1f} GB/s",
             f"# llama.cpp: {binary.name} (C API, default params), prompt {args.prompt_tokens}, "
             f"TTFT prompt {args.ttft_tokens}, decode {args.decode}"]
    if os.getloadavg()[0] > 0.5:
        lines.append("# WARNING: busy machine. Under contention llama.cpp's timings (an OpenMP build) swing far more "
                     "than edgegen's (seen: 1 to 30 tok/s between rounds); take final numbers on a quiet machine")
    if not args.markdown:
        print("\n".join(lines), flush=True)
    rows, notes = [], []
    engines = ENGINES + (("native exact",) if args.exact else ())
    for name in args.models:
        path = files[name]
        bound = bw * 1e9 / weight_bytes_per_token(path)
        ids = tokenize(path, PROMPT_TEXT)
        if len(ids) < args.prompt_tokens:
            raise SystemExit(f"{name}: the prompt text gives only {len(ids)} tokens")
        ids_file = os.path.join(tmp, f"ids-{name}.json")
        Path(ids_file).write_text(json.dumps(ids[:args.prompt_tokens]))
        # Rounds alternate the engines (native first, then llama.cpp first, ...), each round a fresh
        # process per engine with one warm-up run, so drifting load on a shared machine hits both
        # alike; the ratios are medians of the per-round ratios.
        per: dict[str, list[dict[str, Any]]] = {e: [] for e in engines}
        for rnd in range(args.runs):
            order = engines if rnd % 2 == 0 else engines[::-1]
            for engine in order:
                if engine.startswith("native"):
                    if per[engine] and "unsupported" in per[engine][0]:
                        continue  # refused once: the engine will refuse it again
                    per[engine].append(run_native(args, path, ids_file, exact=engine == "native exact"))
                else:
                    per[engine].append(run_llama_cpp(args, binary, path, ids_file))
            print(f"# {name} round {rnd + 1}/{args.runs}: " + ", ".join(
                f"{e} " + ("unsupported" if "unsupported" in per[e][-1] else
                           f"decode {per[e][-1]['decode']:.1f} prefill {per[e][-1]['prefill']:.1f}")
                for e in engines), file=sys.stderr, flush=True)
        res = {e: summarize(per[e]) for e in engines}
        ratios: dict[str, dict[str, float]] = {e: {} for e in engines}
        if "unsupported" not in res["native"]:
            for key in ("decode", "prefill"):
                for e in engines:
                    ratios[e][key] = statistics.median(n[key] / ll[key] for n, ll in zip(per[e], per["llama.cpp"]))
            notes.append(f"# {name}: edgegen's peak RSS includes its Python worker's "
                         f"{res['native']['last']['rss_base_mb']:.0f} MB before loading the model")
            kb = res["native"]["last"].get("kv_bytes_backend")
            if kb is not None:
                notes.append(f"# {name}: edgegen's native backend (edgegen.load, n_ctx {args.ctx}) allocates "
                             f"{kb / 2**20:.1f} MiB of KV cache (room for saved prompt prefixes)")
        else:
            notes.append(f"# {name}: native engine: {res['native']['unsupported']}")
        lc = res["llama.cpp"]["last"]
        notes.append(f"# {name}: llama.cpp n_batch {lc['n_batch']} n_ubatch {lc['n_ubatch']}, "
                     f"repacked weights {lc['repack_bytes'] / 2**20:.1f} MiB, compute buffers "
                     f"{lc['compute_buffer_bytes'] / 2**20:.1f} MiB, KV from {lc['kv_source']}; "
                     + "; ".join(" ".join(s.split()) for s in lc["log"] if "Flash Attention" in s or "flash_attn" in s))
        rows.append((name, bound, res, ratios))

    notes.append(f"# load average at end {os.getloadavg()[0]:.2f}")
    hdr = ["| model | engine | decode tok/s | prefill tok/s | TTFT ms | load ms | peak RSS MB | "
           f"KV MiB @{args.ctx} | decode ratio | prefill ratio | decode bound tok/s |",
           "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    table = hdr + [fmt_row(name, e, res[e], ratios[e], bound) for name, bound, res, ratios in rows for e in engines]
    if args.markdown:  # ready to paste into docs/benchmarks.md
        print("```\n" + "\n".join(lines + notes) + "\n```")
        print("\n".join(table))
    else:
        print("\n".join(table + notes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
