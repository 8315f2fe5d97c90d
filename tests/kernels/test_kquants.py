"""K-quants (Q4_K, Q5_K, Q6_K weights; Q8_K activations) against references that are not our code.

- Q4_K/Q5_K/Q6_K quantize: bytes equal llama.cpp's own quantizer (llama_model_quantize on a tiny
  generated F32 model to Q4_K_M and Q5_K_M, through llama-cpp-python).
- Q4_K/Q5_K/Q6_K dequantize: bit-equal to gguf-py's decoder on random valid blocks.
- Q8_K quantize: bit-equal to a numpy transcription of ggml's quantize_row_q8_K_ref.
- Dot products: float64 numpy over the dequantized operands, and every SIMD kernel set against the
  scalar reference on awkward shapes; on AVX2 bit-equal to llama.cpp's own x86 kernels
  (ggml_vec_dot_q{4,5,6}_K_q8_K called in the libggml-cpu llama-cpp-python ships).
- Batches (prefill gemm) bit-equal to one token at a time on tile-edge shapes.
"""
from __future__ import annotations

import ctypes

import gguf
import numpy as np
import pytest

from edgegen import _native

from .conftest import random_matrix, simd_isas

QK_K = 256
WEIGHT_FORMATS = ["q4_K", "q5_K", "q6_K"]
GGUF_TYPE = {"q4_K": gguf.GGMLQuantizationType.Q4_K, "q5_K": gguf.GGMLQuantizationType.Q5_K,
             "q6_K": gguf.GGMLQuantizationType.Q6_K}
BLOCK_BYTES = {"q4_K": 144, "q5_K": 176, "q6_K": 210, "q8_K": 292}

# A dot product accumulated in float32 over nb super-blocks (8 lanes, one rounding per block and
# lane, plus the horizontal sum) is off by at most ~(nb + 8) * 2^-24 of sum(|w_i * a_i|); the
# float64 reference itself reads dequantized float32 values (2^-24 each). 1e-5 covers nb <= 100
# with room and still catches any wrong integer term (one unit of d_w*d_a is far larger).
DOT_REL = 1e-5

# Round-trip RMS error relative to the data's RMS for standard Gaussian rows. Uniform rounding
# of step s has RMS s/sqrt(12); the bounds are those estimates with ~30% headroom:
#   q4_K: 16 levels over a 32-element sub-block's range (~4 sigma): s ~ 0.27 -> 0.077
#   q5_K: 32 levels over the same range:                            s ~ 0.13 -> 0.037
#   q6_K: 64 levels over +-max of 16 elements (~2 sigma each way):  s ~ 0.063 -> 0.018
#   q8_K: 255 levels over +-max of 256 elements (~3 sigma):         s ~ 0.024 -> 0.007
ROUNDTRIP_REL_RMS = {"q4_K": 0.10, "q5_K": 0.05, "q6_K": 0.025, "q8_K": 0.009}


# ================================================================================================
# Independent decoders / encoders (numpy only)
# ================================================================================================
def q8_K_fields(data: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Q8_K bytes (..., nb*292) -> d float32 (nb,), qs int8 (nb, 256), bsums int16 (nb, 16)."""
    blocks = np.ascontiguousarray(data).reshape(-1, BLOCK_BYTES["q8_K"])
    d = blocks[:, 0:4].copy().view(np.float32).ravel()
    qs = blocks[:, 4:260].copy().view(np.int8)
    bsums = blocks[:, 260:292].copy().view(np.int16)
    return d, qs, bsums


def q8_K_dequantize64(data: np.ndarray, n_cols: int) -> np.ndarray:
    d, qs, _ = q8_K_fields(data)
    return (d.astype(np.float64)[:, None] * qs).reshape(-1, n_cols)


def q8_K_reference(x: np.ndarray) -> np.ndarray:
    """ggml's quantize_row_q8_K_ref in numpy float32 (iscale = -127/max, q = min(127, rint))."""
    out = []
    for b in x.astype(np.float32).reshape(-1, QK_K):
        amax = np.max(np.abs(b))
        if amax == 0:
            out.append(np.zeros(BLOCK_BYTES["q8_K"], np.uint8))
            continue
        mx = b[np.argmax(np.abs(b))]  # first element of largest magnitude, as ggml's strict '>'
        iscale = np.float32(-127.0) / mx
        q = np.minimum(127, np.rint(iscale * b)).astype(np.int8)  # rint: ties to even, as ggml
        bsums = q.astype(np.int32).reshape(16, 16).sum(axis=1).astype(np.int16)
        d = np.float32(1.0) / iscale
        out.append(np.concatenate([np.array([d], np.float32).view(np.uint8), q.view(np.uint8), bsums.view(np.uint8)]))
    return np.concatenate(out).reshape(x.shape[0], -1)


def random_valid_blocks(rng: np.random.Generator, fmt: str, n_blocks: int) -> np.ndarray:
    """Random bytes with finite fp16 scales: every bit pattern of the quants and sub-scales occurs."""
    blocks = rng.integers(0, 256, size=(n_blocks, BLOCK_BYTES[fmt]), dtype=np.uint8)
    scales = (rng.standard_normal((n_blocks, 2)) * 2.0 ** rng.integers(-12, 2, size=(n_blocks, 2))).astype(np.float16)
    if fmt in ("q4_K", "q5_K"):
        blocks[:, 0:4] = scales.view(np.uint8)  # d, dmin
    else:
        blocks[:, 208:210] = scales[:, :1].view(np.uint8)  # d is the last field of block_q6_K
    return blocks


def as_bits(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.float32).view(np.uint32)


# ================================================================================================
# Decoding: bit-equal to gguf-py
# ================================================================================================
@pytest.mark.parametrize("fmt", WEIGHT_FORMATS)
def test_dequantize_equals_gguf_bit_for_bit(fmt: str, isa) -> None:
    rng = np.random.default_rng(3)
    blocks = random_valid_blocks(rng, fmt, 5 * 17)
    data = blocks.reshape(5, -1)  # 5 rows of 17 super-blocks
    expected = gguf.quants.dequantize(data, GGUF_TYPE[fmt])
    for name in _native.available_isas():
        isa(name)
        got = _native.dequantize(data, fmt)
        assert got.shape == (5, 17 * QK_K)
        np.testing.assert_array_equal(as_bits(got), as_bits(expected), err_msg=f"{fmt} on {name}")


# ================================================================================================
# Encoding: bytes equal llama.cpp's quantizer
# ================================================================================================
def special_rows(rng: np.random.Generator, rows: int, cols: int) -> np.ndarray:
    """Weights that walk every branch of the scale searches, then ordinary weight-like rows."""
    x = random_matrix(rng, rows, cols) * np.float32(0.02)
    x[0] = 0.0                                   # all-zero super-blocks
    x[1] = 0.5                                   # constant (max == min in a sub-block)
    x[2] = np.abs(x[2])                          # all positive: the fitted min is clamped to 0
    x[3] = -np.abs(x[3])                         # all negative
    x[4] *= np.float32(1e-14)                    # below ggml's GROUP_MAX_EPS for Q6_K sub-blocks
    x[5, rng.random(cols) < 0.9] = 0.0           # sparse
    x[6, 7] = 40.0                               # one huge outlier
    x[7, : cols // 2] = 0.0                      # half the row zero: mixed empty and full sub-blocks
    x[8] = rng.integers(-3, 4, size=cols).astype(np.float32)  # exactly representable integers
    return x


@pytest.fixture(scope="module")
def llama_cpp_quantized(tmp_path_factory) -> tuple[dict[str, np.ndarray], list[tuple[str, str, np.ndarray]]]:
    """A 1-layer llama in F32 (every matrix 256-wide) quantized to Q4_K_M and to Q5_K_M by
    llama.cpp itself.

    Returns (our float tensors by name, [(tensor name, ggml type name, quantized bytes)]).
    """
    import llama_cpp  # a test dependency (scripts/setup.sh --test): missing it is a failure, not a skip
    rng = np.random.default_rng(11)
    n_embd, n_ff, n_vocab, n_head = 256, 512, 512, 2
    src = tmp_path_factory.mktemp("kquant") / "tiny-f32.gguf"
    writer = gguf.GGUFWriter(str(src), "llama")
    writer.add_context_length(64)
    writer.add_embedding_length(n_embd)
    writer.add_block_count(1)
    writer.add_feed_forward_length(n_ff)
    writer.add_head_count(n_head)
    writer.add_head_count_kv(n_head)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_rope_dimension_count(n_embd // n_head)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    tensors: dict[str, np.ndarray] = {}

    def add(name: str, rows: int, cols: int) -> None:
        tensors[name] = special_rows(rng, rows, cols) if rows > 1 else np.ones((1, cols), np.float32)
        writer.add_tensor(name, tensors[name] if rows > 1 else tensors[name][0])

    add("token_embd.weight", n_vocab, n_embd)
    add("blk.0.attn_norm.weight", 1, n_embd)
    for name in ("attn_q", "attn_k", "attn_v", "attn_output"):
        add(f"blk.0.{name}.weight", n_embd, n_embd)
    add("blk.0.ffn_norm.weight", 1, n_embd)
    add("blk.0.ffn_gate.weight", n_ff, n_embd)
    add("blk.0.ffn_up.weight", n_ff, n_embd)
    add("blk.0.ffn_down.weight", n_embd, n_ff)
    add("output_norm.weight", 1, n_embd)
    add("output.weight", n_vocab, n_embd)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()

    quantized = []
    for ftype, suffix in ((llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_K_M, "q4_k_m"), (llama_cpp.LLAMA_FTYPE_MOSTLY_Q5_K_M, "q5_k_m")):
        dst = src.with_name(f"tiny-{suffix}.gguf")
        params = llama_cpp.llama_model_quantize_default_params()
        params.ftype = ftype
        params.nthread = 2
        rc = llama_cpp.llama_model_quantize(str(src).encode(), str(dst).encode(), ctypes.byref(params))
        assert rc == 0, f"llama_model_quantize ({suffix}) failed with {rc}"
        reader = gguf.GGUFReader(str(dst))
        quantized += [(t.name, t.tensor_type.name, np.asarray(t.data)) for t in reader.tensors]
    return tensors, quantized


def test_quantize_bytes_equal_llama_cpp(llama_cpp_quantized, isa) -> None:
    tensors, quantized = llama_cpp_quantized
    checked = {"Q4_K": 0, "Q5_K": 0, "Q6_K": 0}
    for name, type_name, theirs in quantized:
        if type_name not in checked:
            continue
        fmt = type_name[:-1] + "K"  # ggml's spelling: q4_K
        for isa_name in _native.available_isas():
            isa(isa_name)
            ours = _native.quantize(tensors[name], fmt)
            theirs_rows = theirs.reshape(ours.shape)
            mismatched = np.flatnonzero(np.any(ours != theirs_rows, axis=1))
            assert mismatched.size == 0, f"{name} ({type_name}, {isa_name}): rows {mismatched[:10]} differ"
        checked[type_name] += 1
    # Q4_K_M puts Q4_K on most matrices and Q6_K on output, attn_v and ffn_down; Q5_K_M likewise
    # with Q5_K: every format is covered several times
    assert checked["Q4_K"] >= 4 and checked["Q5_K"] >= 4 and checked["Q6_K"] >= 4, checked


# ================================================================================================
# Q8_K activations
# ================================================================================================
def test_q8_K_bytes_equal_numpy_transcription_of_ggml(isa) -> None:
    rng = np.random.default_rng(5)
    x = special_rows(rng, 12, 3 * QK_K) * np.float32(50)
    x[9] = np.float32(1e-30)                         # subnormal-adjacent scale
    x[10, ::2], x[10, 1::2] = 1.0, -1.0              # ties in |x|: the first one sets the sign
    x[11] = np.arange(3 * QK_K, dtype=np.float32) % 100 - 49.5  # with max = -127 below, iscale = 1:
    x[11, ::QK_K] = -127.0                                      # every x.5 is a tie, rounded to even
    expected = q8_K_reference(x)
    for name in _native.available_isas():
        isa(name)
        got = _native.quantize_activations(x, "q4_K")
        np.testing.assert_array_equal(got, expected, err_msg=name)
        assert np.array_equal(_native.quantize(x, "q8_K"), expected)


def test_q8_K_roundtrip_error_within_half_step() -> None:
    # Q8_K never clips (the largest |x| maps to exactly 127), so each element is within |d|/2.
    rng = np.random.default_rng(6)
    x = random_matrix(rng, 4, 5 * QK_K)
    data = _native.quantize(x, "q8_K")
    d, qs, bsums = q8_K_fields(data)
    err = np.abs(q8_K_dequantize64(data, x.shape[1]) - x).reshape(-1, QK_K)
    assert np.all(err <= np.abs(d.astype(np.float64))[:, None] * (0.5 + 1e-6))
    np.testing.assert_array_equal(bsums, qs.astype(np.int32).reshape(-1, 16, 16).sum(axis=2))
    assert np.abs(qs).max() == 127


def test_non_finite_activations_match_across_isas(isa) -> None:
    # Garbage in, the same garbage out on every kernel set, and no crash.
    x = np.random.default_rng(7).standard_normal((3, 2 * QK_K)).astype(np.float32)
    x[0, 5], x[1, 300], x[2, 0] = np.nan, np.inf, -np.inf
    outs = []
    for name in _native.available_isas():
        isa(name)
        outs.append(_native.quantize_activations(x, "q6_K"))
        for fmt in WEIGHT_FORMATS:
            assert _native.quantize(x, fmt).shape == (3, 2 * BLOCK_BYTES[fmt])
    for o in outs[1:]:
        np.testing.assert_array_equal(o, outs[0])


# ================================================================================================
# Round trips against float64
# ================================================================================================
@pytest.mark.parametrize("fmt", ["q4_K", "q6_K", "q8_K"])
def test_roundtrip_rms_error(fmt: str) -> None:
    rng = np.random.default_rng(8)
    x = rng.standard_normal((16, 8 * QK_K)).astype(np.float32)
    y = _native.dequantize(_native.quantize(x, fmt), fmt).astype(np.float64)
    rel = np.sqrt(np.mean((y - x) ** 2)) / np.sqrt(np.mean(x.astype(np.float64) ** 2))
    assert 0 < rel <= ROUNDTRIP_REL_RMS[fmt], f"{fmt}: relative RMS error {rel:.4f}"


@pytest.mark.parametrize("fmt", WEIGHT_FORMATS)
def test_zero_and_constant_rows(fmt: str) -> None:
    x = np.zeros((2, QK_K), np.float32)
    x[1] = 3.25
    y = _native.dequantize(_native.quantize(x, fmt), fmt)
    np.testing.assert_array_equal(y[0], 0.0)
    np.testing.assert_allclose(y[1], 3.25, rtol=2e-3)


# ================================================================================================
# Dot products
# ================================================================================================
def reference_products(w: np.ndarray, fmt: str, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """float64 W·a over the dequantized weights and dequantized Q8_K activations, and sum |w*a|."""
    n_cols = x.shape[-1]
    w64 = gguf.quants.dequantize(w, GGUF_TYPE[fmt]).astype(np.float64)
    a64 = q8_K_dequantize64(q8_K_reference(x.reshape(-1, n_cols)), n_cols)
    return a64 @ w64.T, np.abs(a64) @ np.abs(w64).T


SHAPES = [(rows, blocks) for rows in (1, 3, 7, 33) for blocks in (1, 3, 17)]


@pytest.mark.parametrize("fmt", WEIGHT_FORMATS)
@pytest.mark.parametrize("rows,n_blocks", SHAPES)
def test_matmul_matches_float64(fmt: str, rows: int, n_blocks: int, isa) -> None:
    rng = np.random.default_rng(rows * 100 + n_blocks)
    cols = n_blocks * QK_K
    w = _native.quantize(random_matrix(rng, rows, cols), fmt)
    x = random_matrix(rng, 2, cols)
    ref, scale = reference_products(w, fmt, x)
    results = {}
    for name in _native.available_isas():
        isa(name)
        got = _native.matmul(w, fmt, x).astype(np.float64)  # (2 tokens, rows)
        assert got.shape == (2, rows)
        np.testing.assert_array_less(np.abs(got - ref), DOT_REL * scale + 1e-30, err_msg=f"{fmt} {name}")
        results[name] = got
        single = _native.matmul(w, fmt, x[1]).astype(np.float64)  # the 1-D (one token) form
        np.testing.assert_array_less(np.abs(single - ref[1]), DOT_REL * scale[1] + 1e-30)
    # every SIMD kernel set agrees with the scalar reference to the same float tolerance
    for name in simd_isas():
        np.testing.assert_array_less(np.abs(results[name] - results["scalar"]), DOT_REL * scale + 1e-30)


@pytest.mark.parametrize("fmt", WEIGHT_FORMATS)
def test_matmul_extreme_codes_do_not_saturate(fmt: str, isa) -> None:
    # Largest weight codes and scales against activations of +-127: the SIMD kernels' int16
    # pair sums (2 * 63 * 127 = 16002 for q6_K, 2 * 31 * 127 for q5_K) must not saturate and the int32 sums must be exact.
    rng = np.random.default_rng(9)
    n_blocks, rows = 3, 4
    blocks = np.zeros((rows * n_blocks, BLOCK_BYTES[fmt]), np.uint8)
    if fmt in ("q4_K", "q5_K"):
        blocks[:, 4:16] = 0xFF        # every 6-bit scale and min = 63
        blocks[:, 16:] = 0xFF         # every code = 15 (q4_K) or 31 (q5_K: qh all set too)
        blocks[::2, 16:] = 0x00       # and rows whose codes are all 0 (only the min term)
        blocks[:, 0:4] = np.array([[0.5, 0.25]], np.float16).view(np.uint8)
    else:
        blocks[:, 0:192] = 0xFF       # q = 63 -> +31
        blocks[1::2, 0:192] = 0x00    # q = 0 -> -32
        blocks[:, 192:208] = np.array([127, -128] * 8, np.int8).view(np.uint8)
        blocks[:, 208:210] = np.array([0.5], np.float16).view(np.uint8)
    w = blocks.reshape(rows, -1)
    x = np.where(rng.random((1, n_blocks * QK_K)) < 0.5, -1.0, 1.0).astype(np.float32)
    ref, scale = reference_products(w, fmt, x)
    for name in _native.available_isas():
        isa(name)
        got = _native.matmul(w, fmt, x).astype(np.float64)
        np.testing.assert_array_less(np.abs(got - ref), DOT_REL * scale + 1e-30, err_msg=f"{fmt} {name}")


# ================================================================================================
# Bad input: typed errors, not crashes
# ================================================================================================
@pytest.mark.parametrize("fmt", ["q4_K", "q6_K", "q8_K"])
def test_bad_shapes_raise(fmt: str) -> None:
    with pytest.raises(ValueError):
        _native.quantize(np.zeros((2, 100), np.float32), fmt)  # not a multiple of 256
    with pytest.raises(ValueError):
        _native.dequantize(np.zeros((2, BLOCK_BYTES[fmt] + 1), np.uint8), fmt)
    if fmt != "q8_K":
        w = np.zeros((2, BLOCK_BYTES[fmt]), np.uint8)
        with pytest.raises(ValueError):
            _native.matmul(w, fmt, np.zeros(2 * QK_K, np.float32))  # activation length mismatch


# ================================================================================================
# llama.cpp's own x86 kernels, and batches
# ================================================================================================
def ggml_cpu_lib() -> ctypes.CDLL:
    import pathlib

    import llama_cpp
    lib = ctypes.CDLL(str(pathlib.Path(llama_cpp.__file__).parent / "lib" / "libggml-cpu.so"))
    lib.ggml_cpu_init()
    return lib


@pytest.mark.parametrize("isa_name", ["avx2", "scalar"])
@pytest.mark.parametrize("fmt", WEIGHT_FORMATS)
def test_avx2_products_equal_llama_cpp_bit_for_bit(fmt: str, isa_name: str, isa) -> None:
    # The scalar reference follows the same x86 arithmetic, so it must match too.
    # llama-cpp-python's libggml-cpu is built for this CPU (GGML_NATIVE), so on an AVX2 machine its
    # ggml_vec_dot_*_q8_K are the x86 AVX2 kernels whose arithmetic ours follow.
    if "avx2" not in _native.available_isas():
        pytest.skip("llama.cpp's x86 kernels are the reference only on an AVX2 CPU")
    lib = ggml_cpu_lib()
    dot = getattr(lib, f"ggml_vec_dot_{fmt}_q8_K")
    dot.argtypes = [ctypes.c_int, ctypes.POINTER(ctypes.c_float), ctypes.c_size_t, ctypes.c_void_p, ctypes.c_size_t,
                    ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    isa(isa_name)
    rng = np.random.default_rng(21)
    for n_blocks in (1, 3, 17, 33):
        cols = n_blocks * QK_K
        w = np.ascontiguousarray(_native.quantize(random_matrix(rng, 5, cols), fmt))
        x = random_matrix(rng, 3, cols)
        act = np.ascontiguousarray(_native.quantize_activations(x, fmt))
        got = _native.matmul(w, fmt, x)
        want = np.zeros((3, 5), np.float32)
        out = ctypes.c_float()
        for t in range(3):
            for r in range(5):
                dot(cols, ctypes.byref(out), 0, w[r].ctypes.data, 0, act[t].ctypes.data, 0, 1)
                want[t, r] = out.value
        np.testing.assert_array_equal(as_bits(got), as_bits(want), err_msg=f"{fmt} {isa_name} blocks={n_blocks}")


@pytest.mark.parametrize("fmt", WEIGHT_FORMATS)
def test_batch_equals_one_token_at_a_time_on_every_isa(fmt: str, isa) -> None:
    # AVX2 batches run in register tiles (4 rows x 4 tokens); row and token counts around the
    # tile edges must give exactly what single-token products give.
    rng = np.random.default_rng(13)
    for name in _native.available_isas():
        isa(name)
        for rows, n_tok in [(1, 2), (3, 5), (4, 4), (5, 7), (16, 13), (17, 64), (37, 9)]:
            w = _native.quantize(random_matrix(rng, rows, 2 * QK_K), fmt)
            x = random_matrix(rng, n_tok, 2 * QK_K)
            got = _native.matmul(w, fmt, x)
            for t in range(n_tok):
                np.testing.assert_array_equal(got[t], _native.matmul(w, fmt, x[t]), err_msg=f"{name} {rows}x{n_tok} t={t}")
