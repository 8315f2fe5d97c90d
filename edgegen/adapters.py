"""LoRA adapters: load GGUF adapters next to a model and pick them per request.

    llm = edgegen.load("smollm2", adapters={"menu": "menu.gguf"})
    llm.chat(messages, adapters={"menu": 1.0})          # this request runs through "menu"
    llm.chat(messages)                                    # the base model again: no reload
    llm.chat(messages, adapters={"menu": 0.5, "tone": 1.0})   # stacked, each with its scale

An adapter is a GGUF file as llama.cpp's convert_lora_to_gguf.py writes it (see docs/adapters.md).
It is checked against the loaded model when it is loaded (architecture, every target tensor,
shapes, rank: AdapterError names the mismatch) and then only mapped: the base weights are never
changed, so a request picks its adapters and scales at no cost and scale 0 costs nothing. The
engine computes W·x + Σ scale_i · (alpha_i / rank_i) · B_i·(A_i·x) for each adapted product, in the
order the request lists them (llama.cpp's arithmetic).

A request's selection travels in `SamplingParams.adapters` (a tuple of (name, scale) pairs), so the
server, the router and the LLM API carry it like any other per-request setting.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Optional, Union

from .errors import AdapterError, InvalidRequestError, ModelNotFoundError
from .store.manifest import validate_name

MAX_SCALE = 1e4
MAX_ADAPTERS = 16  # loaded per model; a selection may use all of them
Selection = tuple[tuple[str, float], ...]


def normalize_selection(adapters: Any) -> Selection:
    """{name: scale} or [(name, scale), ...] -> a tuple of (name, float scale), order kept.
    Raises InvalidRequestError (param "adapters") for anything else or a scale that is not a
    finite number within [-1e4, 1e4]."""
    if adapters is None:
        return ()
    if isinstance(adapters, Mapping):
        items: Iterable[Any] = adapters.items()
    elif isinstance(adapters, (list, tuple)):
        items = adapters
    else:
        raise InvalidRequestError("adapters must map adapter name -> scale", param="adapters")
    out: list[tuple[str, float]] = []
    for item in items:
        if not (isinstance(item, (list, tuple)) and len(item) == 2 and isinstance(item[0], str)):
            raise InvalidRequestError("adapters must map adapter name -> scale", param="adapters")
        name, scale = item
        if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not math.isfinite(scale) \
                or abs(scale) > MAX_SCALE:
            raise InvalidRequestError(
                f"adapter {name!r}: scale must be a finite number within [-{MAX_SCALE:g}, {MAX_SCALE:g}], got {scale!r}",
                param="adapters")
        if any(n == name for n, _ in out):
            raise InvalidRequestError(f"adapter {name!r} is listed twice", param="adapters")
        out.append((name, float(scale)))
    if len(out) > MAX_ADAPTERS:
        raise InvalidRequestError(f"at most {MAX_ADAPTERS} adapters per request", param="adapters")
    return tuple(out)


def resolve_adapter_path(path_or_name: Union[str, os.PathLike], base_path: Optional[str] = None) -> str:
    """An adapter .gguf path, or the name of an adapter in the model store. A store adapter records
    its base model's sha256: when `base_path` (the loaded model's file) hashes differently, the
    adapter was made for another model and AdapterError says so (the hash is cached by the store)."""
    if isinstance(path_or_name, (str, os.PathLike)) and os.path.isfile(path_or_name):
        return str(path_or_name)
    if isinstance(path_or_name, str) and os.sep not in path_or_name and not path_or_name.endswith(".gguf"):
        from .store import ModelStore

        store = ModelStore()
        path = store.resolve(path_or_name, kind="adapter")
        manifest = store.manifest(path_or_name)
        if base_path and manifest.base_sha256 and store.file_digest(base_path) != manifest.base_sha256:
            raise AdapterError(f"adapter {path_or_name!r} was made for {manifest.base or 'another model'} "
                               f"(sha256 {manifest.base_sha256[:16]}...), not {os.path.basename(base_path)}")
        return str(path)
    raise ModelNotFoundError(f"no adapter file at {str(path_or_name)!r}")


@dataclass(frozen=True)
class AdapterInfo:
    name: str
    path: str
    rank: int
    alpha: float
    targets: tuple[str, ...]
    nbytes: int

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "path": self.path, "rank": self.rank, "alpha": self.alpha,
                "n_targets": len(self.targets), "nbytes": self.nbytes}


class AdapterSet:
    """The adapters loaded for one native model, by name, and the translation of a request's
    selection into the engine's (adapter, scale) list plus a key that tells cached KV prefixes
    computed under different selections apart."""

    def __init__(self, model: Any, base_path: Optional[str] = None) -> None:
        self._model = model
        self._base_path = base_path
        self._loaded: dict[str, Any] = {}
        self._info: dict[str, AdapterInfo] = {}

    def load(self, name: str, path_or_name: Union[str, os.PathLike]) -> AdapterInfo:
        from . import _native
        from .gguf import GGUFFile

        validate_name(name, "adapter name")
        if name in self._loaded:
            raise InvalidRequestError(f"an adapter named {name!r} is loaded already", param="adapters")
        if len(self._loaded) >= MAX_ADAPTERS:
            raise InvalidRequestError(f"at most {MAX_ADAPTERS} adapters per model", param="adapters")
        path = resolve_adapter_path(path_or_name, self._base_path)
        with GGUFFile(path) as f:  # the validating reader; the adapter keeps its own mapping
            native = _native.LoraAdapter(self._model, f.native)
        self._loaded[name] = native
        info = AdapterInfo(name, path, int(native.max_rank), float(native.alpha), tuple(native.targets), int(native.nbytes))
        self._info[name] = info
        return info

    def unload(self, name: str) -> None:
        self._loaded.pop(name, None)
        self._info.pop(name, None)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._loaded)

    def info(self) -> list[AdapterInfo]:
        return list(self._info.values())

    def check(self, selection: Selection) -> None:
        for name, _ in selection:
            if name not in self._loaded:
                have = ", ".join(self._loaded) or "none"
                raise InvalidRequestError(f"unknown adapter {name!r} (loaded: {have})", param="adapters")

    def resolve(self, selection: Selection) -> tuple[list[tuple[Any, float]], Selection]:
        """(engine list, cache key): scale-0 entries dropped, as they change nothing."""
        self.check(selection)
        used = tuple((n, s) for n, s in selection if s != 0.0)
        return [(self._loaded[n], s) for n, s in used], used


def parse_lora_options(values: Optional[Iterable[str]]) -> dict[str, str]:
    """CLI `--lora name=path` (repeatable) -> {name: path}."""
    out: dict[str, str] = {}
    for v in values or ():
        name, sep, path = v.partition("=")
        if not sep or not name or not path:
            raise InvalidRequestError(f"--lora takes name=path, got {v!r}")
        if name in out:
            raise InvalidRequestError(f"--lora {name!r} given twice")
        out[name] = path
    return out


__all__ = ["AdapterError", "AdapterInfo", "AdapterSet", "normalize_selection", "parse_lora_options"]
