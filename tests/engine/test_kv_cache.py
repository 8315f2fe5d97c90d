"""The paged KV cache: shared prefixes, copy-on-write, truncation, context shift, the byte budget.

Each behaviour is checked by its effect on logits against a from-scratch evaluation (the cache must
never change what the model computes), plus the block bookkeeping it promises."""
from __future__ import annotations

import numpy as np
import pytest

import edgegen
from edgegen import _native

from .conftest import smollm2_path

PROMPT = [504, 3575, 282, 4649, 314, 7042, 30, 378, 1345, 314, 260, 2569] * 4  # 48 tokens


@pytest.fixture(scope="module")
def model():
    return _native.Model(smollm2_path(), 2)


def fresh_logits(model, tokens, kv_type="f16") -> np.ndarray:
    cache = model.new_cache(256, kv_type)
    return model.eval(cache, 0, list(tokens))


def test_incremental_equals_batch(model) -> None:
    cache = model.new_cache(256)
    for t in PROMPT[:-1]:
        model.eval(cache, 0, [t])
    np.testing.assert_array_equal(model.eval(cache, 0, [PROMPT[-1]]), fresh_logits(model, PROMPT))
    assert cache.seq_len(0) == len(PROMPT)


def test_fork_shares_blocks_and_copy_on_write_keeps_both_sequences_right(model) -> None:
    cache = model.new_cache(256, "f16", n_seq=2)
    model.eval(cache, 0, PROMPT[:40])
    free_before = cache.n_free_blocks
    cache.seq_fork(0, 1, 40)  # 40 tokens = one full block of 32 + a partial one: no copy yet
    assert cache.n_free_blocks == free_before
    assert cache.block_table(0) == cache.block_table(1)
    assert all(cache.block_refcount(b) == 2 for b in cache.block_table(0))
    # the sequences diverge: the shared partial block is copied, the full one stays shared
    a = model.eval(cache, 0, PROMPT[40:44])
    b = model.eval(cache, 1, [7, 8, 9, 10])
    assert cache.block_table(0)[0] == cache.block_table(1)[0]
    assert cache.block_table(0)[1] != cache.block_table(1)[1]
    np.testing.assert_array_equal(a, fresh_logits(model, PROMPT[:44]))
    np.testing.assert_array_equal(b, fresh_logits(model, PROMPT[:40] + [7, 8, 9, 10]))


def test_truncate_then_continue_equals_fresh(model) -> None:
    cache = model.new_cache(256)
    model.eval(cache, 0, PROMPT)
    cache.seq_truncate(0, 20)
    assert cache.seq_len(0) == 20
    got = model.eval(cache, 0, [11, 12, 13])
    np.testing.assert_array_equal(got, fresh_logits(model, PROMPT[:20] + [11, 12, 13]))


def test_clear_frees_every_block(model) -> None:
    cache = model.new_cache(256, n_seq=2)
    total = cache.n_free_blocks
    model.eval(cache, 0, PROMPT)
    cache.seq_fork(0, 1, len(PROMPT))
    cache.seq_clear(0)
    assert cache.n_free_blocks < total  # seq 1 still holds the shared blocks
    cache.seq_clear(1)
    assert cache.n_free_blocks == total


def _kl(p_logits: np.ndarray, q_logits: np.ndarray) -> float:
    p = np.exp(p_logits - p_logits.max()); p /= p.sum()
    q = np.exp(q_logits - q_logits.max()); q /= q.sum()
    return float((p * (np.log(p + 1e-30) - np.log(q + 1e-30))).sum())


def test_context_shift_approximates_the_kept_tokens(model) -> None:
    # Keep 4, drop 20. The moved rows keep values computed with the dropped tokens in view (that
    # is what a context shift is, in llama.cpp too), so the next token's distribution only
    # approximates a fresh evaluation of the kept tokens; with keys re-rotated it stays close.
    text = [1345, 314, 260, 2569, 30, 378] * 8
    kept = text[:4] + text[24:]
    cache = model.new_cache(256)
    model.eval(cache, 0, text)
    model.kv_shift(cache, 0, 4, 20)
    assert cache.seq_len(0) == len(kept)
    shifted = model.eval(cache, 0, [42])
    want = fresh_logits(model, kept + [42])
    assert shifted.argmax() == want.argmax()
    assert _kl(want, shifted) < 0.3


def test_context_shift_edge_cases_are_exact(model) -> None:
    cache = model.new_cache(256)
    model.eval(cache, 0, PROMPT)
    model.kv_shift(cache, 0, 10, 0)  # nothing dropped: nothing changes
    np.testing.assert_array_equal(model.eval(cache, 0, [5]), fresh_logits(model, PROMPT + [5]))
    cache.seq_truncate(0, len(PROMPT))
    model.kv_shift(cache, 0, 30, len(PROMPT) - 30)  # dropping the tail is a truncation
    np.testing.assert_array_equal(model.eval(cache, 0, [5]), fresh_logits(model, PROMPT[:30] + [5]))
    with pytest.raises(ValueError, match="context shift outside"):
        model.kv_shift(cache, 0, 30, 100)


@pytest.mark.parametrize("kv_type", ["f16", "q8_0"])
def test_budget_exceeded_raises_with_numbers_and_changes_nothing(model, kv_type) -> None:
    cache = model.new_cache(64, kv_type)  # two blocks of 32 tokens
    model.eval(cache, 0, PROMPT[:40])
    with pytest.raises(edgegen.MemoryBudgetError, match=r"KV cache full: 104 tokens need \d+ more blocks"):
        model.eval(cache, 0, list(range(100, 164)))
    assert cache.seq_len(0) == 40
    np.testing.assert_array_equal(model.eval(cache, 0, [5]), fresh_logits(model, PROMPT[:40] + [5], kv_type))


def test_bad_arguments_raise(model) -> None:
    cache = model.new_cache(64)
    with pytest.raises(ValueError, match="outside the vocabulary"):
        model.eval(cache, 0, [49152])
    with pytest.raises(ValueError, match="sequence id"):
        model.eval(cache, 3, [1])
    with pytest.raises(ValueError, match="truncate position"):
        cache.seq_truncate(0, 5)
    with pytest.raises(ValueError, match="kv_type"):
        model.new_cache(64, "q4_0")
    assert cache.nbytes == 2 * 30 * 2 * 32 * 192 * 2  # blocks x layers x (K,V) x tokens x dims x f16


def test_f16_blocks_of_64_tokens_compute_the_same_logits(model) -> None:
    want = fresh_logits(model, PROMPT)
    cache = model.new_cache(256, "f16", block_tokens=64)
    np.testing.assert_array_equal(model.eval(cache, 0, PROMPT[:40]), fresh_logits(model, PROMPT[:40]))
    np.testing.assert_array_equal(model.eval(cache, 0, PROMPT[40:]), want)
    with pytest.raises(ValueError, match="multiple of 32"):
        model.new_cache(256, "f16", block_tokens=48)
