"""edgegen: an on-device generative runtime for single-board computers.

Public names are imported lazily so `import edgegen` (and `edgegen --help`) stays fast and
optional dependencies (onnxruntime, llama-cpp-python, httpx) load only when used.
"""
from __future__ import annotations

import importlib
from typing import Any

from .errors import *  # noqa: F401,F403  (typed errors are always cheap to import)
from .errors import __all__ as _error_names

__version__ = "0.1.0"

# public name -> module that defines it
_LAZY = {
    "load": "edgegen.llm",
    "LLM": "edgegen.llm",
    "PreparedPrompt": "edgegen.llm",
    "load_voice": "edgegen.audio.voice",
    "Voice": "edgegen.audio.voice",
    "AudioChunk": "edgegen.audio.voice",
    "speak_stream": "edgegen.audio.speak",
    "Cloud": "edgegen.cloud",
    "Router": "edgegen.router",
    "TextStream": "edgegen.textstream",
    "TextChunk": "edgegen.types",
    "ChatResult": "edgegen.types",
    "CompletionResult": "edgegen.types",
    "Usage": "edgegen.types",
    "SamplingParams": "edgegen.sampling",
    "ModelStore": "edgegen.store",
    "load_asr": "edgegen.audio.asr",
    "ASR": "edgegen.audio.asr",
    "Transcript": "edgegen.audio.asr",
    "TranscriptSegment": "edgegen.audio.asr",
    "TranscriptEvent": "edgegen.audio.asr",
    "load_vad": "edgegen.audio.vad",
    "VADConfig": "edgegen.audio.vad",
    "load_wake_word": "edgegen.audio.wake",
    "WakeWordDetector": "edgegen.audio.wake",
    "WakeDetection": "edgegen.audio.wake",
    "MicrophoneSource": "edgegen.audio.sources",
    "FileSource": "edgegen.audio.sources",
    "ArraySource": "edgegen.audio.sources",
    "Assistant": "edgegen.audio.assistant",
    "AssistantConfig": "edgegen.audio.assistant",
    "load_assistant": "edgegen.audio.assistant",
}

__all__ = sorted(list(_LAZY) + list(_error_names) + ["__version__"])


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'edgegen' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
