"""What a model file says about itself: GGUF metadata (for `info` and the fit check), voice configs.

`read_gguf_summary` is the one place that reads GGUF here, so it can switch readers: it uses
edgegen.gguf.GGUFFile (the native validating reader) when the extension is built. Without it,
`read_gguf_summary_py` is a bounded walk over the header, the key/value section and the tensor
descriptors only (never tensor data): every count and length is checked against the bytes that
remain before it is used, so a hostile file fails fast with ModelFormatError instead of hanging.
We do not use gguf.GGUFReader: it materialises every array element (13 s on Gemma's 262k-token
vocabulary) and trusts array lengths.
"""
from __future__ import annotations

import importlib
import json
import mmap
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from ..errors import ModelFormatError, VoiceConfigError

GGUF_MAGIC = b"GGUF"
MAX_KEY_BYTES = 1 << 16
MAX_STRING_BYTES = 1 << 24  # chat templates are kilobytes; 16 MiB is already absurd
MAX_DIMS = 8
MAX_ARRAY_NESTING = 2
_SCALARS = {  # GGUF value type -> struct format
    0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d",
}
T_STRING, T_ARRAY = 8, 9
# ggml type id -> (block elements, block bytes), for the tensor-type histogram and bytes checks
GGML_TYPE_NAMES = {
    0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 6: "Q5_0", 7: "Q5_1", 8: "Q8_0", 9: "Q8_1", 10: "Q2_K",
    11: "Q3_K", 12: "Q4_K", 13: "Q5_K", 14: "Q6_K", 15: "Q8_K", 24: "I8", 25: "I16", 26: "I32",
    27: "I64", 28: "F64", 30: "BF16",
}


@dataclass
class GGUFSummary:
    version: int
    metadata: dict[str, Any]           # scalars and strings; arrays as ArrayInfo
    tensor_count: int
    parameters: int
    tensor_types: dict[str, int] = field(default_factory=dict)  # type name -> tensor count

    def arch_value(self, key: str, default: Any = None) -> Any:
        arch = self.metadata.get("general.architecture", "")
        return self.metadata.get(f"{arch}.{key}", default)


@dataclass(frozen=True)
class ArrayInfo:
    item_type: int
    length: int


class _Cursor:
    def __init__(self, buf: mmap.mmap | bytes, path: Path):
        self.buf, self.pos, self.size, self.path = buf, 0, len(buf), path

    def fail(self, what: str) -> ModelFormatError:
        return ModelFormatError(f"{self.path.name}: GGUF {what} at byte {self.pos}")

    def take(self, n: int, what: str) -> int:
        if n < 0 or n > self.size - self.pos:
            raise self.fail(f"truncated or absurd length {n} for {what}")
        start = self.pos
        self.pos += n
        return start

    def unpack(self, fmt: str, what: str) -> Any:
        n = struct.calcsize("<" + fmt)
        return struct.unpack_from("<" + fmt, self.buf, self.take(n, what))[0]

    def string(self, what: str, limit: int = MAX_STRING_BYTES) -> str:
        n = self.unpack("Q", what)
        if n > limit:
            raise self.fail(f"{what} length {n} exceeds {limit}")
        start = self.take(n, what)
        try:
            return bytes(self.buf[start:start + n]).decode("utf-8")
        except UnicodeDecodeError:
            raise self.fail(f"{what} is not valid UTF-8") from None

    def skip_string(self, what: str) -> None:
        self.take(self.unpack("Q", what), what)

    def value(self, vtype: int, what: str, depth: int = 0) -> Any:
        if vtype in _SCALARS:
            return self.unpack(_SCALARS[vtype], what)
        if vtype == T_STRING:
            return self.string(what)
        if vtype == T_ARRAY:
            if depth >= MAX_ARRAY_NESTING:
                raise self.fail(f"{what}: arrays nested too deeply")
            item_type = self.unpack("I", what)
            length = self.unpack("Q", what)
            if item_type in _SCALARS:
                self.take(length * struct.calcsize(_SCALARS[item_type]), what)
            elif item_type == T_STRING:
                if length > (self.size - self.pos) // 8:  # every string costs at least its length field
                    raise self.fail(f"{what}: {length} strings cannot fit in the file")
                for _ in range(length):
                    self.skip_string(what)
            elif item_type == T_ARRAY:
                if length > (self.size - self.pos) // 12:
                    raise self.fail(f"{what}: {length} arrays cannot fit in the file")
                for _ in range(length):
                    self.value(T_ARRAY, what, depth + 1)
            else:
                raise self.fail(f"{what}: unknown array item type {item_type}")
            return ArrayInfo(item_type, length)
        raise self.fail(f"{what}: unknown value type {vtype}")


def read_gguf_summary(path: Path) -> GGUFSummary:
    """Header, metadata and tensor shapes of a GGUF file; ModelFormatError on anything malformed.

    Uses the project's validating native reader (edgegen.gguf.GGUFFile) when the extension is
    built, and the bounded pure-Python walk below otherwise (a pure-Python install, or a broken
    build), so `edgegen models` never depends on the compiler."""
    try:
        # GGUFFile imports the extension lazily; check it here so a missing build falls back.
        importlib.import_module("edgegen._native")
        from ..gguf import GGUFFile
    except ImportError:
        return read_gguf_summary_py(path)
    return _summary_from_gguffile(GGUFFile, path)


def _summary_from_gguffile(gguf_file: Any, path: Path) -> GGUFSummary:
    with gguf_file(path) as f:
        metadata: dict[str, Any] = {}
        for key, value in f.metadata.items():
            if f.metadata_types.get(key) == "array":
                metadata[key] = ArrayInfo(-1, len(value))
            else:
                metadata[key] = value
        parameters = 0
        types: dict[str, int] = {}
        for t in f.tensors.values():
            parameters += t.n_elements
            types[t.type_name] = types.get(t.type_name, 0) + 1
        return GGUFSummary(f.version, metadata, len(f.tensors), parameters, types)


def read_gguf_summary_py(path: Path) -> GGUFSummary:
    """The bounded pure-Python walk (metadata and tensor descriptors only)."""
    try:
        with open(path, "rb") as fh:
            size = fh.seek(0, 2)
            if size < 24:
                raise ModelFormatError(f"{path.name}: {size} bytes is too short for a GGUF header")
            with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as buf:
                return _walk(_Cursor(buf, path))
    except OSError as exc:
        raise ModelFormatError(f"cannot read {path}: {exc}") from exc


def _walk(cur: _Cursor) -> GGUFSummary:
    if bytes(cur.buf[:4]) != GGUF_MAGIC:
        raise ModelFormatError(f"{cur.path.name}: not a GGUF file (magic {bytes(cur.buf[:4])!r})")
    cur.pos = 4
    version = cur.unpack("I", "version")
    if version not in (2, 3):
        raise ModelFormatError(f"{cur.path.name}: unsupported GGUF version {version}")
    tensor_count = cur.unpack("Q", "tensor count")
    kv_count = cur.unpack("Q", "metadata count")
    # A key/value pair takes at least 13 bytes, a tensor descriptor at least 28.
    if kv_count > cur.size // 13 or tensor_count > cur.size // 28:
        raise ModelFormatError(f"{cur.path.name}: absurd counts ({kv_count} keys, {tensor_count} tensors)")
    metadata: dict[str, Any] = {}
    for _ in range(kv_count):
        key = cur.string("metadata key", MAX_KEY_BYTES)
        vtype = cur.unpack("I", f"type of {key}")
        metadata[key] = cur.value(vtype, key)
    parameters = 0
    types: dict[str, int] = {}
    for _ in range(tensor_count):
        name = cur.string("tensor name", MAX_KEY_BYTES)
        n_dims = cur.unpack("I", f"rank of {name}")
        if not 1 <= n_dims <= MAX_DIMS:
            raise cur.fail(f"tensor {name} has rank {n_dims}")
        count = 1
        for _ in range(n_dims):
            dim = cur.unpack("Q", f"shape of {name}")
            if dim == 0 or dim > 1 << 40:
                raise cur.fail(f"tensor {name} has dimension {dim}")
            count *= dim
        ttype = cur.unpack("I", f"type of {name}")
        cur.unpack("Q", f"offset of {name}")
        parameters += count
        type_name = GGML_TYPE_NAMES.get(ttype, f"type{ttype}")
        types[type_name] = types.get(type_name, 0) + 1
    return GGUFSummary(version, metadata, tensor_count, parameters, types)


# --- LLM facts the fit check and `info` need --------------------------------------------------


@dataclass(frozen=True)
class LLMShape:
    architecture: str
    n_layer: int
    n_ctx_train: int
    n_embd: int
    n_head: int
    n_head_kv: int
    head_dim_k: int
    head_dim_v: int
    n_vocab: int


def llm_shape(summary: GGUFSummary) -> LLMShape:
    """Layer/head/context numbers of a llama-style GGUF; ModelFormatError if any is missing."""
    md = summary.metadata
    arch = md.get("general.architecture")
    if not isinstance(arch, str) or not arch:
        raise ModelFormatError("GGUF has no general.architecture")

    def need(key: str) -> int:
        value = summary.arch_value(key)
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ModelFormatError(f"GGUF is missing a positive {arch}.{key}")
        return value

    n_embd, n_head = need("embedding_length"), need("attention.head_count")
    n_head_kv = summary.arch_value("attention.head_count_kv", n_head)
    head_k = summary.arch_value("attention.key_length", n_embd // n_head)
    head_v = summary.arch_value("attention.value_length", head_k)
    vocab = summary.arch_value("vocab_size")
    tokens = md.get("tokenizer.ggml.tokens")
    if not isinstance(vocab, int):
        vocab = tokens.length if isinstance(tokens, ArrayInfo) else 0
    for label, v in (("head_count_kv", n_head_kv), ("key_length", head_k), ("value_length", head_v)):
        if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
            raise ModelFormatError(f"GGUF has an invalid {arch}.attention.{label}: {v!r}")
    return LLMShape(arch, need("block_count"), need("context_length"), n_embd, n_head, n_head_kv, head_k, head_v, vocab)


# --- voices --------------------------------------------------------------------------------


def read_voice_config(config_path: Path) -> dict[str, Any]:
    """Sample rate, speakers and language of a Piper voice config (.onnx.json)."""
    try:
        raw = config_path.read_bytes()
    except OSError as exc:
        raise VoiceConfigError(f"cannot read voice config {config_path}: {exc}") from exc
    if len(raw) > 16 * 1024 * 1024:
        raise VoiceConfigError(f"{config_path.name} is larger than 16 MiB")
    try:
        cfg = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise VoiceConfigError(f"{config_path.name} is not valid JSON: {exc}") from exc
    if not isinstance(cfg, dict):
        raise VoiceConfigError(f"{config_path.name}: top level must be an object")
    audio = cfg.get("audio")
    rate = audio.get("sample_rate") if isinstance(audio, dict) else None
    if isinstance(rate, bool) or not isinstance(rate, int) or not 4000 <= rate <= 192000:
        raise VoiceConfigError(f"{config_path.name}: audio.sample_rate missing or out of range: {rate!r}")
    speakers = cfg.get("num_speakers", 1)
    if isinstance(speakers, bool) or not isinstance(speakers, int) or speakers < 1:
        raise VoiceConfigError(f"{config_path.name}: num_speakers must be a positive integer")
    if not isinstance(cfg.get("phoneme_id_map"), dict) or not cfg["phoneme_id_map"]:
        raise VoiceConfigError(f"{config_path.name}: phoneme_id_map missing or empty")
    language = cfg.get("language", {})
    speaker_map = cfg.get("speaker_id_map") if isinstance(cfg.get("speaker_id_map"), dict) else {}
    return {
        "sample_rate": rate,
        "speakers": speakers,
        "speaker_names": sorted(speaker_map)[:16],
        "language": language.get("code", "") if isinstance(language, dict) else "",
        "quality": audio.get("quality", "") if isinstance(audio, dict) else "",
        "phoneme_type": cfg.get("phoneme_type", ""),
        "espeak_voice": (cfg.get("espeak") or {}).get("voice", "") if isinstance(cfg.get("espeak"), dict) else "",
    }


def check_onnx_file(path: Path) -> None:
    """Cheap structural check of an ONNX file without loading it: a protobuf ModelProto starts with
    field 1 (ir_version, varint) and is non-trivially long. Loading is the voice backend's job."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(2)
            size = fh.seek(0, 2)
    except OSError as exc:
        raise ModelFormatError(f"cannot read {path}: {exc}") from exc
    if size < 64 or len(head) < 2 or head[0] != 0x08:
        raise ModelFormatError(f"{path.name} does not look like an ONNX model (size {size}, first byte {head[:1]!r})")


def describe_file(path: Path, kind: str) -> dict[str, Any]:
    """The facts `edgegen models info` prints, read from the file itself."""
    if kind == "voice":
        check_onnx_file(path)
        return read_voice_config(Path(str(path) + ".json"))
    summary = read_gguf_summary(path)
    shape = llm_shape(summary)
    md = summary.metadata
    file_type = md.get("general.file_type")
    return {
        "architecture": shape.architecture,
        "model_name": md.get("general.name", ""),
        "parameters": summary.parameters,
        "layers": shape.n_layer,
        "context_length": shape.n_ctx_train,
        "embedding": shape.n_embd,
        "heads": shape.n_head,
        "kv_heads": shape.n_head_kv,
        "head_dim": shape.head_dim_k,
        "vocabulary": shape.n_vocab,
        "chat_template": isinstance(md.get("tokenizer.chat_template"), str),
        "tokenizer": md.get("tokenizer.ggml.model", ""),
        "file_type": file_type,
        "tensor_types": dict(sorted(summary.tensor_types.items())),
        "gguf_version": summary.version,
    }
