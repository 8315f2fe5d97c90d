"""Audio in over Wyoming: speech to text (`transcribe` + audio -> `transcript`) and wake words
(`detect` + audio -> `detection` ... / `not-detected`).

Audio arrives as `audio-start`, `audio-chunk`s, `audio-stop`, in any of the formats below; it is
converted to 16 kHz 16-bit mono with the `wyoming` package's converter (audioop) before the
models see it. A transcription buffers at most `max_audio_seconds`; wake-word audio is not
buffered at all (each chunk goes straight to the detector).
"""
from __future__ import annotations

import threading
from typing import Any, Awaitable, Callable, Optional

import numpy as np
from wyoming.asr import Transcribe, Transcript
from wyoming.audio import AudioChunk, AudioChunkConverter
from wyoming.event import Event
from wyoming.wake import Detect, Detection, NotDetected

from edgegen.errors import InvalidRequestError

MODEL_RATE = 16_000
RATES = range(8_000, 96_001)
WIDTHS = (1, 2, 4)  # bytes per sample; 8-bit is unsigned, as in WAV
CHANNELS = (1, 2)

Send = Callable[[Event], Awaitable[None]]


class UnsupportedAudio(InvalidRequestError):
    """An audio format or chunk this server cannot take."""


def check_format(data: dict) -> tuple[int, int, int]:
    try:
        rate, width, channels = data["rate"], data["width"], data["channels"]
    except KeyError as exc:
        raise UnsupportedAudio(f"audio event without {exc.args[0]!r}") from None
    for value in (rate, width, channels):
        if isinstance(value, bool) or not isinstance(value, int):
            raise UnsupportedAudio("audio rate, width and channels must be integers")
    if rate not in RATES or width not in WIDTHS or channels not in CHANNELS:
        raise UnsupportedAudio(
            f"unsupported audio format rate={rate} width={width} channels={channels}: this server takes "
            f"8000-96000 Hz, {'/'.join(map(str, WIDTHS))}-byte samples, mono or stereo"
        )
    return rate, width, channels


class AudioInput:
    """One audio stream, converted to 16 kHz int16 mono; keeps the stream's position in ms."""

    def __init__(self, start: Event) -> None:
        self.format = check_format(start.data)
        self.converter = AudioChunkConverter(rate=MODEL_RATE, width=2, channels=1)
        self.samples_in = 0  # at the model rate

    def convert(self, event: Event) -> np.ndarray:
        fmt = check_format(event.data)
        if fmt != self.format:
            raise UnsupportedAudio(f"audio format changed inside a stream: {fmt} after {self.format}")
        audio = event.payload or b""
        rate, width, channels = fmt
        if len(audio) % (width * channels):
            raise UnsupportedAudio(f"audio chunk of {len(audio)} bytes is not whole {width * channels}-byte frames")
        chunk = self.converter.convert(AudioChunk.from_event(event))
        samples = np.frombuffer(chunk.audio, dtype="<i2").astype(np.int16)
        self.samples_in += samples.size
        return samples

    @property
    def position_ms(self) -> int:
        return self.samples_in * 1000 // MODEL_RATE


class TranscribeSession:
    """`transcribe` (optional: it only sets the language), then audio -> one `transcript`."""

    def __init__(self, asr: Any, send: Send, run: Callable[..., Awaitable[Any]], max_audio_seconds: float) -> None:
        self.asr, self.send, self.run = asr, send, run
        self.max_samples = int(max_audio_seconds * MODEL_RATE)
        self.language: Optional[str] = None
        self._input: Optional[AudioInput] = None
        self._parts: list[np.ndarray] = []
        self._count = 0

    def transcribe(self, event: Event) -> None:
        request = Transcribe.from_event(event)
        if request.language is not None and not isinstance(request.language, str):
            raise InvalidRequestError("'language' must be a string", param="language")
        # Home Assistant may send a region ("en-US"); the recogniser knows languages ("en").
        self.language = request.language.replace("_", "-").split("-")[0].lower() if request.language else None

    def audio_start(self, event: Event) -> None:
        self._input, self._parts, self._count = AudioInput(event), [], 0

    def audio_chunk(self, event: Event) -> None:
        if self._input is None:
            raise InvalidRequestError("audio-chunk before audio-start")
        samples = self._input.convert(event)
        self._count += samples.size
        if self._count > self.max_samples:
            self.reset()
            raise InvalidRequestError(f"more than {self.max_samples // MODEL_RATE} s of audio to transcribe")
        self._parts.append(samples)

    async def audio_stop(self) -> None:
        if self._input is None:
            raise InvalidRequestError("audio-stop before audio-start")
        audio = np.concatenate(self._parts) if self._parts else np.zeros(0, dtype=np.int16)
        language = self.language
        self.reset()
        result = await self.run(lambda: self.asr.transcribe(audio, MODEL_RATE, language=language))
        await self.send(Transcript(text=result.text.strip(), language=result.language or language).event())

    def reset(self) -> None:
        self._input, self._parts, self._count, self.language = None, [], 0, None


class DetectorPool:
    """Wake-word detectors, one per live `detect` stream (each keeps its own audio state), reused
    after `reset()`; at most `limit` at once."""

    def __init__(self, factory: Callable[[], Any], limit: int = 4) -> None:
        self.factory, self.limit = factory, limit
        self._idle: list[Any] = []
        self._busy = 0
        self._lock = threading.Lock()

    def acquire(self) -> Any:
        with self._lock:
            if self._idle:
                self._busy += 1
                return self._idle.pop()
            if self._busy >= self.limit:
                raise InvalidRequestError(f"all {self.limit} wake-word detectors are busy; try again shortly")
            self._busy += 1
        try:
            return self.factory()
        except BaseException:
            with self._lock:
                self._busy -= 1
            raise

    def release(self, detector: Any) -> None:
        detector.reset()
        with self._lock:
            self._busy -= 1
            self._idle.append(detector)


class DetectSession:
    """`detect` (names to listen for; none = all), then audio -> a `detection` per wake word heard,
    `not-detected` at `audio-stop` if there was none."""

    def __init__(self, pool: DetectorPool, words: tuple[str, ...], send: Send, run: Callable[..., Awaitable[Any]]) -> None:
        self.pool, self.words, self.send, self.run = pool, words, send, run
        self.names: Optional[set[str]] = None
        self.active = False  # a detect request is waiting for audio
        self._detector: Any = None
        self._input: Optional[AudioInput] = None
        self._detected = False

    def detect(self, event: Event) -> None:
        names = Detect.from_event(event).names
        if names is not None:
            if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
                raise InvalidRequestError("'names' must be a list of strings", param="names")
            unknown = [n for n in names if n not in self.words]
            if unknown and len(unknown) == len(names):
                raise InvalidRequestError(f"no wake word {', '.join(unknown)} here (words: {', '.join(self.words)})")
        self.names = set(names) if names else None
        self.active = True

    def audio_start(self, event: Event) -> None:
        self.close()
        self.active = True
        self._input = AudioInput(event)
        self._detector = self.pool.acquire()
        self._detected = False

    async def audio_chunk(self, event: Event) -> None:
        if self._input is None:
            raise InvalidRequestError("audio-chunk before audio-start")
        samples = self._input.convert(event)
        found = await self.run(self._detector.process, samples)
        timestamp = event.data.get("timestamp")
        if isinstance(timestamp, bool) or not isinstance(timestamp, int):
            timestamp = self._input.position_ms
        for hit in found:
            if self.names is None or hit.name in self.names:
                self._detected = True
                await self.send(Detection(name=hit.name, timestamp=timestamp).event())

    async def audio_stop(self) -> None:
        if self._input is None:
            raise InvalidRequestError("audio-stop before audio-start")
        detected = self._detected
        self.close()
        if not detected:
            await self.send(NotDetected().event())

    def close(self) -> None:
        if self._detector is not None:
            self.pool.release(self._detector)
        self._detector, self._input, self.active = None, None, False

