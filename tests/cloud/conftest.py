"""Cloud fixtures: a real OpenAI-compatible server (llama-cpp-python's, on the SmolLM2 file), a
fault-injecting HTTP proxy in front of it, and a socket guard that fails a test on any connect."""
from __future__ import annotations

import json
import os
import socket
import struct
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

SERVER_START_TIMEOUT_S = 180


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def model_path() -> str:
    from edgegen.llm import resolve_model_path

    return resolve_model_path("smollm2")


@pytest.fixture(scope="session")
def llama_server(model_path, tmp_path_factory):
    """`python -m llama_cpp.server` on 127.0.0.1; yields its base URL (…/v1)."""
    port = _free_port()
    log = tmp_path_factory.mktemp("llama_server") / "server.log"
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", model_path, "--host", "127.0.0.1",
           "--port", str(port), "--n_threads", "1", "--n_ctx", "2048"]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"llama_cpp.server exited with {proc.returncode}: {log.read_text()[-2000:]}")
            try:
                if httpx.get(f"{base}/models", timeout=1.0).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"llama_cpp.server did not come up: {log.read_text()[-2000:]}")
            time.sleep(0.25)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# ---- fault-injecting proxy ------------------------------------------------------------------------

def _sse(obj) -> bytes:
    return b"data: " + json.dumps(obj).encode() + b"\n\n"


def _delta(text: str) -> dict:
    return {"choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]}


class FaultProxy:
    """Requests to http://127.0.0.1:<port>/<mode>/v1/... get the fault named by <mode>;
    mode "ok" forwards to the real server, re-chunking the body into tiny writes."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.requests: list[dict] = []
        self.counts: dict[str, int] = {}
        self.release = threading.Event()  # ends stalls when the test session is over
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def do_POST(self):
                length = int(self.headers.get("content-length", "0"))
                body = self.rfile.read(length)
                mode, _, rest = self.path.lstrip("/").partition("/")
                proxy.requests.append({"mode": mode, "headers": dict(self.headers), "body": body})
                n = proxy.counts[mode] = proxy.counts.get(mode, 0) + 1
                getattr(proxy, "mode_" + mode.replace("-", "_"))(self, "/" + rest, body, n)

            def do_GET(self):
                self.send_response(404)
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, mode: str) -> str:
        return f"{self.base}/{mode}/v1"

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()

    # -- helpers --
    @staticmethod
    def _start_sse(h, status=200):
        h.send_response(status)
        h.send_header("content-type", "text/event-stream")
        h.send_header("connection", "close")
        h.end_headers()
        h.wfile.flush()

    @staticmethod
    def _reset(h):
        h.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        h.connection.close()

    @staticmethod
    def _status(h, status, body=b"", headers=()):
        h.send_response(status)
        for k, v in headers:
            h.send_header(k, v)
        h.send_header("content-length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    # -- modes --
    def mode_ok(self, h, path, body, n):
        headers = {"content-type": "application/json"}
        with httpx.stream("POST", self.upstream + path.removeprefix("/v1"), content=body, headers=headers, timeout=60) as r:
            h.send_response(r.status_code)
            h.send_header("content-type", r.headers.get("content-type", "application/json"))
            h.send_header("connection", "close")
            h.end_headers()
            for part in r.iter_bytes():
                for i in range(0, len(part), 7):  # tiny writes: events arrive split across reads
                    h.wfile.write(part[i : i + 7])
                    h.wfile.flush()

    def mode_stall(self, h, path, body, n):
        self._start_sse(h)
        self.release.wait(10)

    def mode_drip(self, h, path, body, n):
        """Keep-alive comments every 0.1 s forever: never idle, never done."""
        self._start_sse(h)
        try:
            while not self.release.wait(0.1):
                h.wfile.write(b": ping\n\n")
                h.wfile.flush()
        except OSError:  # the client gave up and closed
            pass

    def mode_redirect(self, h, path, body, n):
        self._status(h, 307, b"", [("location", "https://elsewhere.example/v1/chat/completions")])

    def mode_stall_mid(self, h, path, body, n):
        self._start_sse(h)
        h.wfile.write(_sse(_delta("Hel")))
        h.wfile.flush()
        self.release.wait(10)

    def mode_reset(self, h, path, body, n):
        self._reset(h)

    def mode_reset_mid(self, h, path, body, n):
        self._start_sse(h)
        h.wfile.write(_sse(_delta("Hel")))
        h.wfile.flush()
        self._reset(h)

    def mode_http500(self, h, path, body, n):
        self._status(h, 500, b'{"error": "boom"}')

    def mode_http503_once(self, h, path, body, n):
        if n == 1:
            self._status(h, 503, b"busy", [("retry-after", "0")])
        else:
            self.mode_ok(h, path, body, n)

    def mode_http429(self, h, path, body, n):
        self._status(h, 429, b"slow down", [("retry-after", "0.05")])

    def mode_http429_long(self, h, path, body, n):
        self._status(h, 429, b"slow down", [("retry-after", "3600")])

    def mode_http401_echo(self, h, path, body, n):
        self._status(h, 401, ("bad key: " + h.headers.get("authorization", "")).encode())

    def mode_nonjson(self, h, path, body, n):
        self._start_sse(h)
        h.wfile.write(b"data: this is not json\n\n")

    def mode_truncated(self, h, path, body, n):
        self._start_sse(h)
        h.wfile.write(_sse(_delta("Hel")))

    def mode_multiline(self, h, path, body, n):
        self._start_sse(h)
        raw = (
            b": keep-alive comment\r\n\r\n"
            b'data: {"choices": [{"index": 0, "delta":\r\n'
            b'data: {"content": "Hi \xe2\x9c\x93"}, "finish_reason": null}]}\r\n\r\n'
            b"event: message\r\n"
            b'data: {"choices": [{"index": 0, "delta": {"content": " there"}, "finish_reason": "stop"}]}\r\r'
            b'data: {"choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 2, "total_tokens": 9}}\n\n'
            b"data: [DONE]\n\n"
        )
        for i in range(len(raw)):  # one byte per write: every split point, mid-character included
            h.wfile.write(raw[i : i + 1])
            h.wfile.flush()


@pytest.fixture(scope="session")
def proxy(llama_server):
    p = FaultProxy(llama_server)
    yield p
    p.close()


@pytest.fixture
def blackhole_port():
    """A port whose accept queue is full: connects hang until the client's connect timeout."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(0)
    port = srv.getsockname()[1]
    fillers = []
    for _ in range(4):
        c = socket.socket()
        c.setblocking(False)
        try:
            c.connect(("127.0.0.1", port))
        except BlockingIOError:
            pass
        fillers.append(c)
    time.sleep(0.05)
    yield port
    for c in fillers:
        c.close()
    srv.close()


@pytest.fixture
def closed_port():
    return _free_port()  # nothing listens there: connection refused


@pytest.fixture
def no_network(monkeypatch):
    """Fails the test on any attempt to open a network connection."""
    attempts: list = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise AssertionError(f"network connection attempted: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    yield attempts
    assert attempts == [], f"network connections were attempted: {attempts}"


@pytest.fixture(scope="session")
def local_llm(model_path):
    import edgegen

    model = edgegen.load(model_path, backend="llama.cpp", n_ctx=256, n_threads=1)
    yield model
    model.backend.close()


@pytest.fixture
def api_key(monkeypatch):
    key = "sk-edgegen-test-" + os.urandom(8).hex()
    monkeypatch.setenv("EDGEGEN_CLOUD_API_KEY", key)
    return key
