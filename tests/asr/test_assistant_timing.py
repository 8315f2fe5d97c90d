"""The assistant's turn timing without models: a transcript started at the pause holds the
listener back until it is done (no VAD work beside the recogniser), the turn's wait is measured
from when its last block arrived, and warm_up runs every part once."""
from __future__ import annotations

import threading
import time

import numpy as np

from edgegen.audio.asr import Transcript
from edgegen.audio.assistant import Assistant
from edgegen.audio.vad import SAMPLE_RATE, WINDOW


class LoudnessVAD:
    """Speech where a window is loud: enough for the endpointer, and it counts its windows."""

    def __init__(self) -> None:
        self.windows = 0

    def reset(self) -> None:
        pass

    def window_probability(self, window: np.ndarray) -> float:
        self.windows += 1
        return 1.0 if float(np.abs(window).max()) > 0.1 else 0.0

    def process(self, samples: np.ndarray) -> list[float]:
        return [self.window_probability(samples[i:i + WINDOW]) for i in range(0, len(samples) - WINDOW + 1, WINDOW)]


class SlowASR:
    """Takes 0.3 s per transcript and notes how many VAD windows ran meanwhile; hears nothing
    (an empty transcript: no reply, so no LLM or voice is needed)."""

    def __init__(self, vad: LoudnessVAD) -> None:
        self.vad = vad
        self.windows_during: list[int] = []
        self.calls = 0

    def transcribe_samples(self, audio: np.ndarray, language=None, **options) -> Transcript:
        self.calls += 1
        before = self.vad.windows
        time.sleep(0.3)
        self.windows_during.append(self.vad.windows - before)
        return Transcript("", [], "en", len(audio) / SAMPLE_RATE, 0.3)


def _speech_then_silence() -> np.ndarray:
    t = np.arange(SAMPLE_RATE) / SAMPLE_RATE
    return np.concatenate([np.zeros(SAMPLE_RATE // 2, np.float32), (0.5 * np.sin(2 * np.pi * 220 * t)).astype(np.float32),
                           np.zeros(SAMPLE_RATE * 2, np.float32)])


def test_listening_is_held_back_while_the_early_transcript_runs() -> None:
    from edgegen.audio.sources import ArraySource

    vad = LoudnessVAD()
    asr = SlowASR(vad)
    a = Assistant(llm=None, voice=None, asr=asr, vad=vad, player_factory=lambda rate: None)
    events = list(a.run(ArraySource(_speech_then_silence(), SAMPLE_RATE, realtime=True)))
    heard = [e for e in events if e.kind == "heard"]
    assert len(heard) == 1 and heard[0].detail["early"] and asr.calls == 1
    assert asr.windows_during == [0]  # no VAD window ran beside the recogniser
    # measured from the arrival of the turn's last block (held back ~0.1 s, then processed):
    # what is left of the 0.3 s transcript after the 600 - 160 ms the endpointer waits out
    assert heard[0].detail["asr_wait_s"] < 0.2
    assert [e.kind for e in events].count("speech_start") == 1


def test_warm_up_runs_each_part_once_and_keeps_no_history() -> None:
    calls: list[str] = []

    class LLM:
        def chat(self, messages, **kw):
            calls.append("llm:" + messages[0]["role"] + ":" + str(kw.get("max_tokens")))

    class Voice:
        def stream(self, text):
            calls.append("voice")
            return iter(())

        def release_memory(self):
            calls.append("release")

    class ASR:
        def transcribe_samples(self, audio, language=None, **options):
            calls.append(f"asr:{len(audio)}")

    vad = LoudnessVAD()
    a = Assistant(LLM(), Voice(), ASR(), vad=vad, player_factory=lambda rate: None)
    calls.clear()
    a.warm_up()
    assert calls == ["llm:system:1", "voice", f"asr:{SAMPLE_RATE}", "release"] and vad.windows == 1
    assert a.history == []


def test_history_window_moves_half_a_window_at_a_time() -> None:
    """The prompt's history starts at the same turn for max/2 turns in a row, so the LLM's cached
    prefix covers it; never more than max_history_turns pairs."""
    a = Assistant(llm=None, voice=None, asr=None, vad=LoudnessVAD(), player_factory=lambda rate: None,
                  max_history_turns=4)
    firsts = []
    for turn in range(12):
        messages = a.messages(f"question {turn}")
        assert messages[0]["role"] == "system" and messages[-1]["content"] == f"question {turn}"
        assert len(messages) - 2 <= 2 * 4
        firsts.append(messages[1]["content"] if len(messages) > 2 else None)
        a.history += [{"role": "user", "content": f"question {turn}"}, {"role": "assistant", "content": f"answer {turn}"}]
    assert firsts == [None, "question 0", "question 0", "question 0", "question 0", "question 2", "question 2",
                      "question 4", "question 4", "question 6", "question 6", "question 8"]
