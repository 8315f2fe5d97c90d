"""The shared text assembly: incremental UTF-8 over token bytes, and stop-string hold-back.

`Utf8StreamDecoder` is edgegen's one incremental UTF-8 decoder (LLM streams, the tokenizer's
StreamDecoder, `edgegen say` reading stdin); the reference for what it must produce is CPython's
one-shot `bytes.decode("utf-8", errors="replace")` over the whole stream.
"""
from __future__ import annotations

import io
import itertools
import random

import pytest

from edgegen.textstream import StopStringMatcher, Utf8StreamDecoder

MIXED = "a😀b日本語é\u200d🏳️‍🌈z"


def _decode_in_pieces(data: bytes, cuts: tuple[int, ...]) -> list[str]:
    dec = Utf8StreamDecoder()
    bounds = (0, *cuts, len(data))
    out = [dec.feed(data[a:b]) for a, b in zip(bounds, bounds[1:])]
    out.append(dec.flush())
    return out


def test_emoji_split_into_single_bytes_is_held_until_complete():
    dec = Utf8StreamDecoder()
    emoji = "😀".encode()
    assert len(emoji) == 4
    assert [dec.feed(emoji[i : i + 1]) for i in range(4)] == ["", "", "", "😀"]
    assert dec.flush() == ""


def test_cjk_split_two_plus_one():
    dec = Utf8StreamDecoder()
    b = "日".encode()
    assert dec.feed(b[:2]) == ""
    assert dec.feed(b[2:] + b"x") == "日x"


@pytest.mark.parametrize("n_cuts", [1, 2, 3])
def test_every_split_point_gives_whole_characters_and_the_same_text(n_cuts):
    data = MIXED.encode()
    for cuts in itertools.combinations(range(1, len(data)), n_cuts):
        pieces = _decode_in_pieces(data, cuts)
        assert "".join(pieces) == MIXED
        for p in pieces:
            assert "\ufffd" not in p
            p.encode("utf-8")  # whole characters only: strict encode of every piece succeeds


def test_invalid_bytes_become_replacement_characters_not_errors():
    dec = Utf8StreamDecoder()
    assert dec.feed(b"ok\xffthen") == "ok\ufffdthen"
    assert dec.feed(b"\x80") == "\ufffd"  # a lone continuation byte


def test_dangling_partial_character_flushes_as_one_replacement():
    dec = Utf8StreamDecoder()
    assert dec.feed("x😀".encode()[:3]) == "x"
    assert dec.flush() == "\ufffd"


# Malformed input, each with what a one-shot decode makes of it (checked below against CPython).
INVALID = {
    "lone continuation": b"a\x80b",
    "truncated 3-byte then ASCII": b"\xe6\x97x",
    "truncated 4-byte then a new lead": b"\xf0\x9f\x98\xe6\x97\xa5",
    "overlong slash": b"\xc0\xafz",
    "encoded surrogate": b"\xed\xa0\x80!",
    "beyond U+10FFFF": b"\xf4\x90\x80\x80.",
    "0xFF and 0xFE": b"\xff\xfe",
    "valid around invalid": "é".encode() + b"\x80" + "😀".encode(),
}


@pytest.mark.parametrize("name", sorted(INVALID))
def test_invalid_sequences_match_a_one_shot_decode_at_every_split(name):
    data = INVALID[name]
    want = data.decode("utf-8", errors="replace")
    assert "\ufffd" in want
    for n_cuts in (1, 2):
        for cuts in itertools.combinations(range(1, len(data)), n_cuts):
            assert "".join(_decode_in_pieces(data, cuts)) == want, cuts


def test_byte_by_byte_random_bytes_match_a_one_shot_decode():
    rng = random.Random(1234)
    for _ in range(200):
        # biased towards bytes that start or continue multi-byte sequences
        data = bytes(rng.choice((rng.randrange(0x80, 0xC0), rng.randrange(0xC0, 0x100), rng.randrange(0x80)))
                     for _ in range(rng.randrange(1, 24)))
        dec = Utf8StreamDecoder()
        pieces = [dec.feed(data[i : i + 1]) for i in range(len(data))] + [dec.flush()]
        assert "".join(pieces) == data.decode("utf-8", errors="replace"), data


def test_an_invalid_byte_does_not_delay_the_text_after_it():
    dec = Utf8StreamDecoder()
    assert dec.feed(b"\xe6\x97") == ""  # could still complete
    assert dec.feed(b"x") == "\ufffdx"  # could not: replaced, and x comes out at once


def test_flush_ends_the_stream_and_leaves_a_fresh_decoder():
    dec = Utf8StreamDecoder()
    assert dec.flush() == ""  # nothing pending
    assert dec.feed("日".encode()[:1]) == ""
    assert dec.flush() == "\ufffd"
    assert dec.flush() == ""  # the dangling bytes were reported once
    assert dec.feed("日".encode()) == "日"  # usable again after a flush


def test_tokenizer_stream_decoder_uses_the_shared_decoder():
    from edgegen.tokenizer import StreamDecoder

    class Bytes:
        def token_to_bytes(self, token_id: int, special: bool = False) -> bytes:
            return bytes([token_id])

    dec = StreamDecoder(Bytes())  # type: ignore[arg-type]
    assert [dec.push(b) for b in "😀".encode()] == ["", "", "", "😀"]
    assert dec.push(0xE6) == ""
    assert dec.flush() == "\ufffd"


def test_say_reads_stdin_without_splitting_characters(monkeypatch):
    from edgegen.cli import say

    class Chunked(io.RawIOBase):
        def __init__(self, data: bytes, size: int) -> None:
            self.data, self.size = data, size

        def read1(self, n: int = -1) -> bytes:
            out, self.data = self.data[: self.size], self.data[self.size :]
            return out

    class Stdin:
        buffer = Chunked("añ😀日\n".encode() + b"\xe6", 1)

    monkeypatch.setattr(say.sys, "stdin", Stdin())
    assert list(say._stdin_deltas()) == ["a", "ñ", "😀", "日", "\n", "\ufffd"]


# ---- stop strings -----------------------------------------------------------------------------

def _run_stop(stop, pieces):
    m = StopStringMatcher(stop)
    out = []
    for p in pieces:
        text, hit = m.feed(p)
        out.append(text)
        if hit:
            return "".join(out), True
    out.append(m.flush())
    return "".join(out), False


def test_stop_string_split_across_pieces_is_removed():
    assert _run_stop(["END"], ["hello E", "N", "D and more"]) == ("hello ", True)


def test_partial_prefix_is_released_when_ruled_out():
    m = StopStringMatcher(["END"])
    assert m.feed("abcE") == ("abc", False)  # "E" held back
    assert m.feed("X") == ("EX", False)  # ruled out: released


def test_earliest_of_several_stop_strings_wins():
    assert _run_stop(["world", "lo w"], ["hello world"]) == ("hel", True)


def test_stop_at_the_very_start_gives_empty_text():
    assert _run_stop(["\n"], ["\nrest"]) == ("", True)


def test_no_match_releases_everything_at_the_end():
    assert _run_stop(["XYZ"], ["abc X", "Y"]) == ("abc XY", False)


def test_without_stop_strings_text_passes_straight_through():
    m = StopStringMatcher([])
    assert m.feed("abc") == ("abc", False)
