"""Every architecture the native engine runs, on tiny random-weight GGUFs, against llama.cpp.

The files (tests/engine/tiny_models.py) cover llama (with and without Llama 3 rope scaling via
rope_freqs.weight), qwen2 (q/k/v biases, NeoX rope, tied output), qwen3 (per-head q/k RMS norms,
q width != n_embd) and gemma3 (q/k norms, post-attention/post-FFN norms, GELU-tanh GLU, sqrt(n_embd)
embedding scale, sliding window on 5 of every 6 layers with a window shorter than the prompt,
local rope base 10000 vs the file's base on global layers, tied output), across F32, F16, Q8_0,
Q4_0, Q5_0, Q4_K and Q6_K weights, MHA, GQA and a single KV head, head sizes 64/128/256.

Reference: llama.cpp evaluating one token at a time, flash attention off, repacking off (conftest's
llama_reference), teacher-forced on a 300-token prompt (word tokens fed as ids; the second half
replays the first half's tokens in a new order).

Tolerance on the log-probabilities of llama.cpp's top-10 tokens: 0.05 nats on x86. These models
have logits with a standard deviation of ~6 and put ~0.6 of the mass on the top token, so 0.05
nats is below 1% of the logit scale: room for float-level differences (f16 rounding of K/V, a flipped
rounding in the Q8 activation quantization, a different exp or GELU approximation) but not for a
wrong formula. test_tolerance_separates_feature_errors measures, on llama.cpp itself, what getting
one architectural feature wrong does to the same log-probabilities: every such error moves them by
far more than the tolerance. As in test_vs_llamacpp, other ISAs get the agreement target only
(tolerance 1 nat).
"""
from __future__ import annotations

import platform
import time

import numpy as np
import pytest

from edgegen import _native

from .conftest import compare, llama_without_repack, log_softmax
from .tiny_models import BOS_ID, TinyConfig, prompt_tokens, variant

X86 = platform.machine() in ("x86_64", "AMD64")
TOL = 0.05 if X86 else 1.0
N_PROMPT = 300

C = TinyConfig
CONFIGS = {
    "llama": [
        C("llama", "F32", 4, 4, 64),                                                   # MHA
        C("llama", "Q4_0", 8, 2, 64),                                                  # GQA 4:1
        C("llama", "Q4_K", 4, 1, 128, rope_freqs=True, freq_base=500000.0),            # Llama 3 rope scaling
    ],
    "qwen2": [
        C("qwen2", "F16", 8, 2, 64, n_embd=512, tied=True, freq_base=1e6),             # Qwen2.5-0.5B-like
        C("qwen2", "Q8_0", 2, 1, 128, tied=True, freq_base=1e6),                       # one KV head
        C("qwen2", "Q5_0", 4, 4, 64, freq_base=1e6),                                   # MHA, untied
    ],
    "qwen3": [
        C("qwen3", "Q6_K", 4, 2, 128, tied=True, freq_base=1e6),                       # q width 512 > n_embd
        C("qwen3", "F16", 4, 1, 256, freq_base=1e6),                                   # head 256, one KV head
    ],
    "gemma3": [
        C("gemma3", "Q8_0", 4, 1, 256, n_layer=6, tied=True, sliding_window=64, freq_base=1e6),    # 270M-like
        C("gemma3", "Q4_K", 4, 2, 128, n_layer=7, tied=True, sliding_window=128, freq_base=1e6),   # a local layer after the global one
        C("gemma3", "Q6_K", 4, 4, 64, n_layer=6, tied=True, sliding_window=48, freq_base=1e6),
    ],
}
ALL = [cfg for cfgs in CONFIGS.values() for cfg in cfgs]
PARAMS = [pytest.param(cfg, id=cfg.name) for cfg in ALL]

_refs: dict[tuple[TinyConfig, int], np.ndarray] = {}


def reference(tiny_models, cfg: TinyConfig, n: int = N_PROMPT) -> np.ndarray:
    """llama.cpp's logits (n, n_vocab) for the first n prompt tokens, computed once per session."""
    if (cfg, n) not in _refs:
        _refs[(cfg, n)] = llama_logits(tiny_models.path(cfg), prompt_tokens(n))
    return _refs[(cfg, n)]


def llama_logits(path: str, tokens: list[int]) -> np.ndarray:
    """conftest's llama_reference (one token per decode, flash attention off, no repacking, f16 KV)
    on one thread: these models are too small for a second thread to help, and on a busy machine
    llama.cpp's spinning workers made two threads 3-30x slower. The logits are bit-identical."""
    from llama_cpp import Llama

    with llama_without_repack():
        ll = Llama(model_path=path, n_ctx=512, n_threads=1, n_batch=1, n_ubatch=1, logits_all=True,
                   flash_attn=False, type_k=1, type_v=1, verbose=False)
    try:
        ll.eval(tokens)
        return np.array(ll.scores[: len(tokens)], dtype=np.float32)
    finally:
        ll.close()


def native_logits(path: str, tokens: list[int]) -> np.ndarray:
    """Our logits for every position, the prompt evaluated in one call (as test_vs_llamacpp)."""
    model = _native.Model(path, 2)
    cache = model.new_cache(512, "f16")
    return np.asarray(model.eval(cache, 0, tokens, all_logits=True))


def native_logits_incremental(path: str, tokens: list[int]) -> np.ndarray:
    model = _native.Model(path, 2)
    cache = model.new_cache(512, "f16")
    return np.stack([np.asarray(model.eval(cache, 0, [t], all_logits=True))[-1] for t in tokens])


# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("cfg", PARAMS)
def test_tiny_files_are_what_they_claim(tiny_models, cfg: TinyConfig) -> None:
    """edgegen's validating reader and tokenizer accept the file; every matrix has the format
    under test (llama.cpp's requantization is "pure"), everything 1-D stays F32."""
    from edgegen.gguf import GGUFFile
    from edgegen.tokenizer import Tokenizer

    with GGUFFile(tiny_models.path(cfg)) as f:
        assert f.architecture == cfg.arch
        types = {t.type_name for t in f.tensors.values() if len(t.shape) == 2}
        assert types == {cfg.fmt}, types
        assert {t.type_name for t in f.tensors.values() if len(t.shape) == 1} == {"F32"}
        if cfg.arch == "gemma3":
            assert f.metadata["gemma3.attention.sliding_window"] == cfg.sliding_window
        assert ("output.weight" in f.tensors) != cfg.tied
        assert ("rope_freqs.weight" in f.tensors) == cfg.rope_freqs
    tok = Tokenizer.from_gguf(tiny_models.path(cfg))
    assert tok.bos_id == BOS_ID and tok.encode("", add_special=True) == [BOS_ID]


@pytest.mark.parametrize("cfg", PARAMS)
def test_tiny_models_are_informative(tiny_models, cfg: TinyConfig) -> None:
    """The file loads and runs in llama.cpp, and its next-token distributions are peaked and
    context-dependent, so that argmax agreement and log-prob tolerances mean something."""
    ref = reference(tiny_models, cfg)
    assert np.isfinite(ref).all()
    lp = log_softmax(ref)
    entropy = -(np.exp(lp) * lp).sum(-1)
    top = ref.argmax(-1)
    tokens = prompt_tokens(N_PROMPT)
    half = (N_PROMPT - 1) // 2
    first = {t: i for i, t in enumerate(tokens[1:1 + half], 1)}
    pairs = [(first[t], j) for j, t in enumerate(tokens[1 + half:1 + 2 * half], 1 + half)]
    context_changed = np.mean([top[i] != top[j] for i, j in pairs])
    print(f"{cfg.name}: mean entropy {entropy.mean():.2f} nats (uniform {np.log(ref.shape[1]):.2f}), "
          f"{len(set(top.tolist()))} distinct argmaxes, same token in a new context -> new argmax "
          f"{context_changed:.0%}")
    assert entropy.mean() < 2.0
    assert len(set(top.tolist())) >= 50
    assert context_changed >= 0.5


@pytest.mark.parametrize("cfg", PARAMS)
def test_teacher_forced_vs_llamacpp(tiny_models, cfg: TinyConfig) -> None:
    ours = native_logits(tiny_models.path(cfg), prompt_tokens(N_PROMPT))
    ref = reference(tiny_models, cfg)
    assert ours.shape == ref.shape
    agree, worst = compare([ours], [ref])
    print(f"{cfg.name}: argmax agreement {agree:.4f}, max top-10 |dlogp| {worst:.2e}")
    assert agree >= 0.99
    assert worst <= TOL


@pytest.mark.parametrize("cfg", [pytest.param(cfgs[0], id=arch) for arch, cfgs in CONFIGS.items()])
def test_batched_vs_incremental(tiny_models, cfg: TinyConfig) -> None:
    """The prompt in one eval call vs one token per call: the same next-token choices. Near-ties
    (top two within 1e-3 nats) may go either way between two kernel paths and are not counted."""
    path, tokens = tiny_models.path(cfg), prompt_tokens(200)
    batched, incremental = native_logits(path, tokens), native_logits_incremental(path, tokens)
    lp = np.sort(log_softmax(incremental), -1)
    decided = lp[:, -1] - lp[:, -2] > 1e-3
    same = batched.argmax(-1) == incremental.argmax(-1)
    print(f"{cfg.name}: max |dlogit| batched vs incremental {np.abs(batched - incremental).max():.2e}, "
          f"{int((~same).sum())} argmax differences ({int((~decided).sum())} near-ties)")
    assert same[decided].all()


# Each entry: a configuration and a variant of its file that stands for one engine bug (what an
# engine computes when it ignores the feature), both run through llama.cpp.
FEATURE_ERRORS = [
    ("llama: rope_freqs ignored", CONFIGS["llama"][2], dict(rope_freqs=False)),
    ("qwen2: q/k/v biases ignored", CONFIGS["qwen2"][1], dict(ablate="qkv_bias")),
    ("qwen3: q/k norm weights ignored", CONFIGS["qwen3"][0], dict(ablate="qk_norm_weights")),
    ("gemma3: sliding window one too wide", CONFIGS["gemma3"][0], dict(sliding_window=65)),
    ("gemma3: local rope base 10000 on global layers too", CONFIGS["gemma3"][0], dict(freq_base=10000.0)),
    ("gemma3: post-norm weights ignored", CONFIGS["gemma3"][2], dict(ablate="post_norm_weights")),
]


def test_tolerance_separates_feature_errors(tiny_models) -> None:
    """What one wrong architectural detail does, measured on llama.cpp: each moves the top-10
    log-probabilities by more than 10x the tolerance (the teacher-forced tests would catch it)."""
    n = 160  # > every window used above
    t0 = time.perf_counter()
    lines, smallest = [], np.inf
    for what, cfg, change in FEATURE_ERRORS:
        good = reference(tiny_models, cfg, n)
        bad = reference(tiny_models, variant(cfg, **change), n)
        agree, worst = compare([bad], [good])
        smallest = min(smallest, worst)
        lines.append(f"  {what}: argmax agreement {agree:.3f}, max top-10 |dlogp| {worst:.2f} nats")
    print("feature errors vs the tolerance of %.2f nats (%.1f s):\n%s" % (TOL, time.perf_counter() - t0, "\n".join(lines)))
    assert smallest > 10 * 0.05
