"""Drives edgegen's Assistant end to end from WAV sources, playing on the ALSA null device; run as
a subprocess by test_assistant.py (PortAudio reads ~/.asoundrc once per process). Prints one JSON
object with what the test asserts on.

Turns: (1) a question answered in full; (2) a question whose reply is interrupted after its first
clause has played, by espeak-ng saying "Stop. What time is it?" (3) which becomes the next turn;
then (4) a question whose reply is played while the microphone hears it back as echo (-20 dB):
that must not interrupt."""
from __future__ import annotations

import json
import sys
import time

import numpy as np

import edgegen
from edgegen.audio.decode import load_audio, resample_array

BLOCK = 512
echo_path, out_path = sys.argv[1], sys.argv[2]
a = edgegen.load_assistant(threads=2, n_ctx=1024, sampling={"max_tokens": 200, "temperature": 0.0})
be = a.llm.backend


def say(text):
    chunks = list(a.voice.stream(text, noise_scale=0.0, noise_w=0.0))
    return resample_array(np.concatenate([c.samples for c in chunks]), chunks[0].sample_rate)


def sil(s):
    return np.zeros(int(16000 * s), np.float32)


class Paced:
    """Yields 32 ms blocks in real time, like a microphone."""

    def __init__(self):
        self.t0, self.n = time.perf_counter(), 0

    def emit(self, x):
        for i in range(0, len(x), BLOCK):
            block = x[i:i + BLOCK]
            self.n += len(block)
            wait = self.t0 + self.n / 16000 - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
            yield block


def heard_clauses(n):
    r = a.reply
    return r is not None and len(r._clauses) >= n and r.heard_until() > r._clauses[n - 1][2] + 0.2


record = {"events": [], "snap": None}


def conversation():
    mic = Paced()
    yield from mic.emit(np.concatenate([sil(0.5), say("What is the capital of France?"), sil(0.2)]))
    while len(a.replies) < 1:
        yield from mic.emit(sil(0.032))
    yield from mic.emit(np.concatenate([sil(0.3), say("Tell me a long story about a dragon and a knight."), sil(0.2)]))
    while not heard_clauses(1):  # the first clause has been heard
        yield from mic.emit(sil(0.032))
    record["barge_in_sent"] = time.perf_counter()
    yield from mic.emit(np.concatenate([load_audio(echo_path), sil(0.3)]))
    while a.reply is None or a.reply.heard_until() < 0.5:  # reply 3 is speaking: that is enough
        yield from mic.emit(sil(0.032))
    a.stop()
    yield from mic.emit(sil(0.032))


for event in a.run(conversation()):
    record["events"].append([event.kind, event.text, {k: v for k, v in event.detail.items() if k != "audio"}])
    if event.kind == "reply" and event.detail.get("interrupted") and record["snap"] is None:
        r = a.replies[-1]
        n_gen = len(r.generated_ids)
        time.sleep(0.3)  # the generation must not go on after the cut
        record["snap"] = {
            "cached": be.cached_tokens, "seq_len": be.kv_cache.seq_len(be.cached_seq), "prompt_ids": list(r.prompt_ids),
            "generated_ids": r.generated_ids, "kept": r.kept_tokens, "spoken": r.spoken_text, "full": r.full_text,
            "finish": r.finish_reason, "stop_latency": r.stop_latency, "clauses": r.clauses,
            "generated_after": len(a.replies[-1].generated_ids) - n_gen, "history": list(a.history),
            "kept_text": a.llm.detokenize(r.generated_ids[:r.kept_tokens]),
            "reused_before": be.stats["prompt_tokens_reused"],
        }
record["reused_after"] = be.stats["prompt_tokens_reused"]
record["history"] = a.history


def echo_conversation():
    mic = Paced()
    yield from mic.emit(np.concatenate([sil(0.3), say("What color is the sky?"), sil(0.2)]))
    while len(a.replies) < 4:  # while it speaks, the microphone hears the speaker at -20 dB
        r = a.reply
        if r is None or not r._audio:
            yield from mic.emit(sil(0.032))
            continue
        played = np.concatenate(r._audio)
        end = int(r.heard_until() * r.voice.sample_rate)
        piece = played[max(0, end - int(0.032 * r.voice.sample_rate)):end]
        echo = resample_array(piece, r.voice.sample_rate)[:BLOCK] * 0.1 if piece.size else sil(0.032)
        yield from mic.emit(np.pad(echo, (0, max(0, BLOCK - len(echo)))))
    yield from mic.emit(sil(0.1))


for event in a.run(echo_conversation()):
    record["events"].append([event.kind, event.text, {k: v for k, v in event.detail.items() if k != "audio"}])
json.dump(record, open(out_path, "w"), default=str)
