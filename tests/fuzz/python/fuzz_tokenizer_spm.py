"""Gemma 3's SentencePiece tokenizer (llama.cpp's SPM port with byte fallback) on arbitrary text
and arbitrary token ids.

Contract: encode() takes any str (lone surrogates: TokenizerError); every id is inside the
vocabulary; without special-token splits, decode(encode(text)) is the text (SentencePiece writes
spaces as U+2581, so a literal U+2581 comes back as a space); the streaming decoder's pieces join
to decode()'s text; decode() of any id list decodes or raises TokenizerError for bad ids.
"""
from __future__ import annotations

from edgegen.errors import TokenizerError
from edgegen.tokenizer import Tokenizer
from tests.fuzz.python.common import token_ids_input, gemma3_path

tok = None


def setup() -> None:
    global tok
    tok = Tokenizer.from_gguf(gemma3_path())


def test_one_input(data: bytes) -> None:
    if tok is None:
        setup()
    ids = token_ids_input(data)
    if ids is not None:
        try:
            text = tok.decode(ids, special=data[1:2] == b"\x01")
        except TokenizerError:
            assert any(not 0 <= i < tok.vocab_size for i in ids)
            return
        stream = tok.stream_decoder(special=data[1:2] == b"\x01")
        streamed = "".join(stream.push(i) for i in ids) + stream.flush()
        assert isinstance(text, str) and isinstance(streamed, str)
        return
    text = data.decode("utf-8", errors="surrogateescape")
    parse_special = bool(data) and data[0] & 1 == 1
    try:
        ids = tok.encode(text, add_special=False, parse_special=parse_special)
    except TokenizerError:
        assert any(0xD800 <= ord(c) <= 0xDFFF for c in text), text  # only lone surrogates are refused
        return
    assert all(0 <= i < tok.vocab_size for i in ids), ids
    decoded = tok.decode(ids, special=True)
    stream = tok.stream_decoder(special=True)
    assert "".join(stream.push(i) for i in ids) + stream.flush() == decoded
    if len(tok._partition(text, parse_special)) <= 1:  # after a special token llama.cpp adds a space
        assert decoded == text.replace("\u2581", " "), (text, ids, decoded)
