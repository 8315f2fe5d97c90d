"""edgegen.Cloud against a real OpenAI-compatible server (llama-cpp-python's) and injected faults."""
from __future__ import annotations

import json
import logging
import threading

import pytest

from edgegen.cloud import Cloud
from edgegen.errors import CloudError
from edgegen.types import ChatResult, TextChunk, Usage

MSG = [{"role": "user", "content": "Say hi"}]
FAST = dict(idle_timeout=0.5, connect_timeout=0.5, timeout=30.0, max_retry_after=1.0)


def _cloud(url, **kw):
    # sub-second idle timeouts for injected faults; the real server on a busy 2-core box gets slack
    real = any(f"/{mode}/" in url for mode in ("ok", "http503_once"))
    return Cloud(url, "smollm2", **{**FAST, **({"idle_timeout": 30.0} if real else {}), **kw})


def test_non_streaming_chat_matches_the_server(proxy, llama_server):
    import httpx

    ref = httpx.post(f"{llama_server}/chat/completions", json={"model": "x", "messages": MSG, "max_tokens": 6, "temperature": 0}, timeout=60).json()
    out = _cloud(proxy.url("ok")).chat(MSG, max_tokens=6, temperature=0)
    assert isinstance(out, ChatResult)
    assert out.text == ref["choices"][0]["message"]["content"]
    assert out.usage == Usage(ref["usage"]["prompt_tokens"], ref["usage"]["completion_tokens"])
    assert (out.route, out.backend, out.finish_reason) == ("cloud", "cloud", ref["choices"][0]["finish_reason"])


def test_streaming_chat_split_into_tiny_reads_gives_the_same_text(proxy):
    cloud = _cloud(proxy.url("ok"))
    whole = cloud.chat(MSG, max_tokens=6, temperature=0)
    chunks = list(cloud.chat(MSG, max_tokens=6, temperature=0, stream=True))
    assert all(isinstance(c, TextChunk) and c.route == "cloud" for c in chunks)
    assert "".join(c.text for c in chunks) == whole.text
    assert chunks[-1].finish_reason == whole.finish_reason and chunks[-1].usage is not None
    # the server sends no usage in streams: one delta per token is counted instead
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens
    sent = json.loads(proxy.requests[-1]["body"])
    assert sent["stream"] is True and sent["max_tokens"] == 6 and sent["messages"] == MSG


def test_multiline_crlf_events_and_usage_parse_byte_by_byte(proxy):
    chunks = list(_cloud(proxy.url("multiline")).chat(MSG, stream=True))
    assert "".join(c.text for c in chunks) == "Hi ✓ there"
    assert chunks[-1].finish_reason == "stop"
    assert chunks[-1].usage == Usage(7, 2)


@pytest.mark.parametrize(
    "mode,kind",
    [("stall", "idle_timeout"), ("nonjson", "protocol"), ("truncated", "protocol"), ("reset", "reset")],
)
def test_faults_become_typed_cloud_errors(proxy, mode, kind):
    with pytest.raises(CloudError) as info:
        list(_cloud(proxy.url(mode)).chat(MSG, stream=True))
    assert info.value.kind == kind


def test_keepalives_do_not_extend_the_whole_request_timeout(proxy):
    with pytest.raises(CloudError) as info:
        list(_cloud(proxy.url("drip"), timeout=0.5).chat(MSG, stream=True))
    assert info.value.kind == "timeout"


def test_redirects_are_not_followed(proxy, api_key):
    with pytest.raises(CloudError) as info:
        _cloud(proxy.url("redirect")).chat(MSG)
    assert info.value.status == 307
    assert proxy.counts["redirect"] == 1


def test_a_stall_mid_stream_is_an_idle_timeout_after_the_text_so_far(proxy):
    stream = _cloud(proxy.url("stall_mid")).chat(MSG, stream=True)
    assert next(stream).text == "Hel"
    with pytest.raises(CloudError) as info:
        next(stream)
    assert info.value.kind == "idle_timeout"


def test_reset_mid_stream(proxy):
    stream = _cloud(proxy.url("reset_mid")).chat(MSG, stream=True)
    assert next(stream).text == "Hel"
    with pytest.raises(CloudError) as info:
        list(stream)
    assert info.value.kind in ("reset", "protocol")


def test_5xx_is_retried_a_bounded_number_of_times(proxy):
    before = proxy.counts.get("http500", 0)
    with pytest.raises(CloudError) as info:
        _cloud(proxy.url("http500"), max_retries=2).chat(MSG)
    assert (info.value.kind, info.value.status) == ("http", 500)
    assert proxy.counts["http500"] - before == 3


def test_503_with_retry_after_then_success(proxy):
    out = _cloud(proxy.url("http503_once")).chat(MSG, max_tokens=3, temperature=0)
    assert out.route == "cloud" and out.text
    assert proxy.counts["http503_once"] == 2


def test_429_retry_after_is_honoured_then_gives_up(proxy):
    before = proxy.counts.get("http429", 0)
    with pytest.raises(CloudError) as info:
        list(_cloud(proxy.url("http429"), max_retries=1).chat(MSG, stream=True))
    assert info.value.status == 429 and info.value.retry_after == pytest.approx(0.05)
    assert proxy.counts["http429"] - before == 2


def test_retry_after_beyond_the_cap_fails_at_once(proxy):
    before = proxy.counts.get("http429_long", 0)
    with pytest.raises(CloudError) as info:
        _cloud(proxy.url("http429_long"), max_retries=3).chat(MSG)
    assert info.value.status == 429
    assert proxy.counts["http429_long"] - before == 1


def test_connect_timeout_and_refused_connection(blackhole_port, closed_port):
    with pytest.raises(CloudError) as info:
        _cloud(f"http://127.0.0.1:{blackhole_port}/v1", connect_timeout=0.2).chat(MSG)
    assert info.value.kind == "connect_timeout"
    with pytest.raises(CloudError) as info:
        _cloud(f"http://127.0.0.1:{closed_port}/v1").chat(MSG)
    assert info.value.kind == "unreachable"


def test_api_key_is_sent_but_never_shown(proxy, api_key, caplog):
    caplog.set_level(logging.DEBUG)
    cloud = _cloud(proxy.url("http401_echo"))
    with pytest.raises(CloudError) as info:
        cloud.chat(MSG)
    assert proxy.requests[-1]["headers"].get("authorization") == f"Bearer {api_key}"
    assert info.value.status == 401
    assert "bad key" in str(info.value)
    for text in (str(info.value), repr(info.value), repr(cloud), caplog.text):
        assert api_key not in text


def test_cancel_a_cloud_stream(proxy):
    event = threading.Event()
    stream = _cloud(proxy.url("ok")).chat(MSG, stream=True, max_tokens=20, temperature=0, cancel=event)
    first = next(stream)
    assert first.text
    event.set()
    rest = list(stream)
    assert rest[-1].finish_reason == "cancelled"


def test_cancel_while_waiting_to_retry_ends_like_any_cancel(proxy):
    """Cancelling is not a fault: the stream ends with a "cancelled" chunk, the call returns a
    "cancelled" result, and no retry is sent after the cancel."""
    event = threading.Event()
    event.set()  # the first 500 is answered; the wait before the retry sees the cancel at once
    before = proxy.counts.get("http500", 0)
    chunks = list(_cloud(proxy.url("http500"), max_retries=2).chat(MSG, stream=True, cancel=event))
    assert [(c.text, c.finish_reason, c.route) for c in chunks] == [("", "cancelled", "cloud")]
    result = _cloud(proxy.url("http500"), max_retries=2).chat(MSG, cancel=event)
    assert (result.text, result.finish_reason, result.route) == ("", "cancelled", "cloud")
    assert proxy.counts["http500"] - before == 2
