"""Listening benchmarks: ASR real-time factor against faster-whisper called directly, the voice
assistant's end-of-speech -> first-reply-audio latency with its breakdown, and the whole loop's
peak RSS.

1. RTF (`--part rtf`): the same WAV (Piper joe speaking several sentences, ~12 s), the same model
   directory, compute type (int8), threads and beam size; edgegen's `ASR.transcribe(path)` and
   faster-whisper's `WhisperModel.transcribe(path)` (segments consumed) interleaved, order
   alternating, a pause before each timed call. RTF = wall seconds / audio seconds.
2. Latency (`--part loop`): `load_assistant` (SmolLM2 + joe + whisper-tiny.en greedy + Silero VAD
   + "okay nabu"), asked short spoken questions; playback on the ALSA null device (a private
   HOME with the null .asoundrc). The end of speech is the last speech window; from there:
   endpointing wait (min_silence_ms of audio the endpointer must hear), ASR, LLM time to first
   token, first clause complete + synthesised, first audio handed to the speaker.
3. Peak RSS (`--part loop`): VmHWM of that process after the turns.

    flock /tmp/edgegen-bench.lock python3 bench/asr.py --threads 2 --reps 7
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

TEXT = ("The morning train pulled into the station forty minutes late. The passengers climbed aboard without a word. "
        "Outside, the rain kept falling on the empty platform, and nobody seemed to mind.")
QUESTIONS = ["What is the capital of France?", "How many legs does a spider have?", "What color is the sky?",
             "Who wrote Romeo and Juliet?", "What is the boiling point of water?", "How far away is the moon?",
             "What is the tallest mountain?", "How many days are in a year?", "What do bees make?",
             "What is the largest ocean?"]


def vm(key: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    return 0


def rtf(args: argparse.Namespace) -> dict:
    import edgegen
    from edgegen.audio.wav import write_wav
    from faster_whisper import WhisperModel

    voice = edgegen.load_voice("joe", threads=args.threads, parallel_units=False)
    path = os.path.join(tempfile.mkdtemp(), "speech.wav")
    seconds = write_wav(path, voice.stream(TEXT, noise_scale=0.0, noise_w=0.0))
    del voice
    ours = edgegen.load_asr(threads=args.threads, beam_size=args.beam)
    # --same-instance: faster-whisper is called directly on the very WhisperModel edgegen wraps, so
    # the two sides differ only by edgegen's code (two instances also differ by where their
    # weights and thread pools landed)
    ref = ours.model if args.same_instance else WhisperModel(
        str(ours.model_dir), device="cpu", compute_type="int8", cpu_threads=args.threads, local_files_only=True)

    def run_ours() -> str:
        return ours.transcribe(path).text

    def run_ref() -> str:
        segments, _ = ref.transcribe(path, beam_size=args.beam)
        return "".join(s.text for s in segments).strip()

    assert run_ours() == run_ref(), "transcripts differ"
    times: dict[str, list[float]] = {"edgegen": [], "faster-whisper": []}
    for rep in range(args.reps):
        order = [("edgegen", run_ours), ("faster-whisper", run_ref)]
        for name, fn in (order if rep % 2 == 0 else order[::-1]):
            time.sleep(args.pause)
            t0 = time.perf_counter()
            fn()
            times[name].append((time.perf_counter() - t0) / seconds)
    med = {k: statistics.median(v) for k, v in times.items()}
    # each rep's two calls ran back to back: the median of their ratios cancels the machine's
    # slower and faster stretches that the medians of the separate lists keep
    paired = statistics.median(a / b for a, b in zip(times["edgegen"], times["faster-whisper"]))
    return {"audio_s": round(seconds, 2), "beam_size": args.beam, "threads": args.threads, "reps": args.reps,
            "rtf_median": {k: round(v, 4) for k, v in med.items()},
            "ratio_edgegen_over_faster_whisper": round(med["edgegen"] / med["faster-whisper"], 3),
            "paired_ratio_median": round(paired, 3)}


def loop(args: argparse.Namespace) -> dict:
    home = tempfile.mkdtemp()
    with open(os.path.join(home, ".asoundrc"), "w") as fh:
        fh.write("pcm.!default { type null }\nctl.!default { type hw card 0 }\n")
    os.environ["HOME"] = home  # before PortAudio is loaded: playback on the null device
    import numpy as np

    from edgegen.audio.assistant import load_assistant
    from edgegen.audio.sources import ArraySource

    # The spoken questions come from another process, so the harness's own synthesis is not part
    # of the loop's memory or time.
    questions = (QUESTIONS * 3)[:args.reps]
    path = os.path.join(home, "questions.npz")
    subprocess.run([sys.executable, __file__, "--part", "questions", "--out", path, *questions], check=True)
    spoken = np.load(path)
    inputs = [(q, spoken[f"q{i}"]) for i, q in enumerate(questions)]

    t0 = time.perf_counter()
    a = load_assistant(threads=args.threads, n_ctx=1024, wake_words=["okay_nabu"],
                       sampling={"max_tokens": 32, "temperature": 0.0})
    load_s = time.perf_counter() - t0  # warm-up included
    rss_loaded = vm("VmRSS")
    rows = []
    for q, audio in inputs:
        heard = reply = None
        for event in a.run(ArraySource(audio, 16000, realtime=True), max_turns=1):
            if event.kind == "heard":
                heard = event
            elif event.kind == "reply":
                reply = event
        if heard is None or reply is None:
            rows.append({"question": q, "error": "no reply"})
            continue
        d = reply.detail
        wait, asr = heard.detail["end_of_speech_wait_s"], heard.detail["asr_wait_s"]
        rows.append({"question": q, "heard": heard.text, "reply": reply.text[:60], "early": heard.detail["early"],
                     "endpointing_wait_s": wait, "asr_compute_s": round(heard.detail["asr_s"], 3),
                     "asr_s": round(asr, 3),
                     "llm_first_token_s": round(d["llm_first_token_s"], 3),
                     "first_clause_synthesis_s": round(d["first_clause_synthesis_s"], 3),
                     "first_audio_after_transcript_s": round(d["first_audio_s"], 3),
                     "end_of_speech_to_first_audio_s": round(wait + asr + d["first_audio_s"], 3)})
    ok = [r for r in rows if "error" not in r]
    med = {k: round(statistics.median(r[k] for r in ok), 3) for k in
           ("endpointing_wait_s", "asr_compute_s", "asr_s", "llm_first_token_s", "first_clause_synthesis_s",
            "first_audio_after_transcript_s", "end_of_speech_to_first_audio_s")} if ok else {}
    return {"threads": args.threads, "load_s": round(load_s, 2), "turns": rows, "median": med,
            "rss_after_load_mib": round(rss_loaded / 2**20, 1), "peak_rss_mib": round(vm("VmHWM") / 2**20, 1)}


def questions(args: argparse.Namespace) -> None:
    """Each question spoken by the joe voice after "Okay Nabu!", with silence around, at 16 kHz."""
    import numpy as np

    import edgegen
    from edgegen.audio.decode import resample_array

    voice = edgegen.load_voice("joe", threads=args.threads, parallel_units=False)

    def say(text: str) -> np.ndarray:
        chunks = list(voice.stream(text, noise_scale=0.0, noise_w=0.0))
        return resample_array(np.concatenate([c.samples for c in chunks]), chunks[0].sample_rate)

    wake = say("Okay Nabu!")
    np.savez(args.out, **{f"q{i}": np.concatenate([np.zeros(8000, np.float32), wake, np.zeros(4000, np.float32), say(q),
                                                   np.zeros(int(16000 * 1.2), np.float32)])
                          for i, q in enumerate(args.texts)})


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--part", choices=["rtf", "loop", "all", "questions"], default="all")
    p.add_argument("--out", help=argparse.SUPPRESS)
    p.add_argument("texts", nargs="*", help=argparse.SUPPRESS)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--reps", type=int, default=7)
    p.add_argument("--beam", type=int, default=5, help="beam size for the RTF comparison")
    p.add_argument("--pause", type=float, default=0.25)
    p.add_argument("--same-instance", action="store_true",
                   help="RTF: call faster-whisper on edgegen's own WhisperModel instead of a second instance")
    args = p.parse_args()
    out = {}
    if args.part == "questions":
        return questions(args)
    if args.part in ("rtf", "all"):
        out["rtf"] = rtf(args)
        print(json.dumps(out["rtf"], indent=1), flush=True)
    if args.part in ("loop", "all"):
        if args.part == "all":  # a fresh process: the RTF part's models must not count in the peak RSS
            import subprocess

            cmd = [sys.executable, __file__, "--part", "loop", "--threads", str(args.threads), "--reps", str(args.reps)]
            print(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
            return
        out["loop"] = loop(args)
        print(json.dumps(out["loop"], indent=1))


if __name__ == "__main__":
    main()
