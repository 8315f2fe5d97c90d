"""The engine's core seams: the model description (ModelSpec), the compute-backend interface, the
KV cache's sliding-window rings and the one sizing function.

Correctness against llama.cpp lives in test_architectures.py (tiny files) and test_gemma3_real.py;
here each seam is checked by its contract: the forward pass calls nothing but the backend, rings
never change what the model computes (fork / truncate / shift against fresh evaluations), the
store, the fit check and the cache report the same bytes.
"""
from __future__ import annotations

import numpy as np
import pytest

import edgegen
from edgegen import _native
from edgegen.backends import native as native_backend
from edgegen.gguf import GGUFFile

from .tiny_models import TinyConfig, prompt_tokens

# 6 layers (5 sliding + 1 global), window 48: a 300-token prompt slides the window many times.
GEMMA = TinyConfig("gemma3", "Q8_0", 4, 1, 64, n_layer=6, tied=True, sliding_window=48)
LLAMA = TinyConfig("llama", "Q4_0", 4, 2, 64)
WINDOW = 48


@pytest.fixture(scope="module")
def gemma(tiny_models):
    path = tiny_models.path(GEMMA)
    return path, _native.Model(path, 2)


def fresh(model, tokens, n_ctx=512):
    cache = model.new_cache(n_ctx)
    return model.eval(cache, 0, list(tokens), all_logits=True)


# ---- ModelSpec --------------------------------------------------------------------------------


def test_spec_describes_gemma3_layers(gemma) -> None:
    path, model = gemma
    with GGUFFile(path) as f:
        spec = f.spec()
    assert spec == model.spec
    assert [layer["window"] for layer in spec["layers"]] == [WINDOW] * 5 + [0]
    assert [layer["rope_freq_base"] for layer in spec["layers"]] == [10000.0] * 5 + [GEMMA.freq_base]
    assert spec["activation"] == "gelu_tanh" and spec["tied_output"]
    assert spec["embd_scale"] == pytest.approx(GEMMA.n_embd ** 0.5) and spec["q_scale"] == pytest.approx(1 / 8)
    assert all(layer["q_norm"] and layer["k_norm"] and layer["post_ffn_norm"] for layer in spec["layers"])


def test_supported_architectures_are_decided_once(tiny_models) -> None:
    assert native_backend.supported_architectures() == tuple(_native.supported_architectures())
    assert set(_native.supported_architectures()) == {"llama", "qwen2", "qwen3", "gemma3"}
    with GGUFFile(tiny_models.path(LLAMA)) as f:
        assert native_backend.supports(f.path, gguf_file=f)
        assert f.hparams()["n_head_kv"] == LLAMA.n_head_kv


def test_unsupported_architecture_is_a_typed_error(tmp_path, tiny_models) -> None:
    with open(tiny_models.path(LLAMA), "rb") as fh:
        data = fh.read().replace(b"llama.", b"llamb.").replace(b"\x05\x00\x00\x00\x00\x00\x00\x00llama",
                                                              b"\x05\x00\x00\x00\x00\x00\x00\x00llamb")
    path = tmp_path / "other.gguf"
    path.write_bytes(data)
    with GGUFFile(path) as f:
        assert f.architecture == "llamb"
        with pytest.raises(edgegen.UnsupportedModelError, match="'llamb' is not supported.*gemma3"):
            f.spec()
        assert f.hparams()["n_layer"] == 2  # the store and the fit check still read it
    with pytest.raises(edgegen.UnsupportedModelError):
        _native.Model(str(path), 1)


# ---- compute backend --------------------------------------------------------------------------


def test_forward_pass_goes_through_the_backend_only(tiny_models) -> None:
    """A delegating backend sees every operation: one decode step of a gemma3 file makes exactly
    the calls its spec implies (per layer: fused QKV, output, fused gate/up, down products; five
    norms plus the per-head q/k norms; two rotations; one attention; one KV store)."""
    path = tiny_models.path(GEMMA)
    model = _native.Model(path, 2, compute="counting")
    assert model.compute.startswith("counting(cpu-")
    prepared = dict(model.op_counts)
    assert prepared["prepare"] == 1 + 7 * GEMMA.n_layer  # token_embd (tied head) + 7 matrices a layer
    cache = model.new_cache(64)
    tokens = prompt_tokens(5)
    ref = fresh(_native.Model(path, 2), tokens)
    got = model.eval(cache, 0, tokens, all_logits=True)
    np.testing.assert_array_equal(got, ref)  # the wrapper changes nothing
    counts = {k: v - prepared[k] for k, v in model.op_counts.items()}
    L = GEMMA.n_layer
    assert counts == {"prepare": 0, "matmul": 4 * L + 1, "get_rows": 1, "rms_norm": 6 * L + 1, "rope": 2 * L,
                      "glu": L, "attention": L, "store_kv": L}


# ---- sliding-window rings ---------------------------------------------------------------------


def test_ring_layout_keeps_the_window_not_the_context(gemma) -> None:
    _, model = gemma
    layout = model.cache_layout(4096)
    glob, ring = layout["groups"]
    assert glob["window"] == 0 and glob["layers"] == [5] and glob["n_blocks"] == 4096 // 32
    assert ring["window"] == WINDOW and ring["layers"] == [0, 1, 2, 3, 4]
    assert ring["ring_blocks"] == -(-(WINDOW + 63) // 32) + 1  # window + one 64-token chunk, + 1 block
    assert layout["nbytes"] == glob["nbytes"] + ring["nbytes"]
    all_global = 2 * GEMMA.n_layer * 4096 * GEMMA.n_head_kv * GEMMA.head_dim * 2
    assert layout["nbytes"] < all_global / 3


def test_ring_batched_equals_incremental_past_the_window(gemma) -> None:
    _, model = gemma
    tokens = prompt_tokens(300)
    whole = fresh(model, tokens)
    cache = model.new_cache(512)
    steps = np.stack([model.eval(cache, 0, [t]) for t in tokens])
    np.testing.assert_array_equal(steps, whole)
    assert cache.seq_resume_min(0) > 0  # the ring has forgotten the start


def test_ring_truncate_and_fork_resume_exactly_or_refuse(gemma) -> None:
    _, model = gemma
    tokens = prompt_tokens(300)
    tail = [7, 8, 9, 10]
    cache = model.new_cache(1024, n_seq=2)
    model.eval(cache, 0, tokens)
    low = cache.seq_resume_min(0)
    assert 0 < low <= len(tokens) - WINDOW
    for p in (len(tokens), len(tokens) - 20, low):  # still stored: continuing equals a fresh run
        cache.seq_fork(0, 1, p)
        np.testing.assert_array_equal(model.eval(cache, 1, tail, all_logits=True),
                                      fresh(model, tokens[:p] + tail)[p:])
    with pytest.raises(ValueError, match="sliding-window"):
        cache.seq_truncate(0, low - 1)
    with pytest.raises(ValueError, match="sliding-window"):
        cache.seq_fork(0, 1, low - 1)
    cache.seq_truncate(0, low)
    np.testing.assert_array_equal(model.eval(cache, 0, tail, all_logits=True), fresh(model, tokens[:low] + tail)[low:])
    cache.seq_clear(0)  # always possible, and frees every block
    assert cache.seq_len(0) == 0 and cache.seq_resume_min(0) == 0


def test_ring_shares_prefix_blocks_and_copies_on_write(gemma) -> None:
    _, model = gemma
    tokens = prompt_tokens(40)
    cache = model.new_cache(512, n_seq=2)
    model.eval(cache, 0, tokens)
    free = [cache.free_blocks(g) for g in (0, 1)]
    cache.seq_fork(0, 1, 40)
    assert [cache.free_blocks(g) for g in (0, 1)] == free  # shared, not copied
    a = model.eval(cache, 0, [11, 12])
    b = model.eval(cache, 1, [13, 14])
    np.testing.assert_array_equal(a, fresh(model, tokens + [11, 12])[-1])
    np.testing.assert_array_equal(b, fresh(model, tokens + [13, 14])[-1])


def test_ring_context_shift(gemma) -> None:
    """Dropping the tail through a shift is a truncation: exact. Dropping the middle re-rotates the
    kept keys (as llama.cpp does) rather than recomputing them, so the next logits only track a
    fresh run of the shortened text; on this deliberately sensitive tiny model, loosely."""
    _, model = gemma
    tokens = prompt_tokens(200)
    cache = model.new_cache(512)
    model.eval(cache, 0, tokens)
    model.kv_shift(cache, 0, 150, 50)  # the ring is rebuilt from what it holds of positions < 150
    np.testing.assert_array_equal(model.eval(cache, 0, [42]), fresh(model, tokens[:150] + [42])[-1])

    kept = tokens[:4] + tokens[64:]
    cache = model.new_cache(512)
    model.eval(cache, 0, tokens)
    model.kv_shift(cache, 0, 4, 60)
    assert cache.seq_len(0) == len(kept) and cache.seq_resume_min(0) <= len(kept)
    got = model.eval(cache, 0, [42])
    want = fresh(model, kept + [42])[-1]
    assert np.isfinite(got).all() and np.corrcoef(got, want)[0, 1] > 0.8


def test_full_cache_refuses_the_whole_input_and_changes_nothing(gemma) -> None:
    _, model = gemma
    tokens = prompt_tokens(100)
    cache = model.new_cache(128)  # the global layer holds 128 positions
    model.eval(cache, 0, tokens)
    with pytest.raises(edgegen.MemoryBudgetError, match="KV cache full"):
        model.eval(cache, 0, prompt_tokens(100, seed=1))
    assert cache.seq_len(0) == 100
    np.testing.assert_array_equal(model.eval(cache, 0, [5]), fresh(model, tokens + [5])[-1])


# ---- one sizing function ----------------------------------------------------------------------


def test_cache_fit_check_and_store_agree_on_kv_bytes(gemma) -> None:
    from edgegen import fit

    path, model = gemma
    with GGUFFile(path) as f:
        layout = f.kv_cache_layout(2048, 1, "f16")
    assert layout["nbytes"] == model.new_cache(2048).nbytes == model.cache_layout(2048)["nbytes"]
    assert fit.estimate_for_gguf(path, 2048, "f16").kv_bytes == layout["nbytes"]


def test_native_backend_resumes_prefixes_only_where_the_ring_allows(tiny_models) -> None:
    be = native_backend.NativeBackend(tiny_models.path(GEMMA), n_ctx=512, n_threads=2)
    from edgegen.sampling import SamplingParams
    import threading

    greedy = SamplingParams(temperature=0.0)
    prompt = prompt_tokens(200)

    def run(p, n=4):
        out = []
        for tok in be.generate_tokens(p, greedy, threading.Event()):
            out.append(tok)
            if len(out) == n:
                break
        return out

    first = run(prompt)
    before = dict(be.stats)
    again = run(prompt)  # the saved prefix holds the whole prompt's window: only the last token is evaluated
    assert again == first
    assert be.stats["prompt_tokens_evaluated"] - before["prompt_tokens_evaluated"] == 1
    short = prompt[:60]  # long forgotten by the ring: evaluated again, same answer as a fresh backend
    fresh_be = native_backend.NativeBackend(tiny_models.path(GEMMA), n_ctx=512, n_threads=2)
    assert run(short) == [t for t, _ in zip(fresh_be.generate_tokens(short, greedy, threading.Event()), range(4))]
    be.close()
    fresh_be.close()
