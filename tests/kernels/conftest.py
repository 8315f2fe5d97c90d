"""Shared helpers for kernel tests: float64 references built only from numpy and gguf."""
from __future__ import annotations

import numpy as np
import pytest

from edgegen import _native

# Weight formats with a 32-element block (the k-quants have their own tests).
BLOCK32_FORMATS = ["q4_0", "q4_1", "q5_0", "q8_0"]
FLOAT_FORMATS = ["f32", "f16", "bf16"]
AWKWARD_BLOCKS = [1, 3, 17, 33, 1023]


@pytest.fixture
def isa():
    """Yields a function that switches the kernel set; restores the original afterwards."""
    original = _native.active_isa()
    yield _native.set_isa
    _native.set_isa(original)


def simd_isas() -> list[str]:
    return [i for i in _native.available_isas() if i != "scalar"]


def random_matrix(rng: np.random.Generator, rows: int, cols: int) -> np.ndarray:
    """Gaussian data with a few outliers per row, like real weights and activations."""
    x = rng.standard_normal((rows, cols)).astype(np.float32)
    idx = rng.integers(0, cols, size=(rows, max(1, cols // 64)))
    np.put_along_axis(x, idx, np.take_along_axis(x, idx, 1) * 6, axis=1)
    return x
