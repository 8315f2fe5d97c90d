"""LoRA adapter files (GGUF, llama.cpp's convert_lora_to_gguf.py layout) loaded against a tiny
native base model, on arbitrary bytes: the validating GGUF reader, then the adapter checks
(architecture, targets, shapes, ranks, types, alpha).

Contract: load_adapter() returns the adapter or raises a typed edgegen error (AdapterError,
ModelFormatError, UnsupportedModelError); an accepted adapter evaluates a prompt through it to
logits of the right shape, and unloads.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import edgegen
from edgegen.errors import InvalidRequestError, ModelFormatError, UnsupportedModelError

_dir = Path(tempfile.mkdtemp(prefix="edgegen-fuzz-lora-"))
llm = None
BASE = None  # the tiny base model's config (tests/engine/tiny_models.py)


def base_config():
    from tests.engine.tiny_models import TinyConfig

    return TinyConfig("llama", "F32", 8, 2, 32, n_layer=1, n_embd=256, n_ff=256)


def setup() -> None:
    global llm
    from tests.engine.tiny_models import write_tiny_gguf

    path = write_tiny_gguf(base_config(), _dir / "base.gguf")
    llm = edgegen.load(str(path), backend="native", n_ctx=64, n_threads=1)


def test_one_input(data: bytes) -> None:
    if llm is None:
        setup()
    path = _dir / "adapter.gguf"
    path.write_bytes(data)
    try:
        llm.load_adapter("fz", path)
    except (ModelFormatError, UnsupportedModelError, InvalidRequestError):  # AdapterError is a ModelFormatError
        return
    try:
        out = llm.backend.eval_logits([1, 2, 3], adapters=(("fz", 1.0),))
        assert out.shape == (3, llm.backend.n_vocab), out.shape
    finally:
        llm.backend._adapters.unload("fz")
