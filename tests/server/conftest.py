"""Server fixtures: the packaged SmolLM2 file loaded once through the llama.cpp backend, real
uvicorn servers over it on free loopback ports, and llama-cpp-python's own Llama on the same file
as the reference."""
from __future__ import annotations

import pytest

from tests.llama_fixtures import llama_fixtures
from tests.server.server_harness import MODEL_ID, N_CTX, ThreadServer


model_path, llm, ref_llama = llama_fixtures(N_CTX, model=MODEL_ID)


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
