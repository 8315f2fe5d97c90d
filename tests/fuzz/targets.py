"""The fuzz targets: adding one is one file and one line here.

Native targets are libFuzzer programs, tests/fuzz/native/fuzz_<name>.cpp, built with clang under
AddressSanitizer + UndefinedBehaviorSanitizer from the native sources listed (only those, so the
CI build stays small). Python targets are atheris modules, tests/fuzz/python/fuzz_<name>.py,
defining ``setup()`` (optional, run once before instrumented fuzzing starts) and
``test_one_input(data: bytes)``. Seeds live in tests/fuzz/corpus/<name>/ and reproducers of
fixed findings in tests/fuzz/regressions/<name>/ (replayed by test_fuzz_regressions.py).
"""
from __future__ import annotations

# name -> native sources (under native/) the target links
NATIVE: dict[str, tuple[str, ...]] = {
    "gguf": ("gguf.cpp", "gguf_checks.cpp", "model_spec.cpp"),
    "model_spec": ("gguf.cpp", "gguf_checks.cpp", "model_spec.cpp", "kv_cache.cpp", "ops.cpp", "quant_ref.cpp"),
    "kv_cache": ("kv_cache.cpp", "ops.cpp", "quant_ref.cpp", "activations_ref.cpp"),
    "sampler": ("sampler.cpp",),
    "kv_import": ("kv_cache.cpp", "kv_cache_io.cpp", "ops.cpp", "quant_ref.cpp", "activations_ref.cpp"),
}

PYTHON: tuple[str, ...] = (
    "tokenizer_bpe",
    "tokenizer_spm",
    "chat_template",
    "server_request",
    "manifest",
    "lora",
    "wyoming",
    "structured",
    "prompt_cache",
    "wav",
)

# Seconds of fuzzing per target in the test suite's smoke run (the corpus is replayed first).
SMOKE_SECONDS = {"native": 3, "python": 3}
# Largest input: GGUF seeds are ~7 KB; Python targets run pure-Python code whose cost grows with the
# input (SentencePiece merges, template rendering), so they stay at a few KB.
MAX_LEN = {"native": 65536, "python": 8192}
# Per-target caps below that: SentencePiece over Gemma's ~6,000 special tokens in pure Python costs
# ~1 ms per input byte, so 8 KB inputs ran at ~15/s; 1 KB texts still cover every merge and special
# token path (the longest seed is 300 bytes).
MAX_LEN_OVERRIDE = {"tokenizer_spm": 1024}


def max_len(name: str) -> int:
    return MAX_LEN_OVERRIDE.get(name, MAX_LEN[kind(name)])


def all_targets() -> list[str]:
    return list(NATIVE) + list(PYTHON)


def kind(name: str) -> str:
    if name in NATIVE:
        return "native"
    if name in PYTHON:
        return "python"
    raise KeyError(f"unknown fuzz target {name!r} (known: {', '.join(all_targets())})")
