"""The allowed-token bitmask in the native sampler, against numpy re-statements: disallowed tokens
are gone before bias, penalties, top-k/top-p/min-p and temperature see the logits."""
from __future__ import annotations

import numpy as np
import pytest

from edgegen import _native

V = 100  # not a multiple of 32: the last word carries padding bits


def mask_of(allowed_ids, n_vocab=V, pad_bits=False):
    words = np.zeros((n_vocab + 31) // 32, np.uint32)
    for i in allowed_ids:
        words[i // 32] |= np.uint32(1 << (i % 32))
    if pad_bits:  # bits past the vocabulary must be ignored
        for i in range(n_vocab, len(words) * 32):
            words[i // 32] |= np.uint32(1 << (i % 32))
    return words


def logits(seed=0):
    return np.random.default_rng(seed).normal(size=V).astype(np.float32)


def test_greedy_picks_the_best_allowed_token():
    x = logits()
    allowed = [3, 40, 97, 99]
    best = max(allowed, key=lambda i: x[i])
    assert _native.Sampler(V).sample(x, mask_of(allowed, pad_bits=True)) == best


def test_mask_comes_before_top_k_and_bias():
    x = logits(1)
    top = int(np.argmax(x))
    allowed = [i for i in range(V) if i != top]
    # top_k=1 after masking keeps the best *allowed* token, never the banned argmax
    s = _native.Sampler(V, temperature=1.0, top_k=1, seed=3)
    assert s.sample(x, mask_of(allowed)) == max(allowed, key=lambda i: x[i])
    # a +100 bias cannot bring a disallowed token back
    s = _native.Sampler(V, logit_bias={top: 100.0})
    assert s.sample(x, mask_of(allowed)) != top


def test_draws_follow_the_renormalised_distribution():
    x = logits(2)
    allowed = [5, 6, 7, 64, 65]
    s = _native.Sampler(V, temperature=1.0, seed=11)
    n = 3000
    draws = np.array([s.sample(x, mask_of(allowed)) for _ in range(n)])
    assert set(draws.tolist()) <= set(allowed)
    p = np.exp(x[allowed].astype(np.float64) - x[allowed].max())
    p /= p.sum()
    freq = np.array([(draws == i).mean() for i in allowed])
    assert np.abs(freq - p).max() < 4 * np.sqrt(p.max() * (1 - p.max()) / n) + 1e-3


def test_model_decode_samples_under_the_mask(native_llm):
    be = native_llm.backend
    ids = native_llm.tokenize("The capital of France is")
    last = np.asarray(be.eval_logits(ids))[-1]
    n_vocab = be.n_vocab
    allowed = np.argsort(last)[: n_vocab // 2]  # the less likely half only
    model, cache = be._model, be.kv_cache
    cache.seq_clear(0)
    be._seq_tokens[0] = []
    tok = model.decode(cache, 0, ids, _native.Sampler(n_vocab), mask_of(allowed.tolist(), n_vocab))
    assert tok == int(allowed[np.argmax(last[allowed])])


def test_bad_masks_are_errors():
    x = logits()
    s = _native.Sampler(V)
    with pytest.raises(ValueError, match="allows no token"):
        s.sample(x, mask_of([]))
    with pytest.raises(ValueError, match="allows no token"):
        s.sample(x, mask_of([], pad_bits=True))  # padding bits are not tokens
    with pytest.raises(ValueError, match="uint32"):
        s.sample(x, np.ones(4, np.int64))
    with pytest.raises(ValueError, match="4 uint32 words"):
        s.sample(x, np.ones(3, np.uint32))
