"""Voice activity and endpointing: Silero VAD (ONNX) through our onnxruntime, streaming.

`SileroVAD` is the model: one speech probability per 32 ms window (512 samples at 16 kHz), fed
with the last 64 samples of the previous window as context and a recurrent state of 2x128
floats, exactly as silero-vad's own `OnnxWrapper` runs it. `Endpointer` turns probabilities into
turns: speech starts after `min_speech_ms` of windows at or above `threshold`, and ends after
`min_silence_ms` of windows below `threshold - 0.15` (Silero's hysteresis), or when the
utterance reaches `max_utterance_s`. It hands back each utterance's audio, padded by
`speech_pad_ms` on both sides (the first and last phoneme are often quiet).

    vad = load_vad()
    ep = Endpointer(vad, VADConfig(min_silence_ms=500))
    for block in source:
        for event in ep.process(block):
            if isinstance(event, SpeechEnd): transcribe(event.audio)
"""
from __future__ import annotations

import collections
import os
from dataclasses import dataclass
from typing import Any, Iterator, Optional, Union

import numpy as np

from edgegen.errors import InvalidRequestError

SAMPLE_RATE = 16000
WINDOW = 512  # samples per probability at 16 kHz (32 ms)
CONTEXT = 64  # samples of the previous window prepended to each window
STATE_SHAPE = (2, 1, 128)
DEFAULT_VAD = "silero-vad"


class SileroVAD:
    """Silero VAD v5/v6 ONNX model; `process()` buffers samples of any length and returns one
    probability per complete 512-sample window."""

    def __init__(self, path: Union[str, os.PathLike], threads: int = 1, name: str = DEFAULT_VAD) -> None:
        from edgegen.extras import require

        ort = require("onnxruntime", "asr", "voice activity detection")

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads  # one window is ~0.1 ms of work: more threads only add overhead
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(os.fspath(path), sess_options=options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own (untyped) errors for bad files
            from edgegen.errors import ModelFormatError

            raise ModelFormatError(f"cannot load the VAD model {path}: {exc}") from None
        names = {i.name for i in self.session.get_inputs()}
        if names != {"input", "state", "sr"}:
            from edgegen.errors import ModelFormatError

            raise ModelFormatError(f"{path} is not a Silero VAD v5/v6 model (inputs {sorted(names)})")
        self.name = name
        self.path = os.fspath(path)
        self._sr = np.array(SAMPLE_RATE, dtype=np.int64)
        self.reset()

    def reset(self) -> None:
        self._state = np.zeros(STATE_SHAPE, dtype=np.float32)
        self._context = np.zeros(CONTEXT, dtype=np.float32)
        self._pending = np.zeros(0, dtype=np.float32)

    def window_probability(self, window: np.ndarray) -> float:
        """Speech probability of exactly one 512-sample float32 window (16 kHz)."""
        x = np.concatenate([self._context, window])[None, :]
        out, self._state = self.session.run(None, {"input": x, "state": self._state, "sr": self._sr})
        self._context = x[0, -CONTEXT:]
        return float(out.reshape(-1)[0])

    def process(self, samples: np.ndarray) -> list[float]:
        """Float32 samples in [-1, 1] at 16 kHz (any length) -> probabilities of the complete windows."""
        buf = np.concatenate([self._pending, np.asarray(samples, dtype=np.float32).reshape(-1)])
        n = len(buf) // WINDOW
        probs = [self.window_probability(buf[i * WINDOW:(i + 1) * WINDOW]) for i in range(n)]
        self._pending = buf[n * WINDOW:]
        return probs


def load_vad(name: str = DEFAULT_VAD, *, threads: int = 1) -> SileroVAD:
    """The Silero VAD from the store (the silero-vad package's ONNX file), or an .onnx path."""
    from edgegen.store import resolve_model

    return SileroVAD(resolve_model(name, "vad"), threads=threads, name=os.path.basename(name))


@dataclass(frozen=True)
class VADConfig:
    threshold: float = 0.5  # speech when the probability is at or above this
    min_speech_ms: int = 160  # this much speech before a turn starts (a click is not a turn)
    min_silence_ms: int = 600  # this much silence ends a turn
    max_utterance_s: float = 20.0  # a turn longer than this is cut and handed on
    speech_pad_ms: int = 96  # audio kept before the first and after the last speech window
    # After this much silence inside a turn a SpeechPause hands out the audio the turn will have if
    # the silence lasts (0: never): a listener can start transcribing while the endpointer waits
    # out the rest of min_silence_ms. Only used between speech_pad_ms and min_silence_ms.
    pause_ms: int = 160  # 192 measured ~0.1 s slower to first audio; 128 no faster than 160, more stale guesses

    def validate(self) -> "VADConfig":
        if not 0.0 < self.threshold < 1.0:
            raise InvalidRequestError(f"VAD threshold must be in (0, 1), got {self.threshold}", param="threshold")
        if self.min_speech_ms < 0 or self.min_silence_ms < 32 or self.speech_pad_ms < 0:
            raise InvalidRequestError("need min_speech_ms >= 0, min_silence_ms >= 32 and speech_pad_ms >= 0")
        if self.pause_ms < 0:
            raise InvalidRequestError(f"pause_ms must be >= 0, got {self.pause_ms}", param="pause_ms")
        if not 0.5 <= self.max_utterance_s <= 600:
            raise InvalidRequestError(f"max_utterance_s must be in [0.5, 600], got {self.max_utterance_s}")
        return self


@dataclass(frozen=True)
class SpeechStart:
    time: float  # seconds since the endpointer's reset, of the first speech window (before padding)


@dataclass(frozen=True)
class SpeechPause:
    """`pause_ms` of silence inside a turn: `audio` is exactly the SpeechEnd audio this turn gets if
    the silence goes on to `min_silence_ms` (speech that resumes makes it stale)."""

    start: float
    audio: np.ndarray


@dataclass(frozen=True)
class SpeechEnd:
    start: float  # seconds, padded
    end: float  # seconds, padded
    audio: np.ndarray  # float32 16 kHz, start..end
    reason: str  # "silence" or "max_length"


def _frames(ms: float) -> int:
    return max(0, int(round(ms / 1000 * SAMPLE_RATE / WINDOW)))


class Endpointer:
    """Streaming turn detection over a SileroVAD: feed blocks, get SpeechStart / SpeechEnd events.

    `threshold` can be changed between calls (the assistant raises it while it is speaking)."""

    def __init__(self, vad: SileroVAD, config: Optional[VADConfig] = None) -> None:
        self.vad = vad
        self.config = (config or VADConfig()).validate()
        self.threshold = self.config.threshold
        self.min_speech_frames = max(1, _frames(self.config.min_speech_ms))
        self.reset()

    def reset(self) -> None:
        self.vad.reset()
        self.frame_index = 0  # windows seen since the reset
        self.in_speech = False
        self.last_probability = 0.0
        pad = _frames(self.config.speech_pad_ms)
        # up to 2 s before the start is kept (min_speech_frames may be raised while running)
        self._preroll: "collections.deque[np.ndarray]" = collections.deque(maxlen=pad + max(self.min_speech_frames, 64))
        self._speech_run = 0
        self._silence_run = 0
        self._utterance: list[np.ndarray] = []
        self._lookback: list[np.ndarray] = []
        self._start_frame = 0
        self._pending = np.zeros(0, dtype=np.float32)

    @property
    def time(self) -> float:
        return self.frame_index * WINDOW / SAMPLE_RATE

    def process(self, samples: np.ndarray) -> Iterator[Union[SpeechStart, SpeechPause, SpeechEnd]]:
        """Float32 16 kHz samples of any length -> events for the complete windows among them."""
        buf = np.concatenate([self._pending, np.asarray(samples, dtype=np.float32).reshape(-1)])
        n = len(buf) // WINDOW
        self._pending = buf[n * WINDOW:]
        for i in range(n):
            window = buf[i * WINDOW:(i + 1) * WINDOW]
            event = self._step(window, self.vad.window_probability(window))
            if event is not None:
                yield event

    def include_lookback(self, seconds: float) -> None:
        """Start the running utterance up to `seconds` earlier than the endpointer decided (a barge-in
        decided on stricter settings may have let a short first word, "Stop!", go by)."""
        if self.in_speech and self._lookback:
            n = min(len(self._lookback), _frames(seconds * 1000))
            if n:
                self._utterance = self._lookback[-n:] + self._utterance
                self._start_frame -= n
            self._lookback = []

    def current_audio(self) -> np.ndarray:
        """The running utterance so far (padded start), for partial transcripts; empty outside speech."""
        return np.concatenate(self._utterance) if self.in_speech and self._utterance else np.zeros(0, np.float32)

    def _step(self, window: np.ndarray, prob: float) -> Union[SpeechStart, SpeechPause, SpeechEnd, None]:
        cfg = self.config
        self.last_probability = prob
        self.frame_index += 1
        if not self.in_speech:
            self._preroll.append(window)
            self._speech_run = self._speech_run + 1 if prob >= self.threshold else 0
            if self._speech_run < self.min_speech_frames:
                return None
            self.in_speech = True
            self._silence_run = 0
            first = self.frame_index - self._speech_run  # index of the first speech window
            keep = self._speech_run + _frames(cfg.speech_pad_ms)  # the speech plus its padding
            self._lookback = list(self._preroll)[:-keep] if keep < len(self._preroll) else []
            self._utterance = list(self._preroll)[-keep:]
            self._start_frame = self.frame_index - len(self._utterance)
            self._preroll.clear()
            return SpeechStart(first * WINDOW / SAMPLE_RATE)
        self._utterance.append(window)
        if prob < self.threshold - 0.15:
            self._silence_run += 1
        elif prob >= self.threshold:
            self._silence_run = 0
        # The audio a silence ending here keeps: the same at the pause and at the end while the
        # silence runs unbroken (both counts grow together), so a transcript started at the pause
        # is the final one.
        keep = len(self._utterance) - self._silence_run + _frames(cfg.speech_pad_ms)
        if self._silence_run >= _frames(cfg.min_silence_ms):
            return self._end(min(keep, len(self._utterance)), "silence")
        if len(self._utterance) * WINDOW >= cfg.max_utterance_s * SAMPLE_RATE:
            return self._end(len(self._utterance), "max_length")
        pause = _frames(cfg.pause_ms)
        if (cfg.pause_ms and _frames(cfg.speech_pad_ms) <= pause < _frames(cfg.min_silence_ms)
                and self._silence_run == pause and prob < self.threshold - 0.15):
            return SpeechPause(self._start_frame * WINDOW / SAMPLE_RATE,
                               np.concatenate(self._utterance[:min(keep, len(self._utterance))]))
        return None

    def _end(self, keep: int, reason: str) -> SpeechEnd:
        audio = np.concatenate(self._utterance[:keep])
        start = self._start_frame * WINDOW / SAMPLE_RATE
        self.in_speech = False
        self._utterance = []
        self._speech_run = 0
        return SpeechEnd(start, start + len(audio) / SAMPLE_RATE, audio, reason)

    def flush(self) -> Optional[SpeechEnd]:
        """End of input: the running utterance (if any) ends here."""
        if not self.in_speech:
            return None
        return self._end(len(self._utterance), "end_of_input")


def speech_segments(vad: SileroVAD, audio: np.ndarray, config: Optional[VADConfig] = None) -> list[tuple[float, float]]:
    """(start, end) seconds of each utterance in a whole recording (float32 16 kHz)."""
    ep = Endpointer(vad, config)
    out = [(e.start, e.end) for e in ep.process(audio) if isinstance(e, SpeechEnd)]
    last = ep.flush()
    return out + ([(last.start, last.end)] if last is not None else [])


def describe(vad: SileroVAD) -> dict[str, Any]:
    return {"name": vad.name, "path": vad.path, "window_ms": WINDOW * 1000 // SAMPLE_RATE}
