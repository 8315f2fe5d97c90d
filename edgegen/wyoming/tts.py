"""Text to speech over Wyoming: `synthesize`, and streamed text (`synthesize-start/-chunk/-stop`).

Events out are wyoming-piper's: `audio-start`, `audio-chunk`s of `samples_per_chunk` 16-bit
mono frames (the last one shorter), `audio-stop`; for streamed text one such group per sentence,
then `synthesize-stopped`. What differs is when audio starts: `Voice.stream` synthesises the
first clause alone, and streamed text is spoken clause by clause as it arrives
(`speak_stream`), where wyoming-piper waits for each whole sentence.

Settings come from the event: `voice.name` (a store name or the file stem), else
`voice.language`, else the default voice; `voice.speaker` (a speaker name or id); and `speed`
(an edgegen extension in the event data: 1.5 speaks 50 % faster). Server flags give the
defaults (`--length-scale`, `--noise-scale`, `--noise-w`, `--speaker`).
"""
from __future__ import annotations

import asyncio
import math
import queue
import re
import threading
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Iterator, Optional

import numpy as np
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.event import Event
from wyoming.tts import Synthesize, SynthesizeStart, SynthesizeStopped

from edgegen.errors import InvalidRequestError

from .services import VoiceLibrary

Send = Callable[[Event], Awaitable[None]]
_SENTENCE_END = re.compile(r"[.!?…][\"'”’»)\]}]*\s*$")


@dataclass(frozen=True)
class TtsDefaults:
    """Server-wide synthesis defaults (None: the voice config's)."""

    length_scale: Optional[float] = None
    noise_scale: Optional[float] = None
    noise_w: Optional[float] = None
    speaker: Optional[str] = None
    samples_per_chunk: int = 1024
    streaming: bool = True


class AudioSender:
    """Writes float audio as wyoming-piper does: 16-bit PCM in chunks of `samples_per_chunk`
    frames, a shorter one at the end of each sentence. Within a sentence a partial chunk waits
    for the next clause's audio, so the same audio makes the same chunks as wyoming-piper's
    (which writes each sentence whole); `stop()` sends the rest and `audio-stop`."""

    def __init__(self, send: Send, rate: int, samples_per_chunk: int) -> None:
        self.send, self.rate, self.frames = send, rate, samples_per_chunk
        self.started = False
        self._pending = b""
        self.samples_sent = 0

    async def add(self, samples: np.ndarray, end_of_sentence: bool = False) -> None:
        if not self.started:
            await self.send(AudioStart(rate=self.rate, width=2, channels=1).event())
            self.started = True
        pcm = np.clip(samples * 32767.0, -32767.0, 32767.0).astype("<i2").tobytes()  # Piper's scaling
        data = self._pending + pcm
        step = 2 * self.frames
        whole = len(data) - len(data) % step
        for offset in range(0, whole, step):
            await self._chunk(data[offset:offset + step])
        self._pending = data[whole:]
        if end_of_sentence and self._pending:
            await self._chunk(self._pending)
            self._pending = b""

    async def _chunk(self, pcm: bytes) -> None:
        self.samples_sent += len(pcm) // 2
        await self.send(AudioChunk(rate=self.rate, width=2, channels=1, audio=pcm).event())

    async def stop(self) -> None:
        if not self.started:
            await self.send(AudioStart(rate=self.rate, width=2, channels=1).event())
        if self._pending:
            await self._chunk(self._pending)
        self._pending = b""
        self.started = False
        await self.send(AudioStop().event())


def _check_text(text: Any, limit: int) -> str:
    if not isinstance(text, str):
        raise InvalidRequestError("'text' must be a string", param="text")
    if len(text) > limit:
        raise InvalidRequestError(f"text of {len(text)} characters is over this server's limit of {limit}", param="text")
    return text


class TtsSession:
    """The text-to-speech side of one connection."""

    def __init__(self, voices: VoiceLibrary, defaults: TtsDefaults, send: Send, run: Callable[..., Awaitable[Any]],
                 max_text_chars: int) -> None:
        self.voices, self.defaults, self.send, self.run = voices, defaults, send, run
        self.max_text_chars = max_text_chars
        self._text_stream: Optional[_TextStream] = None

    @property
    def streaming(self) -> bool:
        return self._text_stream is not None

    async def _voice_and_settings(self, data: dict) -> tuple[Any, dict]:
        voice_data = data.get("voice") or {}
        if not isinstance(voice_data, dict):
            raise InvalidRequestError("'voice' must be an object", param="voice")
        name, language, speaker = voice_data.get("name"), voice_data.get("language"), voice_data.get("speaker")
        for key, value in (("name", name), ("language", language), ("speaker", speaker)):
            if value is not None and not isinstance(value, str):
                raise InvalidRequestError(f"voice.{key} must be a string", param="voice")
        entry = self.voices.find(name, language)
        voice = await self.run(self.voices.load, entry)
        if speaker is None and entry is self.voices.default:
            speaker = self.defaults.speaker
        length_scale = self.defaults.length_scale if self.defaults.length_scale is not None else voice.config.length_scale
        speed = data.get("speed")
        if speed is not None:
            if isinstance(speed, bool) or not isinstance(speed, (int, float)) or not (math.isfinite(speed) and 0.1 <= speed <= 10):
                raise InvalidRequestError("speed must be a number from 0.1 to 10 (1 = normal)", param="speed")
            length_scale = length_scale / speed
        settings = dict(length_scale=length_scale, noise_scale=self.defaults.noise_scale, noise_w=self.defaults.noise_w,
                        speaker=_speaker(speaker, voice))
        voice.stream("", **settings)  # checks the settings now: an error event instead of a broken stream
        return voice, settings

    # ---- one-shot

    async def synthesize(self, event: Event) -> None:
        if self.streaming:
            return  # Home Assistant sends it after a text stream for older servers; wyoming-piper ignores it too
        text = _check_text(Synthesize.from_event(event).text if "text" in event.data else None, self.max_text_chars)
        voice, settings = await self._voice_and_settings(event.data)
        sender = AudioSender(self.send, voice.sample_rate, self.defaults.samples_per_chunk)
        chunks = voice.stream(text, **settings)
        try:
            while (chunk := await self.run(next, chunks, None)) is not None:
                await sender.add(chunk.samples, chunk.ends_sentence)
        finally:
            await self.run(chunks.close)  # stops lanes still running ahead
        await sender.stop()

    # ---- streamed text

    async def start(self, event: Event) -> None:
        await self.close()
        SynthesizeStart.from_event(event)
        voice, settings = await self._voice_and_settings(event.data)
        self._text_stream = _TextStream(voice, settings, self)

    async def chunk(self, event: Event) -> None:
        if self._text_stream is None:
            raise InvalidRequestError("synthesize-chunk outside a synthesize-start ... synthesize-stop stream")
        self._text_stream.feed(_check_text(event.data.get("text"), self.max_text_chars))

    async def stop(self) -> None:
        stream, self._text_stream = self._text_stream, None
        if stream is None:
            raise InvalidRequestError("synthesize-stop without synthesize-start")
        await stream.finish()
        await self.send(SynthesizeStopped().event())

    async def close(self) -> None:
        stream, self._text_stream = self._text_stream, None
        if stream is not None:
            await stream.cancel()


def _speaker(speaker: Optional[str], voice: Any) -> Any:
    """A speaker name from the voice's map, or a numeric id, as a `Voice.stream` speaker."""
    if speaker is None or speaker == "":
        return None
    if speaker in voice.config.speaker_id_map:
        return speaker
    if speaker.isdigit():
        return int(speaker)
    return speaker  # Voice refuses it with the list of this voice's speakers


_END = object()


class _TextStream:
    """Text chunks in, audio out clause by clause: `speak_stream` fed from the connection, its
    audio pumped to the client by a task. One `audio-start ... audio-stop` group per sentence."""

    def __init__(self, voice: Any, settings: dict, session: TtsSession) -> None:
        from edgegen.audio.speak import speak_stream

        self.session = session
        self.chars = 0
        self._texts: "queue.Queue[Any]" = queue.Queue()
        self._closed = threading.Event()
        self._speech = speak_stream(self._deltas(), voice, **settings)
        self._sender = AudioSender(session.send, voice.sample_rate, session.defaults.samples_per_chunk)
        self._pump = asyncio.ensure_future(self._pump_audio())

    def _deltas(self) -> Iterator[str]:  # runs on speak_stream's producer thread
        while not self._closed.is_set():
            try:
                item = self._texts.get(timeout=0.1)
            except queue.Empty:
                continue
            if item is _END:
                return
            yield item

    def feed(self, text: str) -> None:
        self.chars += len(text)
        if self.chars > self.session.max_text_chars:
            raise InvalidRequestError(f"streamed text is over this server's limit of {self.session.max_text_chars} characters")
        if self._pump.done():
            self._pump.result()  # a failed synthesis surfaces here, as an error event
        self._texts.put(text)

    async def _pump_audio(self) -> None:
        run = self.session.run
        try:
            while not self._closed.is_set():
                chunk = await run(next, self._speech, None)
                if chunk is None or self._closed.is_set():
                    break
                await self._sender.add(chunk.samples)
                if chunk.ends_sentence and _SENTENCE_END.search(chunk.text):
                    await self._sender.stop()
            if self._sender.started and not self._closed.is_set():
                await self._sender.stop()
        finally:
            # Only here, with no next() running on another thread, may the speech stream be closed.
            await run(self._speech.close)

    async def finish(self) -> None:
        """All text is in: speak the rest, then return (raises what the synthesis raised)."""
        self._texts.put(_END)
        await self._pump

    async def cancel(self) -> None:
        """Drop what is not spoken yet; returns after the clause being synthesised (if any)."""
        self._closed.set()
        self._texts.put(_END)
        try:
            await self._pump
        except Exception:  # the stream is being abandoned; its failure has nobody to go to
            pass
