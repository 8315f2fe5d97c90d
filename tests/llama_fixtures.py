"""Session fixtures shared by the LLM-API and server tests: the packaged SmolLM2 file, loaded once
through edgegen's llama.cpp backend, and llama-cpp-python's own Llama on the same file as the
reference. A conftest binds them with its own context size:

    model_path, llm, ref_llama = llama_fixtures(n_ctx=256)
"""
from __future__ import annotations

import pytest


def llama_fixtures(n_ctx: int, model: str = "smollm2"):
    @pytest.fixture(scope="session")
    def model_path() -> str:
        from edgegen.llm import resolve_model_path

        return resolve_model_path(model)

    @pytest.fixture(scope="session")
    def llm(model_path):
        import edgegen

        loaded = edgegen.load(model_path, backend="llama.cpp", n_ctx=n_ctx, n_threads=1)
        yield loaded
        loaded.backend.close()

    @pytest.fixture(scope="session")
    def ref_llama(model_path):
        from llama_cpp import Llama

        ref = Llama(model_path=model_path, n_ctx=n_ctx, n_threads=1, n_threads_batch=1, verbose=False)
        yield ref
        ref.close()

    return model_path, llm, ref_llama


def count_render_and_tokenize(monkeypatch, llm) -> dict:
    """Counts chat-template renders and tokenizer calls made through `llm` from now on."""
    import edgegen.llm as llm_module

    calls = {"render": 0, "tokenize": 0}
    render, tokenize = llm_module.render_chat, llm.backend.tokenize

    def counting_render(*a, **kw):
        calls["render"] += 1
        return render(*a, **kw)

    def counting_tokenize(*a, **kw):
        calls["tokenize"] += 1
        return tokenize(*a, **kw)

    monkeypatch.setattr(llm_module, "render_chat", counting_render)
    monkeypatch.setattr(llm.backend, "tokenize", counting_tokenize)
    return calls
