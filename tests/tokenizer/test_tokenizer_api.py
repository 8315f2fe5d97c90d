"""Tokenizer API contract: typed errors for bad input, streaming that never splits a character."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgegen import ModelFormatError, TokenizerError
from edgegen.gguf import GGUFFile
from edgegen.tokenizer import StreamDecoder, Tokenizer


@pytest.fixture(scope="module")
def smol(smollm2_path: Path) -> Tokenizer:
    return Tokenizer.from_gguf(smollm2_path)


def test_from_gguf_accepts_open_file_or_path(smollm2_path: Path, smol: Tokenizer) -> None:
    with GGUFFile(smollm2_path) as f:
        tok = Tokenizer.from_gguf(f)
    assert tok.encode("Hello world") == smol.encode("Hello world")
    assert (smol.vocab_size, smol.bos_id, smol.eos_id, smol.model) == (49152, 1, 2, "gpt2")
    assert smol.is_eog(2) and not smol.is_eog(1) and not smol.is_eog(100)


@pytest.mark.parametrize("bad", [-1, 49152, 1 << 40, "3", 2.0, True, None])
def test_invalid_ids_raise_tokenizer_error(smol: Tokenizer, bad: object) -> None:
    with pytest.raises(TokenizerError):
        smol.decode([5, bad])  # type: ignore[list-item]
    with pytest.raises(TokenizerError):
        smol.token_to_bytes(bad)  # type: ignore[arg-type]
    with pytest.raises(TokenizerError):
        smol.is_eog(bad)  # type: ignore[arg-type]
    with pytest.raises(TokenizerError):
        StreamDecoder(smol).push(bad)  # type: ignore[arg-type]


def test_numpy_ids_are_accepted(smol: Tokenizer) -> None:
    ids = np.array(smol.encode("numpy ids"), dtype=np.int32)
    assert smol.decode(ids) == "numpy ids"


def test_bad_text_raises_tokenizer_error(smol: Tokenizer) -> None:
    with pytest.raises(TokenizerError):
        smol.encode(b"bytes")  # type: ignore[arg-type]
    with pytest.raises(TokenizerError, match="surrogate"):
        smol.encode("lone \ud800 surrogate")


def test_control_tokens_hidden_unless_special(smol: Tokenizer) -> None:
    ids = smol.encode("<|im_start|>hi<|im_end|>", parse_special=True)
    assert ids[0] == 1 and ids[-1] == 2
    assert smol.decode(ids) == "hi"
    assert smol.decode(ids, special=True) == "<|im_start|>hi<|im_end|>"
    assert smol.token_to_bytes(2) == b"" and smol.token_to_bytes(2, special=True) == b"<|im_end|>"
    # Without special parsing the same string is plain text.
    assert 1 not in smol.encode("<|im_start|>hi", parse_special=False)


def test_stream_decoder_never_splits_a_character(smol: Tokenizer) -> None:
    text = "emoji 😀👍🏽 family 👨‍👩‍👧 中文 naïve"
    ids = smol.encode(text)
    # Byte-level BPE splits some of these characters over several tokens.
    assert any(smol.token_to_bytes(i).decode("utf-8", errors="ignore").encode() != smol.token_to_bytes(i) for i in ids)
    dec = StreamDecoder(smol)
    deltas = [dec.push(i) for i in ids]
    assert "" in deltas  # held back while a character was incomplete
    for d in deltas:
        assert "\ufffd" not in d
        d.encode("utf-8")  # no lone surrogates
    assert "".join(deltas) + dec.flush() == text


def test_stream_decoder_flush_and_invalid_bytes(smol: Tokenizer) -> None:
    lead = next(i for i in range(smol.vocab_size) if smol.token_to_bytes(i) == b"\xf0")  # 4-byte lead alone
    dec = smol.stream_decoder()
    assert dec.push(lead) == ""
    assert dec.flush() == "\ufffd"  # a dangling partial character is reported, not dropped or split
    # A byte that can never start a character does not block the stream.
    bad = next(i for i in range(smol.vocab_size) if smol.token_to_bytes(i) == b"\x80")  # stray continuation
    dec = smol.stream_decoder()
    assert dec.push(bad) + dec.push(smol.encode("ok")[0]) == "\ufffdok"


def test_spm_byte_fallback_and_stream(tiny_spm_path: Path) -> None:
    tok = Tokenizer.from_gguf(tiny_spm_path)
    assert tok.model == "llama" and tok.add_bos and tok.add_space_prefix
    ids = tok.encode("the 😀 fox", add_special=False)
    byte_tokens = [i for i in ids if 3 <= i < 259]
    assert len(byte_tokens) == 4  # 😀 is not in the vocabulary: four <0xXX> tokens
    dec = tok.stream_decoder()
    deltas = [dec.push(i) for i in ids]
    assert deltas.count("") >= 3 and "".join(deltas) + dec.flush() == " the 😀 fox"
    assert tok.decode(ids) == "the 😀 fox"


def test_missing_tokenizer_is_a_format_error(tmp_path: Path) -> None:
    import gguf

    p = tmp_path / "notok.gguf"
    w = gguf.GGUFWriter(p, arch="llama")
    w.write_header_to_file(); w.write_kv_data_to_file(); w.write_tensors_to_file(); w.close()
    with pytest.raises(ModelFormatError, match="no tokenizer"):
        Tokenizer.from_gguf(p)
