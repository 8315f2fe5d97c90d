"""The official `openai` client against `edgegen serve`'s app on a real uvicorn server; replies
compared with llama-cpp-python's own chat/completion calls on the same file (greedy)."""
from __future__ import annotations

import io
import wave

import numpy as np
import openai
import pytest

MSGS = [{"role": "system", "content": "You are a helpful assistant."}, {"role": "user", "content": "Name a fruit."}]
N = 12


def ref_chat(ref, messages, **kw):
    out = ref.create_chat_completion(messages=messages, temperature=0.0, max_tokens=kw.pop("max_tokens", N), **kw)
    return out["choices"][0]["message"]["content"], out["usage"], out["choices"][0]["finish_reason"]


def test_chat_matches_llama_cpp(server, ref_llama):
    reply = server.client().chat.completions.create(model="smollm2", messages=MSGS, max_tokens=N, temperature=0)
    text, usage, finish = ref_chat(ref_llama, MSGS)
    assert reply.choices[0].message.content == text
    assert reply.choices[0].message.role == "assistant"
    assert reply.choices[0].finish_reason == finish
    assert reply.usage.prompt_tokens == usage["prompt_tokens"]
    assert reply.usage.completion_tokens == usage["completion_tokens"]
    assert reply.model == "smollm2" and reply.object == "chat.completion"


def test_streaming_chat_equals_non_streaming(server, ref_llama):
    stream = server.client().chat.completions.create(
        model="smollm2", messages=MSGS, max_tokens=N, temperature=0, stream=True, stream_options={"include_usage": True})
    deltas, finishes, usage = [], [], None
    for event in stream:
        if event.usage is not None:
            usage = event.usage
        for choice in event.choices:
            deltas.append(choice.delta.content or "")
            if choice.finish_reason:
                finishes.append(choice.finish_reason)
    text, ref_usage, finish = ref_chat(ref_llama, MSGS)
    assert "".join(deltas) == text
    assert len([d for d in deltas if d]) > 1  # really streamed, not one blob
    assert finishes == [finish]
    assert usage is not None and usage.completion_tokens == ref_usage["completion_tokens"]


def test_completions_stream_and_not(server, ref_llama):
    prompt = "The three primary colors are"
    ref = ref_llama.create_completion(prompt, max_tokens=8, temperature=0.0)["choices"][0]["text"]
    client = server.client()
    out = client.completions.create(model="smollm2", prompt=prompt, max_tokens=8, temperature=0)
    assert out.choices[0].text == ref and out.object == "text_completion"
    assert out.usage.completion_tokens == 8
    streamed = "".join(c.choices[0].text for c in client.completions.create(
        model="smollm2", prompt=prompt, max_tokens=8, temperature=0, stream=True) if c.choices)
    assert streamed == ref


def test_stop_seed_and_logit_bias(server, ref_llama, llm):
    client = server.client()
    full, _, _ = ref_chat(ref_llama, MSGS, max_tokens=24)
    word = full.split()[2]
    cut = client.chat.completions.create(model="smollm2", messages=MSGS, max_tokens=24, temperature=0, stop=[word])
    assert cut.choices[0].message.content == full[: full.index(word)]
    assert cut.choices[0].finish_reason == "stop"
    # logit_bias: ban the greedy first token; llama.cpp with the same bias is the reference
    banned = ref_llama.tokenize(full.encode(), add_bos=False, special=False)[0]
    biased = client.chat.completions.create(model="smollm2", messages=MSGS, max_tokens=N, temperature=0,
                                            logit_bias={str(banned): -100})
    ref_text, _, _ = ref_chat(ref_llama, MSGS, logit_bias={banned: -100.0})
    assert biased.choices[0].message.content == ref_text != full[: len(ref_text)]
    # a seed makes sampling reproducible
    kw = dict(model="smollm2", messages=MSGS, max_tokens=N, temperature=1.0, seed=1234)
    assert client.chat.completions.create(**kw).choices[0].message.content == client.chat.completions.create(**kw).choices[0].message.content


def test_models(server):
    ids = [m.id for m in server.client().models.list()]
    assert ids == ["smollm2"]


def _wav(data: bytes):
    with wave.open(io.BytesIO(data)) as w:
        assert (w.getnchannels(), w.getsampwidth()) == (1, 2)
        return w.getframerate(), np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")


def test_speech_wav_and_pcm(server):
    from edgegen.audio.voice import load_voice

    rate_expected = load_voice("joe").sample_rate
    client = server.client()
    text = "Hello from the edge. This is a test."
    wav = client.audio.speech.create(model="tts-1", voice="alloy", input=text, response_format="wav")
    rate, samples = _wav(wav.content)
    assert rate == rate_expected
    assert 0.8 < len(samples) / rate < 8 and np.abs(samples).max() > 3000  # speech, not silence
    pcm = client.audio.speech.create(model="tts-1", voice="alloy", input=text, response_format="pcm")
    assert len(pcm.content) % 2 == 0 and pcm.response.headers["x-sample-rate"] == str(rate)
    fast = client.audio.speech.create(model="tts-1", voice="alloy", input=text, response_format="pcm", speed=2.0)
    slow = client.audio.speech.create(model="tts-1", voice="alloy", input=text, response_format="pcm", speed=0.5)
    assert len(slow.content) > 2.5 * len(fast.content)
    with pytest.raises(openai.BadRequestError) as e:
        client.audio.speech.create(model="tts-1", voice="alloy", input=text, response_format="mp3")
    assert e.value.body["param"] == "response_format"


# ---- errors -------------------------------------------------------------------------------------

def _error(resp, status):
    assert resp.status_code == status, resp.text
    err = resp.json()["error"]
    assert set(err) == {"message", "type", "param", "code"} and err["message"]
    return err


@pytest.mark.parametrize("body, param", [
    (b'{"model": "smollm2", "messages": [', None),  # invalid JSON
    (b'{"model": "smollm2", "messages": [{"role": "user", "content": "hi"}], "temperature": "hot"}', "temperature"),
    (b'{"model": "smollm2", "messages": "hi"}', "messages"),
    (b'{"model": "smollm2", "messages": [{"role": "user", "content": "\xff\xfe"}]}', None),  # invalid UTF-8
    (b'{"model": "smollm2", "messages": [{"role": "user", "content": "\\ud800"}]}', None),  # lone surrogate
    (b'{"model": "smollm2", "messages": [{"role": "user", "content": "hi"}], "top_p": 7}', "top_p"),
    (b'{"model": "smollm2", "messages": [{"role": "wizard", "content": "hi"}]}', "messages"),
])
def test_bad_requests_are_400(server, body, param):
    import httpx

    err = _error(httpx.post(server.base + "/v1/chat/completions", content=body), 400)
    assert err["param"] == param


def test_unknown_model_and_context_overflow(server):
    client = server.client()
    with pytest.raises(openai.NotFoundError) as e:
        client.chat.completions.create(model="gpt-9", messages=MSGS)
    assert e.value.body["code"] == "model_not_found"
    long = [{"role": "user", "content": "word " * 2000}]
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model="smollm2", messages=long, stream=True)
    assert e.value.body["code"] == "context_length_exceeded"
    with pytest.raises(openai.BadRequestError):
        client.completions.create(model="smollm2", prompt="word " * 2000)
    assert client.chat.completions.create(model="smollm2", messages=MSGS, max_tokens=2).choices[0].message.content


def test_error_mid_stream_is_an_event_then_done(server, monkeypatch):
    import httpx

    from edgegen.errors import EdgegenError
    from edgegen.types import TextChunk

    def failing_chat(messages, params, **kw):
        def chunks():
            yield TextChunk("partial")
            raise EdgegenError("backend exploded")
        return chunks()

    monkeypatch.setattr(server.state.router, "chat", failing_chat)
    body = {"model": "smollm2", "messages": MSGS, "stream": True}
    with httpx.stream("POST", server.base + "/v1/chat/completions", json=body) as r:
        assert r.status_code == 200
        lines = [line for line in r.iter_lines() if line.startswith("data: ")]
    assert '"partial"' in lines[1] and "backend exploded" in lines[-2] and lines[-1] == "data: [DONE]"
    with pytest.raises(openai.APIError, match="backend exploded"):
        for _ in server.client().chat.completions.create(model="smollm2", messages=MSGS, stream=True):
            pass
    monkeypatch.undo()
    assert server.client().chat.completions.create(model="smollm2", messages=MSGS, max_tokens=2).choices[0].message.content


def test_host_header_checked_on_loopback(server):
    import httpx

    for host in (f"localhost:{server.port}", f"127.0.0.1:{server.port}", f"[::1]:{server.port}"):
        assert httpx.get(server.base + "/health", headers={"Host": host}).status_code == 200
    for host in (f"evil.example:{server.port}", "localhost", f"localhost:{server.port + 1}", f"127.0.0.1.nip.io:{server.port}"):
        err = _error(httpx.get(server.base + "/v1/models", headers={"Host": host}), 400)
        assert err["code"] == "invalid_host"


def test_api_key(make_server):
    s = make_server(api_key="s3cret")
    with pytest.raises(openai.AuthenticationError):
        s.client(api_key="wrong").models.list()
    assert [m.id for m in s.client(api_key="s3cret").models.list()] == ["smollm2"]


def test_full_queue_answers_429_with_retry_after(make_server):
    import httpx

    s = make_server(max_queue=0)
    release = s.occupy_slot()
    try:
        with pytest.raises(openai.RateLimitError):
            s.client().chat.completions.create(model="smollm2", messages=MSGS, max_tokens=2)
        r = httpx.post(s.base + "/v1/completions", json={"model": "smollm2", "prompt": "hi", "max_tokens": 2})
        assert _error(r, 429)["code"] == "queue_full" and int(r.headers["retry-after"]) >= 1
    finally:
        release.set()
    assert s.client().chat.completions.create(model="smollm2", messages=MSGS, max_tokens=2).choices[0].message.content


def test_a_local_chat_is_rendered_and_tokenized_once(server, llm, monkeypatch):
    from tests.llama_fixtures import count_render_and_tokenize

    calls = count_render_and_tokenize(monkeypatch, llm)
    client = server.client()
    assert client.chat.completions.create(model="smollm2", messages=MSGS, max_tokens=2, temperature=0).choices[0].message.content
    assert calls == {"render": 1, "tokenize": 1}
    assert "".join(c.choices[0].delta.content or "" for c in client.chat.completions.create(
        model="smollm2", messages=MSGS, max_tokens=2, temperature=0, stream=True) if c.choices)
    assert calls == {"render": 2, "tokenize": 2}
    client.completions.create(model="smollm2", prompt="The sky is", max_tokens=2, temperature=0)
    assert calls == {"render": 2, "tokenize": 3}


def test_logit_bias_outside_the_vocabulary_names_the_param(server, llm):
    import httpx

    body = {"model": "smollm2", "messages": MSGS, "logit_bias": {str(llm.backend.n_vocab): 1.0}}
    err = _error(httpx.post(server.base + "/v1/chat/completions", json=body), 400)
    assert err["param"] == "logit_bias" and "vocabulary" in err["message"]
