"""Helpers for the model-store tests: a tiny GGUF, locally built wheels, the test store handle."""
from __future__ import annotations

import base64
import hashlib
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgegen.store import ModelStore

# Tiny llama: 2 layers, n_embd 8, 2 heads of 4, 1 KV head, n_ff 16, 6 tokens, context 64.
N_EMBD, N_HEAD, N_HEAD_KV, HEAD_DIM, N_FF, N_LAYER, N_CTX = 8, 2, 1, 4, 16, 2, 64
TOKENS = ["<unk>", "<s>", "</s>", "a", "b", "ab"]


def write_tiny_gguf(path: Path) -> Path:
    """A complete, valid llama-style GGUF written with the reference gguf package."""
    import gguf

    w = gguf.GGUFWriter(str(path), "llama")
    w.add_block_count(N_LAYER)
    w.add_context_length(N_CTX)
    w.add_embedding_length(N_EMBD)
    w.add_feed_forward_length(N_FF)
    w.add_head_count(N_HEAD)
    w.add_head_count_kv(N_HEAD_KV)
    w.add_rope_freq_base(10000.0)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_tokenizer_model("llama")
    w.add_token_list(TOKENS)
    w.add_token_scores([0.0, 0.0, 0.0, -1.0, -2.0, -0.5])
    w.add_token_types([2, 3, 3, 1, 1, 1])
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_chat_template("{% for m in messages %}{{ m.content }}{% endfor %}")

    def t(name: str, *ggml_shape: int) -> None:  # numpy shape is ggml's reversed
        w.add_tensor(name, np.full(tuple(reversed(ggml_shape)), 0.5, dtype=np.float32))

    t("token_embd.weight", N_EMBD, len(TOKENS))
    for i in range(N_LAYER):
        t(f"blk.{i}.attn_norm.weight", N_EMBD)
        t(f"blk.{i}.attn_q.weight", N_EMBD, N_HEAD * HEAD_DIM)
        t(f"blk.{i}.attn_k.weight", N_EMBD, N_HEAD_KV * HEAD_DIM)
        t(f"blk.{i}.attn_v.weight", N_EMBD, N_HEAD_KV * HEAD_DIM)
        t(f"blk.{i}.attn_output.weight", N_HEAD * HEAD_DIM, N_EMBD)
        t(f"blk.{i}.ffn_norm.weight", N_EMBD)
        t(f"blk.{i}.ffn_gate.weight", N_EMBD, N_FF)
        t(f"blk.{i}.ffn_up.weight", N_EMBD, N_FF)
        t(f"blk.{i}.ffn_down.weight", N_FF, N_EMBD)
    t("output_norm.weight", N_EMBD)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def build_wheel(directory: Path, dist: str, version: str, files: dict[str, bytes]) -> Path:
    """A minimal valid wheel (METADATA, WHEEL, RECORD) holding `files` (member path -> bytes)."""
    norm = dist.replace("-", "_")
    info = f"{norm}-{version}.dist-info"
    entries = dict(files)
    entries[f"{info}/METADATA"] = f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n".encode()
    entries[f"{info}/WHEEL"] = b"Wheel-Version: 1.0\nGenerator: edgegen-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    record = []
    for name, data in entries.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{name},sha256={digest},{len(data)}")
    record.append(f"{info}/RECORD,,")
    entries[f"{info}/RECORD"] = ("\n".join(record) + "\n").encode()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{norm}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return path


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class StoreEnv:
    home: Path
    manifests: Path
    wheels: Path
    store: ModelStore

    def manifest(self, name: str, text: str) -> Path:
        path = self.manifests / f"{name}.toml"
        path.write_text(text)
        return path
