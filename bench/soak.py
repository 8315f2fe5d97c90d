"""Server soak: many concurrent clients against `edgegen serve` on loopback for a bounded time,
mixing well-behaved and hostile traffic, then checking the server is whole.

Traffic (each client loops, picking one kind at random, until the deadline):
  chat / stream / completion   greedy requests over a fixed prompt set; every answer must equal that
                               prompt's reference answer (taken before the soak), so a reply mixed
                               between clients, cut short or corrupted is caught; SSE streams must
                               keep one id and end with [DONE]
  disconnect                   a stream dropped after a few chunks (what arrived must be a prefix)
  slow_reader                  a stream read with pauses between chunks
  speech                       /v1/audio/speech: a well-formed WAV with samples
  transcribe                   /v1/audio/transcriptions (multipart): the server's own speech for a
                               prompt, whose text must equal that clip's reference transcript; or a
                               hostile upload (truncated WAV, not audio, no file field, not
                               multipart: 400 expected)
  slowloris                    headers trickled one byte at a time, never finished, then dropped
  big_body                     a 10 MB body (413 expected)
  bad_utf8                     invalid UTF-8 in the JSON body (400 expected)
  wrong_type                   a valid body sent as text/plain, and a form body (200 or 4xx)

Afterwards: the server process is alive, every answer was complete or a clean error (JSON error
body, 4xx or 429), nothing was mixed, no slot is running or waiting, the KV cache holds only the
blocks its cached sequences reference, and RSS has not grown by more than --rss-tolerance over its
level after warm-up (a leak grows; a fall is memory handed back and is reported, not failed).
Warm-up: every kind runs a few times before the traffic starts, and the reference level is taken
once the traffic has served every kind at least WARMUP_SERVED times and --warmup-fraction of the
run has passed. Resident memory is sampled split into anonymous (heap, arenas) and file-backed
(the mapped model and libraries, which the kernel may drop under memory pressure) pages.
Exit status 0 only when all of that holds.

    flock /tmp/edgegen-bench.lock python3 bench/soak.py --duration 600 --clients 64
    python3 bench/soak.py --rss-probe big_body,speech --clients 8   # where RSS moves, kind by kind
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import threading
import time
from typing import Any, Optional

import httpx

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROMPTS = ["Name a fruit.", "What colour is the sky?", "Say hello.", "Count to five.", "Name a planet.",
           "What is two plus two?", "Give me a word that rhymes with cat.", "Name an ocean."]
KINDS = {"chat": 18, "stream": 18, "completion": 8, "disconnect": 10, "slow_reader": 8, "speech": 6,
         "transcribe": 6, "slowloris": 4, "big_body": 3, "bad_utf8": 6, "wrong_type": 6}
CLIPS = PROMPTS[:3]  # spoken by the server itself, then transcribed
CLEAN_4XX = {400, 404, 413, 415, 422, 429}
HOSTILE_UPLOADS = ("truncated", "not_audio", "no_file", "not_multipart")
WARMUP_SERVED = 3  # served answers (ok or clean 4xx, not 429) of every kind before the RSS reference


def proc_rss(pid: int) -> dict[str, int]:
    """Resident bytes of a process: total, anonymous and file-backed (/proc/PID/status)."""
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                key, _, rest = line.partition(":")
                if key in ("VmRSS", "RssAnon", "RssFile"):
                    out[key] = int(rest.split()[0]) * 1024
    except (OSError, ValueError, IndexError):
        return {}
    return {"total": out.get("VmRSS", 0), "anon": out.get("RssAnon", 0), "file": out.get("RssFile", 0)}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Soak:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.deadline = 0.0
        self.ref_chat: dict[str, str] = {}
        self.ref_completion: dict[str, str] = {}
        self.clips: dict[str, bytes] = {}  # prompt -> WAV of it spoken by the server
        self.ref_transcript: dict[str, str] = {}
        self.lock = threading.Lock()
        self.outcomes: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
        self.violations: list[str] = []
        self.latency: dict[str, list[float]] = collections.defaultdict(list)
        self.rss: list[tuple[float, dict[str, int]]] = []  # (seconds into the run, proc_rss())
        self.t0 = 0.0
        self.served_at: dict[str, list[float]] = collections.defaultdict(list)  # kind -> times served
        self.proc: Optional[subprocess.Popen] = None

    # ---- bookkeeping ---------------------------------------------------------------------------
    def record(self, kind: str, outcome: str, detail: str = "", seconds: float = 0.0) -> None:
        with self.lock:
            self.outcomes[kind][outcome] += 1
            if outcome in ("ok", "clean_error") and self.t0:
                self.served_at[kind].append(time.monotonic() - self.t0)
            if outcome == "violation":
                self.violations.append(f"{kind}: {detail}"[:500])
            elif outcome == "ok" and seconds:
                self.latency[kind].append(seconds)

    def clean_error(self, kind: str, r: httpx.Response) -> None:
        try:
            body = r.json()
            ok = isinstance(body.get("error", {}).get("message"), str)
        except (ValueError, AttributeError):
            ok = False
        if r.status_code in CLEAN_4XX and ok:
            self.record(kind, "queue_full" if r.status_code == 429 else "clean_error")
        else:
            self.record(kind, "violation", f"status {r.status_code}: {r.text[:200]!r}")

    # ---- server --------------------------------------------------------------------------------
    def start_server(self) -> None:
        a = self.args
        cmd = [sys.executable, "-m", "edgegen", "serve", "--model", a.model, "--port", str(self.port),
               "--max-queue", str(a.max_queue), "--ctx", "1024", "--model-id", "m"]
        if a.threads:
            cmd += ["--threads", str(a.threads)]
        env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
        self.proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        t_end = time.monotonic() + 180
        while time.monotonic() < t_end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}: {self.proc.stderr.read().decode()[-2000:]}")
            try:
                if httpx.get(self.base + "/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise RuntimeError("server did not start")

    def health(self) -> dict[str, Any]:
        return httpx.get(self.base + "/health", timeout=30).json()

    # ---- well-behaved requests -----------------------------------------------------------------
    def chat_body(self, prompt: str, stream: bool) -> dict[str, Any]:
        return {"model": "m", "messages": [{"role": "user", "content": prompt}], "max_tokens": self.args.max_tokens,
                "temperature": 0, "stream": stream}

    def completion_body(self, prompt: str, stream: bool) -> dict[str, Any]:
        return {"model": "m", "prompt": prompt, "max_tokens": self.args.max_tokens, "temperature": 0, "stream": stream}

    def read_stream(self, r: httpx.Response, pause: float = 0.0, stop_after: Optional[int] = None) -> tuple[str, bool]:
        """(text, finished): concatenated deltas; finished when [DONE] arrived. Checks one id."""
        text, ids, chunks = [], set(), 0
        for line in r.iter_lines():
            if not line.startswith("data: "):
                continue
            data = line[6:]
            if data == "[DONE]":
                return "".join(text), True
            obj = json.loads(data)
            if "error" in obj:
                raise ValueError(f"error event in stream: {obj['error']}")
            ids.add(obj["id"])
            if len(ids) > 1:
                raise ValueError(f"stream mixes response ids {ids}")
            choice = obj["choices"][0] if obj.get("choices") else {}
            text.append((choice.get("delta") or {}).get("content") or choice.get("text") or "")
            chunks += 1
            if stop_after is not None and chunks >= stop_after:
                return "".join(text), False
            if pause:
                time.sleep(pause)
        return "".join(text), False

    def do_request(self, c: httpx.Client, kind: str) -> None:
        prompt = random.choice(PROMPTS)
        chat = kind != "completion"
        stream = kind in ("stream", "disconnect", "slow_reader") or (kind == "completion" and random.random() < 0.5)
        url = "/v1/chat/completions" if chat else "/v1/completions"
        body = self.chat_body(prompt, stream) if chat else self.completion_body(prompt, stream)
        ref = (self.ref_chat if chat else self.ref_completion)[prompt]
        t0 = time.monotonic()
        if not stream:
            r = c.post(url, json=body)
            if r.status_code != 200:
                return self.clean_error(kind, r)
            obj = r.json()
            got = obj["choices"][0]["message"]["content"] if chat else obj["choices"][0]["text"]
            if got != ref:
                return self.record(kind, "violation", f"{prompt!r}: got {got!r}, expected {ref!r}")
            return self.record(kind, "ok", seconds=time.monotonic() - t0)
        with c.stream("POST", url, json=body) as r:
            if r.status_code != 200:
                r.read()
                return self.clean_error(kind, r)
            if kind == "disconnect":
                text, _ = self.read_stream(r, stop_after=random.randint(1, 4))
                if not ref.startswith(text):
                    return self.record(kind, "violation", f"{prompt!r}: prefix {text!r} of {ref!r}")
                return self.record(kind, "ok")  # leaving the block closes the connection mid-stream
            text, done = self.read_stream(r, pause=random.uniform(0.1, 0.4) if kind == "slow_reader" else 0.0)
        if not done or text != ref:
            return self.record(kind, "violation", f"{prompt!r}: got {text!r} (done={done}), expected {ref!r}")
        self.record(kind, "ok", seconds=time.monotonic() - t0)

    def do_speech(self, c: httpx.Client) -> None:
        r = c.post("/v1/audio/speech", json={"model": "tts-1", "voice": "alloy", "input": random.choice(PROMPTS)})
        if r.status_code != 200:
            return self.clean_error("speech", r)
        b = r.content
        if b[:4] != b"RIFF" or b[8:12] != b"WAVE" or len(b) < 44 + 1000:
            return self.record("speech", "violation", f"not a WAV with samples ({len(b)} bytes)")
        self.record("speech", "ok")

    def transcribe(self, c: httpx.Client, files: Any, data: Optional[dict[str, str]] = None) -> httpx.Response:
        return c.post("/v1/audio/transcriptions", files=files, data={"model": "whisper-1"} if data is None else data)

    def do_transcribe(self, c: httpx.Client, case: Optional[str] = None) -> None:
        clip = random.choice(CLIPS)
        wav = self.clips[clip]
        if case is None:
            case = random.choice(HOSTILE_UPLOADS) if random.random() < 0.35 else "clip"
        if case == "clip":
            r = self.transcribe(c, {"file": ("clip.wav", wav, "audio/wav")})
            if r.status_code != 200:
                return self.clean_error("transcribe", r)
            got = r.json().get("text")
            if got != self.ref_transcript[clip]:
                return self.record("transcribe", "violation", f"{clip!r}: got {got!r}, expected {self.ref_transcript[clip]!r}")
            return self.record("transcribe", "ok")
        if case == "truncated":  # the header promises more samples than the upload holds
            r = self.transcribe(c, {"file": ("cut.wav", wav[:len(wav) // 3], "audio/wav")})
        elif case == "not_audio":
            r = self.transcribe(c, {"file": ("x.wav", os.urandom(4096), "audio/wav")})
        elif case == "no_file":
            r = c.post("/v1/audio/transcriptions", data={"model": "whisper-1"}, files={"other": ("a.txt", b"x")})
        else:
            r = c.post("/v1/audio/transcriptions", json={"model": "whisper-1", "file": "clip.wav"})
        if r.status_code != 400:
            return self.record("transcribe", "violation", f"{case} upload: status {r.status_code}: {r.text[:200]!r}")
        self.clean_error("transcribe", r)

    # ---- hostile requests ----------------------------------------------------------------------
    def do_slowloris(self) -> None:
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
            s.sendall(f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n".encode())
            end = min(self.deadline, time.monotonic() + random.uniform(5, 15))
            try:
                for ch in "X-Slow: " + "a" * 10_000:
                    if time.monotonic() > end:
                        break
                    s.sendall(ch.encode())
                    time.sleep(0.25)
            except OSError:
                pass  # the server may hang up on a client that never finishes its headers: fine
        self.record("slowloris", "ok")

    def do_big_body(self, c: httpx.Client) -> None:
        body = b'{"model": "m", "prompt": "' + b"a" * (10 << 20) + b'"}'
        r = c.post("/v1/completions", content=body, headers={"content-type": "application/json"})
        if r.status_code != 413:
            return self.record("big_body", "violation", f"10 MB body: status {r.status_code}")
        self.clean_error("big_body", r)

    def do_bad_utf8(self, c: httpx.Client) -> None:
        body = b'{"model": "m", "messages": [{"role": "user", "content": "caf\xe9 \xff\xfe \xed\xa0\x80"}]}'
        r = c.post("/v1/chat/completions", content=body, headers={"content-type": "application/json"})
        if r.status_code != 400:
            return self.record("bad_utf8", "violation", f"invalid UTF-8: status {r.status_code}")
        self.clean_error("bad_utf8", r)

    def do_wrong_type(self, c: httpx.Client) -> None:
        prompt = random.choice(PROMPTS)
        if random.random() < 0.5:  # valid JSON labelled text/plain: answered (or refused cleanly)
            r = c.post("/v1/chat/completions", content=json.dumps(self.chat_body(prompt, False)),
                       headers={"content-type": "text/plain"})
            if r.status_code == 200:
                got = r.json()["choices"][0]["message"]["content"]
                if got != self.ref_chat[prompt]:
                    return self.record("wrong_type", "violation", f"text/plain body: got {got!r}")
                return self.record("wrong_type", "ok")
            return self.clean_error("wrong_type", r)
        r = c.post("/v1/chat/completions", data={"model": "m", "prompt": prompt})  # a form body
        self.clean_error("wrong_type", r)

    # ---- the run -------------------------------------------------------------------------------
    def client_loop(self, seed: int) -> None:
        rng = random.Random(seed)
        kinds, weights = zip(*KINDS.items())
        with httpx.Client(base_url=self.base, timeout=httpx.Timeout(300, connect=30)) as c:
            while time.monotonic() < self.deadline:
                kind = rng.choices(kinds, weights)[0]
                random.seed(rng.random())
                self.do_kind(c, kind)

    def do_kind(self, c: httpx.Client, kind: str, case: Optional[str] = None) -> None:
        try:
            if kind in ("chat", "stream", "completion", "disconnect", "slow_reader"):
                self.do_request(c, kind)
            elif kind == "speech":
                self.do_speech(c)
            elif kind == "transcribe":
                self.do_transcribe(c, case)
            elif kind == "slowloris":
                self.do_slowloris()
            elif kind == "big_body":
                self.do_big_body(c)
            elif kind == "bad_utf8":
                self.do_bad_utf8(c)
            else:
                self.do_wrong_type(c)
        except Exception as exc:  # noqa: BLE001 - every failure is counted and reported
            self.record(kind, "violation", f"{type(exc).__name__}: {exc}")

    def warm_up(self) -> None:
        """Every kind a few times (every hostile upload once) from a few clients, before the traffic:
        each code path has allocated its buffers before RSS is watched. Counted like the traffic."""
        jobs = [(kind, None) for kind in KINDS for _ in range(WARMUP_SERVED)]
        jobs += [("transcribe", case) for case in HOSTILE_UPLOADS]
        random.shuffle(jobs)
        self.deadline = time.monotonic() + 120  # bounds the slowloris clients of the warm-up
        lock = threading.Lock()

        def worker() -> None:
            with httpx.Client(base_url=self.base, timeout=httpx.Timeout(300, connect=30)) as c:
                while True:
                    with lock:
                        if not jobs:
                            return
                        kind, case = jobs.pop()
                    self.do_kind(c, kind, case)

        threads = [threading.Thread(target=worker, daemon=True) for _ in range(min(8, self.args.clients))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    def monitor(self, t0: float) -> None:
        while self.proc.poll() is None and time.monotonic() < self.deadline + 5:
            rss = proc_rss(self.proc.pid)
            if rss:
                self.rss.append((time.monotonic() - t0, rss))
            time.sleep(5)

    def rss_probe(self, kinds: list[str], rounds: int, per_client: int) -> None:
        """Where RSS moves: rounds of one kind at a time (--clients clients, per_client requests
        each), RSS printed after each round."""
        self.start_server()
        self.references()
        self.deadline = time.monotonic() + 3600

        def show(label: str) -> None:
            parts = {k: round(v / 2**20, 1) for k, v in proc_rss(self.proc.pid).items()}
            print(f"{label:<16} RSS {parts['total']:7.1f} MiB (anon {parts['anon']:7.1f}, file {parts['file']:5.1f})",
                  dict(self.outcomes.get(label.split()[0], {})), flush=True)

        def client() -> None:
            with httpx.Client(base_url=self.base, timeout=httpx.Timeout(300, connect=30)) as c:
                for _ in range(per_client):
                    self.do_kind(c, kind)

        show("start")
        for kind in kinds:
            for r in range(rounds):
                threads = [threading.Thread(target=client) for _ in range(self.args.clients)]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()
                show(f"{kind} {r + 1}")

    def references(self) -> None:
        """The reference answers, clips and transcripts every later answer is compared with."""
        with httpx.Client(base_url=self.base, timeout=300) as c:  # references, which also warm up
            for p in PROMPTS:
                self.ref_chat[p] = c.post("/v1/chat/completions", json=self.chat_body(p, False)).json()["choices"][0]["message"]["content"]
                self.ref_completion[p] = c.post("/v1/completions", json=self.completion_body(p, False)).json()["choices"][0]["text"]
            c.post("/v1/audio/speech", json={"model": "tts-1", "voice": "alloy", "input": "Warm up."})
            for p in CLIPS:  # the clips and their reference transcripts (this also loads the recogniser)
                self.clips[p] = c.post("/v1/audio/speech", json={"model": "tts-1", "voice": "alloy", "input": p}).content
                r = self.transcribe(c, {"file": ("clip.wav", self.clips[p], "audio/wav")})
                if r.status_code != 200:
                    raise RuntimeError(f"transcription before the soak failed: {r.status_code} {r.text[:300]}")
                self.ref_transcript[p] = r.json()["text"]

    def run(self) -> dict[str, Any]:
        a = self.args
        self.start_server()
        self.references()
        self.warm_up()
        t0 = self.t0 = time.monotonic()
        self.deadline = t0 + a.duration
        threads = [threading.Thread(target=self.client_loop, args=(i,), daemon=True) for i in range(a.clients)]
        mon = threading.Thread(target=self.monitor, args=(t0,), daemon=True)
        for t in threads + [mon]:
            t.start()
        for t in threads:
            t.join(timeout=max(1.0, self.deadline - time.monotonic()) + 600)
        stuck = sum(t.is_alive() for t in threads)
        return self.finish(t0, stuck)

    def finish(self, t0: float, stuck: int) -> dict[str, Any]:
        a = self.args
        alive = self.proc.poll() is None
        idle, kv, final_ok = None, None, False
        if alive:
            end = time.monotonic() + 120
            while time.monotonic() < end:  # slots drain: running and waiting reach 0, the KV is readable
                h = self.health()
                q, kv = h["queue"], h.get("kv")
                if q["running"] == 0 and q["waiting"] == 0 and kv is not None:
                    idle = q
                    break
                time.sleep(1)
            p = PROMPTS[0]
            r = httpx.post(self.base + "/v1/chat/completions", json=self.chat_body(p, False), timeout=300)
            final_ok = r.status_code == 200 and r.json()["choices"][0]["message"]["content"] == self.ref_chat[p]
            time.sleep(1)
            rss = proc_rss(self.proc.pid)
            if rss:
                self.rss.append((time.monotonic() - t0, rss))
        # warm-up ends once the fraction has passed and every kind was served WARMUP_SERVED times in
        # the traffic (so the reference is the steady state, not a level before some buffer exists)
        served = [sorted(self.served_at.get(k, []))[WARMUP_SERVED - 1] if len(self.served_at.get(k, [])) >= WARMUP_SERVED
                  else a.duration for k in KINDS]
        warm_end = min(max(a.duration * a.warmup_fraction, max(served)), a.duration / 2)
        warm_all_kinds = max(served) <= warm_end

        def level(part: str, t_lo: float, t_hi: float) -> float:
            vals = [v[part] for t, v in self.rss if t_lo <= t <= t_hi]
            return statistics.median(vals) if vals else 0.0

        mb = lambda v: round(v / 2**20, 1)  # noqa: E731
        rss_parts = {}
        for part in ("total", "anon", "file"):
            w = level(part, warm_end - 30, warm_end) or (self.rss[0][1][part] if self.rss else 0)
            e = self.rss[-1][1][part] if self.rss else 0
            rss_parts[part] = {"after_warmup_mb": mb(w), "end_mb": mb(e), "peak_mb": mb(max((v[part] for _, v in self.rss), default=0)),
                               "change": round(e / w - 1, 4) if w else None}
        rss_warm, rss_end = rss_parts["total"]["after_warmup_mb"], rss_parts["total"]["end_mb"]
        kv_leak = None if kv is None else kv["blocks_total"] - kv["blocks_free"] - kv["blocks_referenced"]
        totals = collections.Counter()
        for c in self.outcomes.values():
            totals.update(c)
        result = {
            "duration_s": a.duration, "clients": a.clients, "model": a.model, "max_tokens": a.max_tokens,
            "alive": alive, "stuck_clients": stuck, "final_request_ok": final_ok, "idle_queue": idle, "kv": kv,
            "kv_leaked_blocks": kv_leak, "warmup_end_s": round(warm_end, 1), "warmup_served_every_kind": warm_all_kinds,
            "rss_after_warmup_mb": rss_warm, "rss_end_mb": rss_end, "rss_change": rss_parts["total"]["change"],
            "rss_max_mb": rss_parts["total"]["peak_mb"], "rss_parts": rss_parts,
            "rss_trace_mb": [(round(t), mb(v["total"]), mb(v["anon"]), mb(v["file"])) for t, v in self.rss[::6]],
            "outcomes": {k: dict(v) for k, v in sorted(self.outcomes.items())}, "totals": dict(totals),
            "latency_p50_s": {k: round(statistics.median(v), 2) for k, v in self.latency.items() if v},
            "violations": self.violations[:50], "n_violations": len(self.violations),
        }
        result["passed"] = bool(alive and not stuck and final_ok and idle is not None and kv_leak == 0
                                and not self.violations and result["rss_change"] is not None
                                and result["rss_change"] <= a.rss_tolerance)
        return result

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def markdown(res: dict[str, Any]) -> str:
    lines = ["| kind | ok | clean 4xx | 429 queue full | violations |", "|---|---:|---:|---:|---:|"]
    for kind, c in res["outcomes"].items():
        lines.append(f"| {kind} | {c.get('ok', 0)} | {c.get('clean_error', 0)} | {c.get('queue_full', 0)} | {c.get('violation', 0)} |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=float, default=600, help="seconds of traffic (default 600)")
    ap.add_argument("--clients", type=int, default=64)
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--max-tokens", type=int, default=16)
    ap.add_argument("--max-queue", type=int, default=64, help="the server's queue (beyond it: 429, a clean error)")
    ap.add_argument("--warmup-fraction", type=float, default=0.2,
                    help="RSS reference: the end of this share of the run at the earliest (default 0.2)")
    ap.add_argument("--rss-tolerance", type=float, default=0.05, help="allowed RSS growth over the warm-up level (default 0.05)")
    ap.add_argument("--json", default=None, help="also write the result here")
    ap.add_argument("--rss-probe", default=None, metavar="KIND,KIND",
                    help="instead of a soak: rounds of one kind at a time, RSS after each (see --rounds)")
    ap.add_argument("--rounds", type=int, default=4, help="--rss-probe: rounds per kind (each: 4 requests per client)")
    a = ap.parse_args()
    soak = Soak(a)
    if a.rss_probe:
        try:
            soak.rss_probe(a.rss_probe.split(","), a.rounds, 4)
        finally:
            soak.stop()
        return 0
    try:
        res = soak.run()
    finally:
        soak.stop()
    print(json.dumps(res, indent=1))
    print(markdown(res))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=1)
    print("PASSED" if res["passed"] else "FAILED")
    return 0 if res["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
