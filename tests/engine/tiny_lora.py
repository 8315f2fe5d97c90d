"""Random LoRA adapters for the tiny models of tiny_models.py, written with gguf-py the way
llama.cpp's convert_lora_to_gguf.py writes them: general.type = adapter, adapter.type = lora,
adapter.lora.alpha, and per adapted tensor T the pair T.lora_a (numpy (rank, n_in), GGUF ne
[n_in, rank]) and T.lora_b (numpy (n_out, rank), ne [rank, n_out]).

Scale: A ~ N(0, 1/n_in) and B ~ N(0, (gain/rank)^2 * rank) with alpha = 2 * rank make the low-rank
term of each product about `gain` times as large as a typical base product at adapter scale 1, so
an adapter moves the teacher-forced argmaxes (checked by the tests) without swamping the model.

`hostile` variants break one thing each, for the typed-error tests.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from .tiny_models import TinyConfig, _tensors

ATTN = ("attn_q", "attn_k", "attn_v", "attn_output")
MLP = ("ffn_gate", "ffn_up", "ffn_down")


@dataclass(frozen=True)
class LoraConfig:
    rank: int
    targets: tuple[str, ...]          # per-layer tensor stems, and/or "output"
    fmt: str = "F16"                  # F32 | F16 | BF16 | Q8_0
    layers: Optional[tuple[int, ...]] = None  # None: every layer
    gain: float = 0.5
    alpha: Optional[float] = None     # None: 2 * rank; 0: no alpha (the scale is the user's)
    seed: int = 0
    hostile: str = ""                 # see write_lora
    arch: Optional[str] = None        # general.architecture; None: the base model's


def _base_shapes(cfg: TinyConfig) -> dict[str, tuple[int, int]]:
    return {k: v.shape for k, v in _tensors(cfg).items() if v.ndim == 2}


def write_lora(base: TinyConfig, lora: LoraConfig, path: Path) -> Path:
    """hostile: "missing_b" (a lora_a without its lora_b), "transposed" (A and B swapped),
    "no_target" (a pair for blk.<n_layer>), "rank" (rank larger than the matrix), "nan_alpha",
    "model_file" (general.type = model), "token_embd" (a target the engine does not adapt),
    "q4_0" (a quantized type llama.cpp's converter never writes), "rank_mismatch"."""
    import gguf

    shapes = _base_shapes(base)
    rng = np.random.default_rng([lora.seed, zlib.crc32(repr((base, lora)).encode())])
    w = gguf.GGUFWriter(str(path), arch=lora.arch or base.arch)
    w.add_type("model" if lora.hostile == "model_file" else gguf.GGUFType.ADAPTER)
    w.add_string(gguf.Keys.Adapter.TYPE, "lora")
    alpha = 2.0 * lora.rank if lora.alpha is None else lora.alpha
    w.add_float32(gguf.Keys.Adapter.LORA_ALPHA, float("nan") if lora.hostile == "nan_alpha" else alpha)
    layers = range(base.n_layer) if lora.layers is None else lora.layers
    names = [f"blk.{i}.{t}.weight" for i in layers for t in lora.targets if t != "output"]
    if "output" in lora.targets:
        names.append("output.weight")
    if lora.hostile == "no_target":
        names.append(f"blk.{base.n_layer}.attn_q.weight")
    if lora.hostile == "token_embd":
        names.append("token_embd.weight")
    qtype = getattr(gguf.GGMLQuantizationType, "Q4_0" if lora.hostile == "q4_0" else lora.fmt)
    for name in names:
        n_out, n_in = shapes.get(name, shapes["blk.0.attn_q.weight"])
        r = lora.rank if lora.hostile != "rank" else min(n_in, n_out) + 32
        scale = 1.0 if lora.alpha == 0 else alpha / lora.rank
        a = (rng.standard_normal((r, n_in)) / np.sqrt(n_in)).astype(np.float32)
        b = (rng.standard_normal((n_out, r)) * lora.gain / (np.sqrt(r) * scale)).astype(np.float32)
        if lora.hostile == "transposed":
            a, b = b.T.copy(), a.T.copy()
        if lora.hostile == "rank_mismatch":
            b = b[:, : r // 2].copy()
        for suffix, m in (("lora_a", a), ("lora_b", b)):
            if suffix == "lora_b" and lora.hostile == "missing_b":
                continue
            if qtype == gguf.GGMLQuantizationType.F32:
                w.add_tensor(f"{name}.{suffix}", m)
            elif qtype == gguf.GGMLQuantizationType.F16:
                w.add_tensor(f"{name}.{suffix}", m.astype(np.float16))
            else:
                w.add_tensor(f"{name}.{suffix}", gguf.quants.quantize(m, qtype), raw_dtype=qtype)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return Path(path)


@dataclass
class TinyLoras:
    """Writes each (base, adapter) file once per session."""

    directory: Path
    _paths: dict = field(default_factory=dict)

    def path(self, base: TinyConfig, lora: LoraConfig) -> str:
        key = (base, lora)
        if key not in self._paths:
            tag = zlib.crc32(repr(key).encode())
            self._paths[key] = str(write_lora(base, lora, Path(self.directory) / f"lora-{base.name}-{tag:08x}.gguf"))
        return self._paths[key]
