"""Teacher-forced agreement between prefill arms (NPU, exact float64 products, CPU), shared by
bench/npu_prefill.py (SmolLM2) and bench/npu_prefill_tiny.py (tiny random-weight models).

Per position and pair (arm, reference arm): the reference's logit gap between its own maximum and
the logit it gives the arm's argmax token. Gap 0 is strict argmax agreement; "within tau" counts
gaps <= tau (the arm picked a token the reference scores within tau of its best: a near-tie that
either arithmetic may break either way). cpu_near_ties counts the positions whose CPU top-2 margin
is <= tau, i.e. where such a tie is possible at all.
"""
from __future__ import annotations

import numpy as np

from tests.engine.conftest import log_softmax

PAIRS = {"npu_vs_cpu": (0, 2), "npu_vs_exact": (0, 1), "exact_vs_cpu": (1, 2)}


class Agreement:
    def __init__(self, taus: list[float]) -> None:
        self.taus = taus
        self.gaps: dict[str, list[float]] = {k: [] for k in PAIRS}
        self.cpu_margin: list[float] = []
        self.worst = dict.fromkeys(PAIRS, 0.0)

    def add(self, arms: list[np.ndarray]) -> None:
        """arms: [npu, exact, cpu] logits, (positions, vocab) each, for the same tokens."""
        top2 = np.sort(arms[2], axis=-1)[:, -2:]
        self.cpu_margin += (top2[:, 1] - top2[:, 0]).tolist()
        for name, (i, j) in PAIRS.items():
            a, b = arms[i], arms[j]
            self.gaps[name] += (b.max(-1) - b[np.arange(len(b)), a.argmax(-1)]).tolist()
            la, lb = log_softmax(a), log_softmax(b)
            top = np.argsort(-lb, axis=-1)[:, :10]
            self.worst[name] = max(self.worst[name], float(np.abs(np.take_along_axis(la, top, -1) -
                                                                  np.take_along_axis(lb, top, -1)).max()))

    def line(self) -> str:
        return f"{len(self.cpu_margin)} positions: " + ", ".join(
            f"{k} {sum(g == 0 for g in self.gaps[k])}" + "".join(
                f" (<={t}: {sum(g <= t for g in self.gaps[k])})" for t in self.taus) for k in PAIRS)

    def summary(self, raw: bool = True) -> dict:
        total = max(len(self.cpu_margin), 1)
        out = {"positions": len(self.cpu_margin), "taus": self.taus,
               "cpu_near_ties": {str(t): int(sum(m <= t for m in self.cpu_margin)) for t in self.taus}}
        for k in PAIRS:
            out[k] = {"argmax_agreement": sum(g == 0 for g in self.gaps[k]) / total,
                      "within_tau": {str(t): sum(g <= t for g in self.gaps[k]) / total for t in self.taus},
                      "max_dlogp_top10": self.worst[k]}
            if raw:
                out[k]["gaps"] = self.gaps[k]
        if raw:
            out["cpu_top2_margin"] = self.cpu_margin
        return out
