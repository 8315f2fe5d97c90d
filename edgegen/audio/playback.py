"""Playback through sounddevice (PortAudio): chunks are played as they arrive, without gaps.

One `sd.OutputStream` per utterance pulls from a queue in its callback, so synthesis of the next
clause overlaps playback of the current one. Every PortAudio failure (no library, no device, a
busy or unknown device) becomes `AudioDeviceError` with a message a user can act on.
"""
from __future__ import annotations

import queue
import threading
from dataclasses import dataclass
from typing import Any, Iterable, Optional, Union

import numpy as np

from edgegen.audio.voice import AudioChunk
from edgegen.errors import AudioDeviceError

Device = Union[int, str, None]


def _sounddevice() -> Any:
    try:
        import sounddevice as sd
    except OSError as exc:  # sounddevice raises OSError when libportaudio is not installed
        raise AudioDeviceError(f"cannot play audio: {exc} (install PortAudio, e.g. apt install libportaudio2)") from None
    except ImportError as exc:
        from edgegen.extras import missing_extra

        raise AudioDeviceError(f"cannot play audio: {missing_extra('voice', 'playback', exc.name or 'sounddevice')}") from None
    return sd


def _device_error(exc: Exception, device: Device) -> AudioDeviceError:
    text = str(exc)
    where = "the default output device" if device is None else f"output device {device!r}"
    if "-9985" in text or "unavailable" in text.lower() or "busy" in text.lower():
        return AudioDeviceError(f"{where} is busy or unavailable: {text}")
    if "-9996" in text or "Error querying device -1" in text or "No output device" in text or "No device" in text:
        return AudioDeviceError(f"no audio output device found ({where}): {text}")
    return AudioDeviceError(f"cannot open {where}: {text}")


def check_output_device(device: Device = None, sample_rate: int = 22050) -> None:
    """Raise AudioDeviceError now if `device` cannot play mono float32 at `sample_rate`."""
    sd = _sounddevice()
    try:
        sd.check_output_settings(device=device, samplerate=sample_rate, channels=1, dtype="float32")
    except (sd.PortAudioError, ValueError) as exc:
        raise _device_error(exc, device) from None


@dataclass
class PlaybackStats:
    frames_played: int = 0  # real samples handed to the device (silence padding excluded)
    underruns: int = 0  # callbacks that found the queue empty mid-utterance (audible gaps)


class Player:
    """Feed float32 mono samples with `write`; `finish()` waits until everything has played."""

    def __init__(self, sample_rate: int, device: Device = None, latency: str = "low", autostart: bool = True) -> None:
        self.sample_rate = sample_rate
        self.autostart = autostart  # False: queue audio first, then start() (or finish()) begins playback
        self.device = device
        self.stats = PlaybackStats()
        self._queue: "queue.SimpleQueue[np.ndarray]" = queue.SimpleQueue()
        self._current = np.zeros(0, dtype=np.float32)
        self._pos = 0
        self._closing = threading.Event()
        self._done = threading.Event()
        self._callback_error: Optional[BaseException] = None
        sd = _sounddevice()
        self._sd = sd
        try:
            self._stream = sd.OutputStream(
                samplerate=sample_rate,
                channels=1,
                dtype="float32",
                device=device,
                latency=latency,
                callback=self._callback,
                finished_callback=self._done.set,
            )
        except (sd.PortAudioError, ValueError) as exc:
            raise _device_error(exc, device) from None
        self._started = False

    def write(self, samples: np.ndarray) -> None:
        if self._closing.is_set():
            raise RuntimeError("write() after finish()")
        self._queue.put(np.ascontiguousarray(samples, dtype=np.float32).reshape(-1))
        if self.autostart:  # start on the first audio, so the device never plays a leading gap
            self.start()

    def start(self) -> None:
        if self._started:
            return
        self._started = True
        try:
            self._stream.start()
        except self._sd.PortAudioError as exc:
            raise _device_error(exc, self.device) from None

    def finish(self, timeout: Optional[float] = None) -> PlaybackStats:
        """Mark the end of the audio and block until the device has played it all."""
        self._closing.set()
        if not self._queue.empty():
            self.start()
        if self._started:
            self._done.wait(timeout)
        self.close()
        if self._callback_error is not None:
            raise AudioDeviceError(f"playback failed: {self._callback_error}")
        return self.stats

    def abort(self) -> None:
        """Stop now, dropping queued audio."""
        self._closing.set()
        try:
            self._stream.abort()
        finally:
            self.close()

    def close(self) -> None:
        try:
            self._stream.close()
        except self._sd.PortAudioError:
            pass

    def __enter__(self) -> "Player":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.finish()
        else:
            self.abort()

    # Runs on PortAudio's thread: no allocation-heavy work, never raise except CallbackStop.
    def _callback(self, outdata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
        try:
            out = outdata[:, 0]
            filled = 0
            while filled < frames:
                if self._pos >= len(self._current):
                    try:
                        self._current, self._pos = self._queue.get_nowait(), 0
                    except queue.Empty:
                        break
                    continue
                n = min(frames - filled, len(self._current) - self._pos)
                out[filled:filled + n] = self._current[self._pos:self._pos + n]
                filled += n
                self._pos += n
            self.stats.frames_played += filled
            if filled < frames:
                out[filled:] = 0.0
                if self._closing.is_set():
                    raise self._sd.CallbackStop
                self.stats.underruns += 1
        except self._sd.CallbackStop:
            raise
        except BaseException as exc:  # keep the error for finish(); stop cleanly
            self._callback_error = exc
            raise self._sd.CallbackAbort from None


def play(chunks: Iterable[AudioChunk], device: Device = None) -> PlaybackStats:
    """Play a stream of chunks as they arrive; blocks until the last one has been heard.

    The device opens on the first chunk (its sample rate decides the stream's). Closing or
    interrupting stops playback at once.
    """
    player: Optional[Player] = None
    try:
        for chunk in chunks:
            if player is None:
                player = Player(chunk.sample_rate, device)
            elif chunk.sample_rate != player.sample_rate:
                raise ValueError(f"chunk sample rate {chunk.sample_rate} differs from the stream's {player.sample_rate}")
            player.write(chunk.samples)
    except BaseException:
        if player is not None:
            player.abort()
        raise
    return player.finish() if player is not None else PlaybackStats()
