"""Wyoming events from an untrusted socket: `wyoming.event.Event`s read under size caps and deadlines.

A Wyoming event is a JSON header line, then `data_length` bytes of JSON data, then
`payload_length` bytes of payload. The `wyoming` package's own reader trusts both lengths
(`readexactly(n)` for any n), waits forever for a half-sent event and drops a connection on a
bad header without a word. The port may face a home network, so here:

- the header line is at most `max_header_bytes` (the stream's buffer limit), data and payload
  at most `max_data_bytes` / `max_payload_bytes`, checked before anything is read;
- a connection may sit idle between events for `idle_timeout`, but once an event's first byte
  has arrived, the whole event must arrive within `event_timeout`;
- every refusal is a `ProtocolError` whose code and text become an `error` event before the
  connection is closed (after a framing error the stream cannot be resynchronised).

Writing goes through wyoming's `async_write_event` under `write_timeout`, so a client that stops
reading cannot hold a connection (and the audio queued for it) forever.
"""
from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any, Optional

from wyoming.event import Event, async_write_event

MAX_TYPE_CHARS = 64


@dataclass(frozen=True)
class Limits:
    """Per-connection limits of the server (`edgegen wyoming --help` shows the flags)."""

    max_header_bytes: int = 64 * 1024  # asyncio's default stream limit; a real header is < 200 bytes
    max_data_bytes: int = 1024 * 1024  # JSON data: text to speak, a transcript, context
    max_payload_bytes: int = 1024 * 1024  # one audio chunk (1 MiB = 32 s of 16 kHz 16-bit mono)
    idle_timeout: float = 300.0  # seconds between events
    event_timeout: float = 10.0  # seconds for the rest of an event once it has begun
    write_timeout: float = 30.0  # seconds for a client to take what we send
    max_connections: int = 32
    max_text_chars: int = 100_000  # text of one synthesis (one-shot or streamed)
    max_audio_seconds: float = 120.0  # audio buffered for one transcription

    def validate(self) -> "Limits":
        for name in ("max_header_bytes", "max_data_bytes", "max_payload_bytes", "max_connections", "max_text_chars"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")
        for name in ("idle_timeout", "event_timeout", "write_timeout", "max_audio_seconds"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0")
        return self


class ProtocolError(Exception):
    """The client broke the framing or a limit; sent as an `error` event, then the connection closes."""

    def __init__(self, code: str, text: str) -> None:
        super().__init__(text)
        self.code = code
        self.text = text


def _length(header: dict, key: str, cap: int) -> int:
    value = header.get(key)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ProtocolError("bad-header", f"{key} must be a non-negative integer, got {value!r}")
    if value > cap:
        raise ProtocolError("too-large", f"{key} {value} is over this server's limit of {cap} bytes")
    return value


def parse_header(line: bytes, limits: Limits) -> tuple[str, dict[str, Any], int, int]:
    """(type, inline data, data_length, payload_length) of a header line, or ProtocolError."""
    try:
        header = json.loads(line)
    except ValueError:  # JSONDecodeError and UnicodeDecodeError
        raise ProtocolError("bad-header", "event header is not a JSON line") from None
    if not isinstance(header, dict):
        raise ProtocolError("bad-header", "event header must be a JSON object")
    event_type = header.get("type")
    if not isinstance(event_type, str) or not 0 < len(event_type) <= MAX_TYPE_CHARS:
        raise ProtocolError("bad-header", "event header needs a 'type' string (1-64 characters)")
    data = header.get("data") or {}
    if not isinstance(data, dict):
        raise ProtocolError("bad-header", "event 'data' must be a JSON object")
    return (event_type, data, _length(header, "data_length", limits.max_data_bytes),
            _length(header, "payload_length", limits.max_payload_bytes))


async def read_event(reader: asyncio.StreamReader, limits: Limits) -> Optional[Event]:
    """The next event, None at a clean end of stream; ProtocolError on a bad or stalled event."""
    loop = asyncio.get_running_loop()
    try:
        first = await asyncio.wait_for(reader.read(1), limits.idle_timeout)
    except asyncio.TimeoutError:
        raise ProtocolError("timeout", f"no event for {limits.idle_timeout:g} s; closing the connection") from None
    if not first:
        return None
    deadline = loop.time() + limits.event_timeout

    async def within_deadline(awaitable):
        try:
            return await asyncio.wait_for(awaitable, max(0.0, deadline - loop.time()))
        except asyncio.TimeoutError:
            raise ProtocolError("timeout", f"event not complete within {limits.event_timeout:g} s") from None

    try:
        line = first if first == b"\n" else first + await within_deadline(reader.readuntil(b"\n"))
        if len(line) > limits.max_header_bytes:
            raise ProtocolError("too-large", f"event header over {limits.max_header_bytes} bytes")
        event_type, data, data_length, payload_length = parse_header(line, limits)
        if data_length:
            try:
                extra = json.loads(await within_deadline(reader.readexactly(data_length)))
            except ValueError:
                raise ProtocolError("bad-data", "event data is not JSON") from None
            if not isinstance(extra, dict):
                raise ProtocolError("bad-data", "event data must be a JSON object")
            data = {**data, **extra}
        payload = await within_deadline(reader.readexactly(payload_length)) if payload_length else None
    except asyncio.LimitOverrunError:
        raise ProtocolError("too-large", f"event header over {limits.max_header_bytes} bytes") from None
    except asyncio.IncompleteReadError:
        return None  # the client went away mid-event: nobody left to tell
    return Event(type=event_type, data=data, payload=payload)


async def write_event(event: Event, writer: asyncio.StreamWriter, limits: Limits) -> None:
    """wyoming's writer, bounded in time: a client that stops reading gets disconnected."""
    try:
        await asyncio.wait_for(async_write_event(event, writer), limits.write_timeout)
    except asyncio.TimeoutError:
        raise ConnectionError(f"client did not read for {limits.write_timeout:g} s") from None
