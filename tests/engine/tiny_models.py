"""Tiny random-weight GGUF models of every architecture the native engine runs, for the
architecture tests (tests/engine/test_architectures.py).

Each file is written with gguf-py's GGUFWriter exactly as llama.cpp's converter lays such a model
out (tensor names from gguf.constants, metadata keys through the writer's own helpers), with a
small SentencePiece ("llama") vocabulary that both llama.cpp and edgegen's validating reader
accept. F32/F16/Q8_0/Q4_0/Q5_0 weights are encoded by gguf-py; K-quants (which gguf-py cannot
encode) are written as F32 and requantized by llama.cpp's own quantizer ("pure": every matrix,
embeddings and output included, gets the one type).

Random weights at the usual 1/sqrt(fan_in) scale give near-uniform next-token distributions, on
which argmax agreement is a coin toss at every near-tie. The scales below are chosen so that:
  * logits are peaked (the output projection gives logits with a standard deviation of ~6, so
    llama.cpp's top token usually has most of the mass: mean entropy well under 2 nats of the
    ln(512) = 6.2 of a uniform distribution);
  * the distribution depends on the context, not just on the current token: attention scores
    have a standard deviation of ~2 (sharp but not one-hot attention), and each layer's
    attention/FFN output is as large as the token embedding, so what attention reads moves the
    logits by several nats (checked by test_tiny_models_are_informative);
  * nothing approaches f16 limits (llama.cpp stores K/V as f16; activations stay O(1..10)).
"""
from __future__ import annotations

import ctypes
import math
import zlib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Optional

import numpy as np

N_VOCAB = 512
BOS_ID, EOS_ID, UNK_ID = 1, 2, 0
FIRST_WORD_ID = 3 + 256  # after <unk> <s> </s> and the 256 byte tokens

# Weight scales (see the module docstring).
QK_GAIN = 1.5   # q and k entries ~ N(0, QK_GAIN^2): attention scores ~ QK_GAIN^2 standard deviations
QK_NORM = 1.4   # qwen3/gemma3: q/k are RMS-normalised per head, then scaled by ~QK_NORM
OUT_GAIN = 6.0  # logits ~ N(0, OUT_GAIN^2) for a unit-RMS final hidden state
BIAS_STD = 0.5  # qwen2 q/k/v biases
# Tied output (logits = token_embd . x): the current token's own embedding, if it dominated the
# residual stream, would make every position predict its own input token. Keeping it small next
# to what the layers add (and gemma3's post-norms large) leaves the context in charge.
TIED_EMB_STD = 0.1
GEMMA_POST_NORM = 4.0

FORMATS = ("F32", "F16", "Q8_0", "Q4_0", "Q5_0", "Q4_K", "Q6_K")
_GGUFPY_FORMATS = {"F32", "F16", "Q8_0", "Q4_0", "Q5_0"}  # encoded by gguf-py itself
_LLAMA_FTYPE = {"Q4_K": 14, "Q6_K": 18}  # LLAMA_FTYPE_MOSTLY_Q4_K_S / _Q6_K, with pure=True


@dataclass(frozen=True)
class TinyConfig:
    arch: str                  # "llama" | "qwen2" | "qwen3" | "gemma3"
    fmt: str                   # one of FORMATS: the type of every weight matrix
    n_head: int
    n_head_kv: int
    head_dim: int
    n_layer: int = 2
    n_embd: int = 256          # a multiple of 256, so every matrix row fits whole K-quant blocks
    n_ff: int = 512
    tied: bool = False         # no output.weight: logits come from token_embd (gemma3 always)
    sliding_window: int = 0    # gemma3: gemma3.attention.sliding_window
    rope_freqs: bool = False   # llama: Llama 3 rope scaling, stored as rope_freqs.weight factors
    freq_base: float = 10000.0
    seed: int = 0
    # For the tests' own sensitivity check only: a feature switched off in the file ("qkv_bias":
    # zero biases, "qk_norm_weights" / "post_norm_weights": all-ones norm weights).
    ablate: str = ""

    @property
    def name(self) -> str:
        parts = [self.arch, self.fmt.lower(), f"h{self.n_head}kv{self.n_head_kv}", f"d{self.head_dim}",
                 f"L{self.n_layer}"]
        if self.sliding_window:
            parts.append(f"w{self.sliding_window}")
        if self.rope_freqs:
            parts.append("ropefreqs")
        if self.tied and self.arch != "gemma3":
            parts.append("tied")
        if self.ablate:
            parts.append("no_" + self.ablate)
        return "-".join(parts)

    def validate(self) -> None:
        assert self.arch in ("llama", "qwen2", "qwen3", "gemma3"), self.arch
        assert self.fmt in FORMATS, self.fmt
        assert self.n_head % self.n_head_kv == 0
        assert self.n_embd % 256 == 0 and self.n_ff % 256 == 0 and (self.n_head * self.head_dim) % 256 == 0
        if self.arch == "gemma3":
            assert self.tied and self.sliding_window > 0 and self.n_layer >= 6, "gemma3: tied, windowed, >= 6 layers"
        assert not self.rope_freqs or self.arch == "llama"
        if self.arch == "qwen2":  # llama.cpp's qwen2 loader sizes attn_q as [n_embd, n_embd]
            assert self.n_head * self.head_dim == self.n_embd


def is_global_layer(cfg: TinyConfig, layer: int) -> bool:
    """gemma3 (llama.cpp's swa pattern 6): every sixth layer attends globally, the rest locally."""
    return cfg.arch != "gemma3" or layer % 6 == 5


# ------------------------------------------------------------------------------------------------
# Vocabulary
# ------------------------------------------------------------------------------------------------

def vocab() -> tuple[list[str], list[float], list[int]]:
    """<unk> <s> </s>, the 256 byte-fallback tokens (llama.cpp needs <0x0A> for its newline id),
    then distinct word pieces up to N_VOCAB."""
    tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)]
    types = [2, 3, 3] + [6] * 256
    letters = "abcdefghijklmnopqrstuvwxyz"
    i = 0
    while len(tokens) < N_VOCAB:
        word = letters[i % 26] + letters[(i // 26) % 26] + (letters[i // 676] if i >= 676 else "")
        tokens.append("\u2581" + word)
        types.append(1)
        i += 1
    scores = [0.0] * FIRST_WORD_ID + [-float(k) for k in range(N_VOCAB - FIRST_WORD_ID)]
    return tokens, scores, types


# ------------------------------------------------------------------------------------------------
# Weights
# ------------------------------------------------------------------------------------------------

def llama3_rope_factors(head_dim: int, base: float, factor: float = 8.0, low_freq_factor: float = 1.0,
                        high_freq_factor: float = 4.0, old_context_len: int = 128) -> np.ndarray:
    """The frequency divisors convert_hf_to_gguf.py writes as rope_freqs.weight for Llama 3.x
    (rope_scaling type "llama3"). A short original context (128 instead of 8192) puts most of
    the rotation pairs in the scaled or interpolated bands, so positions < 512 feel them."""
    freqs = 1.0 / base ** (np.arange(0, head_dim, 2, dtype=np.float64) / head_dim)
    low_wavelen, high_wavelen = old_context_len / low_freq_factor, old_context_len / high_freq_factor
    out = []
    for f in freqs:
        wavelen = 2 * math.pi / f
        if wavelen < high_wavelen:
            out.append(1.0)
        elif wavelen > low_wavelen:
            out.append(factor)
        else:
            smooth = (old_context_len / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor)
            out.append(1.0 / ((1 - smooth) / factor + smooth))
    return np.asarray(out, dtype=np.float32)


def _tensors(cfg: TinyConfig) -> dict[str, np.ndarray]:
    """name -> float32 array in numpy order (GGUF ne reversed: a [ne0, ne1] matrix is (ne1, ne0))."""
    # Seeded by the shapes only: a variant (other window, rope base, ablation) has the same weights.
    shape_key = f"{cfg.arch}/{cfg.fmt}/{cfg.n_head}/{cfg.n_head_kv}/{cfg.head_dim}/{cfg.n_layer}/{cfg.n_embd}/{cfg.n_ff}/{cfg.tied}"
    rng = np.random.default_rng([cfg.seed, zlib.crc32(shape_key.encode())])
    E, F, V = cfg.n_embd, cfg.n_ff, N_VOCAB
    QD, KD = cfg.n_head * cfg.head_dim, cfg.n_head_kv * cfg.head_dim
    qk_norms = cfg.arch in ("qwen3", "gemma3")

    def mat(rows: int, cols: int, std: float) -> np.ndarray:  # rows = outputs, cols = inputs (ne0)
        return (rng.standard_normal((rows, cols)) * std).astype(np.float32)

    def norm(n: int, centre: float = 1.0, spread: float = 0.1) -> np.ndarray:
        return (centre + spread * rng.standard_normal(n)).astype(np.float32)

    t: dict[str, np.ndarray] = {}
    # gemma3 multiplies the looked-up embedding by sqrt(n_embd): store it that much smaller.
    emb_std = 1.0 / math.sqrt(E) if cfg.arch == "gemma3" else TIED_EMB_STD if cfg.tied else 1.0
    t["token_embd.weight"] = mat(V, E, emb_std)
    if cfg.tied:
        # logits = token_embd . (output_norm * x_hat); give them a standard deviation of OUT_GAIN.
        emb_rms = float(np.sqrt(np.mean(t["token_embd.weight"] ** 2)))
        t["output_norm.weight"] = norm(E, OUT_GAIN / (emb_rms * math.sqrt(E)), 0.0)
    else:
        t["output_norm.weight"] = norm(E)
        t["output.weight"] = mat(V, E, OUT_GAIN / math.sqrt(E))
    if cfg.rope_freqs:
        t["rope_freqs.weight"] = llama3_rope_factors(cfg.head_dim, cfg.freq_base)
    # with q/k norms, the norm weights set the attention sharpness; without, the projections do
    qk_std = 1.0 / math.sqrt(E) if qk_norms else QK_GAIN / math.sqrt(E)
    for i in range(cfg.n_layer):
        p = f"blk.{i}."
        t[p + "attn_norm.weight"] = norm(E)
        t[p + "attn_q.weight"] = mat(QD, E, qk_std)
        t[p + "attn_k.weight"] = mat(KD, E, qk_std)
        t[p + "attn_v.weight"] = mat(KD, E, 1.0 / math.sqrt(E))
        t[p + "attn_output.weight"] = mat(E, QD, 1.0 / math.sqrt(QD))
        if cfg.arch == "qwen2":
            t[p + "attn_q.bias"] = (BIAS_STD * rng.standard_normal(QD)).astype(np.float32)
            t[p + "attn_k.bias"] = (BIAS_STD * rng.standard_normal(KD)).astype(np.float32)
            t[p + "attn_v.bias"] = (BIAS_STD * rng.standard_normal(KD)).astype(np.float32)
        if qk_norms:
            t[p + "attn_q_norm.weight"] = norm(cfg.head_dim, QK_NORM, 0.3)
            t[p + "attn_k_norm.weight"] = norm(cfg.head_dim, QK_NORM, 0.3)
        if cfg.arch == "gemma3":
            t[p + "post_attention_norm.weight"] = norm(E, GEMMA_POST_NORM, 0.4)
            t[p + "post_ffw_norm.weight"] = norm(E, GEMMA_POST_NORM, 0.4)
        t[p + "ffn_norm.weight"] = norm(E)
        t[p + "ffn_gate.weight"] = mat(F, E, 1.0 / math.sqrt(E))
        t[p + "ffn_up.weight"] = mat(F, E, 1.0 / math.sqrt(E))
        t[p + "ffn_down.weight"] = mat(E, F, 1.5 / math.sqrt(F))
    if cfg.ablate:
        suffix = {"qkv_bias": (".bias",), "qk_norm_weights": ("attn_q_norm.weight", "attn_k_norm.weight"),
                  "post_norm_weights": ("post_attention_norm.weight", "post_ffw_norm.weight")}[cfg.ablate]
        hit = [k for k in t if k.endswith(suffix)]
        assert hit, f"nothing to ablate for {cfg.ablate}"
        for k in hit:
            t[k] = np.zeros_like(t[k]) if cfg.ablate == "qkv_bias" else np.ones_like(t[k])
    return t


# ------------------------------------------------------------------------------------------------
# Writing
# ------------------------------------------------------------------------------------------------

def _write(cfg: TinyConfig, path: Path, fmt: str) -> None:
    import gguf

    w = gguf.GGUFWriter(str(path), arch=cfg.arch)
    w.add_name(f"tiny-{cfg.name}")
    w.add_block_count(cfg.n_layer)
    w.add_context_length(4096)
    w.add_embedding_length(cfg.n_embd)
    w.add_feed_forward_length(cfg.n_ff)
    w.add_head_count(cfg.n_head)
    w.add_head_count_kv(cfg.n_head_kv)
    w.add_key_length(cfg.head_dim)
    w.add_value_length(cfg.head_dim)
    w.add_rope_dimension_count(cfg.head_dim)
    w.add_rope_freq_base(cfg.freq_base)
    w.add_layer_norm_rms_eps(1e-6)
    if cfg.sliding_window:
        w.add_sliding_window(cfg.sliding_window)
    w.add_file_type({"F32": 0, "F16": 1, "Q4_0": 2, "Q8_0": 7, "Q5_0": 8}[fmt])

    tokens, scores, types = vocab()
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_bos_token_id(BOS_ID)
    w.add_eos_token_id(EOS_ID)
    w.add_unk_token_id(UNK_ID)
    w.add_add_bos_token(True)
    w.add_add_eos_token(False)

    qtype = getattr(gguf.GGMLQuantizationType, fmt)
    for name, arr in _tensors(cfg).items():
        if arr.ndim == 1 or fmt == "F32":  # norms, biases and rope factors stay F32, as llama.cpp keeps them
            w.add_tensor(name, arr)
        elif fmt == "F16":
            w.add_tensor(name, arr.astype(np.float16))
        else:
            w.add_tensor(name, gguf.quants.quantize(arr, qtype), raw_dtype=qtype)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def _llama_quantize(src: Path, dst: Path, fmt: str) -> None:
    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = _LLAMA_FTYPE[fmt]
    params.pure = True  # every matrix to `fmt`: no per-tensor mixes (Q4_K_S would put Q5_K/Q6_K here and there)
    params.nthread = 2
    rc = llama_cpp.llama_model_quantize(str(src).encode(), str(dst).encode(), ctypes.byref(params))
    assert rc == 0 and dst.exists(), f"llama.cpp could not quantize {src.name} to {fmt}"


def write_tiny_gguf(cfg: TinyConfig, path: Path) -> Path:
    cfg.validate()
    path = Path(path)
    if cfg.fmt in _GGUFPY_FORMATS:
        _write(cfg, path, cfg.fmt)
    else:
        f32 = path.with_suffix(".f32.gguf")
        _write(cfg, f32, "F32")
        _llama_quantize(f32, path, cfg.fmt)
        f32.unlink()
    return path


class TinyModels:
    """Writes each configuration's file once per session, on first use."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self._paths: dict[TinyConfig, str] = {}

    def path(self, cfg: TinyConfig) -> str:
        if cfg not in self._paths:
            tag = zlib.crc32(repr(cfg).encode())  # the name leaves out e.g. the rope base
            self._paths[cfg] = str(write_tiny_gguf(cfg, self.directory / f"{cfg.name}-{tag:08x}.gguf"))
        return self._paths[cfg]


def prompt_tokens(n: int = 300, seed: int = 0) -> list[int]:
    """BOS, then random word tokens; the second half replays the first half's tokens in another
    order, so the same token id occurs at two positions with different contexts."""
    rng = np.random.default_rng(1000 + seed)
    half = (n - 1) // 2
    first = rng.integers(3, N_VOCAB, size=half)
    second = rng.permutation(first)
    rest = rng.integers(3, N_VOCAB, size=n - 1 - 2 * half)
    return [BOS_ID] + [int(x) for x in np.concatenate([first, second, rest])]


def variant(cfg: TinyConfig, **changes) -> TinyConfig:
    return replace(cfg, **changes)
