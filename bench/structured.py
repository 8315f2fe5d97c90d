"""Constrained decoding against unconstrained decoding on the native engine, in the same process
and run, interleaved round by round (same model, threads and prompt).

    python bench/structured.py [--threads 2] [--runs 7] [--model smollm2] [--markdown]

Measures, for a typical nested JSON schema (a robot command with a nested pose and a tag list):
  decode ms/token  median interval between consecutive tokens after the first, constrained
                   (JSON schema mask in the native sampler) and unconstrained over the same number
                   of tokens; the ratio is the unconstrained/constrained tok/s
  mask us/token    llguidance's mask computation alone (median per step), i.e. what overlapping it
                   with the forward pass could at best hide
  TTFT             prompt -> first token with and without the (already compiled) constraint, each
                   round on a prompt never seen before (no KV prefix reuse); overhead = difference,
                   and the constraint's own work before the first token timed alone
  compile          the schema compiled on first use (fresh cache) and again (cached: LRU hit + matcher
                   copy); the vocabulary table llguidance needs is built once per model and shown apart
Medians over --runs rounds; each round runs both sides, alternating which goes first.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SCHEMA = {
    "type": "object",
    "properties": {
        "action": {"enum": ["move", "grip", "release", "stop"]},
        "target": {"type": "object", "properties": {
            "joint": {"enum": ["base", "shoulder", "elbow", "wrist"]},
            "pose": {"type": "object", "properties": {"x": {"type": "number"}, "y": {"type": "number"},
                                                      "z": {"type": "number"}}, "required": ["x", "y", "z"]},
        }, "required": ["joint", "pose"]},
        "speed": {"type": "integer", "minimum": 1, "maximum": 100},
        "tags": {"type": "array", "items": {"type": "string", "maxLength": 12}, "maxItems": 3},
    },
    "required": ["action", "target", "speed", "tags"],
    "additionalProperties": False,
}
PROMPT = "Request {i}: move the elbow to x 0.2, y 0.1, z 0.4 slowly, tag it as test. Reply with the JSON command."


def run_tokens(be, prompt_ids, params, mask, n_max):
    """(time to first token, per-token intervals, tokens, mask seconds per step)."""
    cancel = threading.Event()
    t0 = time.perf_counter()
    stamps, toks = [], []
    gen = be.generate_tokens(prompt_ids, params, cancel, constraint=mask) if mask else \
        be.generate_tokens(prompt_ids, params, cancel)
    try:
        for tok in gen:
            stamps.append(time.perf_counter())
            toks.append(tok)
            if len(toks) >= n_max or (mask is not None and be.is_eog(tok)):
                break
    finally:
        gen.close()
    intervals = [b - a for a, b in zip(stamps, stamps[1:])]
    return stamps[0] - t0, intervals, toks


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args()

    import edgegen
    from edgegen.sampling import SamplingParams
    from edgegen.structured import Constraint
    from edgegen.structured import engine

    llm = edgegen.load(args.model, backend="native", n_ctx=1024, n_threads=args.threads)
    be = llm.backend
    params = SamplingParams(temperature=0.0, max_tokens=None)
    constraint = Constraint.json_schema(SCHEMA)

    t = time.perf_counter()
    tok = engine.grammar_tokenizer(be)
    vocab_s = time.perf_counter() - t
    engine.compile_cache.clear()
    t = time.perf_counter()
    engine.compile_constraint(tok, constraint).matcher()
    first_s = time.perf_counter() - t
    cached = []
    for _ in range(20):
        t = time.perf_counter()
        engine.compile_constraint(tok, constraint).matcher()
        cached.append(time.perf_counter() - t)

    rows = {k: [] for k in ("c_ms", "u_ms", "ratio", "c_ttft", "u_ttft", "mask_us", "n", "first_step_ms")}
    n_tokens = 0  # the unconstrained side decodes as many tokens as the warm-up's constrained reply
    for r in range(args.runs + 1):  # round 0 warms up
        ids = llm.prepare_chat([{"role": "user", "content": PROMPT.format(i=r)}]).ids
        ids_u = llm.prepare_chat([{"role": "user", "content": PROMPT.format(i=f"{r}u")}]).ids
        res = {}
        for side in (("c", "u") if r % 2 == 0 else ("u", "c")):
            if side == "c":
                mask = engine.compile_constraint(tok, constraint).matcher()
                res["c"] = run_tokens(be, list(ids), params, mask, 400)
                n_tokens = n_tokens or len(res["c"][2])
            else:
                res["u"] = run_tokens(be, list(ids_u), params, None, n_tokens or 48)
        # the mask computation alone, replayed over the same constrained tokens
        t = time.perf_counter()
        mask = engine.compile_constraint(tok, constraint).matcher()
        mask.next_mask()
        rows["first_step_ms"].append((time.perf_counter() - t) * 1e3)
        mask = engine.compile_constraint(tok, constraint).matcher()
        mts = []
        for t_ in res["c"][2]:
            t = time.perf_counter()
            mask.next_mask()
            mts.append(time.perf_counter() - t)
            if be.is_eog(t_):
                break
            mask.consume(t_)
        if r == 0:
            continue
        c_ms = statistics.median(res["c"][1]) * 1e3
        u_ms = statistics.median(res["u"][1]) * 1e3
        rows["c_ms"].append(c_ms)
        rows["u_ms"].append(u_ms)
        rows["ratio"].append(u_ms / c_ms)
        rows["c_ttft"].append(res["c"][0] * 1e3)
        rows["u_ttft"].append(res["u"][0] * 1e3)
        rows["mask_us"].append(statistics.median(mts) * 1e6)
        rows["n"].append(len(res["c"][2]))
    med = {k: statistics.median(v) for k, v in rows.items()}
    ttft_over = statistics.median(c - u for c, u in zip(rows["c_ttft"], rows["u_ttft"]))
    text = llm.chat([{"role": "user", "content": PROMPT.format(i="x")}], temperature=0,
                    response_format={"type": "json_schema", "json_schema": {"name": "cmd", "schema": SCHEMA}}).text
    lines = [
        f"# model={args.model} threads={args.threads} runs={args.runs} tokens/reply={med['n']:.0f}",
        f"# sample reply: {text}",
        "| measure | constrained | unconstrained | ratio / overhead |",
        "|---|---:|---:|---:|",
        f"| decode ms/token | {med['c_ms']:.2f} | {med['u_ms']:.2f} | {med['ratio']:.3f}x tok/s |",
        f"| decode tok/s | {1e3 / med['c_ms']:.1f} | {1e3 / med['u_ms']:.1f} | |",
        f"| mask us/token (llguidance alone) | {med['mask_us']:.0f} | | {med['mask_us'] / 10 / med['c_ms']:.2f}% of a step |",
        f"| TTFT ms (compiled constraint) | {med['c_ttft']:.1f} | {med['u_ttft']:.1f} | {ttft_over:+.1f} ms |",
        f"| constraint work before the first token, compiled (cache hit + matcher copy + first mask), ms | "
        f"{med['first_step_ms']:.3f} | | |",
        f"| compile ms, first use | {first_s * 1e3:.1f} | | |",
        f"| compile ms, cached | {statistics.median(cached) * 1e3:.3f} | | |",
        f"| vocabulary table for llguidance, once per model (ms) | {vocab_s * 1e3:.0f} | | |",
    ]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
