"""Quantize -> dequantize error bounds against float64, and byte equality with gguf-py (llama.cpp's library)."""
from __future__ import annotations

import gguf
import numpy as np
import pytest

from edgegen import _native

from .conftest import BLOCK32_FORMATS, random_matrix

FP16_REL = 2.0**-11  # relative rounding of a value stored as IEEE half
BF16_REL = 2.0**-8   # relative rounding of bfloat16


def _block_fields(data: np.ndarray, fmt: str) -> tuple[np.ndarray, np.ndarray | None]:
    """Per-block scale d (and min m for q4_1) read straight from the bytes, as float64."""
    size = _native.type_info(fmt)["type_size"]
    blocks = data.reshape(-1, size)
    d = blocks[:, 0:2].copy().view(np.float16).astype(np.float64).ravel()
    m = blocks[:, 2:4].copy().view(np.float16).astype(np.float64).ravel() if fmt == "q4_1" else None
    return d, m


# Elementwise error bound per block, in units of |d|: half a step from rounding, plus one whole
# step where the symmetric formats clip the top code (q4_0: +8 -> 7, q5_0: +16 -> 15), plus the
# fp16 rounding of the scale and offset themselves.
STEP_BOUND = {"q4_0": 1.0, "q5_0": 1.0, "q4_1": 0.5, "q8_0": 0.5}
MAX_CODE = {"q4_0": 8, "q5_0": 16, "q4_1": 15, "q8_0": 127}


@pytest.mark.parametrize("fmt", BLOCK32_FORMATS)
@pytest.mark.parametrize("n_blocks", [1, 3, 17, 33])
def test_block_roundtrip_error_is_bounded(fmt: str, n_blocks: int) -> None:
    rng = np.random.default_rng(n_blocks)
    x = random_matrix(rng, 7, 32 * n_blocks)
    data = _native.quantize(x, fmt)
    y = _native.dequantize(data, fmt).astype(np.float64)
    d, m = _block_fields(data, fmt)
    x64 = x.astype(np.float64).reshape(-1, 32)
    err = np.abs(y.reshape(-1, 32) - x64)
    # the scale is computed in float32 then stored as fp16: allow its rounding over the largest code
    bound = np.abs(d) * (STEP_BOUND[fmt] + MAX_CODE[fmt] * FP16_REL * 2) + 1e-7
    if m is not None:
        bound = bound + np.abs(m) * FP16_REL
    assert np.all(err <= bound[:, None]), f"{fmt}: max excess {float((err - bound[:, None]).max())}"
    # and the error is not trivially zero: the format really quantized something
    assert err.max() > 0


@pytest.mark.parametrize("fmt,rel", [("f32", 0.0), ("f16", FP16_REL), ("bf16", BF16_REL)])
def test_float_rows_roundtrip(fmt: str, rel: float) -> None:
    rng = np.random.default_rng(1)
    x = random_matrix(rng, 5, 77)  # float rows have no block constraint
    y = _native.dequantize(_native.quantize(x, fmt), fmt)
    assert y.shape == x.shape
    np.testing.assert_array_less(np.abs(y.astype(np.float64) - x), np.abs(x) * rel + 1e-30 + (rel > 0) * 1e-7)


def test_zero_and_constant_blocks() -> None:
    x = np.zeros((2, 64), np.float32)
    x[1, :] = 3.25
    for fmt in BLOCK32_FORMATS:
        y = _native.dequantize(_native.quantize(x, fmt), fmt)
        np.testing.assert_array_equal(y[0], 0.0)
        np.testing.assert_allclose(y[1], 3.25, rtol=1e-3)


GGUF_QUANTIZED = {
    "q4_0": gguf.GGMLQuantizationType.Q4_0,
    "q4_1": gguf.GGMLQuantizationType.Q4_1,
    "q5_0": gguf.GGMLQuantizationType.Q5_0,
    "q8_0": gguf.GGMLQuantizationType.Q8_0,
    "bf16": gguf.GGMLQuantizationType.BF16,
    "f16": gguf.GGMLQuantizationType.F16,
}


@pytest.mark.parametrize("fmt", sorted(GGUF_QUANTIZED))
def test_quantize_bytes_equal_gguf(fmt: str) -> None:
    rng = np.random.default_rng(7)
    x = random_matrix(rng, 9, 32 * 19)
    x[0, :32] = 0.0            # an all-zero block
    x[1, :32] = -1.5           # a constant block
    x[2, 5] = np.float32(1e-8)  # tiny values next to large ones
    ours = _native.quantize(x, fmt)
    theirs = np.asarray(gguf.quants.quantize(x, GGUF_QUANTIZED[fmt]))
    theirs = theirs.view(np.uint8).reshape(ours.shape)
    np.testing.assert_array_equal(ours, theirs)


@pytest.mark.parametrize("fmt", sorted(GGUF_QUANTIZED))
def test_dequantize_equals_gguf(fmt: str) -> None:
    rng = np.random.default_rng(11)
    x = random_matrix(rng, 6, 32 * 5)
    data = np.asarray(gguf.quants.quantize(x, GGUF_QUANTIZED[fmt])).view(np.uint8).reshape(6, -1)
    theirs = gguf.quants.dequantize(data, GGUF_QUANTIZED[fmt]).astype(np.float32)
    np.testing.assert_array_equal(_native.dequantize(data, fmt), theirs)


def test_bad_arguments_raise_value_errors() -> None:
    x = np.ones((2, 33), np.float32)
    with pytest.raises(ValueError, match="multiple of the q4_0 block size"):
        _native.quantize(x, "q4_0")
    with pytest.raises(ValueError, match="unknown tensor type"):
        _native.quantize(np.ones((1, 32), np.float32), "q3_xx")
    with pytest.raises(ValueError, match="whole number of q8_0 blocks"):
        _native.dequantize(np.zeros((1, 35), np.uint8), "q8_0")
