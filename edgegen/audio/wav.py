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
    with wave.open(str(target) if isinstance(target, Path) else target, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        for chunk in chunks:
            if rate is None:
                rate = chunk.sample_rate
                wav.setframerate(rate)
            elif chunk.sample_rate != rate:
                raise ValueError(f"chunk sample rate {chunk.sample_rate} differs from the stream's {rate}")
            wav.writeframes(float_to_pcm16(chunk.samples))
            frames += len(chunk.samples)
        if rate is None:
            rate = 22050
            wav.setframerate(rate)
    return frames / rate
