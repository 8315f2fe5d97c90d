"""A reference provider: the offloaded products computed exactly (float64 over the weights as the
engine dequantizes them). Measuring an accelerator against it separates the accelerator's own
error from the CPU's: the CPU quantizes activations for quantized weights (Q8_0/Q8_1/Q8_K), so on a
quantized model even exact products disagree with the CPU at a few percent of argmax positions
(docs/accelerators.md has the figures)."""
from __future__ import annotations

from typing import Any

import numpy as np

from .qnn_htp import QnnHtpProvider, QnnOptions


class ExactProvider(QnnHtpProvider):
    """Takes the same weights as the QNN provider (options.layers too), computes them in float64."""

    def __init__(self, options: QnnOptions = QnnOptions()) -> None:
        super().__init__(options)
        self._w64: dict[int, np.ndarray] = {}

    def run(self, ids: tuple[int, ...], x: np.ndarray, outs: list[np.ndarray]) -> bool:
        x64 = x.astype(np.float64)
        for out, i in zip(outs, ids):
            if i not in self._w64:
                self._w64[i] = self._dequantized(self.weights[i]).astype(np.float64).T
            out[...] = x64 @ self._w64[i]
        return True


def exact_model(gguf_native: Any, n_threads: int, options: QnnOptions = QnnOptions()) -> Any:
    """An engine Model whose batched layer products (>= options.min_batch tokens) are exact."""
    from .. import _native

    model = _native.Model(gguf_native, n_threads, compute="offload", provider=ExactProvider(options),
                          min_batch=options.min_batch)
    model.offload_mode = "on"
    return model
