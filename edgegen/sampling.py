"""Sampling parameters shared by every backend (native, llama.cpp, cloud).

One dataclass, validated once in the API layer, so each backend receives values it can use as-is.
Defaults follow llama.cpp's (temperature 0.8, top-k 40, top-p 0.95, min-p 0.05, no penalties).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace
from typing import Any, Mapping, Optional

from .errors import InvalidRequestError

MAX_STOP_STRINGS = 16
MAX_STOP_CHARS = 256
MAX_LOGIT_BIAS = 1024
MAX_SEED = 2**32 - 1  # llama.cpp seeds are uint32


@dataclass(frozen=True)
class SamplingParams:
    """How the next token is chosen and when generation stops.

    temperature 0 means greedy. `max_tokens=None` generates until an end-of-generation token or
    the context window is full. `stop` strings end generation and are not part of the output.
    `logit_bias` maps token id -> additive bias (-100 effectively bans a token).
    `seed=None` draws a fresh random seed per call; an int makes sampling reproducible.
    """

    temperature: float = 0.8
    top_k: int = 40
    top_p: float = 0.95
    min_p: float = 0.05
    repeat_penalty: float = 1.0
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    logit_bias: Mapping[int, float] = field(default_factory=dict)
    seed: Optional[int] = None
    stop: tuple[str, ...] = ()
    max_tokens: Optional[int] = 256
    # LoRA adapters for this request, ((name, scale), ...) in the order applied (edgegen.adapters);
    # a mapping {name: scale} is accepted by with_overrides.
    adapters: tuple[tuple[str, float], ...] = ()

    def validate(self) -> "SamplingParams":
        """Raise InvalidRequestError on any out-of-range value; return self for chaining."""
        _finite_range("temperature", self.temperature, 0.0, 100.0)
        _int_range("top_k", self.top_k, 0, 1 << 30)
        _finite_range("top_p", self.top_p, 0.0, 1.0)
        _finite_range("min_p", self.min_p, 0.0, 1.0)
        _finite_range("repeat_penalty", self.repeat_penalty, 0.0, 100.0)
        if self.repeat_penalty == 0.0:
            raise InvalidRequestError("repeat_penalty must be > 0 (1.0 disables it)", param="repeat_penalty")
        _finite_range("presence_penalty", self.presence_penalty, -2.0, 2.0)
        _finite_range("frequency_penalty", self.frequency_penalty, -2.0, 2.0)
        if not isinstance(self.logit_bias, Mapping):
            raise InvalidRequestError("logit_bias must be a mapping of token id -> bias", param="logit_bias")
        if len(self.logit_bias) > MAX_LOGIT_BIAS:
            raise InvalidRequestError(f"logit_bias has more than {MAX_LOGIT_BIAS} entries", param="logit_bias")
        for token, bias in self.logit_bias.items():
            _int_range("logit_bias token id", token, 0, 1 << 31)
            _finite_range("logit_bias value", bias, -100.0, 100.0)
        if self.seed is not None:
            _int_range("seed", self.seed, 0, MAX_SEED)
        if not isinstance(self.stop, tuple) or len(self.stop) > MAX_STOP_STRINGS:
            raise InvalidRequestError(f"stop must be at most {MAX_STOP_STRINGS} strings", param="stop")
        for s in self.stop:
            if not isinstance(s, str) or not s or len(s) > MAX_STOP_CHARS:
                raise InvalidRequestError(f"each stop string must be a non-empty str of at most {MAX_STOP_CHARS} chars", param="stop")
        if self.max_tokens is not None:
            _int_range("max_tokens", self.max_tokens, 1, 1 << 24)
        if self.adapters:
            from .adapters import normalize_selection

            if normalize_selection(self.adapters) != self.adapters:
                raise InvalidRequestError("adapters must be a tuple of (name, scale) pairs", param="adapters")
        return self

    def with_overrides(self, **overrides: Any) -> "SamplingParams":
        """A validated copy with the given fields replaced; unknown names are an error, None is 'keep'."""
        known = {f.name for f in fields(self)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise InvalidRequestError(f"unknown sampling parameter(s): {', '.join(unknown)}", param=unknown[0])
        changes = {k: v for k, v in overrides.items() if v is not None or k in ("seed", "max_tokens")}
        # seed/max_tokens accept an explicit None only when passed; other fields treat None as "default"
        if "stop" in changes:
            changes["stop"] = _normalize_stop(changes["stop"])
        if "adapters" in changes:
            from .adapters import normalize_selection

            changes["adapters"] = normalize_selection(changes["adapters"])
        if "logit_bias" in changes and changes["logit_bias"] is not None:
            changes["logit_bias"] = _normalize_bias(changes["logit_bias"])
        return replace(self, **changes).validate()

    def to_openai(self) -> dict[str, Any]:
        """The OpenAI chat-completions request fields these parameters map to (for the cloud backend)."""
        body: dict[str, Any] = {"temperature": self.temperature, "top_p": self.top_p}
        if self.max_tokens is not None:
            body["max_tokens"] = self.max_tokens
        if self.stop:
            body["stop"] = list(self.stop)
        if self.seed is not None:
            body["seed"] = self.seed
        if self.presence_penalty:
            body["presence_penalty"] = self.presence_penalty
        if self.frequency_penalty:
            body["frequency_penalty"] = self.frequency_penalty
        if self.logit_bias:
            body["logit_bias"] = {str(k): v for k, v in self.logit_bias.items()}
        return body


def _normalize_stop(stop: Any) -> tuple[str, ...]:
    if stop is None:
        return ()
    if isinstance(stop, str):
        return (stop,)
    if isinstance(stop, (list, tuple)):
        return tuple(stop)
    raise InvalidRequestError("stop must be a string or a list of strings", param="stop")


def _normalize_bias(bias: Any) -> dict[int, float]:
    if not isinstance(bias, Mapping):
        raise InvalidRequestError("logit_bias must be a mapping of token id -> bias", param="logit_bias")
    out: dict[int, float] = {}
    for k, v in bias.items():
        try:
            out[int(k)] = float(v)  # JSON bodies carry ids as strings
        except (TypeError, ValueError):
            raise InvalidRequestError(f"logit_bias entry {k!r}: {v!r} is not id -> number", param="logit_bias") from None
    return out


def _finite_range(name: str, value: Any, lo: float, hi: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidRequestError(f"{name} must be a number, got {type(value).__name__}", param=name.split()[0])
    if not math.isfinite(value) or not lo <= value <= hi:
        raise InvalidRequestError(f"{name} must be in [{lo}, {hi}], got {value}", param=name.split()[0])


def _int_range(name: str, value: Any, lo: int, hi: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidRequestError(f"{name} must be an integer, got {type(value).__name__}", param=name.split()[0])
    if not lo <= value <= hi:
        raise InvalidRequestError(f"{name} must be in [{lo}, {hi}], got {value}", param=name.split()[0])
