"""Errors in OpenAI's shape everywhere (`type`, snake_case `code`, `param` naming the field), and
`edgegen serve` binds before it announces itself."""
from __future__ import annotations

import os
import re
import socket
import subprocess
import sys

import httpx
import pytest

from edgegen.errors import ModelFormatError
from edgegen.server.errors import api_error
from tests.cli.blocked import REPO, run_cli

SNAKE = re.compile(r"[a-z][a-z0-9_]*")
HI = '[{"role": "user", "content": "hi"}]'


def _error(resp, status):
    assert resp.status_code == status, resp.text
    err = resp.json()["error"]
    assert set(err) == {"message", "type", "param", "code"} and err["message"]
    assert err["type"] in ("invalid_request_error", "authentication_error", "rate_limit_error", "server_error")
    assert SNAKE.fullmatch(err["code"]), err
    return err


@pytest.mark.parametrize("path, body, status, param, code", [
    ("/v1/chat/completions", f'{{"model": "smollm2", "messages": {HI}, "max_tokens": -1}}', 400, "max_tokens", "invalid_value"),
    ("/v1/chat/completions", f'{{"model": "smollm2", "messages": {HI}, "top_p": 7}}', 400, "top_p", "invalid_value"),
    ("/v1/chat/completions", f'{{"model": "smollm2", "messages": {HI}, "n": 2}}', 400, "n", "invalid_value"),
    ("/v1/chat/completions", f'{{"model": "smollm2", "messages": {HI}, "stop": [""]}}', 400, "stop", "invalid_value"),
    ("/v1/completions", '{"model": "smollm2", "prompt": "' + "word " * 2000 + '"}', 400, "prompt", "context_length_exceeded"),
    ("/v1/completions", '{"model": "smollm2", "prompt": "hi", "echo": true}', 400, "echo", "invalid_value"),
    ("/v1/completions", '{"model": "smollm2", "prompt": ["a", "b"]}', 400, "prompt", "invalid_value"),
    ("/v1/audio/speech", '{"model": "tts-1", "voice": "alloy", "input": "hi", "speed": 9}', 400, "speed", "invalid_value"),
    ("/v1/nowhere", "{}", 404, None, "not_found"),
])
def test_error_bodies_have_openai_shape(server, path, body, status, param, code):
    err = _error(httpx.post(server.base + path, content=body.encode()), status)
    assert (err["param"], err["code"]) == (param, code)


def test_server_errors_have_snake_case_codes():
    err = api_error(ModelFormatError("bad tensor")).body()["error"]
    assert (err["type"], err["code"]) == ("server_error", "model_format_error")
    assert api_error(RuntimeError("boom")).body()["error"]["code"] == "internal_error"


def test_serve_on_a_busy_port_is_one_error_and_no_banner():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = run_cli(["serve", "--port", str(port)])
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [f"edgegen serve: error: cannot listen on 127.0.0.1:{port}: Address already in use"]


def test_serve_announces_only_a_bound_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "edgegen", "serve", "--port", str(port), "--ctx", "256", "-t", "1"],
                            stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)
    try:
        banner = proc.stderr.readline()
        assert f"on http://127.0.0.1:{port}/v1" in banner
        with socket.create_connection(("127.0.0.1", port), timeout=5):  # bound (and listening) by now
            pass
        assert httpx.get(f"http://127.0.0.1:{port}/health", timeout=30).json()["status"] == "ok"
    finally:
        proc.terminate()
        proc.wait(timeout=30)
