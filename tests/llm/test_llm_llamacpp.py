"""The LLM API on the real SmolLM2 file through the llama.cpp backend, checked against
llama-cpp-python's own high-level API on the same file."""
from __future__ import annotations

import threading

import pytest

import edgegen
from edgegen.errors import ContextOverflowError, InvalidRequestError, TokenizerError
from edgegen.llm import LLM

from .conftest import N_CTX

PROMPT = "The three primary colors are"
EMOJI_CHAT = [{"role": "user", "content": "Write three emoji and a Japanese word."}]


def _chunks(stream):
    chunks = list(stream)
    assert chunks and chunks[-1].finish_reason is not None
    assert all(c.finish_reason is None for c in chunks[:-1])
    return chunks


def _token_bytes(llm: LLM, chunks) -> bytes:
    return b"".join(llm.backend.token_bytes(t) for c in chunks for t in c.token_ids)


def test_greedy_completion_equals_llama_cpp_python(llm, ref_llama):
    ours = llm.generate(PROMPT, temperature=0, max_tokens=16)
    ref = ref_llama.create_completion(PROMPT, max_tokens=16, temperature=0)
    assert ours.text == ref["choices"][0]["text"]
    assert ours.finish_reason == ref["choices"][0]["finish_reason"]
    assert ours.usage.prompt_tokens == ref["usage"]["prompt_tokens"]
    assert ours.usage.completion_tokens == ref["usage"]["completion_tokens"]
    assert (ours.route, ours.backend) == ("local", "llama.cpp")


def test_greedy_chat_equals_llama_cpp_python(llm, ref_llama):
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    ours = llm.chat(EMOJI_CHAT, temperature=0, max_tokens=12)
    # the reference: llama-cpp-python's own template rendering + completion on the same file
    prompt = Jinja2ChatFormatter(llm.chat_template, eos_token="<|im_end|>", bos_token="<|im_start|>")(messages=EMOJI_CHAT).prompt
    ref = ref_llama.create_completion(prompt, max_tokens=12, temperature=0)
    assert ours.text == ref["choices"][0]["text"]
    assert ours.usage.prompt_tokens == len(ref_llama.tokenize(prompt.encode(), add_bos=False, special=True))
    assert ours.to_openai()["choices"][0]["message"]["role"] == "assistant"


def test_streaming_never_splits_a_utf8_character(llm):
    chunks = _chunks(llm.chat(EMOJI_CHAT, stream=True, temperature=0, max_tokens=12))
    raw = _token_bytes(llm, chunks)
    # the test is only meaningful if some token carried part of a character
    partial = [t for c in chunks for t in c.token_ids if _not_whole(llm.backend.token_bytes(t))]
    assert partial, "prompt no longer makes the model emit multi-token characters"
    text = "".join(c.text for c in chunks)
    complete = raw[: _last_boundary(raw)]
    assert text.startswith(complete.decode("utf-8"))
    for c in chunks[:-1]:
        assert "\ufffd" not in c.text  # whole characters only while the stream runs
    # a character cut off by max_tokens is one U+FFFD at the very end, never raw halves
    assert text == raw.decode("utf-8", errors="replace")


def _not_whole(b: bytes) -> bool:
    try:
        b.decode("utf-8")
        return False
    except UnicodeDecodeError:
        return True


def _last_boundary(raw: bytes) -> int:
    for end in range(len(raw), -1, -1):
        try:
            raw[:end].decode("utf-8")
            return end
        except UnicodeDecodeError:
            continue
    return 0


def test_stop_string_ends_generation_and_is_not_emitted(llm, ref_llama):
    full = ref_llama.create_completion(PROMPT, max_tokens=16, temperature=0)["choices"][0]["text"]
    stop = full.split()[2]  # a word from the middle of the greedy continuation
    out = llm.generate(PROMPT, temperature=0, max_tokens=16, stop=[stop])
    assert out.finish_reason == "stop"
    assert out.text == full[: full.index(stop)]
    assert stop not in out.text


def test_max_tokens_gives_length_and_exact_count(llm):
    out = llm.generate(PROMPT, temperature=0, max_tokens=5)
    assert out.finish_reason == "length"
    assert out.usage.completion_tokens == 5


def test_usage_counts_equal_token_counts(llm):
    chunks = _chunks(llm.stream(PROMPT, temperature=0, max_tokens=8))
    usage = chunks[-1].usage
    assert usage.prompt_tokens == len(llm.tokenize(PROMPT))
    assert usage.completion_tokens == sum(len(c.token_ids) for c in chunks)
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


def test_same_seed_same_text_different_seeds_differ(llm):
    kw = dict(temperature=1.0, top_k=0, top_p=1.0, min_p=0.0, max_tokens=12)
    a = llm.generate(PROMPT, seed=1234, **kw).text
    b = llm.generate(PROMPT, seed=1234, **kw).text
    others = {llm.generate(PROMPT, seed=s, **kw).text for s in (1, 2, 3)}
    assert a == b
    assert len(others | {a}) > 1


def test_logit_bias_bans_the_greedy_token(llm):
    first = llm.generate(PROMPT, temperature=0, max_tokens=1)
    banned = llm.tokenize(first.text, add_special=False)[0]
    other = llm.generate(PROMPT, temperature=0, max_tokens=1, logit_bias={banned: -100})
    assert other.text != first.text
    with pytest.raises(InvalidRequestError):
        llm.generate(PROMPT, max_tokens=1, logit_bias={llm.backend.n_vocab: 1.0})


def test_closing_a_stream_frees_the_model_for_the_next_call(llm):
    stream = llm.stream(PROMPT, temperature=0, max_tokens=50)
    next(stream)
    stream.close()
    assert llm.generate(PROMPT, temperature=0, max_tokens=2).usage.completion_tokens == 2


def test_cancel_from_another_thread_ends_with_a_cancelled_chunk(llm):
    event = threading.Event()
    stream = llm.stream(PROMPT, temperature=0, max_tokens=50, cancel=event)
    first = next(stream)
    setter = threading.Thread(target=event.set)
    setter.start()
    setter.join()
    rest = list(stream)
    assert [c.finish_reason for c in rest] == ["cancelled"]
    assert rest[-1].usage.completion_tokens == len(first.token_ids) + len(rest[-1].token_ids)


def test_stream_handle_cancel_method(llm):
    stream = llm.stream(PROMPT, temperature=0, max_tokens=50)
    next(stream)
    stream.cancel()
    assert list(stream)[-1].finish_reason == "cancelled"


def test_a_second_stream_in_the_same_thread_is_refused_until_the_first_closes(llm):
    first = llm.stream(PROMPT, temperature=0, max_tokens=50)
    next(first)
    try:
        with pytest.raises(InvalidRequestError, match="still open"):
            next(llm.stream(PROMPT, max_tokens=1))
    finally:
        first.close()


def test_prompt_beyond_the_context_fails_before_generating(llm):
    long_prompt = "word " * (N_CTX + 10)
    assert len(llm.tokenize(long_prompt)) >= N_CTX
    with pytest.raises(ContextOverflowError):
        llm.stream(long_prompt)  # raised by the call itself, before any iteration


def test_generation_stops_at_the_end_of_the_window(llm):
    ids = llm.tokenize("word " * (N_CTX - 3))
    prompt = llm.detokenize(ids)
    n_prompt = len(llm.tokenize(prompt))
    assert n_prompt < N_CTX
    out = llm.generate(prompt, temperature=0, max_tokens=None)
    assert out.usage.completion_tokens <= N_CTX - n_prompt
    if out.usage.completion_tokens == N_CTX - n_prompt:
        assert out.finish_reason == "length"


@pytest.mark.parametrize("bad", ["lone \ud800 surrogate", b"bytes"])
def test_invalid_text_is_a_tokenizer_error(llm, bad):
    with pytest.raises(TokenizerError):
        llm.generate(bad, max_tokens=1)


def test_empty_prompt_is_an_invalid_request_not_a_backend_crash(llm):
    with pytest.raises(InvalidRequestError, match="empty"):
        llm.generate("", max_tokens=1)


def test_invalid_text_in_a_chat_message_is_a_tokenizer_error(llm):
    with pytest.raises(TokenizerError):
        llm.chat([{"role": "user", "content": "x\udfff"}], max_tokens=1)


def test_tokenize_detokenize_round_trip_and_bad_ids(llm, ref_llama):
    text = "Hello, 世界! 😀"
    ids = llm.tokenize(text, add_special=False)
    assert ids == ref_llama.tokenize(text.encode(), add_bos=False, special=True)
    assert llm.detokenize(ids) == text
    with pytest.raises(TokenizerError):
        llm.detokenize([llm.backend.n_vocab])


def test_loading_is_quiet_on_stderr(model_path, capfd):
    model = edgegen.load(model_path, backend="llama.cpp", n_ctx=64, n_threads=1)
    model.generate("Hi", max_tokens=1)
    model.backend.close()
    assert capfd.readouterr().err == ""


def test_missing_model_and_memory_budget_are_typed_errors(model_path):
    with pytest.raises(edgegen.ModelNotFoundError):
        edgegen.load("/nonexistent/model.gguf")
    with pytest.raises(edgegen.MemoryBudgetError, match="budget"):
        edgegen.load(model_path, backend="llama.cpp", memory_budget="10M")


# ---- prepared prompts: rendered and tokenized once ---------------------------------------------

from tests.llama_fixtures import count_render_and_tokenize as _count_calls  # noqa: E402


def test_a_prepared_chat_runs_without_rendering_or_tokenizing_again(llm, monkeypatch):
    want = llm.chat(EMOJI_CHAT, temperature=0, max_tokens=6)
    calls = _count_calls(monkeypatch, llm)
    prepared = llm.prepare_chat(EMOJI_CHAT)
    assert calls == {"render": 1, "tokenize": 1}
    assert list(prepared.ids) == llm.chat_prompt_ids(EMOJI_CHAT) and prepared.text == llm.render_chat(EMOJI_CHAT)
    calls.update(render=0, tokenize=0)
    llm.check_request(prepared, llm.defaults)
    got = llm.chat(prepared, temperature=0, max_tokens=6)
    assert calls == {"render": 0, "tokenize": 0}
    assert (got.text, got.usage) == (want.text, want.usage)


def test_a_prepared_raw_prompt_streams_like_the_text(llm, monkeypatch):
    want = llm.generate(PROMPT, temperature=0, max_tokens=6)
    prepared = llm.prepare(PROMPT)
    calls = _count_calls(monkeypatch, llm)
    got = llm.generate(prepared, temperature=0, max_tokens=6)
    assert calls["tokenize"] == 0 and (got.text, got.usage) == (want.text, want.usage)


def test_another_models_prepared_prompt_is_prepared_again(llm):
    from dataclasses import replace

    foreign = replace(llm.prepare_chat(EMOJI_CHAT), ids=(1, 2, 3), llm=None)
    assert llm.chat(foreign, temperature=0, max_tokens=4).text == llm.chat(EMOJI_CHAT, temperature=0, max_tokens=4).text


def test_check_request_raises_what_the_call_would(llm):
    long = llm.prepare("word " * N_CTX)
    with pytest.raises(ContextOverflowError, match="context window"):
        llm.check_request(long, llm.defaults)
    with pytest.raises(InvalidRequestError, match="logit_bias") as e:
        llm.check_request(llm.prepare(PROMPT), llm.defaults.with_overrides(logit_bias={llm.backend.n_vocab: 1.0}))
    assert e.value.param == "logit_bias"
