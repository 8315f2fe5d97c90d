"""Fixtures for the listening tests: the packaged Whisper tiny.en loaded by edgegen and by
faster-whisper directly (the reference) with the same threads and compute type; speech clips
spoken by the packaged Piper voice and by espeak-ng, written as WAV files; an ALSA null HOME."""
from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

THREADS = 2
# Sentences for the word error rate; short, everyday, and free of numbers (no "4" vs "four" noise).
SENTENCES = [
    "What is the weather like in Paris today?",
    "Please turn off the lights in the kitchen.",
    "Tell me a short story about a brave little mouse.",
    "How far away is the moon from the earth?",
    "Set a timer for ten minutes and remind me to call my sister.",
    "The library opens early on weekdays but closes at noon on Sunday.",
]


@pytest.fixture(scope="session")
def asr():
    import edgegen

    return edgegen.load_asr("whisper-tiny.en", threads=THREADS)


@pytest.fixture(scope="session")
def reference_whisper(asr):
    from faster_whisper import WhisperModel

    return WhisperModel(str(asr.model_dir), device="cpu", compute_type="int8", cpu_threads=THREADS, local_files_only=True)


@pytest.fixture(scope="session")
def voice():
    import edgegen

    return edgegen.load_voice("joe", threads=THREADS, parallel_units=False)


@pytest.fixture(scope="session")
def clips(tmp_path_factory, voice) -> dict[str, list[Path]]:
    """{"piper": [wav per sentence at 22050 Hz], "espeak": [wav per sentence from espeak-ng]}."""
    from edgegen.audio.wav import write_wav

    d = tmp_path_factory.mktemp("clips")
    out: dict[str, list[Path]] = {"piper": [], "espeak": []}
    for i, text in enumerate(SENTENCES):
        p = d / f"piper{i}.wav"
        write_wav(p, voice.stream(text, noise_scale=0.0, noise_w=0.0))
        out["piper"].append(p)
        e = d / f"espeak{i}.wav"
        subprocess.run(["espeak-ng", "-v", "en-us", "-w", str(e), text], check=True, capture_output=True)
        out["espeak"].append(e)
    return out


def speech(voice, text: str) -> np.ndarray:
    """`text` spoken by the voice, as float32 at 16 kHz."""
    from edgegen.audio.decode import resample_array

    chunks = list(voice.stream(text, noise_scale=0.0, noise_w=0.0))
    return resample_array(np.concatenate([c.samples for c in chunks]), chunks[0].sample_rate)


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(16000 * seconds), np.float32)


def word_error_rate(reference: str, hypothesis: str) -> tuple[int, int]:
    """(word edits, reference words) after lower-casing and dropping punctuation."""
    import re

    norm = lambda s: re.sub(r"[^a-z' ]+", " ", s.lower()).split()  # noqa: E731
    ref, hyp = norm(reference), norm(hypothesis)
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[-1], len(ref)


@pytest.fixture()
def alsa_null_home(tmp_path: Path) -> Path:
    """A private HOME whose .asoundrc makes ALSA's default PCM the null plugin (DESIGN.md)."""
    home = tmp_path / "home"
    home.mkdir()
    (home / ".asoundrc").write_text("pcm.!default { type null }\nctl.!default { type hw card 0 }\n")
    return home
