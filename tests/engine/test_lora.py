"""LoRA adapters (native/lora.cpp, edgegen/adapters.py) against llama.cpp on the same files.

Tiny random base models (tiny_models.py: llama Q4_0 GQA, qwen2 Q5_0 with q/k/v biases) and random
adapters written with gguf-py as convert_lora_to_gguf.py writes them (tiny_lora.py): rank 32 Q8_0
on every attention matrix, rank 16 F16 on every feed-forward matrix and the output head, rank 4
BF16 and rank 8 F32 (alpha 0) on a few matrices of one layer; alone and stacked, at scales 0.5, 1
and 2. Reference: llama.cpp (llama_adapter_lora_init + llama_set_adapters_lora through
llama-cpp-python's low-level API), one token per decode as in test_architectures, teacher-forced
over 300 positions.

Tolerance: argmax agreement >= 99% and the log-probabilities of llama.cpp's top-10 tokens within
TOL = 0.5 nats. Measured: Q8_0, BF16 and F32 adapters are bit-identical to llama.cpp (0); F16
adapters of rank 16 differ by float noise (ggml sums the tail of an F16 dot product shorter than 32
in double, ours in float lanes), which these sharp tiny models amplify through the f16 KV cache to
at most 0.31 nats. The same adapters with every scale 20% off differ from llama.cpp by >= 1.15
nats (checked: > 2 x TOL), so a mis-scaled low-rank path cannot pass.
"""
from __future__ import annotations

import ctypes
import math

import numpy as np
import pytest

import edgegen
from edgegen import _native
from edgegen.errors import AdapterError, InvalidRequestError, ModelNotFoundError, UnsupportedModelError

from .conftest import compare, llama_without_repack, log_softmax
from .test_architectures import CONFIGS
from .tiny_lora import ATTN, MLP, LoraConfig, TinyLoras
from .tiny_models import prompt_tokens

N = 300
TOL = 0.5  # nats, on the log-probabilities of llama.cpp's top-10 tokens (see the module docstring)
BASES = {"llama": CONFIGS["llama"][1], "qwen2": CONFIGS["qwen2"][2]}  # Q4_0 GQA 4:1; Q5_0 MHA with q/k/v biases
ADAPTERS = {
    "attn": LoraConfig(32, ATTN, "Q8_0", gain=0.25),
    "mlp": LoraConfig(16, MLP + ("output",), "F16", gain=0.25, seed=1),
    "small": LoraConfig(4, ("attn_v", "ffn_up"), "BF16", layers=(0,), gain=0.5, seed=2),
    "f32": LoraConfig(8, ("attn_output", "ffn_down"), "F32", layers=(1,), gain=0.5, alpha=0, seed=3),
}
CASES = [
    {"attn": 0.5}, {"mlp": 1.0}, {"attn": 2.0}, {"small": 2.0, "f32": 1.0},
    {"attn": 1.0, "mlp": 2.0}, {"mlp": 0.5, "attn": 1.0, "small": 1.0},
]


@pytest.fixture(scope="module")
def loras(tmp_path_factory) -> TinyLoras:
    return TinyLoras(tmp_path_factory.mktemp("tiny_loras"))


def llama_lora_logits(base_path: str, adapter_paths: dict[str, str], cases: list[dict[str, float]],
                      tokens: list[int]) -> list[np.ndarray]:
    """llama.cpp's logits for each case (adapters and scales), one token per decode."""
    import llama_cpp
    from llama_cpp import Llama

    with llama_without_repack():
        ll = Llama(model_path=base_path, n_ctx=512, n_threads=1, n_batch=1, n_ubatch=1, logits_all=True,
                   flash_attn=False, type_k=1, type_v=1, verbose=False)
    try:
        handles = {}
        for name, path in adapter_paths.items():
            h = llama_cpp.llama_adapter_lora_init(ll._model.model, path.encode())
            assert h, f"llama.cpp refused {path}"
            handles[name] = h
        out = []
        for case in cases:
            arr = (llama_cpp.llama_adapter_lora_p_ctypes * len(case))(*[handles[n] for n in case])
            scales = (ctypes.c_float * len(case))(*case.values())
            assert llama_cpp.llama_set_adapters_lora(ll._ctx.ctx, arr, len(case), scales) == 0
            ll.reset()
            ll.eval(tokens)
            out.append(np.array(ll.scores[: len(tokens)], dtype=np.float32))
        return out
    finally:
        ll.close()


def per_position_worst(ours: np.ndarray, ref: np.ndarray) -> np.ndarray:
    la, lb = log_softmax(ours), log_softmax(ref)
    top = np.argsort(-lb, axis=-1)[:, :10]
    return np.abs(np.take_along_axis(la, top, -1) - np.take_along_axis(lb, top, -1)).max(-1)


@pytest.mark.parametrize("arch", list(BASES))
def test_adapters_vs_llamacpp(tiny_models, loras, arch: str) -> None:
    base = BASES[arch]
    base_path = tiny_models.path(base)
    paths = {name: loras.path(base, cfg) for name, cfg in ADAPTERS.items()}
    tokens = prompt_tokens(N)
    refs = llama_lora_logits(base_path, paths, [{}] + CASES, tokens)
    llm = edgegen.load(base_path, backend="native", n_ctx=512, n_threads=2, adapters=paths)
    try:
        be = llm.backend
        plain = np.asarray(be.eval_logits(tokens))
        # scale 0 is the base model, bit for bit (and costs nothing: the adapter is skipped)
        assert np.array_equal(np.asarray(be.eval_logits(tokens, (("attn", 0.0), ("mlp", 0.0)))), plain)
        assert compare([plain], [refs[0]])[0] >= 0.99
        lines = []
        for case, ref in zip(CASES, refs[1:]):
            ours = np.asarray(be.eval_logits(tokens, tuple(case.items())))
            agree, worst = compare([ours], [ref])
            close = float((per_position_worst(ours, ref) <= 0.05).mean())
            # the same adapters with every scale 20% off: what a mis-scaled low-rank path gives
            off = np.asarray(be.eval_logits(tokens, tuple((n, 1.2 * s) for n, s in case.items())))
            off_agree, off_worst = compare([off], [ref])
            moved = compare([ref], [refs[0]])[0]
            lines.append(f"  {case}: argmax agreement {agree:.4f}, max |dlogp| {worst:.3f} (within 0.05 nats at "
                         f"{close:.0%} of positions); scales 20% off: {off_agree:.3f}, {off_worst:.2f}; "
                         f"argmax agreement with the base model {moved:.2f}")
            assert agree >= 0.99 and worst <= TOL, lines[-1]
            assert off_worst > 2 * TOL, lines[-1]
        print(f"{arch}:\n" + "\n".join(lines))
    finally:
        llm.backend.close()


@pytest.mark.parametrize("name", list(ADAPTERS))
def test_adapters_matter(tiny_models, loras, name: str) -> None:
    """Each adapter at scale 1 changes many teacher-forced argmaxes of the base model (so the
    comparison above would catch a low-rank path that was skipped or mis-scaled), and scale 2
    moves them further than scale 1."""
    base = BASES["llama"]
    llm = edgegen.load(tiny_models.path(base), backend="native", n_ctx=512, n_threads=2,
                       adapters={name: loras.path(base, ADAPTERS[name])})
    try:
        tokens = prompt_tokens(N)
        plain = np.asarray(llm.backend.eval_logits(tokens))
        one = np.asarray(llm.backend.eval_logits(tokens, ((name, 1.0),)))
        two = np.asarray(llm.backend.eval_logits(tokens, ((name, 2.0),)))
        d1, d2 = np.abs(one - plain).mean(), np.abs(two - plain).mean()
        assert d1 > 0.05 and d2 > 1.5 * d1, (d1, d2)
    finally:
        llm.backend.close()


# ------------------------------------------------------------------------------------------------
# Hostile adapters: typed errors naming the problem
# ------------------------------------------------------------------------------------------------
HOSTILE = [
    ("missing_b", AdapterError, "missing its lora_b"),
    ("transposed", AdapterError, "transposed"),
    ("no_target", AdapterError, "does not exist in the base model"),
    ("rank", AdapterError, "rank"),
    ("rank_mismatch", AdapterError, "rank"),
    ("nan_alpha", AdapterError, "adapter.lora.alpha"),
    ("model_file", AdapterError, "general.type"),
    ("q4_0", AdapterError, "F32, F16, BF16 or Q8_0"),
    ("token_embd", UnsupportedModelError, "token_embd.weight"),
]


@pytest.fixture(scope="module")
def llama_llm(tiny_models):
    llm = edgegen.load(tiny_models.path(BASES["llama"]), backend="native", n_ctx=512, n_threads=2)
    yield llm
    llm.backend.close()


@pytest.mark.parametrize("hostile,exc,words", HOSTILE, ids=[h[0] for h in HOSTILE])
def test_hostile_adapter(llama_llm, loras, hostile: str, exc: type, words: str) -> None:
    cfg = LoraConfig(8 if hostile != "q4_0" else 32, ("attn_q", "ffn_down"), "F32", layers=(0,), hostile=hostile)
    path = loras.path(BASES["llama"], cfg)
    with pytest.raises(exc, match=words):
        llama_llm.load_adapter(f"bad-{hostile}".replace("_", "-"), path)
    assert not llama_llm.adapters  # nothing half-loaded


def test_adapter_for_another_base(llama_llm, loras) -> None:
    other_arch = loras.path(BASES["qwen2"], LoraConfig(8, ("attn_q",), "F32", layers=(0,)))
    with pytest.raises(AdapterError, match="architecture 'qwen2'"):
        llama_llm.load_adapter("qwen", other_arch)
    other_shape = loras.path(CONFIGS["llama"][0], LoraConfig(8, ("attn_q",), "F32", layers=(0,)))  # 4 heads, not 8
    with pytest.raises(AdapterError, match=r"blk\.0\.attn_q\.weight' is \[256, 512\]"):
        llama_llm.load_adapter("small-llama", other_shape)
    with pytest.raises(ModelNotFoundError):
        llama_llm.load_adapter("absent", "/nonexistent/adapter.gguf")


def test_bad_selections(llama_llm, loras) -> None:
    llama_llm.load_adapter("attn", loras.path(BASES["llama"], ADAPTERS["attn"]))
    try:
        msgs = [{"role": "user", "content": "aa ab"}]
        for bad in ({"attn": math.nan}, {"attn": math.inf}, {"attn": 1e9}, {"attn": "1"}, ["attn"], {"nope": 1.0}):
            with pytest.raises(InvalidRequestError) as info:
                llama_llm.chat(msgs, adapters=bad, max_tokens=2)
            assert info.value.param == "adapters"
        # the engine refuses a NaN scale itself, too
        with pytest.raises(AdapterError, match="finite"):
            _native.check_lora_scale(math.nan)
        with pytest.raises(InvalidRequestError, match="loaded already"):
            llama_llm.load_adapter("attn", loras.path(BASES["llama"], ADAPTERS["attn"]))
    finally:
        llama_llm.backend._adapters.unload("attn")


def test_prefix_cache_keeps_adapters_apart(tiny_models, loras) -> None:
    """Requests alternating between adapters: each sees exactly what a fresh model computes under
    its own selection; cached prefixes are reused only under the same selection."""
    base = BASES["llama"]
    path = tiny_models.path(base)
    adapters = {"attn": loras.path(base, ADAPTERS["attn"]), "mlp": loras.path(base, ADAPTERS["mlp"])}
    prompt = "aa ab ac ad ae af ag ah ai aj ak al am an ao"

    def fresh(selection):
        llm = edgegen.load(path, backend="native", n_ctx=512, n_threads=2, adapters=adapters)
        try:
            return llm.generate(prompt, max_tokens=12, temperature=0, adapters=selection).text
        finally:
            llm.backend.close()

    expected = {key: fresh(sel) for key, sel in (("base", {}), ("attn", {"attn": 1.0}), ("both", {"attn": 1.0, "mlp": 0.5}))}
    assert len(set(expected.values())) == 3  # the adapters change the text
    llm = edgegen.load(path, backend="native", n_ctx=512, n_threads=2, adapters=adapters)
    try:
        stats = llm.backend.stats
        for key, sel in (("base", {}), ("attn", {"attn": 1.0}), ("base", {}), ("both", {"attn": 1.0, "mlp": 0.5}),
                         ("attn", {"attn": 1.0}), ("base", {"attn": 0.0})):
            reused = stats["prompt_tokens_reused"]
            assert llm.generate(prompt, max_tokens=12, temperature=0, adapters=sel).text == expected[key], (key, sel)
            if key == "base" and reused:
                assert stats["prompt_tokens_reused"] > reused  # same selection as a saved prefix: reused
        assert stats["prompt_tokens_reused"] > 0
    finally:
        llm.backend.close()


def test_row_groups_vs_numpy(tiny_models, loras) -> None:
    """A batch whose rows belong to sequences with different selections (the many-sessions batch):
    each row group gets exactly its own adapters' low-rank term, checked against numpy float64
    on the F32 adapters' matrices (rows with no adapter get nothing)."""
    import gguf

    base = BASES["llama"]
    model = _native.Model(tiny_models.path(base), 2)
    cfg1 = LoraConfig(8, ("ffn_down",), "F32", layers=(1,), seed=5)
    cfg2 = LoraConfig(16, ("ffn_down",), "F32", layers=(1,), alpha=0, seed=6)
    paths = [loras.path(base, c) for c in (cfg1, cfg2)]
    ads = [_native.LoraAdapter(model, p) for p in paths]

    def pair(path):
        r = gguf.GGUFReader(path)
        t = {x.name: np.asarray(x.data, dtype=np.float64) for x in r.tensors}
        alpha = float(r.fields["adapter.lora.alpha"].parts[-1][0])
        return t["blk.1.ffn_down.weight.lora_a"], t["blk.1.ffn_down.weight.lora_b"], alpha

    (a1, b1, al1), (a2, b2, al2) = pair(paths[0]), pair(paths[1])
    rng = np.random.default_rng(0)
    x = rng.standard_normal((10, base.n_ff)).astype(np.float32)
    groups = [(0, 3, [(ads[0], 1.0)]), (3, 2, []), (5, 4, [(ads[0], 0.5), (ads[1], 2.0)]), (9, 1, [(ads[1], -1.0)])]
    y = np.asarray(_native.lora_delta(model, 1, "ffn_down", x, groups))
    xd = x.astype(np.float64)
    ref = np.zeros((10, base.n_embd))
    d1 = (xd @ a1.T) @ b1.T * (al1 / 8)
    d2 = (xd @ a2.T) @ b2.T  # alpha 0: the scale is the user's
    ref[0:3] = d1[0:3]
    ref[5:9] = 0.5 * d1[5:9] + 2.0 * d2[5:9]
    ref[9] = -d2[9]
    assert np.abs(y - ref).max() <= 1e-4 * np.abs(ref).max()
    assert not y[3:5].any()
