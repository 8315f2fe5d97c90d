"""Quantized products against float64 numpy, and every SIMD path against the scalar reference."""
from __future__ import annotations

import numpy as np
import pytest

from edgegen import _native

from .conftest import AWKWARD_BLOCKS, BLOCK32_FORMATS, FLOAT_FORMATS, random_matrix, simd_isas

# A product's only legitimate error against the float64 reference (dequantized weights times the
# dequantized activations the kernel really used) is float32 accumulation: bounded relative to
# sum |w|*|a|. Q4_1 also folds its offset through s = fp16(d * sum(q)), one fp16 rounding.
ACCUMULATION_REL = 2e-6
Q4_1_OFFSET_REL = 2.0**-11


def reference(w_bytes: np.ndarray, fmt: str, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(float64 product, float64 bound scale) of dequantized weights and quantized activations."""
    w = _native.dequantize(w_bytes, fmt).astype(np.float64)
    act_fmt = _native.type_info(fmt)["activation_type"]
    a = _native.dequantize(_native.quantize_activations(x, fmt), act_fmt).astype(np.float64)
    scale = ACCUMULATION_REL * (np.abs(a) @ np.abs(w).T)
    if fmt == "q4_1":
        # the kernel multiplies each block's offset m by s = fp16(sum of the block's activations)
        m = w_bytes.reshape(w_bytes.shape[0], -1, 20)[:, :, 2:4].copy().view(np.float16).astype(np.float64)[..., 0]
        block_sums = a.reshape(a.shape[0], -1, 32).sum(axis=2)
        scale = scale + Q4_1_OFFSET_REL * (np.abs(block_sums) @ np.abs(m).T)
    return a @ w.T, scale


def check_close(got: np.ndarray, ref: np.ndarray, scale: np.ndarray, fmt: str) -> None:
    excess = np.abs(got.astype(np.float64) - ref) - (scale + 1e-6)
    assert excess.max() <= 0, f"{fmt}: error exceeds bound by {excess.max():.3g}"


@pytest.mark.parametrize("fmt", BLOCK32_FORMATS + FLOAT_FORMATS)
@pytest.mark.parametrize("n_blocks", [1, 3, 17, 33])
def test_matvec_matches_float64(fmt: str, n_blocks: int) -> None:
    rng = np.random.default_rng(n_blocks * 7 + 1)
    cols = 32 * n_blocks
    w = _native.quantize(random_matrix(rng, 13, cols), fmt)
    x = random_matrix(rng, 1, cols)[0]
    ref, scale = reference(w, fmt, x[None, :])
    got = _native.matmul(w, fmt, x)
    assert got.shape == (13,)
    check_close(got[None, :], ref, scale, fmt)


@pytest.mark.parametrize("fmt", BLOCK32_FORMATS + ["f16"])
def test_matmul_matches_float64_and_per_token_matvec(fmt: str) -> None:
    rng = np.random.default_rng(3)
    w = _native.quantize(random_matrix(rng, 37, 96), fmt)
    x = random_matrix(rng, 9, 96)
    ref, scale = reference(w, fmt, x)
    got = _native.matmul(w, fmt, x)
    assert got.shape == (9, 37)
    check_close(got, ref, scale, fmt)
    for t in range(9):  # a batch computes each token exactly as a single-token product does
        np.testing.assert_array_equal(got[t], _native.matmul(w, fmt, x[t]))


@pytest.mark.parametrize("fmt", BLOCK32_FORMATS)
def test_batch_tiles_equal_one_token_at_a_time_on_every_isa(fmt: str, isa) -> None:
    # The batched kernels work on register tiles of rows x tokens (4 x 4 on AVX2), and up to 8
    # tokens (a multi-sequence decode step) on streamed rows; row and token counts around the
    # tile edges and every few-token count must give exactly what single-token products give.
    rng = np.random.default_rng(11)
    for name in ["scalar"] + simd_isas():
        isa(name)
        for rows, n_tok in [(1, 2), (2, 3), (3, 5), (4, 4), (6, 6), (5, 7), (9, 8), (16, 13), (17, 64), (37, 9)]:
            w = _native.quantize(random_matrix(rng, rows, 32 * 7), fmt)
            x = random_matrix(rng, n_tok, 32 * 7)
            got = _native.matmul(w, fmt, x)
            for t in range(n_tok):
                np.testing.assert_array_equal(got[t], _native.matmul(w, fmt, x[t]), err_msg=f"{name} {rows}x{n_tok} t={t}")


@pytest.mark.parametrize("fmt", BLOCK32_FORMATS + FLOAT_FORMATS)
def test_simd_equals_scalar_on_awkward_shapes(fmt: str, isa) -> None:
    if not simd_isas():
        pytest.fail("no SIMD kernel set on this CPU: parity cannot be tested here")
    rng = np.random.default_rng(5)
    for n_blocks in AWKWARD_BLOCKS:
        cols = 32 * n_blocks
        for rows in (1, 3, 5, 7):
            w = _native.quantize(random_matrix(rng, rows, cols), fmt)
            x = random_matrix(rng, 2, cols)
            isa("scalar")
            want = _native.matmul(w, fmt, x)
            _, scale = reference(w, fmt, x)
            for name in simd_isas():
                isa(name)
                got = _native.matmul(w, fmt, x)
                excess = np.abs(got.astype(np.float64) - want) - (scale + 1e-6)
                assert excess.max() <= 0, f"{name} {fmt} blocks={n_blocks} rows={rows}: {excess.max():.3g}"


@pytest.mark.parametrize("fmt", ["q8_0", "q8_1"])
def test_simd_activation_quantizers_are_bit_identical(fmt: str, isa) -> None:
    weight_fmt = {"q8_0": "q8_0", "q8_1": "q4_1"}[fmt]
    rng = np.random.default_rng(9)
    x = random_matrix(rng, 11, 32 * 33)
    x[0, :32] = 0.0
    x[1, :32] = np.arange(32, dtype=np.float32) * 0.5 - 8  # exact .5 ties after scaling
    isa("scalar")
    want = _native.quantize_activations(x, weight_fmt)
    for name in simd_isas():
        isa(name)
        np.testing.assert_array_equal(_native.quantize_activations(x, weight_fmt), want)


@pytest.mark.parametrize("n_threads", [1, 2, 3])
@pytest.mark.parametrize("fmt", BLOCK32_FORMATS)
def test_thread_counts_give_identical_results(n_threads: int, fmt: str) -> None:
    rng = np.random.default_rng(n_threads)
    # 1, 5 and 131 rows: fewer rows than threads, and counts that do not divide by the thread count
    for rows in (1, 5, 131):
        w = _native.quantize(random_matrix(rng, rows, 32 * 17), fmt)
        x = random_matrix(rng, 3, 32 * 17)
        want = _native.matmul(w, fmt, x, pool=_native.ThreadPool(1))
        got = _native.matmul(w, fmt, x, pool=_native.ThreadPool(n_threads))
        np.testing.assert_array_equal(got, want)


def test_pool_reports_its_size_and_default_uses_physical_cores() -> None:
    assert _native.ThreadPool(3).size == 3
    assert _native.default_pool().size == _native.physical_cores() >= 1


def test_bad_shapes_raise() -> None:
    w = _native.quantize(np.ones((4, 64), np.float32), "q4_0")
    with pytest.raises(ValueError, match="does not match"):
        _native.matmul(w, "q4_0", np.ones(32, np.float32))
    with pytest.raises(ValueError, match="2-D uint8"):
        _native.matmul(w.ravel(), "q4_0", np.ones(64, np.float32))
    with pytest.raises(ValueError, match="not whole q4_0 blocks"):
        _native.matmul(np.zeros((4, 17), np.uint8), "q4_0", np.ones(32, np.float32))


def test_forced_scalar_isa_from_environment() -> None:
    import subprocess
    import sys

    code = "from edgegen import _native; print(_native.active_isa())"
    out = subprocess.run([sys.executable, "-c", code], env={"EDGEGEN_FORCE_ISA": "scalar", "PATH": ""},
                         capture_output=True, text=True, check=True, cwd=str(__import__("pathlib").Path(__file__).parents[2]))
    assert out.stdout.strip() == "scalar"
