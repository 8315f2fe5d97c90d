"""An edgegen Wyoming server on its own event-loop thread, and the `wyoming` package's client
against it, as Home Assistant runs it."""
from __future__ import annotations

import asyncio
import threading
from typing import Any, Awaitable, Callable, Optional

from wyoming.client import AsyncClient, AsyncTcpClient
from wyoming.event import Event

from edgegen.wyoming.server import WyomingServer

TIMEOUT = 60.0


class ThreadServer:
    """`WyomingServer.start(uri)` on a private loop thread; `port` is the bound TCP port."""

    def __init__(self, wyoming: WyomingServer, uri: str = "tcp://127.0.0.1:0") -> None:
        self.wyoming = wyoming
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="wyoming-test-server", daemon=True)
        self.thread.start()
        self.call(wyoming.start(uri))
        self.port: Optional[int] = wyoming.bound_port()

    def call(self, coro: Awaitable[Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(TIMEOUT)

    def close(self) -> None:
        self.call(self.wyoming.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


async def exchange(client: AsyncClient, events: list[Event], until: Callable[[Event], bool]) -> list[Event]:
    """Send `events`, then read until `until(event)` (inclusive)."""
    for event in events:
        await client.write_event(event)
    received = []
    while True:
        event = await asyncio.wait_for(client.read_event(), TIMEOUT)
        assert event is not None, f"connection closed after {[e.type for e in received]}"
        received.append(event)
        if until(event):
            return received


def talk(port: int, events: list[Event], until: Callable[[Event], bool]) -> list[Event]:
    """One connection: send `events`, return the events read up to `until` (inclusive)."""

    async def run() -> list[Event]:
        async with AsyncTcpClient("127.0.0.1", port) as client:
            return await exchange(client, events, until)

    return asyncio.run(run())


def is_type(*types: str) -> Callable[[Event], bool]:
    return lambda event: event.type in types


def pcm(events: list[Event]) -> bytes:
    return b"".join(e.payload or b"" for e in events if e.type == "audio-chunk")
