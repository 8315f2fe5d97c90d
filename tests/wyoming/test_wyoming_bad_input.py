"""Bad input on the Wyoming port: each case gets an `error` event (and, where the stream cannot
go on, a closed connection); the server keeps serving everyone else."""
from __future__ import annotations

import asyncio
import json
import time

import pytest
from wyoming.event import Event
from wyoming.info import Describe

from edgegen.wyoming.protocol import Limits
from tests.wyoming.conftest import make_server
from tests.wyoming.harness import ThreadServer, is_type, talk

LIMITS = Limits(max_data_bytes=4096, max_payload_bytes=4096, event_timeout=0.5, idle_timeout=1.5, max_connections=32,
                max_text_chars=500)


@pytest.fixture(scope="module")
def strict(voice):
    s = ThreadServer(make_server(voice=voice, limits=LIMITS))
    yield s
    s.close()


async def _raw(port: int, data: bytes, *, then_wait: float = 5.0) -> tuple[list[dict], bool]:
    """Send raw bytes; return (decoded events received, closed by the server)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    await writer.drain()
    events, closed = [], False
    try:
        while True:
            line = await asyncio.wait_for(reader.readline(), then_wait)
            if not line:
                closed = True
                break
            header = json.loads(line)
            if header.get("data_length"):
                header.setdefault("data", {}).update(json.loads(await reader.readexactly(header["data_length"])))
            if header.get("payload_length"):
                await reader.readexactly(header["payload_length"])
            events.append(header)
    except asyncio.TimeoutError:
        pass
    finally:
        writer.close()
    return events, closed


def raw(port: int, data: bytes, **kw) -> tuple[list[dict], bool]:
    return asyncio.run(_raw(port, data, **kw))


def still_serving(port: int) -> None:
    assert talk(port, [Describe().event()], is_type("info"))[-1].type == "info"


@pytest.mark.parametrize("data, code", [
    (b"this is not json\n", "bad-header"),
    (b"[1, 2]\n", "bad-header"),
    (b'{"data": {}}\n', "bad-header"),  # no type
    (b'{"type": "synthesize", "data_length": 99999999}\n', "too-large"),
    (b'{"type": "audio-chunk", "payload_length": 4097}\n', "too-large"),
    (b'{"type": "synthesize", "data_length": -1}\n', "bad-header"),
    (b'{"type": "synthesize", "data_length": 3}\nabc', "bad-data"),
    (b"{" + b"x" * 70_000 + b"\n", "too-large"),  # a header line past the 64 KiB stream limit
])
def test_broken_framing_gets_error_then_close(strict, data, code):
    events, closed = raw(strict.port, data)
    assert [(e["type"], e["data"]["code"]) for e in events] == [("error", code)] and closed
    still_serving(strict.port)


def test_request_errors_keep_the_connection(strict):
    events = talk(strict.port, [
        Event("no-such-event"),
        Event("synthesize", data={"voice": {"name": "joe"}}),  # no text
        Event("synthesize", data={"text": "x" * 501}),  # over max_text_chars
        Event("synthesize", data={"text": "Hi.", "speed": "fast"}),
        Event("synthesize-chunk", data={"text": "no stream"}),
        Event("audio-start", data={"rate": 16000, "width": 2, "channels": 1}),  # no asr/wake here
        Event("transcript", data={"text": "no llm here"}),
        Describe().event(),
    ], is_type("info"))
    codes = [e.data.get("code") for e in events[:-1]]
    assert [e.type for e in events[:-1]] == ["error"] * 7
    assert codes == ["unsupported-event", "InvalidRequestError", "InvalidRequestError", "InvalidRequestError",
                     "InvalidRequestError", "unsupported-event", "unsupported-event"]
    assert "services: tts" in events[-2].data["text"]


def test_half_sent_event_times_out_while_others_are_served(strict):
    async def scenario():
        stalled = asyncio.ensure_future(_raw(strict.port, b'{"type": "synthesize", "data_length": 40}\n{"te'))
        started = time.monotonic()
        await asyncio.sleep(0.1)
        served = await asyncio.get_running_loop().run_in_executor(
            None, lambda: talk(strict.port, [Describe().event()], is_type("info")))
        return await stalled, served, time.monotonic() - started

    (events, closed), served, elapsed = asyncio.run(scenario())
    assert served[-1].type == "info"
    assert [(e["type"], e["data"]["code"]) for e in events] == [("error", "timeout")] and closed
    assert elapsed < 1.4  # the event deadline (0.5 s), not the idle timeout (1.5 s), closed it


def test_idle_connection_is_closed(strict):
    events, closed = raw(strict.port, b"", then_wait=5.0)
    assert [(e["type"], e["data"]["code"]) for e in events] == [("error", "timeout")] and closed


def test_100_connections_at_once(strict):
    """32 are served, the rest get `busy` and a closed socket; nothing crashes, nothing leaks."""

    async def one():
        reader, writer = await asyncio.open_connection("127.0.0.1", strict.port)
        return reader, writer

    async def scenario():
        conns = await asyncio.gather(*(one() for _ in range(100)))
        await asyncio.sleep(0.3)
        describe = b'{"type": "describe"}\n'
        answers = []
        for reader, writer in conns:
            try:
                writer.write(describe)
                await writer.drain()
            except ConnectionError:
                pass
        for reader, writer in conns:
            line = await asyncio.wait_for(reader.readline(), 10)
            answers.append(json.loads(line)["type"] if line else "closed")
            writer.close()
        return answers

    answers = asyncio.run(scenario())
    assert answers.count("info") == LIMITS.max_connections
    assert answers.count("error") + answers.count("closed") == 100 - LIMITS.max_connections
    still_serving(strict.port)
    deadline = time.monotonic() + 5
    while strict.wyoming.open_connections and time.monotonic() < deadline:
        time.sleep(0.05)
    assert strict.wyoming.open_connections == 0
