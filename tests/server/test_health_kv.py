"""/health reports the native KV cache's blocks (what bench/soak.py checks for leaks)."""
from __future__ import annotations

import httpx
import pytest

import edgegen
from tests.fuzz.python.common import smollm2_path
from tests.server.server_harness import MODEL_ID, ThreadServer


@pytest.fixture(scope="module")
def native_server():
    llm = edgegen.load(str(smollm2_path()), backend="native", n_ctx=256, n_threads=1)
    with ThreadServer(llm) as s:
        yield s


def test_health_reports_kv_blocks_and_none_leak(native_server) -> None:
    before = httpx.get(native_server.base + "/health").json()["kv"]
    assert before == {"blocks_total": before["blocks_total"], "blocks_free": before["blocks_total"],
                      "blocks_referenced": 0, "tokens_cached": 0}
    r = httpx.post(native_server.base + "/v1/chat/completions", timeout=120,
                   json={"model": MODEL_ID, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4})
    assert r.status_code == 200
    kv = httpx.get(native_server.base + "/health").json()["kv"]
    assert kv["tokens_cached"] > 0 and kv["blocks_referenced"] > 0  # the prompt stays cached for reuse
    assert kv["blocks_total"] - kv["blocks_free"] == kv["blocks_referenced"]
