"""Local backend registry: names -> modules, and the `auto` choice.

A backend module defines `open(path, **options) -> Backend` and may define
`supports(path) -> bool`. `auto` tries the native engine first and falls back to llama.cpp when
the native module is absent (not built yet), has no `supports`, says no, or refuses the file
with `UnsupportedModelError`.
"""
from __future__ import annotations

import importlib
import logging
import os
from typing import Any

from ..errors import MissingExtraError, UnsupportedModelError
from .base import Backend

log = logging.getLogger("edgegen.backends")

BACKENDS: dict[str, str] = {
    "native": "edgegen.backends.native",
    "llama.cpp": "edgegen.backends.llamacpp",
}
_ALIASES = {"llamacpp": "llama.cpp", "llama_cpp": "llama.cpp"}


def backend_names() -> list[str]:
    return ["auto", *BACKENDS]


def _module(name: str) -> Any:
    return importlib.import_module(BACKENDS[name])


def _native_supports(path: str, gguf_file: Any = None) -> bool:
    try:
        module = _module("native")
    except ImportError as exc:  # module or its extension not built yet
        log.debug("native backend unavailable: %s", exc)
        return False
    supports = getattr(module, "supports", None)
    if supports is None:
        return False
    try:
        return bool(supports(path, gguf_file=gguf_file) if gguf_file is not None else supports(path))
    except Exception as exc:  # a support check must never break loading: fall back
        log.debug("native.supports(%r) failed: %s", path, exc)
        return False


def open_backend(path: str, backend: str = "auto", *, gguf_file: Any = None, **options: Any) -> Backend:
    """Open `path` with the named backend ("auto", "native", "llama.cpp"). `gguf_file`: the file
    already mapped by the caller (edgegen.gguf.GGUFFile), so the native engine does not map it again."""
    name = _ALIASES.get(backend, backend)
    if name != "auto":
        if name not in BACKENDS:
            raise UnsupportedModelError(f"unknown backend {backend!r}; choose from {backend_names()}")
        try:
            module = _module(name)
        except ImportError as exc:
            raise UnsupportedModelError(f"backend {name!r} is not available in this build: {exc}") from exc
        if name == "native":
            options["gguf_file"] = gguf_file
        return module.open(path, **options)
    declined = "it does not run this architecture"
    if _native_supports(path, gguf_file):
        try:
            return _module("native").open(path, gguf_file=gguf_file, **options)
        except UnsupportedModelError as exc:
            log.info("native backend declined %s (%s); using llama.cpp", path, exc)
            declined = str(exc)
    try:
        return _module("llama.cpp").open(path, **options)
    except (UnsupportedModelError, MissingExtraError) as exc:
        # name both backends `auto` tried: the user asked for neither
        raise type(exc)(f"backend auto: the native engine declined {os.path.basename(path)} ({declined}), "
                        f"and llama.cpp: {exc}") from exc
