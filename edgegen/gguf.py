"""Typed, zero-copy access to GGUF model files.

The native reader (native/gguf.cpp) maps the file read-only and validates all of it at open:
header, metadata, tensor records, data layout, tokenizer ids and (for llama-style models) the
hyper-parameters against the tensor shapes. Anything wrong raises `ModelFormatError` naming the
problem. Tensor data comes back as read-only numpy views of the mapping: no copy, and each view
keeps the mapping alive after `close()`.

    with GGUFFile("model.gguf") as f:
        f.architecture                      # "llama"
        f.metadata["llama.block_count"]     # 30
        f.tensors["token_embd.weight"]      # TensorInfo(shape=(576, 49152), type_name="Q8_0", ...)
        raw = f.tensor_data("token_embd.weight")   # np.ndarray[uint8], zero-copy
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import numpy as np

from .errors import ModelFormatError

__all__ = ["GGUFFile", "TensorInfo", "ggml_type_info"]


@dataclass(frozen=True)
class TensorInfo:
    """One tensor record. `shape` is in ggml order: shape[0] is the contiguous row length."""

    name: str
    shape: tuple[int, ...]
    type_id: int     # ggml type id (0 = F32, 2 = Q4_0, 12 = Q4_K, ...)
    type_name: str   # ggml's name ("Q4_K")
    offset: int      # absolute byte offset of the data in the file
    nbytes: int

    @property
    def n_elements(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n


def ggml_type_info(type_id: int) -> tuple[str, int, int] | None:
    """(name, block_size, type_size) of a ggml tensor type id; None for ids ggml never defined."""
    from . import _native

    return _native.ggml_type_info(type_id)


class GGUFFile:
    """A validated GGUF file, mapped read-only. Use as a context manager or call `close()`."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        from . import _native  # the extension is needed only once a file is opened

        self.path = os.fspath(path)
        if not isinstance(self.path, str):
            raise TypeError("path must be str or os.PathLike[str]")
        self._native: Any = _native.GGUFFile.open(self.path)
        self.version: int = self._native.version
        self.alignment: int = self._native.alignment
        self.data_offset: int = self._native.data_offset
        self.size: int = self._native.size
        self._metadata: dict[str, Any] | None = None  # materialised on first use (vocabularies are big)
        summary = self._native.metadata_summary()
        self.metadata_types: dict[str, str] = {key: type_name for key, _, type_name in summary}
        # scalars now; each array as (element type, length) until `metadata` is read
        self.metadata_summary: dict[str, Any] = {key: value for key, value, _ in summary}
        self.tensors: dict[str, TensorInfo] = {
            name: TensorInfo(name, tuple(shape), type_id, type_name, offset, nbytes)
            for name, shape, type_id, type_name, offset, nbytes in self._native.tensors()
        }

    # -- convenience -------------------------------------------------------------------------

    @property
    def metadata(self) -> dict[str, Any]:
        """Every key with its value; arrays as lists (strings) or numpy copies (numbers)."""
        if self._metadata is None:
            self._metadata = {key: value for key, value, _ in self.native.metadata()}
        return self._metadata

    def spec(self) -> dict[str, Any]:
        """The native engine's ModelSpec of this file (hyper-parameters, per-layer properties);
        UnsupportedModelError when the engine does not run this architecture."""
        from . import _native

        return dict(_native.model_spec(self.native))

    def hparams(self) -> dict[str, Any]:
        """Hyper-parameters of any llama-style file, with llama.cpp's defaults applied."""
        from . import _native

        return dict(_native.hparams(self.native))

    def kv_cache_layout(self, n_tokens: int, n_seq: int = 1, kv_type: str = "f16") -> dict[str, Any]:
        """The KV cache the native engine allocates for this file (the one sizing function)."""
        from . import _native

        return dict(_native.kv_cache_layout(self.native, n_tokens, n_seq, kv_type))

    @property
    def architecture(self) -> str:
        """general.architecture ("llama", "gemma3", ...); "" when the file does not say."""
        arch = self.metadata_summary.get("general.architecture", "")
        if not isinstance(arch, str):
            raise ModelFormatError(f"{self.path}: general.architecture is not a string")
        return arch

    @property
    def native(self) -> Any:
        """The edgegen._native.GGUFFile, for native code that takes the mapping directly."""
        if self._native is None:
            raise ValueError("GGUF file is closed")
        return self._native

    def tensor_data(self, name: str) -> np.ndarray:
        """The raw bytes of tensor `name` as a read-only uint8 view of the mapping (no copy)."""
        info = self.tensors.get(name)
        if info is None:
            raise KeyError(f"no tensor named {name!r} in {self.path}")
        return np.frombuffer(self.native, dtype=np.uint8, count=info.nbytes, offset=info.offset)

    # -- lifetime ----------------------------------------------------------------------------

    def close(self) -> None:
        """Drops this object's hold on the mapping; views already handed out stay valid."""
        self._native = None

    @property
    def closed(self) -> bool:
        return self._native is None

    def __enter__(self) -> GGUFFile:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"{len(self.tensors)} tensors"
        return f"GGUFFile({self.path!r}, v{self.version}, {self.architecture or '?'}, {state})"
