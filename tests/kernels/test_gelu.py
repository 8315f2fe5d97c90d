"""GeGLU (gelu_tanh(gate) * up, Gemma's feed-forward) against llama.cpp and float64.

- The f16 GELU table equals llama.cpp's own (ggml_table_gelu_f16, read from the libggml-cpu that
  llama-cpp-python ships, after ggml_cpu_init fills it) entry for entry.
- gelu_mul equals a numpy transcription of ggml_vec_geglu_f32 over that table bit for bit, on
  every kernel set, on awkward lengths and on the cut-offs at +-10.
- Against float64 gelu_tanh(x) * up, the error is the two f16 roundings of the table (x to f16,
  the result to f16) and nothing else.
"""
from __future__ import annotations

import ctypes
import pathlib

import numpy as np
import pytest

from edgegen import _native

SIZES = [1, 3, 7, 8, 17, 33, 1023, 4096 + 5]

# f16 has 10 fraction bits: rounding to nearest is off by at most 2^-11 relative (normal range),
# 2^-25 absolute (subnormal steps are 2^-24). The table rounds x (GELU's slope is at most ~1.13)
# and then the result, each once; the float32 product with up adds 2^-24 relative.
F16_HALF_ULP_REL = 2.0**-11
F16_HALF_STEP_ABS = 2.0**-25
GELU_MAX_SLOPE = 1.13


@pytest.fixture(scope="module")
def llama_cpp_gelu_table() -> np.ndarray:
    import llama_cpp  # a test dependency: missing it is a failure, not a skip
    lib = ctypes.CDLL(str(pathlib.Path(llama_cpp.__file__).parent / "lib" / "libggml-cpu.so"))
    lib.ggml_cpu_init()
    table = (ctypes.c_uint16 * 65536).in_dll(lib, "ggml_table_gelu_f16")
    return np.ctypeslib.as_array(table).copy()


def geglu_ggml(gate: np.ndarray, up: np.ndarray, table: np.ndarray) -> np.ndarray:
    """ggml_vec_geglu_f32 (GGML_GELU_FP16 path), in numpy float32."""
    g = gate.astype(np.float32)
    u = up.astype(np.float32)
    with np.errstate(invalid="ignore", over="ignore"):
        looked_up = table[g.astype(np.float16).view(np.uint16)].view(np.float16).astype(np.float32) * u
        out = np.where(g >= 10.0, g * u, looked_up)
    return np.where(g <= -10.0, np.float32(0.0), out).astype(np.float32)


def gelu64(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64)
    return 0.5 * x * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (x + 0.044715 * x**3)))


def awkward_inputs(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    gate = (rng.standard_normal(n) * 4).astype(np.float32)
    specials = np.array([-10.0, 10.0, np.nextafter(np.float32(-10), np.float32(0)), np.nextafter(np.float32(10), np.float32(0)),
                         0.0, -0.0, 1e-6, -3e-8, 1.00146484375, 65504.0, 70000.0, -np.inf, np.inf, 9.999], np.float32)
    gate[::7] = specials[np.arange(gate[::7].size) % specials.size]
    up = (rng.standard_normal(n) * 2).astype(np.float32)
    return gate, up


def as_bits(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.float32).view(np.uint32)


def test_table_equals_llama_cpp(llama_cpp_gelu_table: np.ndarray) -> None:
    ours = _native.gelu_f16_table()
    differ = np.flatnonzero(ours != llama_cpp_gelu_table)
    assert differ.size == 0, f"{differ.size} entries differ, first f16 inputs {differ[:8]}"


@pytest.mark.parametrize("n", SIZES)
def test_gelu_mul_equals_ggml_geglu_on_every_isa(n: int, llama_cpp_gelu_table: np.ndarray, isa) -> None:
    gate, up = awkward_inputs(np.random.default_rng(n), n)
    want = geglu_ggml(gate, up, llama_cpp_gelu_table)
    for name in _native.available_isas():
        isa(name)
        got = _native.gelu_mul(gate, up)
        assert got.shape == (n,)
        np.testing.assert_array_equal(as_bits(got), as_bits(want), err_msg=f"{name} n={n}")


def test_nan_propagates_on_every_isa(isa) -> None:
    gate = np.array([np.nan, 1.0, -np.nan, 2.0, 3.0, 4.0, 5.0, 6.0, np.nan], np.float32)
    up = np.ones_like(gate)
    for name in _native.available_isas():
        isa(name)
        got = _native.gelu_mul(gate, up)
        assert np.array_equal(np.isnan(got), np.isnan(gate)), name


def test_gelu_mul_matches_float64_within_f16_roundings() -> None:
    rng = np.random.default_rng(1)
    gate = np.concatenate([rng.standard_normal(20000) * 3, rng.uniform(-12, 12, 20000), rng.standard_normal(2000) * 1e-4])
    gate = gate.astype(np.float32)
    up = rng.standard_normal(gate.size).astype(np.float32)
    got = _native.gelu_mul(gate, up).astype(np.float64)
    x = gate.astype(np.float64)
    ref = gelu64(x) * up
    tol = np.abs(up) * (GELU_MAX_SLOPE * (F16_HALF_ULP_REL * np.abs(x) + F16_HALF_STEP_ABS)
                        + F16_HALF_ULP_REL * np.abs(gelu64(x)) + F16_HALF_STEP_ABS) + 2.0**-23 * np.abs(ref)
    excess = np.abs(got - ref) - tol
    assert excess.max() <= 0, f"worst excess {excess.max():.3g} at x={gate[np.argmax(excess)]}"


def test_shapes_must_match() -> None:
    with pytest.raises(ValueError):
        _native.gelu_mul(np.zeros(4, np.float32), np.zeros(5, np.float32))
