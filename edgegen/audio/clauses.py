"""Cutting text at clause boundaries, the way espeak-ng does, before any phonemes exist.

Two users: `speak_stream` must decide from raw LLM deltas when a clause is complete enough to
synthesise, and `Voice.stream` labels each espeak clause with the text it speaks. espeak-ng
itself decides the phonemes and the real boundaries; these rules copy its main ones (checked
against piper's espeak bridge, see tests/audio/test_clauses.py):

- a run of . ! ? , : ; … (then optional closing quotes/brackets) ends a clause when whitespace
  or the end of text follows: "3.50", "1,000", "3:45" and "a;b" do not break;
- a single "." followed by a lowercase word does not break ("Mr. and", "e.g. late"), but an
  ellipsis does;
- a dash standing alone ("one – two", "you — yes") breaks; a blank line breaks.
"""
from __future__ import annotations

import re

_CLOSERS = "\"'”’»)]}"
_BOUNDARY = re.compile(
    r"(?P<punct>[.!?,:;…]+)[" + re.escape(_CLOSERS) + r"]*(?=\s|$)"  # punctuation then space/end
    r"|(?<=\s)[–—](?=\s)"  # a free-standing en/em dash
    r"|(?<=\S)—(?=\S)"  # an em dash between words
    r"|\n[ \t]*\n"  # a blank line
)


def _is_boundary(text: str, match: re.Match) -> bool:
    punct = match.group("punct")
    if punct is None or punct != ".":
        return True
    # A lone "." before a lowercase word is an abbreviation to espeak ("Mr. and", "p.m. on").
    rest = text[match.end():].lstrip()
    return not (rest and rest[0].islower())


def split_clauses(text: str) -> list[str]:
    """Cut `text` into clause pieces whose concatenation is `text` (whitespace kept on the left)."""
    pieces, start = [], 0
    for match in _BOUNDARY.finditer(text):
        if _is_boundary(text, match):
            pieces.append(text[start:match.end()])
            start = match.end()
    if start < len(text):
        pieces.append(text[start:])
    return [p for p in pieces if p.strip()] or ([text] if text.strip() else [])


def take_complete_clauses(buffer: str, min_chars: int = 1) -> tuple[list[str], str]:
    """Split a growing buffer into complete clauses and the unfinished rest.

    A boundary at the very end of the buffer is not trusted yet (the next delta may continue
    "3." into "3.50"), so a clause is complete only when text follows its boundary. Clauses
    shorter than `min_chars` are joined to the next one, so "Yes," does not become its own
    tiny synthesis call.
    """
    done, start, pending = [], 0, ""
    for match in _BOUNDARY.finditer(buffer):
        if match.end() >= len(buffer) or not _is_boundary(buffer, match):
            continue
        # A lone "." needs the next word to have begun, to know whether it is lowercase.
        if match.group("punct") == "." and not buffer[match.end():].strip():
            continue
        piece = pending + buffer[start:match.end()]
        start = match.end()
        if len(piece.strip()) < min_chars:
            pending = piece
            continue
        done.append(piece)
        pending = ""
    return done, pending + buffer[start:]
