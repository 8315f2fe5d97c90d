"""A float64 numpy forward pass of the llama architecture: the engine tests' independent reference.

Weights are dequantized by gguf-py (llama.cpp's own Python library), never by edgegen; the maths is
written from the architecture's definition (RMSNorm, RoPE on adjacent pairs, grouped-query
attention, SwiGLU), in float64 without activation quantization.
"""
from __future__ import annotations

import gguf
import numpy as np


class NumpyLlama:
    def __init__(self, path: str) -> None:
        r = gguf.GGUFReader(path)
        self.meta = {f.name: f.contents() for f in r.fields.values() if not f.name.startswith("tokenizer.")}
        a = self.meta["general.architecture"] + "."
        self.n_layer = int(self.meta[a + "block_count"])
        self.n_embd = int(self.meta[a + "embedding_length"])
        self.n_head = int(self.meta[a + "attention.head_count"])
        self.n_head_kv = int(self.meta.get(a + "attention.head_count_kv", self.n_head))
        self.head_dim = self.n_embd // self.n_head
        self.eps = float(self.meta.get(a + "attention.layer_norm_rms_epsilon", 1e-5))
        self.base = float(self.meta.get(a + "rope.freq_base", 10000.0))
        self.w: dict[str, np.ndarray] = {}
        for t in r.tensors:
            data = gguf.quants.dequantize(t.data, t.tensor_type)
            self.w[t.name] = np.asarray(data, dtype=np.float64).reshape(list(reversed([int(x) for x in t.shape])))
        self.output = self.w.get("output.weight", self.w["token_embd.weight"])

    def _norm(self, x: np.ndarray, w: np.ndarray) -> np.ndarray:
        return x / np.sqrt((x * x).mean(-1, keepdims=True) + self.eps) * w

    def _rope(self, x: np.ndarray, pos: np.ndarray) -> np.ndarray:
        # x: (n, heads, hd); rotate adjacent pairs (2i, 2i+1) by pos * base^(-2i/hd)
        hd = x.shape[-1]
        inv = self.base ** (-np.arange(0, hd, 2, dtype=np.float64) / hd)
        ang = pos[:, None] * inv[None, :]  # (n, hd/2)
        c, s = np.cos(ang)[:, None, :], np.sin(ang)[:, None, :]
        x0, x1 = x[..., 0::2], x[..., 1::2]
        out = np.empty_like(x)
        out[..., 0::2] = x0 * c - x1 * s
        out[..., 1::2] = x0 * s + x1 * c
        return out

    def logits(self, tokens: list[int]) -> np.ndarray:
        """(n, n_vocab) logits of every position of one sequence starting at position 0."""
        n, hd = len(tokens), self.head_dim
        x = self.w["token_embd.weight"][tokens]  # (n, d)
        pos = np.arange(n, dtype=np.float64)
        mask = np.triu(np.full((n, n), -np.inf), 1)
        group = self.n_head // self.n_head_kv
        for l in range(self.n_layer):
            p = f"blk.{l}."
            h = self._norm(x, self.w[p + "attn_norm.weight"])
            q = self._rope((h @ self.w[p + "attn_q.weight"].T).reshape(n, self.n_head, hd), pos)
            k = self._rope((h @ self.w[p + "attn_k.weight"].T).reshape(n, self.n_head_kv, hd), pos)
            v = (h @ self.w[p + "attn_v.weight"].T).reshape(n, self.n_head_kv, hd)
            k = np.repeat(k, group, axis=1)
            v = np.repeat(v, group, axis=1)
            att = np.einsum("qhd,khd->hqk", q, k) / np.sqrt(hd) + mask
            att = np.exp(att - att.max(-1, keepdims=True))
            att /= att.sum(-1, keepdims=True)
            o = np.einsum("hqk,khd->qhd", att, v).reshape(n, -1)
            x = x + o @ self.w[p + "attn_output.weight"].T
            h = self._norm(x, self.w[p + "ffn_norm.weight"])
            g = h @ self.w[p + "ffn_gate.weight"].T
            u = h @ self.w[p + "ffn_up.weight"].T
            x = x + (g / (1 + np.exp(-g)) * u) @ self.w[p + "ffn_down.weight"].T
        return self._norm(x, self.w["output_norm.weight"]) @ self.output.T
