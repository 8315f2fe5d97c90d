"""Server fixtures: the packaged SmolLM2 file loaded once through the llama.cpp backend, real
uvicorn servers over it on free loopback ports, and llama-cpp-python's own Llama on the same file
as the reference."""
from __future__ import annotations

import pytest

from tests.server.server_harness import MODEL_ID, N_CTX, ThreadServer


@pytest.fixture(scope="session")
def model_path() -> str:
    from edgegen.llm import resolve_model_path

    return resolve_model_path(MODEL_ID)


@pytest.fixture(scope="session")
def llm(model_path):
    import edgegen

    model = edgegen.load(model_path, backend="llama.cpp", n_ctx=N_CTX, n_threads=1)
    yield model
    model.backend.close()


@pytest.fixture(scope="session")
def ref_llama(model_path):
    """llama.cpp through llama-cpp-python's high-level API: the reference for replies."""
    from llama_cpp import Llama

    ref = Llama(model_path=model_path, n_ctx=N_CTX, n_threads=1, n_threads_batch=1, verbose=False)
    yield ref
    ref.close()


@pytest.fixture(scope="session")
def server(llm):
    with ThreadServer(llm) as s:
        yield s


@pytest.fixture(scope="session")
def make_server(llm):
    """Another in-thread server over the same model with its own config (auth, queue size)."""
    started = []

    def make(**config) -> ThreadServer:
        s = ThreadServer(llm, **config).__enter__()
        started.append(s)
        return s

    yield make
    for s in started:
        s.__exit__(None, None, None)
