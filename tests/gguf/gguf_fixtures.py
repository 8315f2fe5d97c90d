"""A tiny valid llama-style GGUF (as a gguf_bytes.Spec) that the malformed-file tests edit."""
from __future__ import annotations

import numpy as np
from gguf import GGMLQuantizationType as QT
from gguf import GGUFValueType as VT

from gguf_bytes import KV, Spec, Tensor

# Tiny llama: 2 layers, n_embd 8, 2 heads of 4, 1 KV head, n_ff 16, 6 tokens.
N_EMBD, N_HEAD, N_HEAD_KV, HEAD_DIM, N_FF, N_LAYER = 8, 2, 1, 4, 16, 2
TOKENS = ["<unk>", "<s>", "</s>", "a", "b", "ab"]


def f32(*shape: int, seed: int = 0) -> bytes:
    n = int(np.prod(shape))
    return (np.arange(n, dtype=np.float32) + seed).tobytes()


def tiny_llama_spec() -> Spec:
    kvs = [
        KV("general.architecture", VT.STRING, "llama"),
        KV("general.alignment", VT.UINT32, 32),
        KV("llama.block_count", VT.UINT32, N_LAYER),
        KV("llama.embedding_length", VT.UINT32, N_EMBD),
        KV("llama.feed_forward_length", VT.UINT32, N_FF),
        KV("llama.attention.head_count", VT.UINT32, N_HEAD),
        KV("llama.attention.head_count_kv", VT.UINT32, N_HEAD_KV),
        KV("llama.rope.freq_base", VT.FLOAT32, 10000.0),
        KV("general.flag", VT.BOOL, True),
        KV("general.i64", VT.INT64, -(2**40)),
        KV("tokenizer.ggml.model", VT.STRING, "llama"),
        KV("tokenizer.ggml.tokens", VT.ARRAY, TOKENS, VT.STRING),
        KV("tokenizer.ggml.scores", VT.ARRAY, [0.0, 0.0, 0.0, -1.0, -2.0, -0.5], VT.FLOAT32),
        KV("tokenizer.ggml.token_type", VT.ARRAY, [2, 3, 3, 1, 1, 1], VT.INT32),
        KV("tokenizer.ggml.bos_token_id", VT.UINT32, 1),
        KV("tokenizer.ggml.eos_token_id", VT.UINT32, 2),
    ]
    tensors = [Tensor("token_embd.weight", [N_EMBD, len(TOKENS)], QT.F32, f32(N_EMBD, len(TOKENS)))]
    for i in range(N_LAYER):
        shapes = {"attn_norm": [N_EMBD], "attn_q": [N_EMBD, N_HEAD * HEAD_DIM],
                  "attn_k": [N_EMBD, N_HEAD_KV * HEAD_DIM], "attn_v": [N_EMBD, N_HEAD_KV * HEAD_DIM],
                  "attn_output": [N_HEAD * HEAD_DIM, N_EMBD], "ffn_norm": [N_EMBD],
                  "ffn_gate": [N_EMBD, N_FF], "ffn_up": [N_EMBD, N_FF], "ffn_down": [N_FF, N_EMBD]}
        for j, (name, shape) in enumerate(shapes.items()):
            tensors.append(Tensor(f"blk.{i}.{name}.weight", shape, QT.F32, f32(*shape, seed=100 * i + j)))
    tensors.append(Tensor("output_norm.weight", [N_EMBD], QT.F32, f32(N_EMBD, seed=7)))
    return Spec(kvs=kvs, tensors=tensors)
