"""The Wyoming server: the `wyoming` package's TCP / Unix-socket server with our connection
handler, the services it offers, a cap on open connections and optional zeroconf advertisement.

Model work (synthesis, recognition, wake words, prompt preparation) runs on a thread pool so the
event loop keeps serving every other client meanwhile; LLM generation runs on the HTTP server's
`GenerationWorker` (fixed slots, bounded queue).
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import logging
import socket
from typing import Any, Callable, Optional
from urllib.parse import urlparse

from wyoming.server import AsyncServer, AsyncTcpServer

from edgegen.errors import InvalidRequestError

from .protocol import Limits
from .services import Catalog, VoiceLibrary
from .tts import TtsDefaults

log = logging.getLogger("edgegen.wyoming")
DEFAULT_URI = "tcp://127.0.0.1:10300"


def parse_uri(uri: str) -> tuple[str, Optional[str], Optional[int]]:
    """("tcp", host, port) or ("unix", path, None); InvalidRequestError otherwise."""
    parsed = urlparse(uri)
    if parsed.scheme == "unix":
        if not parsed.path:
            raise InvalidRequestError(f"{uri!r}: a unix:// URI needs a socket path (unix:///run/edgegen.sock)")
        return "unix", parsed.path, None
    if parsed.scheme == "tcp":
        try:
            port = parsed.port
        except ValueError:
            port = None
        if not parsed.hostname or port is None or not 0 <= port < 65536:
            raise InvalidRequestError(f"{uri!r}: a tcp:// URI needs a host and a port (tcp://127.0.0.1:10300)")
        return "tcp", parsed.hostname, port
    raise InvalidRequestError(f"{uri!r}: use tcp://HOST:PORT or unix:///PATH")


class WyomingServer:
    """Services + limits; `handler_factory` makes one `EdgegenEventHandler` per connection."""

    def __init__(self, catalog: Catalog, *, limits: Limits = Limits(), tts_defaults: TtsDefaults = TtsDefaults(),
                 asr: Any = None, detector_factory: Optional[Callable[[], Any]] = None, conversations: Any = None,
                 max_workers: Optional[int] = None) -> None:
        from .listen import DetectorPool

        self.catalog = catalog
        self.limits = limits.validate()
        self.tts_defaults = tts_defaults
        self.voices: Optional[VoiceLibrary] = catalog.voices
        self.asr = asr
        self.detectors = DetectorPool(detector_factory) if detector_factory is not None else None
        self.conversations = conversations
        # A streamed synthesis holds one thread while it waits for text; allow one per connection.
        self.executor = concurrent.futures.ThreadPoolExecutor(max_workers or limits.max_connections + 4,
                                                              thread_name_prefix="edgegen-wyoming")
        self._open: dict[Any, Optional[asyncio.Task]] = {}  # handler -> its task
        self.server: Optional[AsyncServer] = None

    async def run_blocking(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.executor, functools.partial(fn, *args))

    def admit(self, handler: Any) -> bool:
        if len(self._open) >= self.limits.max_connections:
            return False
        self._open[handler] = asyncio.current_task()
        return True

    def release(self, handler: Any) -> None:
        self._open.pop(handler, None)

    @property
    def open_connections(self) -> int:
        return len(self._open)

    def handler_factory(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> Any:
        from .handler import EdgegenEventHandler

        return EdgegenEventHandler(self, reader, writer)

    async def start(self, uri: str) -> AsyncServer:
        """Bind and start serving (returns at once); `stop()` ends it."""
        parse_uri(uri)
        self.server = AsyncServer.from_uri(uri)
        await self.server.start(self.handler_factory)
        return self.server

    async def stop(self) -> None:
        """Stop accepting, end every connection (each closes its streams) and wait for them."""
        if self.server is not None:
            await self.server.stop()
        tasks = [t for t in self._open.values() if t is not None and t is not asyncio.current_task()]
        if tasks:
            await asyncio.wait(tasks, timeout=5.0)
        if self.conversations is not None:
            self.conversations.worker.close()
        self.executor.shutdown(wait=False, cancel_futures=True)

    def bound_port(self) -> Optional[int]:
        server = getattr(self.server, "_server", None)
        if server is None or not server.sockets:
            return None
        sock = server.sockets[0]
        return sock.getsockname()[1] if sock.family in (socket.AF_INET, socket.AF_INET6) else None


async def advertise_zeroconf(server: AsyncServer, name: Optional[str]) -> Any:
    """Register `_wyoming._tcp` over mDNS, as the wyoming servers do (Home Assistant discovers it)."""
    if not isinstance(server, AsyncTcpServer):
        raise InvalidRequestError("--zeroconf needs a tcp:// URI")
    from edgegen.extras import require

    require("zeroconf", "wyoming", "--zeroconf")
    from wyoming.zeroconf import HomeAssistantZeroconf
    host = server.host if server.host not in ("0.0.0.0", "::", "") else None  # None: the address that reaches mDNS
    zeroconf = HomeAssistantZeroconf(port=server.port, name=name or "edgegen", host=host)
    await zeroconf.register_server()
    return zeroconf


async def serve_wyoming(wyoming: WyomingServer, uri: str, *, zeroconf: Optional[str] = None,
                        ready: Optional[Callable[[WyomingServer], None]] = None) -> None:
    """Serve until cancelled (SIGINT/SIGTERM in the CLI)."""
    server = await wyoming.start(uri)
    advertised = None
    try:
        if zeroconf is not None:
            advertised = await advertise_zeroconf(server, zeroconf)
        if ready is not None:
            ready(wyoming)
        await asyncio.Event().wait()
    finally:
        if advertised is not None:  # HomeAssistantZeroconf has no close(); unregister through its AsyncZeroconf
            await advertised._aiozc.async_close()
        await wyoming.stop()
