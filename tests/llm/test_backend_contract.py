"""The Backend contract (edgegen/backends/base.py), checked on every local backend this build has
for the SmolLM2 file, against llama-cpp-python's own tokenizer and greedy output.

The native engine joins the parametrization as soon as `edgegen.backends.native` exists and says it
supports the file; until then the list is just llama.cpp (a fact of the build, not a skip).
"""
from __future__ import annotations

import threading

import pytest

from edgegen.backends import _native_supports, open_backend
from edgegen.errors import TokenizerError
from edgegen.llm import resolve_model_path
from edgegen.sampling import SamplingParams

N_CTX = 64
TEXTS = ["Hello, world!", "  leading spaces and\ttabs\n", "日本語 and emoji 😀🌍", "<|im_start|>user\nhi<|im_end|>"]


def _backends() -> list[str]:
    names = ["llama.cpp"]
    if _native_supports(resolve_model_path("smollm2")):
        names.append("native")
    return names


@pytest.fixture(scope="module", params=_backends())
def backend(request, model_path):
    be = open_backend(model_path, request.param, n_ctx=N_CTX, n_threads=1)
    yield be
    be.close()


def test_metadata(backend):
    assert backend.n_ctx == N_CTX
    assert backend.n_vocab == 49152
    assert backend.architecture == "llama"
    assert (backend.bos_id, backend.eos_id) == (1, 2)
    assert backend.is_eog(2) and not backend.is_eog(30)
    assert "<|im_start|>" in backend.chat_template


@pytest.mark.parametrize("text", TEXTS)
def test_tokenizer_matches_llama_cpp(backend, ref_llama, text):
    for parse_special in (False, True):
        ref = ref_llama.tokenize(text.encode(), add_bos=False, special=parse_special)
        assert backend.tokenize(text, False, parse_special) == ref
        assert backend.detokenize(ref) == ref_llama.detokenize(ref)


def test_token_bytes_rejects_ids_outside_the_vocabulary(backend):
    for bad in (-1, backend.n_vocab):
        with pytest.raises(TokenizerError):
            backend.token_bytes(bad)
    assert backend.token_bytes(2) == b""  # control tokens render empty unless special
    assert backend.token_bytes(2, special=True) == b"<|im_end|>"


def test_greedy_tokens_match_llama_cpp(backend, ref_llama):
    prompt = ref_llama.tokenize(b"The three primary colors are", add_bos=False, special=True)
    gen = backend.generate_tokens(prompt, SamplingParams(temperature=0.0), threading.Event())
    ours = [next(gen) for _ in range(12)]
    gen.close()
    ref_gen = ref_llama.generate(prompt, temp=0.0)
    ref = [next(ref_gen) for _ in range(12)]
    ref_gen.close()
    assert ours == ref


def test_generation_returns_by_itself_at_the_end_of_the_window(backend):
    n_ctx = backend.n_ctx
    prompt = backend.tokenize("word " * n_ctx, False, False)[: n_ctx - 8]
    params = SamplingParams(temperature=0.0, logit_bias={2: -100.0})  # no EOS: run to the window
    assert len(list(backend.generate_tokens(prompt, params, threading.Event()))) == 8


def test_cancel_event_stops_generation(backend):
    event = threading.Event()
    gen = backend.generate_tokens([504, 2155], SamplingParams(temperature=0.0, logit_bias={2: -100.0}), event)
    next(gen)
    event.set()
    assert len(list(gen)) <= 1  # at most the token already being made
