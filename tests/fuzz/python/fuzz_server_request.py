"""The server's request handling up to the worker queue, on arbitrary request bodies.

Each input is tried as the body of /v1/chat/completions, /v1/completions and /v1/audio/speech:
parse_body (size, UTF-8, JSON, strict types), then what the routes do before queueing —
_Server.prepare_chat / prepare_completion (model check, sampling overrides, template,
tokenizer, request checks) and the native sampler those parameters build, or check_speech.
Contract: every failure is an error the server answers with a 4xx (api_error(exc).status < 500);
a 5xx, or any exception api_error does not know, is a finding.
"""
from __future__ import annotations

import numpy as np

from edgegen.server.app import ServerConfig, _Server, api_error, check_speech
from edgegen.server.schemas import ChatCompletionRequest, CompletionRequest, SpeechRequest, parse_body
from tests.fuzz.python.common import smollm2_path

state = None
config = ServerConfig(model_id="m")


def setup() -> None:
    global state
    import edgegen

    llm = edgegen.load(str(smollm2_path()), backend="native", n_ctx=256, n_threads=1)
    state = _Server(llm, config, None)


def _expect_4xx(exc: BaseException) -> None:
    err = api_error(exc)
    if err.status >= 500:
        raise AssertionError(f"{type(exc).__name__}: {exc} became a {err.status}") from exc


def test_one_input(data: bytes) -> None:
    if state is None:
        setup()
    for model in (ChatCompletionRequest, CompletionRequest, SpeechRequest):
        try:
            body = parse_body(model, data)
            if model is SpeechRequest:
                check_speech(body, config)
                continue
            if model is ChatCompletionRequest:
                _, params, _ = state.prepare_chat(body)
            else:
                _, params = state.prepare_completion(body)
            sampler = state.llm.backend.make_sampler(params)
            token = sampler.sample(np.zeros(state.llm.backend.n_vocab, np.float32))
            assert 0 <= token < state.llm.backend.n_vocab
        except Exception as exc:  # noqa: BLE001 - the contract is about every exception
            _expect_4xx(exc)
