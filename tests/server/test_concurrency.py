"""`edgegen serve` in a subprocess: 16 concurrent streaming clients, some of which disconnect
mid-reply. Every client that stays gets exactly the greedy reply llama.cpp gives its own prompt
(complete and unmixed), every one that leaves is cancelled, and the queue, slots, threads and
memory return to baseline. Also: the serve CLI's bind policy."""
from __future__ import annotations

import os
import random
import subprocess
import sys
import threading
import time

import httpx
import pytest

from tests.server.server_harness import N_CTX, REPO, start_serve_subprocess, stop_process

N_CLIENTS = 16
N_TOKENS = 8
TOPICS = ["apples", "rivers", "the moon", "bicycles", "winter", "coffee", "trains", "music",
          "dogs", "volcanoes", "paper", "clocks", "bread", "oceans", "chess", "bees"]
MEMORY_SLACK = 48 << 20  # allocator noise; leaked KV or per-request buffers would grow past it


@pytest.fixture(scope="module")
def serve(model_path):
    proc, base = start_serve_subprocess("--model", model_path, "--backend", "llama.cpp", "--ctx", str(N_CTX),
                                        "--threads", "1", "--max-queue", "32", "--model-id", "smollm2")
    yield base
    stop_process(proc)


def _messages(topic: str) -> list[dict]:
    return [{"role": "user", "content": f"Write one sentence about {topic}."}]


def _client(base: str, topic: str, leave_after: int | None, max_tokens: int, out: dict) -> None:
    """Stream one chat; with `leave_after`, close the connection after that many content deltas."""
    import openai

    client = openai.OpenAI(base_url=base + "/v1", api_key="x", max_retries=0, timeout=120)
    parts: list[str] = []
    try:
        stream = client.chat.completions.create(model="smollm2", messages=_messages(topic), max_tokens=max_tokens,
                                                temperature=0, stream=True)
        for event in stream:
            for choice in event.choices:
                if choice.delta.content:
                    parts.append(choice.delta.content)
            if leave_after is not None and len(parts) >= leave_after:
                stream.close()  # the client goes away mid-reply
                break
        out[topic] = "".join(parts)
    except Exception as exc:  # reported by the test, not lost in a thread
        out[topic] = exc
    finally:
        client.close()


def _wait_idle(base: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        health = httpx.get(base + "/health").json()
        q = health["queue"]
        if q["running"] == 0 and q["waiting"] == 0:
            return health
        assert time.monotonic() < deadline, f"server did not go idle: {q}"
        time.sleep(0.1)


def _round(base: str, topics: list[str], leavers: set[str]) -> dict:
    out: dict = {}
    threads = [threading.Thread(target=_client, args=(base, t, 2 if t in leavers else None,
                                                      300 if t in leavers else N_TOKENS, out)) for t in topics]
    for t in threads:
        t.start()
    for t in threads:
        t.join(180)
    return out


def test_sixteen_concurrent_streams_with_disconnects(serve, ref_llama):
    base = serve
    # warm-up round (first-use allocations), then the baseline
    _round(base, TOPICS[:3], leavers={TOPICS[0]})
    before = _wait_idle(base)

    leavers = set(random.Random(6).sample(TOPICS, 5))
    out = _round(base, TOPICS, leavers)
    after = _wait_idle(base)

    for topic in TOPICS:
        got = out[topic]
        assert not isinstance(got, Exception), f"{topic}: {got!r}"
        if topic in leavers:
            assert got, topic
            continue
        ref = ref_llama.create_chat_completion(messages=_messages(topic), temperature=0.0, max_tokens=N_TOKENS)
        assert got == ref["choices"][0]["message"]["content"], topic
    q0, q1 = before["queue"], after["queue"]
    assert q1["cancelled"] - q0["cancelled"] == len(leavers)  # each leaver stopped, none ran to 300 tokens
    assert q1["completed"] - q0["completed"] == N_CLIENTS - len(leavers)
    assert q1["failed"] == q0["failed"] and q1["rejected"] == q0["rejected"]
    assert after["rss_bytes"] - before["rss_bytes"] < MEMORY_SLACK, (before["rss_bytes"], after["rss_bytes"])


def test_disconnected_non_streaming_request_is_cancelled(serve):
    base = serve
    before = _wait_idle(base)["queue"]
    body = {"model": "smollm2", "messages": _messages("a very long story"), "max_tokens": 400, "temperature": 0}
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(base + "/v1/chat/completions", json=body, timeout=httpx.Timeout(5.0, read=0.5))
    after = _wait_idle(base)["queue"]
    assert after["cancelled"] == before["cancelled"] + 1


def _serve_cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgegen", "serve", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=60, env=env)


def test_non_loopback_bind_needs_a_key():
    env = {k: v for k, v in os.environ.items() if k != "EDGEGEN_API_KEY"}
    r = _serve_cli("--host", "0.0.0.0", "--model", "/nonexistent.gguf", env=env)
    assert r.returncode == 2 and "API key" in r.stderr
    # with a key (from the environment) the bind policy passes and the next check speaks: the model
    r = _serve_cli("--host", "0.0.0.0", "--model", "/nonexistent.gguf", env={**env, "EDGEGEN_API_KEY": "k3y"})
    assert r.returncode == 1 and "nonexistent" in r.stderr and "k3y" not in r.stderr + r.stdout
    r = _serve_cli("--host", "0.0.0.0", "--insecure", "--model", "/nonexistent.gguf", env=env)
    assert r.returncode == 1 and "API key" not in r.stderr
