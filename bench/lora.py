"""Decode speed with a LoRA adapter vs without, native engine and llama.cpp side by side, and what
switching adapters between requests costs.

    python bench/lora.py [--threads 2] [--runs 5] [--decode 128] [--rank 16] [--markdown]

Base: the packaged SmolLM2-135M Q4_1. Adapter: random, rank --rank, F16 (convert_lora_to_gguf.py's
default output type), alpha = 2 * rank, on every attention and feed-forward matrix of every layer
(q, k, v, output, gate, up, down: 210 pairs), written with gguf-py.

Per round (the order of the four runs alternates between rounds): native without / with the adapter
(this process, `_native` directly: a 16-token prompt, then --decode greedy steps, one native call
each); llama.cpp without / with (bench/llama_cpp_bench.c, its C API, `--lora`). Values are medians
over rounds; ratios are medians of the per-round ratios with / without.

Switching (native): the time of Model.set_adapters (what a request that changes adapters pays), and
the latency of short requests (16-token prompt + 16 tokens) that alternate adapter / no adapter vs
requests that keep one selection; beside them, what a reload would cost (model + adapter load).
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

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from llm import PROMPT_TEXT, store_file, tokenize  # noqa: E402  (bench/llm.py)

TARGETS = ("attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down")


def write_adapter(base_path: str, rank: int, out: Path) -> int:
    """A random rank-`rank` F16 adapter on every attention and feed-forward matrix; returns its pair count."""
    import gguf

    from edgegen.gguf import GGUFFile

    rng = np.random.default_rng(0)
    with GGUFFile(base_path) as f:
        arch = f.architecture
        shapes = {name: t.shape for name, t in f.tensors.items() if name.split(".")[-2] in TARGETS}
    w = gguf.GGUFWriter(str(out), arch=arch)
    w.add_type(gguf.GGUFType.ADAPTER)
    w.add_string(gguf.Keys.Adapter.TYPE, "lora")
    w.add_float32(gguf.Keys.Adapter.LORA_ALPHA, 2.0 * rank)
    for name, shape in shapes.items():
        n_in, n_out = shape[0], shape[1]  # GGUF ne order
        w.add_tensor(name + ".lora_a", (rng.standard_normal((rank, n_in)) / np.sqrt(n_in)).astype(np.float16))
        w.add_tensor(name + ".lora_b", (rng.standard_normal((n_out, rank)) * 0.02).astype(np.float16))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return len(shapes)


def native_decode(model, sampler_cls, prompt: list[int], n_decode: int, ctx: int) -> float:
    cache = model.new_cache(ctx)
    sampler = sampler_cls(model.config["n_vocab"])
    nxt = model.decode(cache, 0, prompt, sampler)
    t = time.perf_counter()
    for _ in range(n_decode):
        nxt = model.decode(cache, 0, [nxt], sampler)
    return n_decode / (time.perf_counter() - t)


def llama_decode(binary: str, path: str, ids_file: str, args: argparse.Namespace, lora: str = "") -> dict:
    cmd = [binary, path, "--threads", str(args.threads), "--ctx", str(args.ctx), "--prompt-file", ids_file,
           "--ttft-tokens", "16", "--decode", str(args.decode), "--runs", "1", "--warmup", "1"]
    if lora:
        cmd += ["--lora", lora]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"llama.cpp harness failed:\n{' '.join(cmd)}\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def switching(model, adapter, sampler_cls, prompt: list[int], ctx: int) -> dict[str, float]:
    sel = [(adapter, 1.0)]
    t = time.perf_counter()
    for i in range(2000):
        model.set_adapters(0, sel if i % 2 else [])
    set_us = (time.perf_counter() - t) / 2000 * 1e6

    def request(selection) -> float:
        t0 = time.perf_counter()
        model.set_adapters(0, selection)
        cache = model.new_cache(ctx)
        sampler = sampler_cls(model.config["n_vocab"])
        nxt = model.decode(cache, 0, prompt, sampler)
        for _ in range(16):
            nxt = model.decode(cache, 0, [nxt], sampler)
        return time.perf_counter() - t0

    same = [request(sel) for _ in range(8)]
    alternating = [request(sel if i % 2 else []) for i in range(16)]
    alt_with = [t for i, t in enumerate(alternating) if i % 2]
    return {"set_adapters_us": set_us, "request_same_ms": 1000 * statistics.median(same),
            "request_switched_ms": 1000 * statistics.median(alt_with)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--decode", type=int, default=128)
    ap.add_argument("--rank", type=int, default=16)
    ap.add_argument("--ctx", type=int, default=512)
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args(argv)

    from edgegen import _native
    from llama_cpp_build import ensure_built

    binary = str(ensure_built())
    path = store_file("smollm2")
    tmp = Path(tempfile.mkdtemp(prefix="edgegen-lora-bench-"))
    adapter_path = tmp / f"smollm2-lora-r{args.rank}.gguf"
    n_pairs = write_adapter(path, args.rank, adapter_path)
    prompt = tokenize(path, PROMPT_TEXT)[:16]
    ids_file = tmp / "ids.json"
    ids_file.write_text(json.dumps(prompt))

    t = time.perf_counter()
    model = _native.Model(path, args.threads)
    load_model_ms = 1000 * (time.perf_counter() - t)
    t = time.perf_counter()
    adapter = _native.LoraAdapter(model, str(adapter_path))
    load_adapter_ms = 1000 * (time.perf_counter() - t)

    rows: dict[str, list[float]] = {k: [] for k in ("native", "native_lora", "llama", "llama_lora")}
    llama_adapter_ms = []
    for r in range(args.runs):
        order = ["native", "native_lora", "llama", "llama_lora"]
        if r % 2:
            order.reverse()
        for what in order:
            if what.startswith("native"):
                model.set_adapters(0, [(adapter, 1.0)] if what == "native_lora" else [])
                rows[what].append(native_decode(model, _native.Sampler, prompt, args.decode, args.ctx))
            else:
                res = llama_decode(binary, path, str(ids_file), args, str(adapter_path) if what == "llama_lora" else "")
                rows[what].append(res["decode"])
                if what == "llama_lora":
                    llama_adapter_ms.append(res["adapter_ms"])
        print(f"# round {r + 1}: " + ", ".join(f"{k} {v[-1]:.1f}" for k, v in rows.items()), file=sys.stderr)
    med = statistics.median
    ratio_native = med(a / b for a, b in zip(rows["native_lora"], rows["native"]))
    ratio_llama = med(a / b for a, b in zip(rows["llama_lora"], rows["llama"]))
    sw = switching(model, adapter, _native.Sampler, prompt, args.ctx)

    lines = [
        f"SmolLM2-135M Q4_1, rank-{args.rank} F16 adapter on {n_pairs} matrices, {args.threads} threads, "
        f"{args.decode} decode tokens, {args.runs} rounds",
        "",
        "| engine | decode tok/s without | with adapter | with / without |",
        "|---|---:|---:|---:|",
        f"| edgegen native | {med(rows['native']):.1f} | {med(rows['native_lora']):.1f} | {ratio_native:.3f} |",
        f"| llama.cpp (C API) | {med(rows['llama']):.1f} | {med(rows['llama_lora']):.1f} | {ratio_llama:.3f} |",
        "",
        f"Switching (native): set_adapters {sw['set_adapters_us']:.2f} µs; a short request (16-token prompt + 16 "
        f"tokens) with the adapter: {sw['request_same_ms']:.1f} ms when every request uses it, "
        f"{sw['request_switched_ms']:.1f} ms when requests alternate adapter / none; a reload instead would cost "
        f"{load_model_ms:.1f} ms (model) + {load_adapter_ms:.1f} ms (adapter); llama.cpp's adapter load "
        f"{med(llama_adapter_ms):.1f} ms.",
    ]
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
