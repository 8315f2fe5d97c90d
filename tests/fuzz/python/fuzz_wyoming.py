"""The Wyoming server's event reader (edgegen.wyoming.protocol.read_event) on an arbitrary byte
stream: header line, JSON data, payload, under the size caps.

Contract: the stream reads as a sequence of events ending in None (end of stream) or a
ProtocolError (sent to the client as an error event); each event has a 1-64 character type, a
dict of data and a payload within the limits. Nothing else escapes, nothing waits (the whole
stream is there, then EOF).
"""
from __future__ import annotations

import asyncio

from edgegen.wyoming.protocol import Limits, ProtocolError, read_event

LIMITS = Limits(max_header_bytes=2048, max_data_bytes=2048, max_payload_bytes=4096, event_timeout=2.0,
                idle_timeout=2.0).validate()
_loop = asyncio.new_event_loop()


async def _read_all(data: bytes) -> None:
    reader = asyncio.StreamReader(limit=LIMITS.max_header_bytes)
    reader.feed_data(data)
    reader.feed_eof()
    for _ in range(len(data) + 1):
        try:
            event = await read_event(reader, LIMITS)
        except ProtocolError as exc:
            assert exc.code in ("bad-header", "bad-data", "too-large", "timeout"), exc.code
            assert exc.code != "timeout", "a complete stream must never time out"
            return
        if event is None:
            return
        assert isinstance(event.type, str) and 0 < len(event.type) <= 64
        assert isinstance(event.data, dict)
        assert event.payload is None or len(event.payload) <= LIMITS.max_payload_bytes
    raise AssertionError("more events than bytes")


def test_one_input(data: bytes) -> None:
    _loop.run_until_complete(_read_all(data))
