"""What a model file says about itself: GGUF metadata (for `info` and the fit check), voice configs.

GGUF files are read by the native validating reader (edgegen.gguf.GGUFFile over native/gguf.cpp),
and their hyper-parameters by the same C++ code the engine uses (native/model_spec.cpp): there is
no second GGUF parser or hyper-parameter reader in Python. Arrays (a 262k-token vocabulary) are
summarised by type and length, never copied.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from ..errors import EdgegenError, ModelFormatError, VoiceConfigError


@dataclass
class GGUFSummary:
    version: int
    metadata: dict[str, Any]           # scalars and strings; arrays as ArrayInfo
    tensor_count: int
    parameters: int
    tensor_types: dict[str, int] = field(default_factory=dict)  # type name -> tensor count
    hparams: Optional[dict[str, Any]] = None  # native read_hparams(); None when the file has none
    hparams_error: str = ""

    def arch_value(self, key: str, default: Any = None) -> Any:
        arch = self.metadata.get("general.architecture", "")
        return self.metadata.get(f"{arch}.{key}", default)


@dataclass(frozen=True)
class ArrayInfo:
    item_type: str  # GGUF element type name ("string", "int32", ...)
    length: int


def read_gguf_summary(path: Path) -> GGUFSummary:
    """Header, metadata and tensor shapes of a GGUF file; ModelFormatError on anything malformed."""
    from ..gguf import GGUFFile

    with GGUFFile(path) as f:
        metadata: dict[str, Any] = {}
        for key, value in f.metadata_summary.items():
            metadata[key] = ArrayInfo(value[0], int(value[1])) if f.metadata_types.get(key) == "array" else value
        parameters = 0
        types: dict[str, int] = {}
        for t in f.tensors.values():
            parameters += t.n_elements
            types[t.type_name] = types.get(t.type_name, 0) + 1
        hparams, error = None, ""
        try:
            hparams = f.hparams()
        except EdgegenError as exc:
            error = str(exc)
        return GGUFSummary(f.version, metadata, len(f.tensors), parameters, types, hparams, error)


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
    n_swa: int = 0


def llm_shape(summary: GGUFSummary) -> LLMShape:
    """Layer/head/context numbers of a llama-style GGUF; ModelFormatError if any is missing."""
    h = summary.hparams
    if h is None:
        raise ModelFormatError(f"GGUF hyper-parameters are unreadable: {summary.hparams_error}")
    return LLMShape(h["arch"], h["n_layer"], h["n_ctx_train"], h["n_embd"], h["n_head"], h["n_head_kv"],
                    h["head_dim"], h["head_dim_v"], h["n_vocab"], h["n_swa"])


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
    if kind == "vad":
        check_onnx_file(path)
        return {"format": "onnx"}
    if kind == "asr":  # a CTranslate2 directory: model.bin plus config.json beside it
        return read_ctranslate2_config(path.parent)
    if kind == "adapter":
        from .adapter_facts import describe_adapter

        return describe_adapter(path)
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


def read_ctranslate2_config(directory: Path) -> dict[str, Any]:
    """Facts from a CTranslate2 Whisper directory's config.json (nothing in model.bin runs)."""
    try:
        config = json.loads((directory / "config.json").read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelFormatError(f"{directory}: unreadable config.json: {exc}") from exc
    if not isinstance(config, dict):
        raise ModelFormatError(f"{directory}: config.json is not an object")
    return {"format": "ctranslate2", "alignment_heads": len(config.get("alignment_heads") or []),
            "files": sorted(p.name for p in directory.iterdir() if p.is_file())}
