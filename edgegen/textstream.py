"""Turning sampled token ids into whole-character text deltas, once for every local backend.

Backends hand us raw token bytes (`Backend.token_bytes`). A token may carry half of a UTF-8
character (byte-fallback vocabularies split emoji and CJK across tokens), so bytes go through an
incremental UTF-8 decoder that holds back an incomplete sequence until it completes. Invalid bytes
(a model can emit them) become U+FFFD instead of an exception, and a sequence still incomplete
at the end of the stream is flushed as U+FFFD: a caller never sees a split character.

Stop strings are matched on the decoded text. Text that might be the beginning of a stop string
is held back until it is either confirmed (generation stops; the stop string is not emitted) or
ruled out (the text is released).
"""
from __future__ import annotations

import codecs
from typing import Sequence


class Utf8StreamDecoder:
    """Incremental UTF-8 decoding over token bytes; never returns part of a character."""

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def feed(self, data: bytes) -> str:
        return self._decoder.decode(data, final=False)

    def flush(self) -> str:
        """End of stream: a dangling incomplete sequence becomes U+FFFD."""
        return self._decoder.decode(b"", final=True)


class StopStringMatcher:
    """Holds back text that could start a stop string; reports the first full match."""

    def __init__(self, stop: Sequence[str]) -> None:
        self._stop = tuple(s for s in stop if s)
        self._pending = ""

    def feed(self, text: str) -> tuple[str, bool]:
        """Add decoded text; return (text safe to emit now, whether a stop string matched).

        On a match the emitted text ends just before the stop string and the rest is dropped.
        """
        if not self._stop:
            return text, False
        self._pending += text
        first = -1
        for s in self._stop:
            i = self._pending.find(s)
            if i != -1 and (first == -1 or i < first):
                first = i
        if first != -1:
            out, self._pending = self._pending[:first], ""
            return out, True
        hold = self._longest_partial_suffix()
        cut = len(self._pending) - hold
        out, self._pending = self._pending[:cut], self._pending[cut:]
        return out, False

    def flush(self) -> str:
        """End of stream without a match: release whatever was held back."""
        out, self._pending = self._pending, ""
        return out

    def _longest_partial_suffix(self) -> int:
        # Longest suffix of pending that is a proper prefix of some stop string.
        p = self._pending
        best = 0
        for s in self._stop:
            for k in range(min(len(s) - 1, len(p)), best, -1):
                if p.endswith(s[:k]):
                    best = k
                    break
        return best
