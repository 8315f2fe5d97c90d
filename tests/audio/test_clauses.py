"""Our text-level clause cutter against espeak-ng's own clauses (piper's bridge is the reference)."""
from __future__ import annotations

import pytest

from edgegen.audio.clauses import split_clauses, take_complete_clauses
from edgegen.audio.phonemize import _espeak_clauses

TEXTS = [
    "Dr. Smith paid $3.50 for 1,000 apples, didn't he?",
    "Wait... what?! Yes: no; maybe.",
    "It was 3:45 p.m. on Jan. 5th, 2024 - e.g. late.",
    'He said "stop." Then left',
    "Mr. and Mrs. Jones live at 42 St. James St. in the U.S.A. Really.",
    "Really? yes. ok! fine",
    "I said: hi",
    "one – two",
    "a;b c",
    "Hi!!! Wow?! ok",
    "line one\nline two\n\nline three",
    "1. First 2. Second",
    "a, b,c",
    "Hi (there), you — yes you!",
]


@pytest.mark.parametrize("text", TEXTS)
def test_clause_count_matches_espeak(text):
    espeak = [c for c in _espeak_clauses("en-us", text) if c[0]]
    assert len(split_clauses(text)) == len(espeak)


@pytest.mark.parametrize("text", TEXTS)
def test_pieces_cover_the_text(text):
    assert "".join(split_clauses(text)).strip() == text.strip()


@pytest.mark.parametrize("text", TEXTS)
def test_incremental_cutting_matches_whole_text(text):
    """Fed one character at a time, the cutter finds the same clauses as on the whole text."""
    done, buffer = [], ""
    for ch in text:
        pieces, buffer = take_complete_clauses(buffer + ch)
        done += pieces
    done.append(buffer)
    assert [p.strip() for p in done if p.strip()] == [p.strip() for p in split_clauses(text)]


def test_boundary_at_buffer_end_waits_for_more_text():
    assert take_complete_clauses("It costs 3.") == ([], "It costs 3.")
    assert take_complete_clauses("It costs 3.50, ok") == (["It costs 3.50,"], " ok")
    assert take_complete_clauses("Hello. ") == ([], "Hello. ")  # next word decides (abbreviation?)
    assert take_complete_clauses("Hello. W") == (["Hello."], " W")


def test_min_chars_joins_short_clauses():
    assert take_complete_clauses("Yes, I know, right", min_chars=8) == (["Yes, I know,"], " right")
