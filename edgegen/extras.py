"""Optional dependencies and the one-line error when one is missing.

`pip install edgegen` brings the local LLM runtime only; each extra brings one feature:

    edgegen[voice]     Piper voices (onnxruntime, piper-tts, sounddevice)
    edgegen[server]    `edgegen serve` (fastapi, uvicorn)
    edgegen[cloud]     cloud routing (httpx)
    edgegen[llamacpp]  the llama.cpp backend (llama-cpp-python)
    edgegen[qnn]       prompt processing on Qualcomm's Hexagon NPU (onnxruntime-qnn, onnx, filelock)
    edgegen[asr]       speech recognition (faster-whisper, CTranslate2, PyAV)
    edgegen[wake]      wake words (pymicro-wakeword)
    edgegen[wyoming]   `edgegen wyoming` for Home Assistant (wyoming, zeroconf; with edgegen[voice])
    edgegen[structured] structured output and tool calls (llguidance)

Code that imports an optional package does it inside `needs_extra(...)` (or calls `require(...)`),
so a user without it reads `edgegen serve needs fastapi, which is not installed: pip install
'edgegen[server]'` instead of a ModuleNotFoundError traceback. New extras only add a row to
EXTRAS (for the docs and the tests) and wrap their imports the same way.
"""
from __future__ import annotations

import contextlib
import importlib
from types import ModuleType
from typing import Iterator

from .errors import MissingExtraError

# extra -> the top-level modules it provides (what `needs_extra` expects to find missing)
EXTRAS: dict[str, tuple[str, ...]] = {
    "voice": ("onnxruntime", "piper", "sounddevice"),
    "server": ("fastapi", "uvicorn", "starlette", "pydantic"),
    "cloud": ("httpx",),
    "llamacpp": ("llama_cpp",),
    "qnn": ("onnxruntime_qnn", "onnx", "filelock"),  # edgegen/accelerators: AcceleratorError names it
    "asr": ("faster_whisper", "ctranslate2", "av"),
    "wake": ("pymicro_wakeword",),
    "wyoming": ("wyoming", "zeroconf"),
    "structured": ("llguidance",),
}


def missing_extra(extra: str, feature: str, module: str) -> MissingExtraError:
    """The error for `feature` lacking `module`, naming the extra that installs it."""
    return MissingExtraError(f"{feature} needs {module}, which is not installed: pip install 'edgegen[{extra}]'")


def _top(name: str | None) -> str:
    return (name or "").partition(".")[0]


@contextlib.contextmanager
def needs_extra(extra: str, feature: str) -> Iterator[None]:
    """Turn a ModuleNotFoundError of a third-party module raised inside the block into
    MissingExtraError naming `extra`. A missing edgegen module is a broken install, not a missing
    extra: that error passes through unchanged."""
    try:
        yield
    except ModuleNotFoundError as exc:
        if not exc.name or _top(exc.name) == "edgegen":
            raise
        raise missing_extra(extra, feature, _top(exc.name)) from None


def require(module: str, extra: str, feature: str) -> ModuleType:
    """`import module`, or MissingExtraError naming `extra`."""
    with needs_extra(extra, feature):
        return importlib.import_module(module)
