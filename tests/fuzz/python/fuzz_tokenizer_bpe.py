"""SmolLM2's byte-level BPE tokenizer on arbitrary text and arbitrary token ids.

Contract: encode() takes any str (lone surrogates: TokenizerError) and decoding gives the text's
UTF-8 bytes back exactly (byte-level BPE loses nothing; SmolLM2 does not clean spaces), except
the 21 bytes SmolLM2's vocabulary has no token for, which are dropped exactly as llama.cpp drops
them; the streaming decoder's pieces join to decode()'s text; decode() of any id list either
decodes or raises TokenizerError for ids outside the vocabulary.
"""
from __future__ import annotations

from edgegen.errors import TokenizerError
from edgegen.tokenizer import Tokenizer, _bytes_to_unicode
from tests.fuzz.python.common import token_ids_input, smollm2_path

tok = None
unmapped: frozenset[int] = frozenset()  # bytes without a byte-level token in the vocabulary


def setup() -> None:
    global tok, unmapped
    tok = Tokenizer.from_gguf(smollm2_path())
    unmapped = frozenset(b for b, ch in _bytes_to_unicode().items() if ch not in tok._token_to_id)


def check_text(text: str, parse_special: bool) -> None:
    ids = tok.encode(text, add_special=False, parse_special=parse_special)
    assert all(0 <= i < tok.vocab_size for i in ids), ids
    expected = bytes(b for b in text.encode("utf-8") if b not in unmapped)
    assert tok.decode_bytes(ids, special=True) == expected, (text, ids)
    decoded = tok.decode(ids, special=True)
    stream = tok.stream_decoder(special=True)
    assert "".join(stream.push(i) for i in ids) + stream.flush() == decoded


def test_one_input(data: bytes) -> None:
    if tok is None:
        setup()
    ids = token_ids_input(data)
    if ids is not None:
        try:
            tok.decode_bytes(ids)
            text = tok.decode(ids, special=data[1:2] == b"\x01")
        except TokenizerError:
            assert any(not 0 <= i < tok.vocab_size for i in ids)
            return
        assert isinstance(text, str)
        return
    text = data.decode("utf-8", errors="surrogateescape")
    try:
        check_text(text, parse_special=bool(data) and data[0] & 1 == 1)
    except TokenizerError:
        assert any(0xD800 <= ord(c) <= 0xDFFF for c in text), text  # only lone surrogates are refused
