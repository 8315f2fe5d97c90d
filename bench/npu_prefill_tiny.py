"""NPU prefill on the QNN HTP (simulator on x86-64) for the tiny random-weight models: teacher-forced
agreement of an NPU prefill with the CPU's and with exact float64 products, for each weight scheme
(plain int8, int8 + int8 residual), on the F32 model and its Q8_0 / Q4_0 twins.

  nice -n 10 python bench/npu_prefill_tiny.py [--seeds 8] [--residuals 0,16]

The tiny models (tests/engine/tiny_models.py) are built to be sensitive: every small error in a
feature costs nats, so they show an arithmetic's error more plainly than a trained model does.
Each seed is a prompt of PROMPT random tokens prefilled in one batch, then FOLLOW positions
teacher-forced on the CPU (one batch: the same arithmetic in every arm).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.npu_agreement import Agreement  # noqa: E402
from edgegen import _native  # noqa: E402
from edgegen.accelerators import open_model  # noqa: E402
from edgegen.accelerators.qnn_htp import QnnOptions  # noqa: E402
from edgegen.accelerators.reference import exact_model  # noqa: E402
from edgegen.gguf import GGUFFile  # noqa: E402
from tests.engine.test_npu_offload import FOLLOW, PROMPT, TINY, _encode_bytes, _teacher_forced  # noqa: E402
from tests.engine.tiny_models import TinyModels, prompt_tokens, variant  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=8)
    ap.add_argument("--formats", default="F32,Q8_0,Q4_0")
    ap.add_argument("--residuals", default=f"0,{QnnOptions.weight_residual}")
    ap.add_argument("--taus", default="0.1,0.25,0.5")
    args = ap.parse_args()
    taus = [float(t) for t in args.taus.split(",")]
    results = []
    with tempfile.TemporaryDirectory(prefix="edgegen-npu-tiny-") as tmp:
        models = TinyModels(Path(tmp))
        for fmt in args.formats.split(","):
            path = models.path(variant(TINY, fmt=fmt))
            f = GGUFFile(path)
            cpu, exact = _native.Model(f.native, 2), exact_model(f.native, 2)
            prompts = [prompt_tokens(PROMPT + FOLLOW, seed=s) for s in range(args.seeds)]
            cpu_arm = [_teacher_forced(cpu, t, False) for t in prompts]
            exact_arm = [_teacher_forced(exact, t, True) for t in prompts]
            for residual in (int(r) for r in args.residuals.split(",")):
                npu, _ = open_model(f.native, 2, "qnn-htp", model_path=path, encode=_encode_bytes,
                                    options={"weight_residual": residual})
                agreement = Agreement(taus)
                for t, e, c in zip(prompts, exact_arm, cpu_arm):
                    agreement.add([_teacher_forced(npu, t, True), e, c])
                row = {"format": fmt, "weight_residual": residual, **agreement.summary(raw=False)}
                print(f"{fmt} weight_residual={residual}: " + agreement.line(), flush=True)
                results.append(row)
                del npu
            f.close()
    print(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
