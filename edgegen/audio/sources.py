"""Audio sources: microphone, file and array behind one interface.

A source is an iterator of float32 mono blocks at 16 kHz (`blocksize` samples each, the last one
possibly shorter) with `close()`. The microphone captures at the device's rate when it cannot do
16 kHz and resamples (decode.Resampler); files are decoded by PyAV; arrays are resampled.
`realtime=True` paces file and array sources like a microphone (a test, or a replay, sees the
same timing the live loop would).
"""
from __future__ import annotations

import os
import queue
import time
from typing import Any, Iterable, Iterator, Optional, Union

import numpy as np

from edgegen.audio.decode import SAMPLE_RATE, DEFAULT_MAX_SECONDS, Resampler, load_audio
from edgegen.errors import AudioDeviceError, InvalidRequestError

DEFAULT_BLOCKSIZE = 512  # 32 ms: one VAD window


class AudioSource:
    """Iterator of float32 16 kHz mono blocks; subclasses fill `_blocks()`."""

    sample_rate = SAMPLE_RATE

    def __init__(self, blocksize: int = DEFAULT_BLOCKSIZE) -> None:
        if not isinstance(blocksize, int) or not 16 <= blocksize <= SAMPLE_RATE * 4:
            raise InvalidRequestError(f"blocksize must be 16..{SAMPLE_RATE * 4} samples, got {blocksize!r}", param="blocksize")
        self.blocksize = blocksize
        self.closed = False
        self._iter: Optional[Iterator[np.ndarray]] = None

    def _blocks(self) -> Iterator[np.ndarray]:
        raise NotImplementedError

    def __iter__(self) -> "AudioSource":
        return self

    def __next__(self) -> np.ndarray:
        if self.closed:
            raise StopIteration
        if self._iter is None:
            self._iter = self._blocks()
        return next(self._iter)

    def close(self) -> None:
        self.closed = True
        if self._iter is not None:
            self._iter.close()

    def __enter__(self) -> "AudioSource":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class ArraySource(AudioSource):
    """Samples already in memory (any rate, int16 or float); `realtime` paces them like a microphone."""

    def __init__(self, samples: np.ndarray, sample_rate: Optional[int] = None, *, blocksize: int = DEFAULT_BLOCKSIZE,
                 realtime: bool = False, max_seconds: Optional[float] = None) -> None:
        super().__init__(blocksize)
        self.samples = load_audio(samples, sample_rate, max_seconds) if isinstance(samples, np.ndarray) else samples
        self.realtime = realtime

    def _blocks(self) -> Iterator[np.ndarray]:
        t0 = time.perf_counter()
        for i in range(0, len(self.samples), self.blocksize):
            block = self.samples[i:i + self.blocksize]
            if self.realtime:  # release a block once it would have been recorded
                wait = t0 + (i + len(block)) / SAMPLE_RATE - time.perf_counter()
                if wait > 0:
                    time.sleep(wait)
            yield block


class FileSource(ArraySource):
    """An audio file (any format PyAV reads), decoded and resampled to 16 kHz."""

    def __init__(self, path: Union[str, os.PathLike, bytes], *, blocksize: int = DEFAULT_BLOCKSIZE, realtime: bool = False,
                 max_seconds: Optional[float] = DEFAULT_MAX_SECONDS) -> None:
        super().__init__(load_audio(path, None, max_seconds), blocksize=blocksize, realtime=realtime)
        self.path = path


def _sounddevice() -> Any:
    from edgegen.extras import require

    try:
        sd = require("sounddevice", "voice", "microphone capture")
    except OSError as exc:  # no libportaudio
        raise AudioDeviceError(f"cannot capture audio: {exc} (install PortAudio, e.g. apt install libportaudio2)") from None
    return sd


def find_input_device(device: Union[int, str, None] = None) -> tuple[Any, dict[str, Any]]:
    """(device index, its info) for `device` (None: the default input); AudioDeviceError naming
    what was looked for when there is none."""
    sd = _sounddevice()
    wanted = "the default input device" if device is None else f"input device {device!r}"
    try:
        info = sd.query_devices(device, "input")
    except (ValueError, sd.PortAudioError) as exc:
        names = []
        try:
            names = [d["name"] for d in sd.query_devices() if d.get("max_input_channels", 0) > 0]
        except Exception:
            pass
        found = f"; inputs found: {', '.join(names)}" if names else "; no input devices were found"
        raise AudioDeviceError(f"no microphone: looked for {wanted} ({exc}){found}") from None
    return info["index"], info


class MicrophoneSource(AudioSource):
    """Microphone capture through sounddevice: 16 kHz mono (or the device's rate, resampled)."""

    def __init__(self, device: Union[int, str, None] = None, *, blocksize: int = DEFAULT_BLOCKSIZE,
                 max_queue_s: float = 10.0) -> None:
        super().__init__(blocksize)
        self.device, info = find_input_device(device)
        self.device_name = info.get("name", str(device))
        sd = self._sd = _sounddevice()
        rate = SAMPLE_RATE
        try:
            sd.check_input_settings(device=self.device, samplerate=SAMPLE_RATE, channels=1, dtype="float32")
        except (ValueError, sd.PortAudioError):
            rate = int(info.get("default_samplerate") or 48000)  # capture natively, resample ourselves
        self.capture_rate = rate
        self._resampler = Resampler(rate)
        self._queue: "queue.Queue[np.ndarray]" = queue.Queue(maxsize=max(4, int(max_queue_s * rate / blocksize)))
        self.overflows = 0
        block_in = max(16, round(blocksize * rate / SAMPLE_RATE))
        try:
            self._stream = sd.InputStream(samplerate=rate, channels=1, dtype="float32", device=self.device,
                                          blocksize=block_in, callback=self._callback)
            self._stream.start()
        except (ValueError, sd.PortAudioError) as exc:
            raise AudioDeviceError(f"cannot open input device {self.device_name!r}: {exc}") from None

    def _callback(self, indata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
        if status.input_overflow:
            self.overflows += 1
        try:
            self._queue.put_nowait(indata[:, 0].copy())
        except queue.Full:  # the consumer stalled: drop the oldest audio rather than block PortAudio
            self.overflows += 1

    def _blocks(self) -> Iterator[np.ndarray]:
        pending = np.zeros(0, np.float32)
        while not self.closed:
            try:
                raw = self._queue.get(timeout=0.5)
            except queue.Empty:
                continue
            pending = np.concatenate([pending, self._resampler.process(raw)])
            while len(pending) >= self.blocksize:
                yield pending[:self.blocksize]
                pending = pending[self.blocksize:]

    def close(self) -> None:
        super().close()
        try:
            self._stream.abort()
            self._stream.close()
        except Exception:
            pass


def as_source(source: Union[AudioSource, Iterable[np.ndarray], str, os.PathLike, bytes, np.ndarray]) -> Iterable[np.ndarray]:
    """A path/bytes -> FileSource, an array -> ArraySource (16 kHz), anything iterable as it is."""
    if isinstance(source, (str, os.PathLike, bytes)):
        return FileSource(source)
    if isinstance(source, np.ndarray):
        return ArraySource(source)
    if not hasattr(source, "__iter__"):
        raise InvalidRequestError(f"an audio source must be a path, an array or an iterable of blocks, got {type(source).__name__}")
    return source
