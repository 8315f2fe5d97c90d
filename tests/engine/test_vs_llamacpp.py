"""The native engine against llama.cpp on the same GGUF files.

Reference: llama.cpp evaluating one token at a time (its decode path), flash attention off, weight
repacking off. llama.cpp is not self-consistent across batch sizes (its batched prefill runs other
kernels: on our corpus its batched and one-token logits agree on only ~96.7% of argmaxes), so the
reference pins the one arithmetic it uses when generating. On x86 the engine reproduces that
arithmetic (activation quantization, dot-product lane order, rope contraction, exp polynomial,
f16 attention), so with the f16 KV cache the tolerance on the log-probabilities of llama.cpp's
top-10 tokens is float noise only: 1e-3 nats (measured: 0). The q8_0 cache is compared with
llama.cpp's q8_0 cache, which it computes with flash attention; the engine follows that arithmetic
too. On other ISAs only the agreement targets apply (tolerance 1.0 nat).

The default path repacks Q4_0 / Q4_1 / Q8_0 weights at load (native/repack.h) and runs ggml's
float operations on 8 rows at once; Model(exact=True) uses the file's rows. Both must give the same
logits bit for bit; the fast path is also held to issue 16's rule for a path with its own
arithmetic (teacher-forced argmax agreement with llama.cpp >= 99.5%, perplexity within 0.1% of
the exact path's), which identity meets with margin.
"""
from __future__ import annotations

import platform

import numpy as np
import pytest

from edgegen import _native

from .conftest import GREEDY_PROMPTS as PROMPTS, compare, corpus_segments, llama_reference, llama_without_repack, log_softmax

X86 = platform.machine() in ("x86_64", "AMD64")
EXACT_TOL = 1e-3
LOOSE_TOL = 1.0


FAST_MIN_AGREEMENT = 0.995
FAST_MAX_PPL_CHANGE = 0.001


def native_logits(path: str, segments, kv_type: str = "f16", exact: bool = True) -> list[np.ndarray]:
    model = _native.Model(path, 2, exact=exact)
    out = []
    for seg in segments:
        cache = model.new_cache(512, kv_type)
        out.append(model.eval(cache, 0, seg, all_logits=True))
    return out


def tokenize_with(path: str):
    from edgegen.tokenizer import Tokenizer

    tok = Tokenizer.from_gguf(path)
    return lambda text: tok.encode(text, add_special=False, parse_special=True)


def perplexity(logits: list[np.ndarray], segments) -> float:
    """exp(mean negative log-likelihood of each next token), over every segment."""
    nll, count = 0.0, 0
    for lg, seg in zip(logits, segments):
        lp = log_softmax(lg[:-1])
        nll -= float(lp[np.arange(len(seg) - 1), np.asarray(seg[1:])].sum())
        count += len(seg) - 1
    return float(np.exp(nll / count))


def check_fast_path(label: str, fast, exact, ref, segments) -> None:
    identical = all(np.array_equal(a, b) for a, b in zip(fast, exact))
    agree_fast, _ = compare(fast, ref)
    agree_exact, _ = compare(exact, ref)
    ppl_fast, ppl_exact = perplexity(fast, segments), perplexity(exact, segments)
    change = ppl_fast / ppl_exact - 1
    print(f"{label} fast path: argmax agreement {agree_fast:.4f} (exact {agree_exact:.4f}), "
          f"perplexity {ppl_fast:.4f} vs exact {ppl_exact:.4f} ({100 * change:+.4f}%), bit-identical: {identical}")
    assert identical
    assert agree_fast >= FAST_MIN_AGREEMENT
    assert abs(change) <= FAST_MAX_PPL_CHANGE


@pytest.fixture(scope="module")
def q4_1_case(smollm2):
    segments = corpus_segments(tokenize_with(smollm2), 2000)
    return segments, llama_reference(smollm2, segments)


@pytest.fixture(scope="module")
def q4_1_exact(smollm2, q4_1_case):
    return native_logits(smollm2, q4_1_case[0])


def test_teacher_forced_2000_positions_f16_kv(smollm2, q4_1_case, q4_1_exact) -> None:
    segments, ref = q4_1_case
    assert sum(map(len, segments)) >= 2000
    agree, worst = compare(q4_1_exact, ref)
    print(f"Q4_1 f16-KV: argmax agreement {agree:.4f}, max top-10 |dlogp| {worst:.2e}")
    assert agree >= 0.99
    assert worst <= (EXACT_TOL if X86 else LOOSE_TOL)


def test_fast_path_q4_1_agreement_and_perplexity(smollm2, q4_1_case, q4_1_exact) -> None:
    segments, ref = q4_1_case
    check_fast_path("Q4_1", native_logits(smollm2, segments, exact=False), q4_1_exact, ref, segments)


def test_teacher_forced_forced_scalar_isa(smollm2, q4_1_case, isa) -> None:
    segments, ref = q4_1_case
    isa("scalar")
    part = slice(0, 2)  # the scalar reference is slow: its first two segments (1000 positions)
    agree, worst = compare(native_logits(smollm2, segments[part]), ref[part])
    print(f"Q4_1 scalar ISA: argmax agreement {agree:.4f}, max top-10 |dlogp| {worst:.2e}")
    assert agree >= 0.99
    assert worst <= (EXACT_TOL if X86 else LOOSE_TOL)


def test_teacher_forced_q8_0_kv(smollm2, q4_1_case) -> None:
    segments, _ = q4_1_case
    ref = llama_reference(smollm2, segments, kv="q8_0")
    agree, worst = compare(native_logits(smollm2, segments, "q8_0"), ref)
    print(f"Q4_1 q8_0-KV vs llama.cpp q8_0-KV: argmax agreement {agree:.4f}, max top-10 |dlogp| {worst:.2e}")
    assert agree >= 0.97
    assert worst <= (EXACT_TOL if X86 else LOOSE_TOL)


@pytest.mark.parametrize("quant", ["q4_0", "q8_0"])
def test_teacher_forced_requantized(requantized, quant) -> None:
    path = requantized[quant]
    segments = corpus_segments(tokenize_with(path), 2000)
    exact, ref = native_logits(path, segments), llama_reference(path, segments)
    agree, worst = compare(exact, ref)
    print(f"{quant}: argmax agreement {agree:.4f}, max top-10 |dlogp| {worst:.2e}")
    assert agree >= 0.99
    check_fast_path(quant, native_logits(path, segments, exact=False), exact, ref, segments)




def test_free_running_greedy_20_prompts(smollm2) -> None:
    import edgegen

    native = edgegen.load(smollm2, backend="native", n_ctx=256, n_threads=2)
    # the reference decodes its prompt one token at a time too (n_batch=1): see the module docstring
    with llama_without_repack():
        ref = edgegen.load(smollm2, backend="llama.cpp", n_ctx=256, n_threads=2, n_batch=1)
    def ids(llm, prompt: str) -> list[int]:
        out: list[int] = []
        for chunk in llm.stream(prompt, max_tokens=64, temperature=0.0):
            out.extend(chunk.token_ids)
        return out

    same = 0
    for p in PROMPTS:
        a, b = ids(native, p), ids(ref, p)
        assert len(a) > 0 and len(b) > 0
        same += a[:32] == b[:32]
    print(f"greedy: first 32 tokens identical on {same}/20 prompts")
    assert same >= 18
