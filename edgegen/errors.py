"""Typed errors: every failure a caller can act on is one of these, never a bare crash."""
from __future__ import annotations

from typing import Optional


class EdgegenError(Exception):
    """Base class of every error edgegen raises on purpose."""


class ModelFormatError(EdgegenError, ValueError):
    """A model or voice file is malformed, truncated or unsupported; the message names the problem."""


class AdapterError(ModelFormatError):
    """A LoRA adapter is malformed or does not fit the base model (architecture, missing target,
    shapes, rank, scale); the message names the mismatch."""


class ModelNotFoundError(EdgegenError, FileNotFoundError):
    """No model or voice by that name or path is installed."""


class UnsupportedModelError(EdgegenError):
    """The file is valid but this backend cannot run its architecture or tensor types."""


class MemoryBudgetError(EdgegenError, MemoryError):
    """Weights + KV cache (+ voice sessions) would not fit in the memory budget; the message gives the numbers."""


class ContextOverflowError(EdgegenError, ValueError):
    """The prompt (plus requested tokens) does not fit in the context window."""


class TemplateError(EdgegenError, ValueError):
    """A chat template failed to render, was unsafe, or exceeded its size/time limits."""


class TokenizerError(EdgegenError, ValueError):
    """Text could not be tokenized or ids could not be decoded (bad id, invalid UTF-8 input)."""


class AudioDeviceError(EdgegenError, RuntimeError):
    """No audio input/output device, a busy device, or no PortAudio library; the message names the
    device that was looked for."""


class AudioFormatError(EdgegenError, ValueError):
    """Audio input that cannot be used: empty, not audio, truncated, too long, or samples of the
    wrong type or range; the message names the problem."""


class VoiceConfigError(ModelFormatError):
    """A Piper voice config (.onnx.json) is missing fields or inconsistent."""


class CloudError(EdgegenError, RuntimeError):
    """The cloud endpoint failed: connect/idle timeout, HTTP error, reset, malformed stream."""


class InvalidRequestError(EdgegenError, ValueError):
    """A request argument is out of range or of the wrong type (sampling parameters, chat messages).
    `param` names the argument when one is to blame (the server reports it as OpenAI's `param`)."""

    def __init__(self, message: str = "", *, param: Optional[str] = None) -> None:
        super().__init__(message)
        self.param = param


class ConstraintError(InvalidRequestError):
    """A structured-output constraint (response_format schema, grammar, regex, tool definitions) is
    invalid, unsupported, too large or too complex, or accepts no output; the server answers 400."""


class MissingExtraError(EdgegenError, ImportError):
    """An optional dependency is not installed; the message names the `pip install 'edgegen[EXTRA]'`
    that brings it (see edgegen/extras.py). An ImportError too, so "use it if present" code keeps working."""


class RouteError(EdgegenError, ValueError):
    """The routing policy forbids what was asked (for example cloud without opt-in)."""


class StoreError(EdgegenError):
    """The model store could not complete an operation (bad name, disk full, registry failure)."""


class ChecksumError(StoreError):
    """A downloaded or registered file does not match its manifest's sha256."""


class PromptCacheError(EdgegenError):
    """A prompt cache file cannot be used: `reason` is "truncated", "corrupt", "model" (made for
    another model file), "engine" (another engine version or instruction set), "kv" (another KV
    type or layout) or "io". The prefix is then computed again; the file is never trusted."""

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class AcceleratorError(EdgegenError, RuntimeError):
    """An accelerator (NPU provider) was asked for but is missing, broken or cannot run the model."""


class EdgegenWarning(UserWarning):
    """Something works, but not as asked (e.g. a context longer than the model was trained for);
    the CLI prints these as one `edgegen CMD: warning: ...` line."""


__all__ = [name for name, obj in globals().items()
           if isinstance(obj, type) and issubclass(obj, (EdgegenError, EdgegenWarning))]
