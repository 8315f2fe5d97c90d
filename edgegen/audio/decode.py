"""Audio in: files, uploads and arrays -> mono float32 at 16 kHz, the rate every recogniser here wants.

Decoding and resampling are PyAV's (FFmpeg's demuxers, decoders and libswresample, the same path
faster-whisper's own `decode_audio` takes), so any container FFmpeg reads works and the resampler
is a real band-limited one. What is ours is the checking: an empty file, a file that is not audio,
a WAV whose header promises more data than the file holds, a recording longer than `max_seconds`,
or an array of the wrong type or range is an `AudioFormatError` naming the problem, before any
model runs.
"""
from __future__ import annotations

import io
import os
import struct
from pathlib import Path
from typing import Any, BinaryIO, Optional, Union

import numpy as np

from edgegen.errors import AudioFormatError

SAMPLE_RATE = 16000
DEFAULT_MAX_SECONDS = 3600.0  # one hour; `max_seconds=None` lifts the limit
AudioInput = Union[str, os.PathLike, bytes, np.ndarray]

_STREAMED_WAV_SIZE = 0x7FFF0000
# Sample rates a file may declare (what Resampler takes): resampling a few hundred bytes "at" 26 MHz
# keeps FFmpeg's resampler busy for seconds, so a tiny upload could hold a server's CPU.
MIN_RATE, MAX_RATE = 1000, 384000
_WAV_FORMATS = {1: "PCM", 3: "IEEE float", 6: "A-law", 7: "mu-law", 0xFFFE: "extensible"}


def _av() -> Any:
    from edgegen.extras import require

    return require("av", "asr", "decoding and resampling audio")


class Resampler:
    """Streaming resampler: mono float32 blocks at `rate_in` -> mono float32 at `rate_out`.

    Keeps the filter's state between blocks, so a microphone stream resampled block by block
    equals the whole recording resampled at once (up to the filter's delay, flushed by flush())."""

    def __init__(self, rate_in: int, rate_out: int = SAMPLE_RATE) -> None:
        if not isinstance(rate_in, int) or isinstance(rate_in, bool) or not MIN_RATE <= rate_in <= MAX_RATE:
            raise AudioFormatError(f"sample rate must be an integer between {MIN_RATE} and {MAX_RATE} Hz, got {rate_in!r}")
        self.rate_in, self.rate_out = rate_in, rate_out
        self._resampler = None if rate_in == rate_out else _av().AudioResampler(format="flt", layout="mono", rate=rate_out)

    def _run(self, frame: Any) -> np.ndarray:
        out = [f.to_ndarray().reshape(-1) for f in self._resampler.resample(frame)]
        return np.concatenate(out).astype(np.float32, copy=False) if out else np.zeros(0, np.float32)

    def process(self, samples: np.ndarray) -> np.ndarray:
        samples = np.ascontiguousarray(samples, dtype=np.float32).reshape(-1)
        if self._resampler is None or samples.size == 0:
            return samples
        frame = _av().AudioFrame.from_ndarray(samples[None, :], format="flt", layout="mono")
        frame.sample_rate = self.rate_in
        return self._run(frame)

    def flush(self) -> np.ndarray:
        return np.zeros(0, np.float32) if self._resampler is None else self._run(None)


def as_float_samples(audio: Any, what: str = "audio") -> np.ndarray:
    """A mono float32 view of int16 or float samples in [-1, 1]; (n, channels) arrays are mixed down."""
    if not isinstance(audio, np.ndarray):
        raise AudioFormatError(f"{what} must be a numpy array, a path or bytes, got {type(audio).__name__}")
    a = audio
    if a.ndim == 2 and 1 <= a.shape[1] <= 8:
        a = a.mean(axis=1) if a.dtype.kind == "f" else a.astype(np.float32).mean(axis=1).astype(a.dtype)
    elif a.ndim != 1:
        raise AudioFormatError(f"{what} must be 1-D (samples) or 2-D (samples, channels), got shape {a.shape}")
    if a.dtype == np.int16:
        return a.astype(np.float32) / 32768.0
    if a.dtype in (np.float32, np.float64):
        if a.size and not np.all(np.isfinite(a)):
            raise AudioFormatError(f"{what} contains NaN or infinite samples")
        peak = float(np.max(np.abs(a))) if a.size else 0.0
        if peak > 1.5:  # a little over 1 is clipping; far over is int samples stored as float
            raise AudioFormatError(f"float {what} must lie in [-1, 1]; its peak is {peak:.1f} "
                                   "(int16 samples as float? divide by 32768)")
        return np.clip(a, -1.0, 1.0).astype(np.float32, copy=False)
    raise AudioFormatError(f"{what} samples must be int16 or float32 in [-1, 1], got {a.dtype}")


def resample_array(audio: np.ndarray, sample_rate: Optional[int], max_seconds: Optional[float] = DEFAULT_MAX_SECONDS) -> np.ndarray:
    """An array of samples at `sample_rate` (None: 16 kHz) -> mono float32 at 16 kHz."""
    rate = SAMPLE_RATE if sample_rate is None else sample_rate
    samples = as_float_samples(audio)
    if isinstance(rate, int) and rate > 0:
        _check_duration(samples.size / rate, max_seconds)
    r = Resampler(rate)
    return np.concatenate([r.process(samples), r.flush()])


def _check_duration(seconds: float, max_seconds: Optional[float]) -> None:
    if max_seconds is not None and seconds > max_seconds:
        raise AudioFormatError(f"audio is {seconds / 60:.1f} min long; the limit is {max_seconds / 60:.1f} min "
                               "(raise max_seconds, or split the recording)")


def _check_rate(rate: Any) -> None:
    if not MIN_RATE <= rate <= MAX_RATE:
        raise AudioFormatError(f"audio sample rate {rate} Hz is not supported ({MIN_RATE}-{MAX_RATE} Hz)")


def check_wav_header(head: bytes, file_size: int) -> Optional[float]:
    """For RIFF/WAVE data: raise AudioFormatError if the header is inconsistent with the file
    (truncated data, unknown sample format); returns the duration the header declares, or None
    when `head` is not a WAV. `head` must hold the header up to the data chunk (4 KiB does)."""
    if head[:4] in (b"RIFF", b"RF64") and len(head) < 12:
        raise AudioFormatError(f"WAV header is truncated ({len(head)} bytes)")
    if len(head) < 12 or head[:4] not in (b"RIFF", b"RF64") or head[8:12] != b"WAVE":
        return None
    pos, fmt = 12, None
    while pos + 8 <= len(head):
        cid, size = head[pos:pos + 4], struct.unpack_from("<I", head, pos + 4)[0]
        body = pos + 8
        if cid == b"fmt ":
            if size < 16 or body + 16 > len(head):
                raise AudioFormatError("WAV 'fmt ' chunk is truncated")
            fmt = struct.unpack_from("<HHIIHH", head, body)
        elif cid == b"data":
            if fmt is None:
                raise AudioFormatError("WAV has a data chunk before its 'fmt ' chunk")
            tag, channels, rate, _, block_align, bits = fmt
            if tag not in _WAV_FORMATS or channels == 0 or rate == 0 or block_align == 0:
                raise AudioFormatError(f"WAV sample format not supported (format tag {tag:#x}, {channels} channels, "
                                       f"{rate} Hz, {bits} bits)")
            _check_rate(rate)
            if tag in (1, 0xFFFE) and bits not in (8, 16, 24, 32):
                raise AudioFormatError(f"WAV PCM with {bits}-bit samples is not supported (8, 16, 24 or 32)")
            held = file_size - body
            # Writers to a pipe (espeak-ng --stdout, sox, ffmpeg) cannot seek back to fill in the size:
            # they leave 0, 0xFFFFFFFF or ~2 GiB placeholders. Those mean "until the end of the file".
            streamed = size == 0 or size >= _STREAMED_WAV_SIZE or head[:4] == b"RF64"
            if not streamed and size > held:
                raise AudioFormatError(f"WAV is truncated: its header declares {size} bytes of samples, "
                                       f"the file holds {max(held, 0)}")
            n = (max(held, 0) if streamed else size) // block_align
            return n / rate
        pos = body + size + (size & 1)
    if fmt is None:
        raise AudioFormatError("WAV header has no 'fmt ' chunk (truncated or not a WAV)")
    raise AudioFormatError("WAV has no data chunk (truncated)")


def decode_audio(source: Union[str, os.PathLike, bytes, BinaryIO], max_seconds: Optional[float] = DEFAULT_MAX_SECONDS,
                 what: Optional[str] = None) -> np.ndarray:
    """A file (path, bytes or binary file object) -> mono float32 samples at 16 kHz."""
    av = _av()
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        what = what or str(path)
        try:
            size = path.stat().st_size
            with open(path, "rb") as fh:
                head = fh.read(4096)
        except FileNotFoundError:
            raise AudioFormatError(f"no such audio file: {path}") from None
        except OSError as exc:
            raise AudioFormatError(f"cannot read {path}: {exc}") from None
        opened: Any = str(path)
    else:
        data = source if isinstance(source, bytes) else source.read()
        what, size, head, opened = what or "upload", len(data), data[:4096], io.BytesIO(data)
    if size == 0:
        raise AudioFormatError(f"{what} is empty")
    declared = check_wav_header(head, size)
    if declared is not None:
        _check_duration(declared, max_seconds)
    try:
        container = av.open(opened, mode="r", metadata_errors="ignore")
    except (av.error.FFmpegError, ValueError, OSError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise AudioFormatError(f"{what} is not an audio file FFmpeg can read ({reason})") from None
    with container:
        if not container.streams.audio:
            raise AudioFormatError(f"{what} has no audio stream")
        stream = container.streams.audio[0]
        codec = stream.codec_context  # None without a decoder for it (decoding then fails cleanly)
        if codec is not None and codec.sample_rate:  # 0: not known before decoding (each frame is checked)
            _check_rate(codec.sample_rate)
        if container.duration is not None:
            _check_duration(container.duration / 1e6, max_seconds)
        # int16 output scaled by 1/32768, exactly faster-whisper's decode_audio: the same file gives
        # the recogniser the same samples whether it comes through us or through faster-whisper.
        resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
        parts, n = [], 0
        limit = None if max_seconds is None else int(max_seconds * SAMPLE_RATE) + SAMPLE_RATE
        try:
            for frame in container.decode(stream):
                _check_rate(frame.sample_rate)
                frame.pts = None  # timestamps of broken files confuse the resampler; order is enough
                for out in resampler.resample(frame):
                    parts.append(out.to_ndarray().reshape(-1))
                    n += parts[-1].size
                if limit is not None and n > limit:  # the header lied about the length
                    _check_duration(n / SAMPLE_RATE, max_seconds)
            for out in resampler.resample(None):
                parts.append(out.to_ndarray().reshape(-1))
        except av.error.FFmpegError as exc:
            raise AudioFormatError(f"{what}: audio data is corrupt ({exc})") from None
    if not parts:
        raise AudioFormatError(f"{what} holds no audio samples")
    return np.concatenate(parts).astype(np.float32) / 32768.0


def load_audio(audio: AudioInput, sample_rate: Optional[int] = None,
               max_seconds: Optional[float] = DEFAULT_MAX_SECONDS) -> np.ndarray:
    """Path, bytes or array (with its rate) -> mono float32 at 16 kHz, checked."""
    if isinstance(audio, np.ndarray):
        return resample_array(audio, sample_rate, max_seconds)
    if sample_rate is not None:
        raise AudioFormatError("sample_rate is for arrays; a file carries its own rate")
    if isinstance(audio, (str, os.PathLike, bytes)):
        return decode_audio(audio, max_seconds)
    return as_float_samples(audio)  # raises the clear type error
