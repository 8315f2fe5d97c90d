"""The native sampler against numpy float64 re-statements of each rule."""
from __future__ import annotations

import numpy as np
import pytest

from edgegen import _native

V = 50


def logits(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(V).astype(np.float32) * 3


def draws(n: int, **kw) -> np.ndarray:
    s = _native.Sampler(V, seed=123, **kw)
    x = logits()
    return np.array([s.sample(x) for _ in range(n)])


def test_greedy_is_the_first_maximum() -> None:
    x = logits()
    x[7] = x[9] = x.max() + 1
    assert _native.Sampler(V).sample(x) == 7
    assert _native.Sampler(V, temperature=0.8, top_k=1).sample(x) == 7


def test_same_seed_same_tokens_other_seed_other_tokens() -> None:
    a = [_native.Sampler(V, temperature=1.0, seed=5).sample(logits(i)) for i in range(50)]
    b = [_native.Sampler(V, temperature=1.0, seed=5).sample(logits(i)) for i in range(50)]
    c = [_native.Sampler(V, temperature=1.0, seed=6).sample(logits(i)) for i in range(50)]
    assert a == b and a != c


@pytest.mark.parametrize("temperature", [0.5, 1.0, 2.0])
def test_temperature_draws_follow_the_softmax(temperature: float) -> None:
    n = 20000
    counts = np.bincount(draws(n, temperature=temperature), minlength=V)
    z = logits().astype(np.float64) / temperature
    p = np.exp(z - z.max())
    p /= p.sum()
    # every token's frequency within 5 standard errors of its probability
    assert np.all(np.abs(counts / n - p) <= 5 * np.sqrt(p * (1 - p) / n) + 1e-4)


def test_top_k_top_p_min_p_keep_exactly_the_reference_sets() -> None:
    x = logits().astype(np.float64)
    order = np.argsort(-x, kind="stable")
    p = np.exp(x - x.max()); p /= p.sum()
    assert set(draws(3000, temperature=1.0, top_k=5)) <= set(order[:5])
    nucleus = order[: int(np.searchsorted(np.cumsum(p[order]), 0.7) + 1)]
    got = set(draws(3000, temperature=1.0, top_p=0.7))
    assert got <= set(nucleus) and len(got) == len(nucleus)
    allowed = set(np.flatnonzero(p >= 0.2 * p.max()))
    got = set(draws(3000, temperature=1.0, min_p=0.2))
    assert got <= allowed and len(got) == len(allowed)


def test_penalties_and_bias_match_the_reference_rule() -> None:
    x = logits()
    hist = [3, 3, 7, int(np.argmax(x))]
    s = _native.Sampler(V, repeat_penalty=1.3, presence_penalty=0.5, frequency_penalty=0.25,
                        logit_bias={11: 100.0})
    for t in hist:
        s.accept(t)
    assert s.sample(x) == 11  # the bias wins
    s = _native.Sampler(V, repeat_penalty=1.3, presence_penalty=0.5, frequency_penalty=0.25)
    for t in hist:
        s.accept(t)
    ref = x.astype(np.float64)
    for t, c in zip(*np.unique(hist, return_counts=True)):
        ref[t] = ref[t] / 1.3 if ref[t] > 0 else ref[t] * 1.3
        ref[t] -= c * 0.25 + 0.5
    assert s.sample(x) == int(np.argmax(ref))


def test_banned_tokens_and_bad_parameters() -> None:
    x = logits()
    ban = {int(np.argmax(x)): float("-inf")}
    assert _native.Sampler(V, logit_bias=ban).sample(x) != int(np.argmax(x))
    with pytest.raises(ValueError, match="every token is banned"):
        _native.Sampler(V, temperature=1.0, logit_bias={i: float("-inf") for i in range(V)}).sample(x)
    for top_p in (-0.1, 1.5, float("nan")):  # 0 is allowed: it keeps the top token (tests/fuzz)
        with pytest.raises(ValueError, match="top_p"):
            _native.Sampler(V, top_p=top_p)
    with pytest.raises(ValueError, match="outside the vocabulary"):
        _native.Sampler(V, logit_bias={V: 1.0})
