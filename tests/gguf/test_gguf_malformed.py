"""Malformed GGUF files: each is refused with ModelFormatError naming the problem, never a crash,
hang or unbounded allocation. Each case corrupts one thing in an otherwise valid tiny file."""
from __future__ import annotations

import random
import re
import struct
from typing import Callable

import pytest
from gguf import GGMLQuantizationType as QT
from gguf import GGUFValueType as VT

from gguf_fixtures import tiny_llama_spec
from gguf_bytes import KV, Spec, Tensor, build, gstr
from edgegen import ModelFormatError
from edgegen.gguf import GGUFFile

Edit = Callable[[Spec], None]


def kv(spec: Spec, key: str) -> KV:
    return next(k for k in spec.kvs if k.key == key)


def tensor(spec: Spec, name: str) -> Tensor:
    return next(t for t in spec.tensors if t.name == name)


def set_attr(obj_of: Callable[[Spec], object], **attrs) -> Edit:
    def edit(spec: Spec) -> None:
        for k, v in attrs.items():
            setattr(obj_of(spec), k, v)
    return edit


def add_kv(*kvs: KV) -> Edit:
    return lambda spec: spec.kvs.extend(kvs)


def on_tensor(tensor_name: str, **attrs) -> Edit:
    return set_attr(lambda s: tensor(s, tensor_name), **attrs)


def on_kv(key_name: str, **attrs) -> Edit:
    return set_attr(lambda s: kv(s, key_name), **attrs)


def on_spec(**attrs) -> Edit:
    return set_attr(lambda s: s, **attrs)


def drop_tensors(prefix: str) -> Edit:
    def edit(spec: Spec) -> None:
        spec.tensors = [t for t in spec.tensors if not t.name.startswith(prefix)]
    return edit


def dup_tensor(spec: Spec) -> None:
    t = spec.tensors[1]
    spec.tensors.append(Tensor(t.name, t.shape, t.ggml_type, t.data))


def overlap(spec: Spec) -> None:
    # Two tensors claiming the same bytes (both offsets aligned and in the file).
    spec.tensors[-1].offset = 0


def out_of_file(spec: Spec) -> None:
    spec.tensors[-1].offset = 1 << 20


def vocab_vs_rows(spec: Spec) -> None:
    kv(spec, "tokenizer.ggml.tokens").v = ["a"] * 7
    for key in ("tokenizer.ggml.scores", "tokenizer.ggml.token_type"):
        kv(spec, key).v = kv(spec, key).v + [0]


def n_head_vs_q(spec: Spec) -> None:
    kv(spec, "llama.attention.head_count").v = 4
    kv(spec, "llama.attention.head_count_kv").v = 2
    spec.kvs.append(KV("llama.attention.key_length", VT.UINT32, 4))


CASES: dict[str, tuple[Edit, str]] = {
    # header
    "bad magic": (on_spec(magic=b"GGML"), "bad magic"),
    "version 1": (on_spec(version=1), "unsupported GGUF version 1"),
    "version 4": (on_spec(version=4), "unsupported GGUF version 4"),
    "big endian": (on_spec(version=0x03000000), "big-endian"),
    "absurd tensor count": (on_spec(n_tensors=1 << 40), "absurd tensor count"),
    "absurd kv count": (on_spec(n_kv=1 << 62), "absurd metadata"),
    "counts beyond file": (on_spec(n_kv=60_000), "cannot fit"),
    # metadata
    "empty key": (add_kv(KV("", VT.UINT32, 1)), "is empty"),
    "duplicate key": (add_kv(KV("llama.block_count", VT.UINT32, 2)), "duplicate metadata key 'llama.block_count'"),
    "invalid utf-8 key": (add_kv(KV(b"bad\xff", VT.UINT32, 1)), "not valid UTF-8"),
    "invalid utf-8 value": (add_kv(KV("x.s", VT.STRING, b"\xc0\xaf")), "not valid UTF-8"),
    "unknown value type": (add_kv(KV("x.t", 13, 0)), "unknown value type 13"),
    "nested array": (add_kv(KV("x.nest", VT.ARRAY, [], VT.ARRAY)), "nested arrays"),
    "unknown array element type": (add_kv(KV("x.arr", VT.ARRAY, [], 99)), "unknown array element type 99"),
    "array count 2^63 numbers": (add_kv(KV("x.arr", VT.ARRAY, [1], VT.UINT32, count=1 << 63)), "cannot fit"),
    "array count 2^62 strings": (add_kv(KV("x.arr", VT.ARRAY, ["a"], VT.STRING, count=1 << 62)), "cannot fit"),
    "bool not 0/1": (add_kv(KV("x.b", VT.BOOL, 2)), "neither 0 nor 1"),
    "alignment not power of two": (on_kv("general.alignment", v=48), "not a power of two"),
    "alignment zero": (on_kv("general.alignment", v=0), "not a power of two"),
    "alignment wrong type": (on_kv("general.alignment", vtype=VT.UINT64), "must be uint32"),
    # tensor records
    "duplicate tensor": (dup_tensor, "duplicate tensor name"),
    "empty tensor name": (on_tensor("output_norm.weight", name=""), "empty name"),
    "5 dims": (on_tensor("output_norm.weight", shape=[8, 1, 1, 1, 1]), "5 dimensions"),
    "zero dim": (on_tensor("output_norm.weight", shape=[8, 0]), "must be positive"),
    "negative dim": (on_tensor("output_norm.weight", shape=[-8]), "must be positive"),
    "element count overflow": (on_tensor("output_norm.weight", shape=[1 << 32, 1 << 32]), "element count overflows"),
    "byte size overflow": (on_tensor("output_norm.weight", shape=[1 << 31, 1 << 31]), "byte size overflows"),
    "removed type id": (on_tensor("output_norm.weight", ggml_type=4), "unknown tensor type id 4"),
    "unknown type id": (on_tensor("output_norm.weight", ggml_type=1000), "unknown tensor type id 1000"),
    "row not multiple of block": (on_tensor("output_norm.weight", ggml_type=QT.Q4_0), "not a multiple of Q4_0's block size 32"),
    "misaligned offset": (on_tensor("output_norm.weight", offset=8), "not a multiple of the alignment"),
    "overlap": (overlap, "overlap"),
    "data outside file": (out_of_file, "outside"),
    "truncated data": (lambda s: (on_tensor("output_norm.weight", data=b"\0" * 8)(s), on_spec(pad_data=False)(s)),
                       "outside"),
    # tokenizer metadata
    "bos out of range": (on_kv("tokenizer.ggml.bos_token_id", v=6), "bos_token_id = 6 is outside the vocabulary"),
    "eot out of range": (add_kv(KV("tokenizer.ggml.eot_token_id", VT.UINT32, 1 << 31)), "outside the vocabulary"),
    "scores length": (on_kv("tokenizer.ggml.scores", v=[0.0] * 5), "scores has 5 entries for 6 tokens"),
    "token types wrong type": (on_kv("tokenizer.ggml.token_type", elem_type=VT.FLOAT32, v=[0.0] * 6), "array of int32"),
    "tokens not strings": (on_kv("tokenizer.ggml.tokens", elem_type=VT.INT32, v=[0] * 6), "array of strings"),
    "vocab vs embedding rows": (vocab_vs_rows, "6 rows for a vocabulary of 7 tokens"),
    # hyper-parameters vs shapes
    "block_count too large": (on_kv("llama.block_count", v=3), "no tensors for blk.2"),
    "block_count too small": (on_kv("llama.block_count", v=1), "blk.1.* exceeds"),
    "missing layer": (drop_tensors("blk.0."), "no tensors for blk.0"),
    "n_embd vs token_embd": (on_kv("llama.embedding_length", v=16), "token_embd.weight has rows of 8"),
    "n_head vs attn_q": (n_head_vs_q, "attn_q.weight has shape [8, 8]"),
    "n_head_kv vs attn_k": (on_kv("llama.attention.head_count_kv", v=2), "attn_k.weight has shape [8, 4]"),
    "n_ff vs ffn_up": (on_kv("llama.feed_forward_length", v=32), "ffn_gate.weight has shape [8, 16]"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_malformed_is_refused(case: str, write) -> None:
    edit, message = CASES[case]
    spec = tiny_llama_spec()
    edit(spec)
    path = write(spec)
    with pytest.raises(ModelFormatError, match=re.escape(message)):
        GGUFFile(path)


def test_string_length_beyond_file(write) -> None:
    data = b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + gstr("general.architecture") + struct.pack("<I", VT.STRING)
    data += struct.pack("<Q", 1 << 62) + b"llama"
    with pytest.raises(ModelFormatError, match="exceeds the limit"):
        GGUFFile(write(data))
    data = data[:-5 - 8] + struct.pack("<Q", 1 << 20) + b"llama"  # under the cap, beyond the file
    with pytest.raises(ModelFormatError, match="truncated file"):
        GGUFFile(write(data))


def test_valid_base_file_loads(write) -> None:
    GGUFFile(write(tiny_llama_spec())).close()  # the cases above differ from a valid file by one edit


def test_every_truncation_is_refused(write) -> None:
    full = build(tiny_llama_spec())
    with GGUFFile(write(full)) as f:
        data_offset = f.data_offset
    cuts = list(range(0, data_offset + 1)) + list(range(data_offset, len(full), 97))
    for n in cuts:
        with pytest.raises(ModelFormatError):
            GGUFFile(write(full[:n]))


def test_random_corruption_never_crashes(write) -> None:
    # Header bytes flipped at random: each mutant either loads or raises ModelFormatError.
    full = build(tiny_llama_spec())
    with GGUFFile(write(full)) as f:
        header_len = f.data_offset
    rng = random.Random(1234)
    refused = 0
    for _ in range(400):
        b = bytearray(full)
        for _ in range(rng.randint(1, 4)):
            b[rng.randrange(header_len)] = rng.randrange(256)
        try:
            GGUFFile(write(bytes(b))).close()
        except ModelFormatError:
            refused += 1
    assert refused > 100  # most header corruptions are detectable
