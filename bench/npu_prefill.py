"""NPU prefill on the QNN HTP (simulator on x86-64): correctness of a prompt prefilled on the NPU
against the CPU engine, what crosses the seam, and the CPU prefill time the estimate is set beside.

Simulator time is not device time: the simulator's seconds are printed only so a run can be
planned; they say nothing about a Hexagon NPU's speed (docs/benchmarks.md has the estimate).

  flock /tmp/edgegen-bench.lock python bench/npu_prefill.py [--segments 6] [--prompts 20]

Teacher-forced: corpus segments (tests/engine/conftest.py) of PREFILL + FOLLOW tokens; the first
PREFILL tokens are one batch on the NPU (or on the CPU for the reference), the FOLLOW tokens after
them one at a time on the CPU (decode), logits compared. Greedy: the 20-prompt set through the
chat template (so every prompt is one batch >= min_batch), 32 new tokens, NPU prefill vs CPU.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edgegen import _native  # noqa: E402
from edgegen.accelerators import open_model  # noqa: E402
from edgegen.accelerators.qnn_htp import QnnOptions  # noqa: E402
from edgegen.accelerators.reference import exact_model  # noqa: E402
from edgegen.gguf import GGUFFile  # noqa: E402
from edgegen.tokenizer import Tokenizer  # noqa: E402
from bench.npu_agreement import Agreement  # noqa: E402
from tests.engine.conftest import GREEDY_PROMPTS, corpus_segments, smollm2_path  # noqa: E402

PREFILL, FOLLOW, NEW = 64, 64, 32


def teacher_forced(model, toks, npu: bool) -> np.ndarray:
    cache = model.new_cache(len(toks) + 64)
    if model.offload_mode is not None:
        model.offload_mode = "on" if npu else "off"
    model.eval(cache, 0, toks[:PREFILL])
    if model.offload_mode is not None:
        model.offload_mode = "off"
    return np.stack([model.eval(cache, 0, [t]) for t in toks[PREFILL:]])


def greedy(model, prompt: list[int], npu: bool, eos: set[int]) -> list[int]:
    cache = model.new_cache(len(prompt) + NEW + 64)
    if model.offload_mode is not None:
        model.offload_mode = "on" if npu else "off"
    logits = model.eval(cache, 0, prompt)
    out = []
    for _ in range(NEW):
        t = int(np.argmax(logits))
        out.append(t)
        if t in eos:
            break
        logits = model.eval(cache, 0, [t])  # one token: always the CPU
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=smollm2_path())
    ap.add_argument("--workdir", default="/tmp/edgegen-npu-bench", help="the model is copied here (its graph cache beside it)")
    ap.add_argument("--segments", type=int, default=6)
    ap.add_argument("--prompts", type=int, default=20)
    ap.add_argument("--first-prompt", type=int, default=0, help="start the prompt set here (a run split in two)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--weight-residual", type=int, default=QnnOptions.weight_residual,
                    help="int8 residual weights on the grid scale/F (0: plain int8 weights)")
    ap.add_argument("--out", help="result file (default: WORKDIR/result-wF.json)")
    ap.add_argument("--taus", default="0.1,0.25,0.5", help="tolerances (logit units) for the agreement within tau")
    args = ap.parse_args()
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    out_path = Path(args.out) if args.out else work / f"result-w{args.weight_residual}.json"
    path = work / Path(args.model).name
    if not path.exists():
        shutil.copy(args.model, path)
    f = GGUFFile(str(path))
    tok = Tokenizer.from_gguf(f)
    encode = lambda text: tok.encode(text, add_special=True, parse_special=False)  # noqa: E731
    t0 = time.perf_counter()
    npu, info = open_model(f.native, args.threads, "qnn-htp", model_path=str(path), encode=encode,
                           options={"weight_residual": args.weight_residual})
    print(f"prepare: {time.perf_counter() - t0:.1f}s (built={info['built']}, {info['graphs']} graphs, {info['device']})")
    cpu = _native.Model(f.native, args.threads)
    exact = exact_model(f.native, args.threads)  # float64 products: separates the NPU's error from the CPU's
    spec = cpu.spec
    result: dict = {"model": Path(args.model).name, "prepare": info}

    # what crosses the seam for one PREFILL-token batch, and the CPU's time for the same batch
    segs = corpus_segments(lambda t: tok.encode(t, add_special=True, parse_special=True), args.segments * (PREFILL + FOLLOW),
                           seg_len=PREFILL + FOLLOW)
    agreement = Agreement([float(t) for t in args.taus.split(",")])
    if args.segments:
        seam_and_teacher_forced(args, npu, cpu, exact, segs, agreement, result, out_path)
    greedy_prompts(args, path, tok, npu, cpu, exact, result, out_path)
    brief = {k: v for k, v in result.items() if k not in ("greedy", "teacher_forced")}
    brief["teacher_forced"] = agreement.summary(raw=False)
    brief["greedy"] = {k: v for k, v in result.get("greedy", {}).items() if k != "rows"}
    print(json.dumps(brief, indent=1))
    out_path.write_text(json.dumps(result, indent=1, ensure_ascii=False))
    return 0


def seam_and_teacher_forced(args, npu, cpu, exact, segs, agreement, result, out_path) -> None:
    """What crosses the seam for one PREFILL-token batch (and the CPU's time for it), then the
    teacher-forced agreement over the segments (bench/npu_agreement.py)."""
    spec = cpu.spec
    before = dict(npu.offload_stats)
    t = time.perf_counter()
    npu.eval(npu.new_cache(PREFILL + 64), 0, segs[0][:PREFILL])
    sim_s = time.perf_counter() - t
    s = npu.offload_stats
    d = {k: s[k] - before[k] for k in ("calls", "products", "tokens", "macs", "bytes_in", "bytes_out")}
    cpu_times = []
    for _ in range(3):
        t = time.perf_counter()
        cpu.eval(cpu.new_cache(PREFILL + 64), 0, segs[0][:PREFILL])
        cpu_times.append(time.perf_counter() - t)
    L = spec["n_layer"]
    result["seam"] = {"prefill_tokens": PREFILL, **d, "declined_by_range_guard": s["cpu_batched"] - before["cpu_batched"], "macs_per_token": d["macs"] / PREFILL,
                      "bytes_per_layer": (d["bytes_in"] + d["bytes_out"]) / L, "calls_per_layer": d["calls"] / L,
                      "simulator_seconds_not_device_time": sim_s, "cpu_prefill_seconds_median": float(np.median(cpu_times)),
                      "cpu_threads": args.threads}
    print(json.dumps(result["seam"], indent=1))

    for seg in segs[: args.segments]:
        agreement.add([teacher_forced(m, seg, True) for m in (npu, exact)] + [teacher_forced(cpu, seg, False)])
        print("teacher-forced, " + agreement.line(), flush=True)
        result["teacher_forced"] = agreement.summary()
        out_path.write_text(json.dumps(result, indent=1, ensure_ascii=False))



def greedy_prompts(args, path, tok, npu, cpu, exact, result, out_path) -> None:
    """The chat-templated prompt set, greedy: NPU prefill vs the CPU's (and the exact prefill's)."""
    spec = cpu.spec
    llm_tmpl = __import__("edgegen").load(str(path), backend="native", accelerator="cpu", n_ctx=512)
    eos = {i for i in (tok.eos_id,) if i is not None} | {int(i) for i in range(spec["n_vocab"]) if tok.is_eog(i)}
    same = identical32 = exact_identical = 0
    rows = []
    for p in GREEDY_PROMPTS[args.first_prompt: args.prompts]:
        ids = llm_tmpl.chat_prompt_ids([{"role": "user", "content": p}])
        g_npu, g_cpu = greedy(npu, ids, True, eos), greedy(cpu, ids, False, eos)
        exact_identical += greedy(exact, ids, True, eos) == g_cpu
        n_same = next((i for i, (x, y) in enumerate(zip(g_npu, g_cpu)) if x != y), min(len(g_npu), len(g_cpu)))
        same += n_same
        identical32 += g_npu == g_cpu
        rows.append({"prompt": p, "prompt_tokens": len(ids), "same_prefix": n_same, "npu_cpu_batched": npu.offload_stats["cpu_batched"],
                     "npu": tok_text(tok, g_npu), "cpu": tok_text(tok, g_cpu)})
        print(json.dumps(rows[-1], ensure_ascii=False), flush=True)
        result["greedy"] = {"prompts": len(rows), "identical": identical32, "mean_same_prefix": same / len(rows),
                            "exact_prefill_identical_to_cpu": exact_identical, "rows": rows}
        out_path.write_text(json.dumps(result, indent=1, ensure_ascii=False))
    result["greedy"] = {"prompts": len(rows), "identical": identical32, "mean_same_prefix": same / max(len(rows), 1),
                        "exact_prefill_identical_to_cpu": exact_identical, "rows": rows}


def tok_text(tok, ids) -> str:
    return b"".join(tok.token_to_bytes(i, False) for i in ids).decode("utf-8", "replace")


if __name__ == "__main__":
    sys.exit(main())
