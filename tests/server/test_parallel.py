"""`edgegen serve --parallel 8 --prompt-cache DIR` on the native engine, driven by the official
`openai` client: eight concurrent streaming chats sharing a system prompt get complete, unmixed
greedy replies equal to what the model gives each alone; clients that leave free their slot and
KV; /metrics reports slots and KV bytes; the system prompt's KV is saved and loaded at restart."""
from __future__ import annotations

import threading
import time

import httpx
import pytest

import edgegen
from tests.server.server_harness import start_serve_subprocess, stop_process

N_TOKENS = 8
SYSTEM = "You are a friendly assistant on a train. Answer in one short sentence."
QUESTIONS = ["Where is the bar?", "When do we arrive?", "Is there wifi?", "Can I open the window?",
             "Where are the toilets?", "Is this seat free?", "What is the next stop?", "Hello!"]
LEAVERS = {"Is there wifi?", "Hello!"}


def _messages(q: str) -> list[dict]:
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": q}]


def _metrics(base: str) -> dict[str, float]:
    out = {}
    for line in httpx.get(base + "/metrics").text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def _wait(cond, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def _client(base: str, q: str, out: dict) -> None:
    import openai

    client = openai.OpenAI(base_url=base + "/v1", api_key="x", max_retries=0, timeout=120)
    parts: list[str] = []
    try:
        stream = client.chat.completions.create(model="smollm2", messages=_messages(q), temperature=0, stream=True,
                                                max_tokens=300 if q in LEAVERS else N_TOKENS)
        for event in stream:
            for choice in event.choices:
                if choice.delta.content:
                    parts.append(choice.delta.content)
            if q in LEAVERS and len(parts) >= 2:
                stream.close()
                break
        out[q] = "".join(parts)
    except Exception as exc:  # noqa: BLE001 - reported by the test
        out[q] = exc
    finally:
        client.close()


@pytest.mark.slow
def test_eight_parallel_streams_metrics_and_prompt_cache_restart(model_path, tmp_path) -> None:
    alone = edgegen.load(model_path, backend="native", n_ctx=512, n_threads=2)
    ref = {q: alone.chat(_messages(q), max_tokens=N_TOKENS, temperature=0.0).text for q in QUESTIONS if q not in LEAVERS}
    alone.backend.close()
    args = ("--model", model_path, "--backend", "native", "--ctx", "512", "--threads", "2", "--parallel", "8",
            "--model-id", "smollm2", "--prompt-cache", str(tmp_path))
    proc, base = start_serve_subprocess(*args)
    try:
        m = _metrics(base)
        assert m["edgegen_slots"] == 8 and m["edgegen_kv_used_bytes"] == 0
        out: dict = {}
        threads = [threading.Thread(target=_client, args=(base, q, out)) for q in QUESTIONS]
        for t in threads:
            t.start()
        for t in threads:
            t.join(180)
        for q in QUESTIONS:
            assert not isinstance(out[q], Exception), out[q]
            if q not in LEAVERS:
                assert out[q] == ref[q], q
        _wait(lambda: _metrics(base)["edgegen_requests_running"] == 0)
        _wait(lambda: list(tmp_path.glob("*.egkv")) != [])  # the system prompt went to disk
        m = _metrics(base)
        assert m['edgegen_requests_total{outcome="cancelled"}'] == len(LEAVERS)
        assert all(m[f'edgegen_kv_slot_bytes{{slot="{s}"}}'] == 0 for s in range(8))  # every slot's KV freed
        assert m["edgegen_prompt_tokens_reused_total"] > 0
    finally:
        stop_process(proc)
    proc, base = start_serve_subprocess(*args)  # a restart loads the system prompt from disk
    try:
        m = _metrics(base)
        assert m["edgegen_kv_saved_prefix_bytes"] > 0
        out = {}
        _client(base, QUESTIONS[0], out)
        assert out[QUESTIONS[0]] == ref[QUESTIONS[0]]
        assert _metrics(base)["edgegen_prompt_tokens_reused_total"] > 0
    finally:
        stop_process(proc)
