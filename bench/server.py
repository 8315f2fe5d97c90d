"""Server throughput and latency: `edgegen serve` vs llama-cpp-python's own server, same model,
same threads, same requests, in the same run.

For 1, 4 and 8 concurrent clients, each client sends streaming chat requests back to back
(greedy, fixed max_tokens); we measure requests/s over the round and the time to first content
token per request (p50/p95). Each configuration runs `--runs` times; the medians are printed
as a Markdown table.

    python3 bench/server.py --threads 2 --max-tokens 32 --requests 16 --runs 3 [--parallel 8]

Servers: `edgegen serve` on the native engine with `--parallel N` slots (one batched forward pass
per step for all running requests), `edgegen serve` on llama.cpp (one stream at a time), and
llama-cpp-python's `python -m llama_cpp.server` (one stream at a time). The last column is each
server's p95 TTFT over its own single-client median TTFT.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import threading
import time

import httpx

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)  # run from a checkout: `python3 bench/server.py`
SYSTEM = "You are a concise assistant. Answer in one or two sentences."
TOPICS = ["apples", "rivers", "the moon", "bicycles", "winter", "coffee", "trains", "music"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(cmd: list[str], base: str, timeout: float = 180) -> subprocess.Popen:
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{cmd[:4]} exited with {proc.returncode}")
        try:
            if httpx.get(base + "/v1/models", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    proc.kill()
    raise RuntimeError(f"{cmd[:4]} did not start")


def one_request(client: httpx.Client, base: str, model: str, topic: str, max_tokens: int) -> float:
    """Stream one chat; return the seconds to the first content delta."""
    body = {"model": model, "messages": [{"role": "system", "content": SYSTEM},
                                         {"role": "user", "content": f"Tell me about {topic}."}],
            "max_tokens": max_tokens, "temperature": 0, "stream": True}
    t0 = time.perf_counter()
    ttft = None
    with client.stream("POST", base + "/v1/chat/completions", json=body, timeout=300) as r:  # errors end the run
        r.raise_for_status()
        for line in r.iter_lines():
            if ttft is None and line.startswith("data: {"):
                choices = json.loads(line[6:]).get("choices") or [{}]
                if (choices[0].get("delta") or {}).get("content"):
                    ttft = time.perf_counter() - t0
    return ttft if ttft is not None else time.perf_counter() - t0


def round_(base: str, model: str, clients: int, requests: int, max_tokens: int) -> tuple[float, list[float]]:
    """`requests` requests spread over `clients` concurrent clients: (requests/s, TTFTs)."""
    ttfts: list[float] = []
    lock = threading.Lock()
    counter = iter(range(requests))

    def work() -> None:
        with httpx.Client() as c:
            while True:
                with lock:
                    i = next(counter, None)
                if i is None:
                    return
                t = one_request(c, base, model, TOPICS[i % len(TOPICS)], max_tokens)
                with lock:
                    ttfts.append(t)

    threads = [threading.Thread(target=work) for _ in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return requests / (time.perf_counter() - t0), ttfts


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--ctx", type=int, default=2048)
    ap.add_argument("--max-tokens", type=int, default=32)
    ap.add_argument("--requests", type=int, default=16, help="requests per round")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--clients", default="1,4,8")
    ap.add_argument("--parallel", type=int, default=8, help="slots of the native edgegen server")
    args = ap.parse_args()
    from edgegen.llm import resolve_model_path

    model = resolve_model_path("smollm2")
    servers = {}
    p0, p1, p2 = free_port(), free_port(), free_port()
    servers[f"edgegen serve (native, --parallel {args.parallel})"] = (
        [sys.executable, "-m", "edgegen", "serve", "--model", model, "--model-id", "smollm2", "--backend", "native",
         "--threads", str(args.threads), "--ctx", str(args.ctx), "--port", str(p0), "--max-queue", "64",
         "--parallel", str(args.parallel)],
        f"http://127.0.0.1:{p0}")
    servers["edgegen serve (llama.cpp backend)"] = (
        [sys.executable, "-m", "edgegen", "serve", "--model", model, "--model-id", "smollm2", "--backend", "llama.cpp",
         "--threads", str(args.threads), "--ctx", str(args.ctx), "--port", str(p1), "--max-queue", "64"],
        f"http://127.0.0.1:{p1}")
    servers["llama_cpp.server"] = (
        [sys.executable, "-m", "llama_cpp.server", "--model", model, "--model_alias", "smollm2", "--n_threads",
         str(args.threads), "--n_ctx", str(args.ctx), "--host", "127.0.0.1", "--port", str(p2),
         "--interrupt_requests", "False"],  # its default aborts a running stream when a new request arrives
        f"http://127.0.0.1:{p2}")
    procs = {name: start(cmd, base) for name, (cmd, base) in servers.items()}
    results: dict[tuple[str, int], list[tuple[float, float, float]]] = {}
    try:
        for name, (_, base) in servers.items():  # warm-up
            round_(base, "smollm2", 1, 2, args.max_tokens)
        for _ in range(args.runs):
            for clients in [int(c) for c in args.clients.split(",")]:
                for name, (_, base) in servers.items():  # interleaved, so load drift hits both alike
                    rps, ttfts = round_(base, "smollm2", clients, args.requests, args.max_tokens)
                    results.setdefault((name, clients), []).append((rps, pct(ttfts, 0.5), pct(ttfts, 0.95)))
    finally:
        for p in procs.values():
            p.terminate()
            p.wait(15)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cpus; threads {args.threads}; max_tokens {args.max_tokens}; "
          f"{args.requests} requests per round; medians of {args.runs} runs")
    print("| server | clients | requests/s | TTFT p50 (ms) | TTFT p95 (ms) | p95 / single TTFT |")
    print("|---|---|---|---|---|---|")
    for (name, clients), rows in sorted(results.items()):
        med = [statistics.median(r[i] for r in rows) for i in range(3)]
        single = results.get((name, 1))
        ratio = f"{med[2] / statistics.median(r[1] for r in single):.2f}x" if single else "–"
        print(f"| {name} | {clients} | {med[0]:.2f} | {med[1] * 1000:.0f} | {med[2] * 1000:.0f} | {ratio} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
