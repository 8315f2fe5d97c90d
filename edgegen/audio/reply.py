"""One spoken reply of the assistant: LLM stream -> clauses -> voice -> paced playback, stoppable.

`Reply` runs on its own thread. The LLM streams on the SpeechStream's producer thread, this
thread synthesises clause by clause and writes the audio to the Player no further than `lead_s`
ahead of the wall clock, so (a) a barge-in drops at most `lead_s` of queued audio, and (b) the
position of the speaker is known without asking the device: `heard_until()` = seconds of reply
audio that have left the speaker. (The ALSA null device used in tests plays a second of audio
in ~15 ms; pacing the writes keeps the timeline of a real speaker there too.)

When it is interrupted, `interrupt()` aborts the PortAudio stream at once (from the listener's
thread), cancels the generation, and `result()` cuts the reply to the clauses that finished
playing: the text the history keeps and the number of generated tokens the LLM's KV cache keeps.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Optional

import numpy as np

from edgegen.audio.speak import SpeechStream

PLAYBACK_SLICE_S = 0.05  # audio handed to the player at a time: the pacing (and stop) granularity


@dataclass
class ReplyTimings:
    started: float = 0.0  # perf_counter when the reply began (transcript ready)
    first_token: Optional[float] = None  # seconds from `started`
    first_audio: Optional[float] = None  # first clause synthesised and handed to the speaker
    first_clause_synthesis: Optional[float] = None  # seconds the first clause took in the voice


@dataclass
class ReplyResult:
    full_text: str  # everything the LLM generated
    spoken_text: str  # the clauses that finished playing (== full_text when not interrupted)
    interrupted: bool
    prompt_ids: tuple[int, ...]
    generated_ids: list[int]
    kept_tokens: int  # generated tokens whose text lies within spoken_text
    clauses: list[tuple[str, float, float]]  # (text, start s, end s) on the reply's audio timeline
    stop_latency: Optional[float]  # seconds from the barge-in decision to the player stopped
    finish_reason: Optional[str]
    timings: ReplyTimings = field(default_factory=ReplyTimings)


class Reply:
    def __init__(self, llm: Any, voice: Any, messages: list[dict[str, Any]], *, player_factory: Callable[[int], Any],
                 sampling: dict[str, Any], lead_s: float = 0.2, on_clause: Optional[Callable[[str], None]] = None,
                 max_phonemes: Optional[int] = None) -> None:
        self.llm, self.voice = llm, voice
        self.prepared = llm.prepare_chat(messages)
        self.sampling = sampling
        self.lead_s = lead_s
        self.on_clause = on_clause
        self.max_phonemes = max_phonemes  # the voice's limit per model run (Voice.stream)
        self.timings = ReplyTimings(started=time.perf_counter())
        self.cancel = threading.Event()  # the LLM's cancel: checked after every token
        self.stopped = threading.Event()  # interrupt(): stop speaking now
        self.done = threading.Event()
        self.player = player_factory(voice.sample_rate)
        self._play_start: Optional[float] = None
        self._written = 0.0  # seconds of audio handed to the player
        self._audio: list[np.ndarray] = []  # what was played, for the echo gate
        self._clauses: list[tuple[str, float, float]] = []
        self._trace: list[tuple[int, int]] = []  # (text length, generated tokens) after each LLM chunk
        self._generated: list[int] = []
        self._text = ""
        self._finish: Optional[str] = None
        self._stop_latency: Optional[float] = None
        self._error: Optional[BaseException] = None
        self._stop_lock = threading.Lock()
        self.thread = threading.Thread(target=self._run, name="edgegen-reply", daemon=True)
        self.thread.start()

    # ---- the speaking thread
    def _deltas(self) -> Iterator[Any]:
        stream = self.llm.chat(self.prepared, stream=True, cancel=self.cancel, **self.sampling)
        try:
            for chunk in stream:
                if chunk.text and self.timings.first_token is None:
                    self.timings.first_token = time.perf_counter() - self.timings.started
                self._text += chunk.text
                self._generated.extend(chunk.token_ids)
                self._trace.append((len(self._text), len(self._generated)))
                if chunk.finish_reason is not None:
                    self._finish = chunk.finish_reason
                yield chunk
        finally:
            stream.close()  # cancels a generation still running (the lock is released when it ends)
            if self._finish is None and self.cancel.is_set():
                self._finish = "cancelled"  # closed before its final chunk: we cancelled it

    def _run(self) -> None:
        speech: Optional[SpeechStream] = None
        try:
            # The voice synthesises while the LLM is held (a native model's scheduler): on 2 cores the
            # rest of the reply's tokens would slow the clause the person is waiting for by ~20 %,
            # and they have the whole playback of that clause to catch up.
            scheduler = getattr(getattr(self.llm, "backend", None), "scheduler", None)
            limit = {} if self.max_phonemes is None else {"max_phonemes": self.max_phonemes}
            speech = SpeechStream(self._deltas(), self.voice, synthesis_guard=getattr(scheduler, "hold", None), **limit)
            t_clause = time.perf_counter()
            start: Optional[float] = None
            for chunk in speech:
                if self.stopped.is_set():
                    break
                if self.timings.first_clause_synthesis is None:
                    self.timings.first_clause_synthesis = time.perf_counter() - t_clause
                start = self._written if start is None else start
                if not self._play(chunk.samples):
                    break
                # A clause spoken in parts (the voice's max_phonemes) carries its text on its last
                # part: it counts as heard, and is recorded, once all of its parts have played.
                if chunk.text:
                    self._clauses.append((chunk.text, start, self._written))
                    start = None
                t_clause = time.perf_counter()
            else:
                self._drain()
        except BaseException as exc:  # reported by result()
            self._error = exc
        finally:
            self.cancel.set()
            if speech is not None:
                speech.close()
            if not self.stopped.is_set():
                try:
                    self.player.finish(timeout=1.0)
                except Exception:
                    pass
            self.done.set()

    def _play(self, samples: np.ndarray) -> bool:
        rate = self.voice.sample_rate
        step = max(1, int(rate * PLAYBACK_SLICE_S))
        for i in range(0, len(samples), step):
            piece = samples[i:i + step]
            while not self.stopped.is_set() and self._play_start is not None and \
                    self._written - (time.perf_counter() - self._play_start) > self.lead_s:
                time.sleep(0.005)
            with self._stop_lock:  # never write to a player interrupt() has aborted
                if self.stopped.is_set():
                    return False
                if self._play_start is None:
                    self._play_start = time.perf_counter()
                    self.timings.first_audio = self._play_start - self.timings.started
                self.player.write(piece)
                self._audio.append(piece)
                self._written += len(piece) / rate
        return True

    def _drain(self) -> None:
        """Wait until the paced timeline says the last sample has been heard."""
        while not self.stopped.is_set() and self._play_start is not None and \
                time.perf_counter() - self._play_start < self._written:
            time.sleep(0.01)

    # ---- the listener's side
    @property
    def speaking(self) -> bool:
        return not self.done.is_set()

    def heard_until(self) -> float:
        """Seconds of reply audio that have left the speaker (by the paced timeline)."""
        if self._play_start is None:
            return 0.0
        return max(0.0, min(self._written, time.perf_counter() - self._play_start))

    def recent_playback_rms(self, window_s: float = 0.3) -> float:
        """RMS of the reply audio played in the last `window_s` (what an echo would carry)."""
        if not self._audio:
            return 0.0
        rate = self.voice.sample_rate
        audio = np.concatenate(self._audio[-int(window_s / PLAYBACK_SLICE_S) - 4:])
        end = len(audio) - int((self._written - self.heard_until()) * rate)
        seg = audio[max(0, end - int(window_s * rate)):max(0, end)]
        return float(np.sqrt(np.mean(seg.astype(np.float64) ** 2))) if seg.size else 0.0

    def interrupt(self, decided_at: Optional[float] = None) -> None:
        """Barge-in: stop the speaker now and cancel the generation (safe from any thread)."""
        with self._stop_lock:
            if self.stopped.is_set():
                return
            heard = self.heard_until()
            self.stopped.set()
            self.cancel.set()
            try:
                self.player.abort()
            except Exception:
                pass
            self._heard_at_stop = heard
            self._stop_latency = time.perf_counter() - (decided_at or time.perf_counter())

    def result(self, timeout: Optional[float] = 10.0) -> ReplyResult:
        self.thread.join(timeout)
        if self._error is not None:
            raise self._error
        interrupted = self.stopped.is_set()
        heard = getattr(self, "_heard_at_stop", self._written) if interrupted else self._written
        played = [c for c in self._clauses if c[2] <= heard + 1e-6]
        offset = _spoken_offset(self._text, [c[0] for c in played]) if interrupted else len(self._text)
        kept = max([n for length, n in self._trace if length <= offset], default=0) if interrupted else len(self._generated)
        return ReplyResult(
            full_text=self._text, spoken_text=self._text[:offset].strip(), interrupted=interrupted,
            prompt_ids=tuple(self.prepared.ids), generated_ids=list(self._generated), kept_tokens=kept,
            clauses=list(self._clauses), stop_latency=self._stop_latency, finish_reason=self._finish,
            timings=self.timings,
        )


def _spoken_offset(text: str, clauses: list[str]) -> int:
    """End offset in `text` of the last of `clauses` (each a piece of `text`, found in order)."""
    pos = 0
    for clause in clauses:
        piece = clause.strip()
        if not piece:
            continue
        i = text.find(piece, pos)
        if i < 0:  # the voice normalised it: fall back to its length
            pos = min(len(text), pos + len(clause))
        else:
            pos = i + len(piece)
    return pos
