"""WAV output: mono 16-bit PCM through the stdlib `wave` module (it writes the header sizes)."""
from __future__ import annotations

import wave
from pathlib import Path
from typing import BinaryIO, Iterable, Union

import numpy as np

from edgegen.audio.voice import AudioChunk


def float_to_pcm16(samples: np.ndarray) -> bytes:
    """float32 in [-1, 1] -> little-endian int16 bytes, scaled like Piper (x * 32767, clipped)."""
    pcm = np.clip(np.asarray(samples, dtype=np.float32) * 32767.0, -32767.0, 32767.0).astype("<i2")
    return pcm.tobytes()


def write_wav(target: Union[str, Path, BinaryIO], chunks: Iterable[AudioChunk]) -> float:
    """Write chunks as they arrive to one mono 16-bit WAV; returns the seconds written.

    The sample rate comes from the first chunk; every later chunk must match it. An empty
    stream still gives a valid (empty) WAV at 22050 Hz.
    """
    frames = 0
    rate = None
    if isinstance(target, (str, Path)):
        # Open the file ourselves: a bad path is a plain OSError here, not a half-built
        # Wave_write whose __del__ then fails too.
        with open(target, "wb") as f:
            return write_wav(f, chunks)
    with wave.open(target, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(22050)  # replaced by the first chunk's; set now so a failed stream still closes cleanly
        for chunk in chunks:
            if rate is None:
                rate = chunk.sample_rate
                wav.setframerate(rate)
            elif chunk.sample_rate != rate:
                raise ValueError(f"chunk sample rate {chunk.sample_rate} differs from the stream's {rate}")
            wav.writeframes(float_to_pcm16(chunk.samples))
            frames += len(chunk.samples)
    return frames / (rate or 22050)
