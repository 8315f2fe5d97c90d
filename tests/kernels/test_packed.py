"""The fast decode path's products on repacked weights (native/repack.h) against the exact kernels,
float64 numpy and the scalar reference.

The packed products run ggml's x86 float operations for 8 rows at once, so they must be
bit-identical to the exact kernels (quant_avx2.cpp, themselves bit-identical to llama.cpp's x86
decode) for one token or a batch, one thread or two, short rows and rows longer than the
activation chunk; the few-token products of a multi-sequence step (gemm_packed_avx2.cpp) give
every (row, token) the one-token kernel's bits for every token count, also when a thread's share
of the rows cuts an 8-row group; and like every product, within float32 accumulation of float64 numpy
(test_matmul.reference) and of the scalar reference.
"""
from __future__ import annotations

import numpy as np
import pytest

from edgegen import _native

from .conftest import random_matrix
from .test_matmul import ACCUMULATION_REL, check_close, reference

PACKED_FORMATS = ["q4_0", "q4_1", "q8_0"]
HAS_PACKED = _native.active_isa() == "avx2"


def packed(w: np.ndarray, fmt: str, x: np.ndarray, pool=None, rows=None) -> np.ndarray:
    return _native.matmul(w, fmt, x, pool, packed=True, rows=rows)


@pytest.mark.skipif(not HAS_PACKED, reason="packed products exist for AVX2 only (other ISAs: see the next test)")
@pytest.mark.parametrize("fmt", PACKED_FORMATS)
@pytest.mark.parametrize("n_blocks,rows", [(1, 8), (3, 24), (18, 64), (300, 16)])  # 300: past the 256-block chunk
def test_packed_matches_float64_and_scalar(fmt: str, n_blocks: int, rows: int, isa) -> None:
    rng = np.random.default_rng(n_blocks * 13 + rows)
    w = _native.quantize(random_matrix(rng, rows, 32 * n_blocks), fmt)
    x = random_matrix(rng, 3, 32 * n_blocks)
    got = packed(w, fmt, x)
    assert np.array_equal(got, _native.matmul(w, fmt, x)), "packed products differ from the exact kernels"
    ref, scale = reference(w, fmt, x)
    if fmt != "q4_1":  # Q4_1: both paths use the activation's fp16 sum s; held to the scalar path below
        check_close(got, ref, scale, fmt)
    # against the scalar reference on the same quantized inputs: float32 accumulation on both sides
    act = _native.dequantize(_native.quantize_activations(x, fmt), _native.type_info(fmt)["activation_type"])
    accumulation = ACCUMULATION_REL * (np.abs(act.astype(np.float64)) @ np.abs(_native.dequantize(w, fmt)).T)
    isa("scalar")
    check_close(got, _native.matmul(w, fmt, x).astype(np.float64), 2 * accumulation, fmt)


def extreme_rows(fmt: str, rows: int, n_blocks: int) -> np.ndarray:
    """Blocks whose quants are all at the format's extreme (Q4: 15; Q8_0: -128 and 127 by row)."""
    d = np.float16(0.01).view(np.uint16)
    quant_bytes = {"q4_0": [0xFF] * 16, "q4_1": [0xFF] * 16}
    head = {"q4_0": [d], "q4_1": [d, np.float16(-0.05).view(np.uint16)], "q8_0": [d]}[fmt]
    out = []
    for r in range(rows):
        qs = quant_bytes.get(fmt, [0x80 if r % 2 else 0x7F] * 32)
        block = np.concatenate([np.array(head, np.uint16).view(np.uint8), np.array(qs, np.uint8)])
        out.append(np.tile(block, n_blocks))
    return np.stack(out)


@pytest.mark.skipif(not HAS_PACKED, reason="packed products exist for AVX2 only")
@pytest.mark.parametrize("fmt", PACKED_FORMATS)
@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_packed_extreme_values_do_not_overflow(fmt: str, sign: float) -> None:
    """Extreme quants times activation quants of +-127, one sign: the integer block sums at their limit."""
    w = extreme_rows(fmt, 16, 40)
    x = np.full((1, 32 * 40), 3.0 * sign, np.float32)
    got = packed(w, fmt, x)
    assert np.array_equal(got, _native.matmul(w, fmt, x))
    ref, scale = reference(w, fmt, x)
    check_close(got, ref, scale, fmt)


@pytest.mark.skipif(not HAS_PACKED, reason="packed products exist for AVX2 only")
@pytest.mark.parametrize("fmt", PACKED_FORMATS)
def test_packed_same_bits_for_any_batch_or_split(fmt: str) -> None:
    rng = np.random.default_rng(5)
    w = _native.quantize(random_matrix(rng, 200, 576), fmt)  # 200 rows: thread splits cut no group
    x = random_matrix(rng, 5, 576)
    batch = packed(w, fmt, x, _native.ThreadPool(2))
    one = np.stack([packed(w, fmt, x[t], _native.ThreadPool(1)) for t in range(5)])
    assert np.array_equal(batch, one)
    assert np.array_equal(batch, _native.matmul(w, fmt, x))


@pytest.mark.skipif(not HAS_PACKED, reason="packed products exist for AVX2 only")
@pytest.mark.parametrize("fmt", PACKED_FORMATS)
@pytest.mark.parametrize("n_blocks,rows", [(1, 8), (3, 24), (33, 40), (65, 16)])  # 33, 65: past 32-block chunks
def test_few_tokens_same_bits_as_one_at_a_time(fmt: str, n_blocks: int, rows: int) -> None:
    """A multi-sequence step (4..8 tokens: gemm_packed_avx2.cpp, each group unpacked once for all
    tokens; 2..3: the one-token kernel per token) gives every (row, token) the bits the one-token
    kernel gives it, for every count."""
    rng = np.random.default_rng(n_blocks * 7 + rows)
    w = _native.quantize(random_matrix(rng, rows, 32 * n_blocks), fmt)
    x = random_matrix(rng, 8, 32 * n_blocks)
    alone = np.stack([packed(w, fmt, x[t], _native.ThreadPool(1)) for t in range(8)])
    assert np.array_equal(alone, np.stack([_native.matmul(w, fmt, x[t]) for t in range(8)]))
    for n_tok in range(1, 9):
        for pool in (_native.ThreadPool(1), _native.ThreadPool(2)):
            got = packed(w, fmt, x[:n_tok], pool)
            assert np.array_equal(got, alone[:n_tok]), f"{n_tok} tokens differ from one at a time"


@pytest.mark.skipif(not HAS_PACKED, reason="packed products exist for AVX2 only")
@pytest.mark.parametrize("fmt", PACKED_FORMATS)
def test_row_shares_that_cut_groups(fmt: str) -> None:
    """One thread's share of the rows may start or end inside an 8-row group (several products
    in one matmul_multi): the cut group goes through a buffer, with the same bits, for any count."""
    rng = np.random.default_rng(11)
    w = _native.quantize(random_matrix(rng, 40, 96), fmt)
    x = random_matrix(rng, 8, 96)
    for n_tok in range(1, 9):
        full = packed(w, fmt, x[:n_tok], _native.ThreadPool(1)).reshape(n_tok, 40)
        halves = [packed(w, fmt, x[:n_tok], rows=r).reshape(n_tok, 40) for r in [(0, 13), (13, 40)]]
        assert np.array_equal(np.where(np.isnan(halves[0]), halves[1], halves[0]), full)
        for r0, r1 in [(3, 21), (8, 13), (5, 6), (16, 40), (0, 40)]:
            got = packed(w, fmt, x[:n_tok], rows=(r0, r1)).reshape(n_tok, 40)
            assert np.array_equal(got[:, r0:r1], full[:, r0:r1]), f"rows {r0}..{r1}, {n_tok} tokens"
            assert np.isnan(np.delete(got, np.s_[r0:r1], axis=1)).all(), "rows outside the share were written"
    with pytest.raises(ValueError, match="rows must be"):
        packed(w, fmt, x, rows=(30, 41))
    with pytest.raises(ValueError, match="packed=True"):
        _native.matmul(w, fmt, x, rows=(0, 8))


def test_packed_refused_where_unavailable() -> None:
    w = _native.quantize(np.ones((12, 64), np.float32), "q4_0")  # 12 rows: not whole groups of 8
    with pytest.raises(ValueError, match="no packed products"):
        packed(w, "q4_0", np.ones(64, np.float32))
    w = _native.quantize(np.ones((8, 64), np.float32), "q5_0")  # a format without a packed path
    with pytest.raises(ValueError, match="no packed products"):
        packed(w, "q5_0", np.ones(64, np.float32))
