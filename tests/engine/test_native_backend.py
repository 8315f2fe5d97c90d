"""The native backend behind the LLM API: prefix reuse across requests, and the public API on it."""
from __future__ import annotations

import edgegen

from .conftest import smollm2_path

SYSTEM = ("You are a helpful assistant for a kiosk in a train station. Answer briefly and politely, "
          "in the language of the question. Never invent train times.")


def test_requests_sharing_a_system_prompt_reuse_the_cached_prefix() -> None:
    llm = edgegen.load(smollm2_path(), backend="native", n_ctx=512, n_threads=2)
    backend = llm.backend
    assert backend.name == "native"
    first = llm.chat([{"role": "system", "content": SYSTEM}, {"role": "user", "content": "Where is platform 3?"}],
                     max_tokens=12, temperature=0.0)
    reused_before = backend.stats["prompt_tokens_reused"]
    second = llm.chat([{"role": "system", "content": SYSTEM}, {"role": "user", "content": "Is there a café?"}],
                      max_tokens=12, temperature=0.0)
    system_tokens = len(llm.tokenize(SYSTEM, add_special=False))
    assert backend.stats["prompt_tokens_reused"] - reused_before >= system_tokens
    # reuse never changes the answer: a fresh model gives the same tokens
    fresh = edgegen.load(smollm2_path(), backend="native", n_ctx=512, n_threads=2)
    again = fresh.chat([{"role": "system", "content": SYSTEM}, {"role": "user", "content": "Is there a café?"}],
                       max_tokens=12, temperature=0.0)
    assert second.text == again.text and second.usage == again.usage
    assert first.text  # something was generated


def test_auto_picks_native_for_llama_files() -> None:
    llm = edgegen.load("smollm2", n_ctx=256)
    assert llm.backend.name == "native"
