"""Our tokenizers against llama.cpp (llama-cpp-python, vocab only) on the same GGUF files."""
from __future__ import annotations

import random

import pytest

from tokenizer_refs import CORPUS, Reference
from edgegen.tokenizer import Tokenizer


@pytest.mark.parametrize("add_special", [True, False])
@pytest.mark.parametrize("parse_special", [True, False])
def test_encode_matches_llamacpp(pair: tuple[Tokenizer, Reference], add_special: bool, parse_special: bool) -> None:
    tok, ref = pair
    for text in CORPUS:
        assert tok.encode(text, add_special, parse_special) == ref.tokenize(text, add_special, parse_special), repr(text)


def test_random_strings_match_llamacpp(pair: tuple[Tokenizer, Reference]) -> None:
    # Random mixes of the awkward parts: categories, whitespace kinds, special-token strings.
    tok, ref = pair
    alphabet = list("abcXYZ019 \t\n\r'.,!?-_()[]<>|/\\\"") + [
        "\u00a0", "\u2003", "\u3000", "é", "ß", "中", "語", "😀", "👍🏽", "\u200d", "\u0301", "ﬁ", "Ⅻ", "²", "٣",
        "<|im_end|>", "<s>", "</s>", "<|endoftext|>", "<tool>", "'s", "'ll", "\x00", "\x7f", "\u2581", "the", " fox"]
    rng = random.Random(7)
    for _ in range(300):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 24)))
        for parse_special in (True, False):
            assert tok.encode(text, True, parse_special) == ref.tokenize(text, True, parse_special), repr(text)


@pytest.mark.parametrize("special", [True, False])
def test_decode_matches_llamacpp(pair: tuple[Tokenizer, Reference], special: bool) -> None:
    tok, ref = pair
    for text in CORPUS:
        ids = ref.tokenize(text, True, True)
        assert tok.decode_bytes(ids, special) == ref.detokenize(ids, special), repr(text)


def test_every_token_piece_matches_llamacpp(pair: tuple[Tokenizer, Reference]) -> None:
    tok, ref = pair
    assert tok.vocab_size == ref.llm.n_vocab()
    step = max(1, tok.vocab_size // 3000)  # a spread sample of the 49k SmolLM2 vocabulary; all of the tiny one
    for i in list(range(0, 300)) + list(range(300, tok.vocab_size, step)):
        for special in (False, True):
            assert tok.token_to_bytes(i, special) == ref.token_to_piece(i, special), (i, special)


def test_special_ids_and_eog_match_llamacpp(pair: tuple[Tokenizer, Reference]) -> None:
    tok, ref = pair
    lc = ref._lc
    assert tok.bos_id == lc.llama_vocab_bos(ref.vocab)
    assert tok.eos_id == lc.llama_vocab_eos(ref.vocab)
    eot = lc.llama_vocab_eot(ref.vocab)
    if eot < 0:
        assert tok.eot_id is None
    else:
        # Without tokenizer.ggml.eot_token_id, llama.cpp takes the first known end-of-turn text in
        # hash-map order; ours is deterministic. Both must be end-of-generation tokens.
        assert tok.eot_id is not None and ref.is_eog(tok.eot_id) and ref.is_eog(eot)
    assert tok.eog_ids == {i for i in range(tok.vocab_size) if ref.is_eog(i)}


def test_round_trip(pair: tuple[Tokenizer, Reference]) -> None:
    tok, _ = pair
    # SentencePiece inserts a space after every special token (llama.cpp does too): not invertible.
    texts = CORPUS if tok.model == "gpt2" else [t for t in CORPUS if "<" not in t]
    for text in texts:
        ids = tok.encode(text, add_special=True, parse_special=True)
        assert tok.decode(ids, special=True) == text, repr(text)
