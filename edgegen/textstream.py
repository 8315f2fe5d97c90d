"""Text streams: the `TextStream` every text generator returns, and the assembly of its text.

This module sits below every producer of text (the local LLM, the cloud client, the router, the
CLI): it imports only `errors` and `types`, so none of them has to import another to share the
stream type or the decoder.

`Utf8StreamDecoder` is the one incremental UTF-8 decoder in edgegen: token bytes in `LLM`, the
tokenizer's `StreamDecoder`, and byte streams read by the CLI all go through it. A token may
carry half of a UTF-8 character (byte-fallback vocabularies split emoji and CJK across tokens), so
an incomplete sequence is held back until it completes. Invalid bytes (a model can emit them)
become U+FFFD instead of an exception, and a sequence still incomplete at the end of the stream
is flushed as one U+FFFD: a caller never sees a split character.

Stop strings are matched on the decoded text. Text that might be the beginning of a stop string
is held back until it is either confirmed (generation stops; the stop string is not emitted) or
ruled out (the text is released).
"""
from __future__ import annotations

import codecs
import threading
import time
from typing import Any, Iterator, Optional, Sequence

from .errors import EdgegenError
from .types import TextChunk


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


class TextStream:
    """An iterator of `TextChunk`s that can be cancelled from any thread.

    `cancel()` asks the generation to stop after the current token; the stream then ends with a
    chunk whose finish_reason is "cancelled". `close()` (or leaving a `with` block, or dropping
    the iterator) stops it at once and frees the model for the next call.
    """

    def __init__(self, chunks: Iterator[TextChunk], cancel_event: threading.Event) -> None:
        self._chunks = chunks
        self.cancel_event = cancel_event

    def __iter__(self) -> "TextStream":
        return self

    def __next__(self) -> TextChunk:
        return next(self._chunks)

    def cancel(self) -> None:
        self.cancel_event.set()

    def close(self) -> None:
        close = getattr(self._chunks, "close", None)
        if close is not None:
            close()

    def __enter__(self) -> "TextStream":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def collect(chunks: Iterator[TextChunk]) -> tuple[str, TextChunk, dict[str, float]]:
    """Drain a stream: (all text, last chunk, timings)."""
    start = time.perf_counter()
    first: Optional[float] = None
    parts: list[str] = []
    last: Optional[TextChunk] = None
    try:
        for chunk in chunks:
            if chunk.text and first is None:
                first = time.perf_counter()
            parts.append(chunk.text)
            last = chunk
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()  # on an error too: frees the model at once, not at garbage collection
    if last is None or last.finish_reason is None:
        raise EdgegenError("stream ended without a final chunk")
    total = time.perf_counter() - start
    timings = {"total_s": total}
    if first is not None:
        timings["first_text_s"] = first - start
    if last.usage is not None and total > 0:
        timings["completion_tokens_per_s"] = last.usage.completion_tokens / total
    return "".join(parts), last, timings
