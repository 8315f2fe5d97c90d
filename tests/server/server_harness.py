"""Test harness for the server tests: real uvicorn servers on free loopback ports, in a thread over
an already loaded model, or `edgegen serve` in a subprocess."""
from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import threading
import time

import httpx

N_CTX = 512
MODEL_ID = "smollm2"
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ThreadServer:
    """A real uvicorn server in a daemon thread; `.base` is its http://127.0.0.1:PORT."""

    def __init__(self, llm, **config) -> None:
        import uvicorn

        from edgegen.server.app import ServerConfig, create_app

        self.port = free_port()
        self.config = ServerConfig(model_id=MODEL_ID, port=self.port, **config)
        self.app = create_app(llm, self.config)
        self.state = self.app.app.state.server  # the guard wraps the FastAPI app
        self.server = uvicorn.Server(uvicorn.Config(self.app, host="127.0.0.1", port=self.port,
                                                    log_level="warning", access_log=False))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.base = f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> "ThreadServer":
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(15)

    def client(self, **kw):
        import openai

        kw.setdefault("api_key", "unused")
        kw.setdefault("max_retries", 0)
        return openai.OpenAI(base_url=self.base + "/v1", timeout=60, **kw)

    def occupy_slot(self):
        """Hold the only generation slot until the returned event is set (deterministic busy server)."""
        release, started = threading.Event(), threading.Event()

        def start(cancel):
            started.set()
            release.wait(60)
            return iter(())

        async def submit():
            self.state.worker.submit(start)

        asyncio.run(submit())
        assert started.wait(10)
        return release


def start_serve_subprocess(*args: str, env=None, timeout: float = 120):
    """`python -m edgegen serve ...` on a free port; returns (process, base URL) once /health answers."""
    port = free_port()
    cmd = [sys.executable, "-m", "edgegen", "serve", "--port", str(port), *args]
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"edgegen serve exited {proc.returncode}: {proc.stdout.read().decode()[-2000:]}")
        try:
            if httpx.get(base + "/health", timeout=1).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError("edgegen serve did not come up")
        time.sleep(0.2)


def stop_process(proc) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
