"""Fixtures for the LLM API tests: the packaged SmolLM2 file through the llama.cpp backend, and
llama-cpp-python's own Llama on the same file as the reference."""
from __future__ import annotations


from tests.llama_fixtures import llama_fixtures

N_CTX = 256  # small: keeps loads cheap and makes context-overflow cases short


model_path, llm, ref_llama = llama_fixtures(N_CTX)
