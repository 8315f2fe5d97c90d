"""Shared data for tokenizer tests: the corpus, a tiny SentencePiece vocabulary, and llama.cpp
(llama-cpp-python, vocab only) wrapped as the reference."""
from __future__ import annotations

import ctypes
from collections import Counter
from pathlib import Path

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


def spm_vocab() -> tuple[list[str], list[float], list[int]]:
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
