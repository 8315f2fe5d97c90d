"""Byte-level GGUF writer for tests: writes exactly what it is told, malformed files included.

gguf's GGUFWriter refuses most malformed inputs, so corrupt files are built here; a test checks
that for valid input this writer produces GGUFWriter's bytes exactly.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any

from gguf import GGUFValueType as VT

_SCALAR = {VT.UINT8: "<B", VT.INT8: "<b", VT.UINT16: "<H", VT.INT16: "<h", VT.UINT32: "<I",
           VT.INT32: "<i", VT.FLOAT32: "<f", VT.BOOL: "<B", VT.UINT64: "<Q", VT.INT64: "<q",
           VT.FLOAT64: "<d"}


def gstr(s: str | bytes, length: int | None = None) -> bytes:
    """A GGUF string; `length` overrides the declared length (for lies)."""
    b = s.encode() if isinstance(s, str) else s
    return struct.pack("<Q", len(b) if length is None else length) + b


def value(vtype: int, v: Any, elem_type: int | None = None, count: int | None = None) -> bytes:
    """The payload of one metadata value (without its type tag)."""
    if vtype == VT.STRING:
        return gstr(v)
    if vtype == VT.ARRAY:
        assert elem_type is not None
        items = b"".join(value(elem_type, x) for x in v)
        return struct.pack("<IQ", elem_type, len(v) if count is None else count) + items
    return struct.pack(_SCALAR.get(vtype, "<I"), v)  # unknown tags: 4 payload bytes


@dataclass
class KV:
    key: str | bytes
    vtype: int
    v: Any
    elem_type: int | None = None
    count: int | None = None  # declared array count override

    def encode(self) -> bytes:
        return gstr(self.key) + struct.pack("<I", self.vtype) + value(self.vtype, self.v, self.elem_type, self.count)


@dataclass
class Tensor:
    name: str
    shape: list[int]          # ggml order
    ggml_type: int
    data: bytes = b""
    offset: int | None = None  # None: packed after the previous tensor, aligned

    def record(self, offset: int) -> bytes:
        return (gstr(self.name) + struct.pack("<I", len(self.shape))
                + b"".join(struct.pack("<q", d) for d in self.shape)
                + struct.pack("<IQ", self.ggml_type & 0xFFFFFFFF, offset))


@dataclass
class Spec:
    kvs: list[KV] = field(default_factory=list)
    tensors: list[Tensor] = field(default_factory=list)
    magic: bytes = b"GGUF"
    version: int = 3
    alignment: int = 32  # only for packing; the file says so via general.alignment if present
    n_tensors: int | None = None
    n_kv: int | None = None
    pad_data: bool = True  # pad the last tensor's data to the alignment, as GGUFWriter does


def build(spec: Spec) -> bytes:
    head = spec.magic + struct.pack("<I", spec.version)
    head += struct.pack("<QQ", len(spec.tensors) if spec.n_tensors is None else spec.n_tensors,
                        len(spec.kvs) if spec.n_kv is None else spec.n_kv)
    head += b"".join(kv.encode() for kv in spec.kvs)
    a = spec.alignment
    offsets, data, cursor = [], b"", 0
    for t in spec.tensors:
        off = cursor if t.offset is None else t.offset
        offsets.append(off)
        if t.offset is None:
            data += t.data + b"\0" * ((-len(t.data)) % a if spec.pad_data else 0)
            cursor = len(data)
    head += b"".join(t.record(o) for t, o in zip(spec.tensors, offsets))
    if spec.tensors:
        head += b"\0" * ((-len(head)) % a)
    return head + data
