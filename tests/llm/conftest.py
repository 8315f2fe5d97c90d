"""Fixtures for the LLM API tests: the packaged SmolLM2 file through the llama.cpp backend, and
llama-cpp-python's own Llama on the same file as the reference."""
from __future__ import annotations

import pytest

N_CTX = 256  # small: keeps loads cheap and makes context-overflow cases short


@pytest.fixture(scope="session")
def model_path() -> str:
    from edgegen.llm import resolve_model_path

    return resolve_model_path("smollm2")


@pytest.fixture(scope="session")
def llm(model_path):
    import edgegen

    model = edgegen.load(model_path, backend="llama.cpp", n_ctx=N_CTX, n_threads=1)
    yield model
    model.backend.close()


@pytest.fixture(scope="session")
def ref_llama(model_path):
    """llama.cpp through llama-cpp-python's high-level API: the reference for outputs and templates."""
    from llama_cpp import Llama

    ref = Llama(model_path=model_path, n_ctx=N_CTX, n_threads=1, n_threads_batch=1, verbose=False)
    yield ref
    ref.close()
