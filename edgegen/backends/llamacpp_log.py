"""llama.cpp's log lines, routed to Python logging instead of stderr.

llama-cpp-python's own log callback maps ggml's log levels with an older enum (NONE, INFO, WARN,
ERROR, DEBUG, CONT) than the library it bundles (NONE, DEBUG, INFO, WARN, ERROR, CONT): warnings
pass its "errors only" filter (`llama_kv_cache_iswa: using full-size SWA cache ...` on every Gemma 3
load) while real errors are dropped as debug. This callback maps the bundled enum and hands the
lines to the `edgegen.llama_cpp` logger at DEBUG (warnings at INFO: they are about llama.cpp's own
choices). Its error lines are also kept, so the backend can put the cause into the one typed error
it raises (`take_errors`) instead of printing them beside it.
"""
from __future__ import annotations

import collections
import ctypes
import logging
import sys
from typing import Any

log = logging.getLogger("edgegen.llama_cpp")

# ggml_log_level as llama.cpp defines it now -> Python logging level
_LEVELS = {0: logging.DEBUG, 1: logging.DEBUG, 2: logging.DEBUG, 3: logging.INFO, 4: logging.ERROR}
_CONT = 5
_state = {"last": logging.DEBUG}
_errors: collections.deque = collections.deque(maxlen=4)
_installed: list[Any] = []  # the ctypes callback must outlive every llama.cpp call


def _forward(level: int, text: bytes) -> None:
    py_level = _state["last"] if level == _CONT else _LEVELS.get(level, logging.DEBUG)
    _state["last"] = py_level
    line = text.decode("utf-8", "replace").strip()
    if not line:
        return
    if py_level >= logging.ERROR:
        _errors.append(line)
    log.log(min(py_level, logging.INFO), "%s", line)


def take_errors() -> list[str]:
    """llama.cpp's error lines since the last call (the last few), and forget them."""
    lines = list(_errors)
    _errors.clear()
    return lines


def install(llama_cpp: Any) -> None:
    """Route llama.cpp's logging through `edgegen.llama_cpp` (once per process). A `Llama` made
    with verbose=True (llama-cpp-python then sets its logger to DEBUG) still prints everything."""
    if _installed:
        return
    from llama_cpp._logger import logger as verbose_logger

    @llama_cpp.llama_log_callback
    def callback(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
        if verbose_logger.isEnabledFor(logging.DEBUG):
            print(text.decode("utf-8", "replace"), end="", flush=True, file=sys.stderr)
        else:
            _forward(level, text)

    llama_cpp.llama_log_set(callback, ctypes.c_void_p(0))
    _installed.append(callback)
