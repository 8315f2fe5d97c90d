"""LLM -> speech: speak a stream of text deltas while it is still being generated.

A producer thread pulls deltas (so the LLM keeps generating on its own thread), cuts the text at
clause boundaries and puts whole clauses into a small bounded queue; the consumer, the caller's
iteration, synthesises each clause as soon as it arrives. A full queue blocks the producer:
that is the backpressure that keeps a fast LLM from racing far ahead of the voice.

    stream = speak_stream(llm.stream(prompt), voice)
    play(stream)                       # or: for chunk in stream: ...
    print(stream.time_to_first_audio)  # seconds from the call to the first audio chunk
"""
from __future__ import annotations

import contextlib
import queue
import threading
import time
from typing import Any, Callable, ContextManager, Iterable, Iterator, Optional

import numpy as np

from edgegen.audio.clauses import take_complete_clauses
from edgegen.audio.voice import AudioChunk, Voice
from edgegen.errors import InvalidRequestError

_END = object()


class _Failed:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


def _delta_text(delta: Any) -> str:
    if isinstance(delta, str):
        return delta
    text = getattr(delta, "text", None)
    if text is None:
        return ""  # e.g. a final chunk that only carries finish_reason/usage
    if not isinstance(text, str):
        raise InvalidRequestError(f"text deltas must be str or have a str .text, got {type(delta).__name__}")
    return text


class SpeechStream:
    """Iterator of `AudioChunk`s for a stream of text deltas; `close()` cancels both sides."""

    def __init__(
        self,
        deltas: Iterable[Any],
        voice: Voice,
        *,
        max_queue: int = 4,
        min_clause_chars: int = 1,
        max_clause_chars: int = 400,
        sentence_silence: float = 0.0,
        synthesis_guard: Optional[Callable[[], ContextManager[Any]]] = None,
        **synth_settings: Any,
    ) -> None:
        if max_queue < 1 or min_clause_chars < 1 or max_clause_chars < min_clause_chars:
            raise InvalidRequestError("need max_queue >= 1 and 1 <= min_clause_chars <= max_clause_chars")
        self.voice = voice
        self.text = ""  # all text received so far
        self.started_at = time.perf_counter()
        self.time_to_first_text: Optional[float] = None  # seconds from the call to the first non-empty delta
        self.time_to_first_audio: Optional[float] = None  # seconds from the call to the first audio chunk
        self.audio_seconds = 0.0
        self._settings = synth_settings
        # entered around each synthesis step: e.g. the LLM's hold(), so the clause about to be heard
        # gets the cores rather than sharing them with the rest of the reply
        self._guard = synthesis_guard or contextlib.nullcontext
        self._silence = np.zeros(int(voice.sample_rate * sentence_silence), dtype=np.float32)
        self._min, self._max = min_clause_chars, max_clause_chars
        self._deltas = iter(deltas)
        self._queue: "queue.Queue[Any]" = queue.Queue(maxsize=max_queue)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._produce, name="edgegen-speak-producer", daemon=True)
        self._thread.start()
        self._chunks = self._consume()

    # ---- producer (own thread): deltas -> clauses
    def _put(self, item: Any) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def _produce(self) -> None:
        buffer = ""
        try:
            for delta in self._deltas:
                if self._stop.is_set():
                    break
                text = _delta_text(delta)
                if not text:
                    continue
                if self.time_to_first_text is None:
                    self.time_to_first_text = time.perf_counter() - self.started_at
                self.text += text
                buffer += text
                clauses, buffer = take_complete_clauses(buffer, self._min)
                while len(buffer) > self._max:  # no punctuation for a long while: cut at the last space
                    cut = buffer.rfind(" ", 0, self._max) + 1 or self._max
                    clauses.append(buffer[:cut])
                    buffer = buffer[cut:]
                for clause in clauses:
                    if not self._put(clause):
                        return
            if buffer.strip():
                self._put(buffer)
        except BaseException as exc:  # hand any failure (the LLM's too) to the consumer
            self._put(_Failed(exc))
        finally:
            self._put(_END)
            if self._stop.is_set():
                close = getattr(self._deltas, "close", None)
                if close is not None:
                    close()  # we are the thread iterating it, so closing here is safe

    # ---- consumer (caller's thread): clauses -> audio
    def _consume(self) -> Iterator[AudioChunk]:
        after_sentence = False
        while True:
            item = self._queue.get()
            if item is _END:
                return
            if isinstance(item, _Failed):
                raise item.exc
            pieces = self.voice.stream(item, split="clause", **self._settings)
            while True:
                with self._guard():
                    chunk = next(pieces, None)
                if chunk is None:
                    break
                if after_sentence and self._silence.size:
                    chunk = AudioChunk(
                        np.concatenate([self._silence, chunk.samples]),
                        chunk.sample_rate, chunk.text, chunk.phoneme_ids, chunk.phonemes, chunk.ends_sentence,
                    )
                after_sentence = chunk.ends_sentence
                if self.time_to_first_audio is None:
                    self.time_to_first_audio = time.perf_counter() - self.started_at
                self.audio_seconds += chunk.duration
                yield chunk

    def __iter__(self) -> "SpeechStream":
        return self

    def __next__(self) -> AudioChunk:
        try:
            return next(self._chunks)
        except BaseException:
            self.close()
            raise

    def close(self, timeout: float = 1.0) -> None:
        """Stop both sides; queued clauses are dropped. Safe to call more than once."""
        self._stop.set()
        self._chunks.close()
        while True:  # unblock a producer waiting on a full queue
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout)  # a producer stuck inside the LLM's next() finishes on its own

    def __enter__(self) -> "SpeechStream":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        stop = getattr(self, "_stop", None)  # absent when __init__ refused its arguments
        if stop is not None:
            stop.set()


def speak_stream(deltas: Iterable[Any], voice: Optional[Voice] = None, **options: Any) -> SpeechStream:
    """Speak text deltas (str or objects with `.text`, e.g. `TextChunk`) while they arrive.

    `voice` defaults to `load_voice()`. Options: `max_queue` (clauses buffered ahead, default 4),
    `min_clause_chars`, `max_clause_chars`, `sentence_silence`, and any `Voice.stream` setting
    (`length_scale`, `noise_scale`, `noise_w`, `speaker`, `volume`).
    """
    if voice is None:
        from edgegen.audio.voice import load_voice

        voice = load_voice()
    return SpeechStream(deltas, voice, **options)
