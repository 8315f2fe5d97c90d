"""Memory fit check: will weights + KV cache + voice sessions fit in the budget? Asked before loading.

`estimate_memory` holds the arithmetic (the engine reuses it to size its KV cache);
`check_fit` turns an estimate that does not fit into MemoryBudgetError with the numbers.

Weights are mmapped, so they count at file size: the pages are shared and clean, but a model
whose weights do not fit in RAM pages from storage on every token, which on an SBC's SD card is
unusable. Counting them is the honest default.
"""
from __future__ import annotations

import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Union

from .errors import EdgegenWarning, MemoryBudgetError, StoreError

# bytes per cached K or V element: f16 = 2; q8_0 = a 2-byte scale + 32 int8 per 32-element block.
KV_BYTES_PER_ELEMENT = {"f32": 4.0, "f16": 2.0, "q8_0": 34 / 32}
# Measured on en_US-joe-medium (60.3 MiB .onnx): +89 MiB RSS after creating the onnxruntime
# session, +135 MiB after synthesising a 100-phoneme sentence. 2x the file + 32 MiB covers that.
VOICE_SESSION_FACTOR = 2.0
VOICE_SESSION_FIXED = 32 << 20
# Compute scratch per token of a prompt batch: float32 logits over the vocabulary plus a few
# activation rows. Fitted to llama.cpp 0.3.36's "compute buffer size" (SmolLM2-135M: 99.4 MiB at
# n_ubatch 512, 12.4 MiB at 64; Gemma 3 270M: 514.5 / 64.3 MiB), i.e. 4 * (n_vocab + ~3 n_embd)
# bytes per batch token. Plus a fixed allowance for thread stacks and the Python heap.
# Measured on whisper-tiny.en (model.bin 72 MiB, float16), int8, 2 threads: importing
# faster-whisper/CTranslate2/PyAV +37 MiB, loading +69 MiB, first 30 s window decoded +49 MiB
# (beam 5): 155 MiB. The load itself peaks ~100 MiB higher while the float16 weights are converted,
# which is why the assistant loads the recogniser first.
ASR_SESSION_FACTOR = 1.5
ASR_SESSION_FIXED = 40 << 20
# Silero VAD (2.2 MiB .onnx): one single-threaded onnxruntime session, a few MiB of arena.
VAD_SESSION_FACTOR = 2.0
VAD_SESSION_FIXED = 8 << 20
# pymicro-wakeword: the TFLite runtime (4.6 MiB .so) plus ~100 KiB models and small arenas.
WAKE_RUNTIME_BYTES = 8 << 20
WAKE_WORD_BYTES = 2 << 20
# A voice's parallel lane session (see audio/lanes.py): single-threaded, sharing the arena; measured
# +66 MiB with joe (60 MiB .onnx), i.e. about the file's size again.
VOICE_LANE_FACTOR = 1.1
DEFAULT_N_BATCH = 512
RUNTIME_OVERHEAD = 32 << 20
DEFAULT_MARGIN_FRACTION = 0.10
DEFAULT_MARGIN_MIN = 256 << 20


@dataclass(frozen=True)
class MemoryEstimate:
    weights_bytes: int
    kv_bytes: int
    scratch_bytes: int  # logits, activations and fixed runtime overhead
    voice_bytes: int
    n_ctx: int
    kv_type: str
    asr_bytes: int = 0  # speech recogniser sessions (CTranslate2)
    vad_bytes: int = 0  # voice activity sessions (onnxruntime)
    wake_bytes: int = 0  # wake word runtime and models (TFLite)

    @property
    def total_bytes(self) -> int:
        return (self.weights_bytes + self.kv_bytes + self.scratch_bytes + self.voice_bytes + self.asr_bytes
                + self.vad_bytes + self.wake_bytes)

    def __add__(self, other: "MemoryEstimate") -> "MemoryEstimate":
        """The estimate of both sets loaded in one process (the assistant's LLM + voice + ASR + ...)."""
        return MemoryEstimate(
            self.weights_bytes + other.weights_bytes, self.kv_bytes + other.kv_bytes,
            self.scratch_bytes + other.scratch_bytes, self.voice_bytes + other.voice_bytes,
            max(self.n_ctx, other.n_ctx), self.kv_type if self.kv_bytes or not other.kv_bytes else other.kv_type,
            self.asr_bytes + other.asr_bytes, self.vad_bytes + other.vad_bytes, self.wake_bytes + other.wake_bytes,
        )

    def describe(self) -> str:
        parts = [f"weights {fmt_bytes(self.weights_bytes)}"] if self.weights_bytes or not self.session_bytes else []
        if self.kv_bytes:
            parts.append(f"KV cache {fmt_bytes(self.kv_bytes)} ({self.n_ctx} tokens, {self.kv_type})")
        if self.scratch_bytes:
            parts.append(f"scratch {fmt_bytes(self.scratch_bytes)}")
        for label, value in (("voice sessions", self.voice_bytes), ("speech recogniser", self.asr_bytes),
                             ("voice activity", self.vad_bytes), ("wake word", self.wake_bytes)):
            if value:
                parts.append(f"{label} {fmt_bytes(value)}")
        return f"{fmt_bytes(self.total_bytes)} = " + " + ".join(parts)


    @property
    def session_bytes(self) -> int:
        return self.voice_bytes + self.asr_bytes + self.vad_bytes + self.wake_bytes


def kv_bytes_per_element(kv_type: str) -> float:
    try:
        return KV_BYTES_PER_ELEMENT[kv_type]
    except KeyError:
        raise ValueError(f"unknown KV cache type {kv_type!r}; use one of {sorted(KV_BYTES_PER_ELEMENT)}") from None


def voice_session_bytes(onnx_size: int) -> int:
    """Estimated resident memory of one onnxruntime session for a voice file of this size."""
    return int(onnx_size * VOICE_SESSION_FACTOR) + VOICE_SESSION_FIXED


def asr_session_bytes(model_dir: Union[str, Path]) -> int:
    """Estimated resident memory of a CTranslate2 Whisper model loaded from `model_dir`."""
    size = (Path(model_dir) / "model.bin").stat().st_size
    return int(size * ASR_SESSION_FACTOR) + ASR_SESSION_FIXED


def estimate_sessions(*, voice_paths: tuple[Union[str, Path], ...] = (), voice_lanes: bool = False,
                      asr_dirs: tuple[Union[str, Path], ...] = (), vad_paths: tuple[Union[str, Path], ...] = (),
                      wake_words: int = 0) -> MemoryEstimate:
    """Memory of the audio sessions alone (no LLM): voices (plus their lane session when
    `voice_lanes`), recognisers, VAD models and wake words. Add it to an LLM's estimate."""
    voice = 0
    for p in voice_paths:
        size = Path(p).stat().st_size
        voice += voice_session_bytes(size) + (int(size * VOICE_LANE_FACTOR) if voice_lanes else 0)
    asr = sum(asr_session_bytes(d) for d in asr_dirs)
    vad = sum(int(Path(p).stat().st_size * VAD_SESSION_FACTOR) + VAD_SESSION_FIXED for p in vad_paths)
    wake = WAKE_RUNTIME_BYTES + wake_words * WAKE_WORD_BYTES if wake_words else 0
    return MemoryEstimate(0, 0, 0, voice, 0, "f16", asr, vad, wake)


def estimate_memory(
    *,
    weights_bytes: int,
    n_layer: int = 0,
    n_ctx: int = 0,
    n_head_kv: int = 0,
    head_dim: int = 0,
    head_dim_v: Optional[int] = None,
    kv_type: str = "f16",
    n_vocab: int = 0,
    n_embd: int = 0,
    n_batch: int = DEFAULT_N_BATCH,
    voice_sizes: tuple[int, ...] = (),
    kv_bytes: Optional[int] = None,
) -> MemoryEstimate:
    """Bytes a model needs at a context length.

    KV cache (llama-style): 2 * n_layer * n_ctx * n_head_kv * head_dim * bytes_per_element, with
    K and V counted separately when their head sizes differ (head_dim_v). Scratch: per token of a
    prompt batch (n_batch), float32 logits and activation rows, plus a fixed runtime overhead.
    Voice sessions: see voice_session_bytes. `kv_bytes`, when given, replaces the KV formula (the
    engine's own layout: estimate_for_gguf passes it).
    """
    for label, value in (("weights_bytes", weights_bytes), ("n_layer", n_layer), ("n_ctx", n_ctx),
                         ("n_head_kv", n_head_kv), ("head_dim", head_dim), ("n_vocab", n_vocab), ("n_embd", n_embd),
                         ("n_batch", n_batch)):
        if value < 0:
            raise ValueError(f"{label} must be >= 0, got {value}")
    per_elem = kv_bytes_per_element(kv_type)
    hv = head_dim if head_dim_v is None else head_dim_v
    kv = int(n_layer * n_ctx * n_head_kv * (head_dim + hv) * per_elem) if kv_bytes is None else int(kv_bytes)
    scratch = RUNTIME_OVERHEAD + 4 * max(n_batch, 1) * (n_vocab + 4 * n_embd)
    voices = sum(voice_session_bytes(s) for s in voice_sizes)
    return MemoryEstimate(weights_bytes, kv, scratch, voices, n_ctx, kv_type)


def estimate_for_gguf(path: Union[str, Path], n_ctx: int, kv_type: str = "f16", voice_sizes: tuple[int, ...] = (),
                      n_batch: int = DEFAULT_N_BATCH, n_seq: int = 1, gguf_file: Any = None,
                      n_parallel: int = 1) -> MemoryEstimate:
    """estimate_memory for a GGUF file: its shape read by the native reader, its KV cache sized by
    the engine's own layout function (kv_cache_layout: the same numbers the cache allocates;
    sliding-window layers count their ring, not the whole context). `n_parallel` sessions each
    get n_ctx positions (and their own rings), as the native backend's cache for max_parallel."""
    from .gguf import GGUFFile

    path = Path(path)
    kv_bytes_per_element(kv_type)  # ValueError for an unknown type, before touching the file
    f = gguf_file if gguf_file is not None and not gguf_file.closed else GGUFFile(path)
    try:
        h = f.hparams()
        kv = int(f.kv_cache_layout(n_ctx * n_parallel, max(n_seq, n_parallel), kv_type)["nbytes"])
    finally:
        if f is not gguf_file:
            f.close()
    return estimate_memory(
        weights_bytes=path.stat().st_size, n_layer=h["n_layer"], n_ctx=n_ctx, n_head_kv=h["n_head_kv"],
        head_dim=h["head_dim"], head_dim_v=h["head_dim_v"], kv_type=kv_type, n_vocab=h["n_vocab"],
        n_embd=h["n_embd"], n_batch=n_batch, voice_sizes=voice_sizes, kv_bytes=kv,
    )


# --- the budget ----------------------------------------------------------------------------


def available_memory_bytes(meminfo: Union[str, Path] = "/proc/meminfo") -> Optional[int]:
    """MemAvailable from /proc/meminfo, or None where it cannot be read (not Linux)."""
    try:
        with open(meminfo, encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    fields = line.split()
                    return int(fields[1]) * 1024 if len(fields) >= 2 and fields[1].isdigit() else None
    except OSError:
        return None
    return None


def default_memory_budget(meminfo: Union[str, Path] = "/proc/meminfo") -> Optional[int]:
    """Available RAM minus a margin (10 %, at least 256 MiB) for the OS and other programs;
    None (no limit) where the available memory is unknown."""
    avail = available_memory_bytes(meminfo)
    if avail is None:
        return None
    return max(0, avail - max(DEFAULT_MARGIN_MIN, int(avail * DEFAULT_MARGIN_FRACTION)))


_SIZE_RE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b?)\s*", re.IGNORECASE)


def parse_size(text: Union[str, int]) -> int:
    """'512M', '2G', '1.5GiB', '1048576' -> bytes (binary units: 1K = 1024)."""
    if isinstance(text, int) and not isinstance(text, bool):
        if text < 0:
            raise StoreError(f"memory size must be >= 0, got {text}")
        return text
    m = _SIZE_RE.fullmatch(str(text))
    if not m:
        raise StoreError(f"cannot read memory size {text!r}; write e.g. 512M, 2G or 1.5GiB")
    scale = 1024 ** "_kmgt".index(m.group(2).lower() or "_")
    return int(float(m.group(1)) * scale)


def fmt_bytes(n: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if abs(n) >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


def resolve_budget(budget: Union[None, str, int]) -> Optional[int]:
    """A caller's budget (bytes or '2G'), or the default from $EDGEGEN_MEMORY_BUDGET / MemAvailable."""
    if budget is None:
        env = os.environ.get("EDGEGEN_MEMORY_BUDGET")
        return parse_size(env) if env else default_memory_budget()
    return parse_size(budget)


def check_fit(estimate: MemoryEstimate, budget: Union[None, str, int] = None, what: str = "model") -> MemoryEstimate:
    """Returns the estimate if it fits the budget; raises MemoryBudgetError with the numbers if not."""
    limit = resolve_budget(budget)
    if limit is not None and estimate.total_bytes > limit:
        # the CLI flags and the edgegen.load() arguments have the same names (--kv-type / kv_type=)
        fixes = ["a shorter context (--ctx)"] if estimate.kv_bytes else []
        if estimate.kv_bytes and estimate.kv_type != "q8_0":
            fixes.append("a q8_0 KV cache (--kv-type q8_0)")
        fixes.append("a larger --memory-budget (or $EDGEGEN_MEMORY_BUDGET)")
        raise MemoryBudgetError(
            f"{what} needs {estimate.describe()}, but the memory budget is {fmt_bytes(limit)} "
            f"({estimate.total_bytes} > {limit} bytes). Try {', '.join(fixes[:-1]) + ' or ' if len(fixes) > 1 else ''}"
            f"{fixes[-1]}."
        )
    return estimate


def trained_context(gguf_file: Any) -> Optional[int]:
    """The context length the model was trained with (GGUF `<arch>.context_length`), or None
    when the file does not say (or cannot be read here)."""
    if gguf_file is None:
        return None
    try:
        n = int(gguf_file.hparams()["n_ctx_train"])
    except Exception:  # an architecture without llama-style hyper-parameters
        return None
    return n if n > 0 else None


def fit_context(n_ctx: int, gguf_file: Any, model: str) -> int:
    """`n_ctx`, or the trained context when `n_ctx` is above it, with an EdgegenWarning: positions
    past the trained context were never seen in training (the native engine cannot run them at
    all, llama.cpp runs them into garbage)."""
    trained = trained_context(gguf_file)
    if trained is None or n_ctx <= trained:
        return n_ctx
    warnings.warn(f"context {n_ctx} is above {model}'s trained context ({trained} tokens); using {trained}",
                  EdgegenWarning, stacklevel=3)
    return trained


def check_model_fit(model_path: Union[str, Path], n_ctx: int, kv_type: str = "f16",
                    voice_paths: tuple[Union[str, Path], ...] = (), budget: Union[None, str, int] = None,
                    n_batch: int = DEFAULT_N_BATCH, gguf_file: Any = None, n_parallel: int = 1) -> MemoryEstimate:
    """The loader's one call: estimate a GGUF at n_ctx (plus voice sessions) and refuse it with
    MemoryBudgetError if it does not fit the budget (default: available RAM minus a margin)."""
    sizes = tuple(Path(p).stat().st_size for p in voice_paths)
    estimate = estimate_for_gguf(model_path, n_ctx, kv_type, sizes, n_batch, gguf_file=gguf_file, n_parallel=n_parallel)
    return check_fit(estimate, budget, what=Path(model_path).name)


def release_free_heap() -> None:
    """Hand the C heap's free pages back to the system (glibc's malloc_trim; elsewhere nothing).

    Loading a voice parses its 60 MiB protobuf and frees it, and a transcription frees a ~60 MiB
    attention buffer: glibc keeps such memory inside the heap when anything lives above it, so
    the process's resident size stays at its high-water mark although nothing uses it, and the
    next peak (the recogniser's, the voice's) comes on top. The assistant calls this after
    loading and between turns, when nothing runs; it takes a few milliseconds."""
    global _MALLOC_TRIM
    if _MALLOC_TRIM is None:
        try:
            import ctypes

            _MALLOC_TRIM = ctypes.CDLL("libc.so.6").malloc_trim
        except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to do
            _MALLOC_TRIM = False
    if _MALLOC_TRIM:
        _MALLOC_TRIM(0)


def return_large_buffers_to_system(threshold: int = 16 << 20) -> None:
    """Serve C allocations of `threshold` bytes and more with their own mappings (glibc's
    M_MMAP_THRESHOLD; elsewhere nothing), so that freeing one gives its memory back at once.

    glibc raises that threshold by itself after freeing a large block (up to 32 MiB), after which
    buffers of that size come from the heap and stay resident when freed; the recogniser's and the
    voice's per-call buffers (up to 60 MiB) then pile up between turns. With the threshold fixed
    the whole loop (LLM + voice + recogniser + VAD + wake word) peaked ~30 MiB lower (1, 4 and
    16 MiB all within a few MiB of each other; 16 MiB keeps the encoder's 2-9 MiB activations on
    the heap, reused), with no measurable change in recognition or synthesis time (bench/asr.py,
    docs/benchmarks.md). Process-wide: called by the assistant, which is the process it runs in."""
    global _MALLOPT
    if _MALLOPT is None:
        try:
            import ctypes

            _MALLOPT = ctypes.CDLL("libc.so.6").mallopt
        except (OSError, AttributeError):
            _MALLOPT = False
    if _MALLOPT:
        _MALLOPT(_M_MMAP_THRESHOLD, int(threshold))


_M_MMAP_THRESHOLD = -3  # glibc's malloc.h
_MALLOC_TRIM: Any = None
_MALLOPT: Any = None
