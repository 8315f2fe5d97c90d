"""The shared text assembly: incremental UTF-8 over token bytes, and stop-string hold-back."""
from __future__ import annotations

import itertools

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
