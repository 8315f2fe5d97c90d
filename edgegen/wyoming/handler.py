"""One Wyoming connection: events in (under the limits of `protocol.py`), services' events out.

A request the server cannot serve (an unknown event type, a bad field, an unsupported audio
format, a voice that is not installed) is answered with an `error` event and the connection
stays open; a broken event stream (bad header, over a size cap, stalled) gets an `error` event
and the connection closes. Neither stops the server or any other client.
"""
from __future__ import annotations

import asyncio
import itertools
import logging
from typing import TYPE_CHECKING, Any, Optional

from wyoming.error import Error
from wyoming.event import Event
from wyoming.info import Describe
from wyoming.ping import Ping, Pong
from wyoming.server import AsyncEventHandler

from edgegen.errors import EdgegenError

from .protocol import ProtocolError, read_event, write_event

if TYPE_CHECKING:
    from .server import WyomingServer

log = logging.getLogger("edgegen.wyoming")
_ids = itertools.count(1)

TTS_EVENTS = ("synthesize", "synthesize-start", "synthesize-chunk", "synthesize-stop")
AUDIO_EVENTS = ("audio-start", "audio-chunk", "audio-stop")


class EdgegenEventHandler(AsyncEventHandler):
    """Dispatches one client's events to the services the server offers."""

    def __init__(self, server: "WyomingServer", reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        super().__init__(reader, writer)
        self.server = server
        self.limits = server.limits
        self.id = next(_ids)
        run, send = server.run_blocking, self.write_event
        self.tts = self.transcriber = self.wake = self.conversation = None
        self._audio_failed = False  # the rest of a refused audio stream is dropped without more errors
        if server.voices is not None:
            from .tts import TtsSession

            self.tts = TtsSession(server.voices, server.tts_defaults, send, run, self.limits.max_text_chars)
        if server.asr is not None:
            from .listen import TranscribeSession

            self.transcriber = TranscribeSession(server.asr, send, run, self.limits.max_audio_seconds)
        if server.detectors is not None:
            from .listen import DetectSession

            self.wake = DetectSession(server.detectors, server.catalog.wake_words, send, run)
        if server.conversations is not None:
            from .conversation import ConversationSession

            self.conversation = ConversationSession(server.conversations, send, run, f"connection:{self.id}")

    async def write_event(self, event: Event) -> None:
        await write_event(event, self.writer, self.limits)

    async def send_error(self, text: str, code: str) -> None:
        try:
            await self.write_event(Error(text=text, code=code).event())
        except (ConnectionError, OSError):
            pass

    # ---- the connection

    async def run(self) -> None:
        """wyoming's loop, with our reader, the connection cap and errors that never escape."""
        if not self.server.admit(self):
            await self.send_error(f"server busy: {self.limits.max_connections} connections already open", "busy")
            await self._close()
            return
        try:
            while True:
                try:
                    event = await read_event(self.reader, self.limits)
                except ProtocolError as exc:
                    await self.send_error(exc.text, exc.code)
                    break
                if event is None or not await self.handle_event(event):
                    break
        except (ConnectionError, OSError):
            pass  # the client went away or stopped reading
        except Exception:  # a bug of ours: this connection ends, the server and other clients go on
            log.exception("wyoming connection %d failed", self.id)
            await self.send_error("internal server error", "internal")
        finally:
            self.server.release(self)
            await self.disconnect()
            await self._close()

    async def _close(self) -> None:
        try:
            self.writer.close()
            await asyncio.wait_for(self.writer.wait_closed(), 1.0)
        except (ConnectionError, OSError, asyncio.TimeoutError):
            pass

    async def disconnect(self) -> None:
        if self.tts is not None:
            await self.tts.close()
        if self.wake is not None:
            self.wake.close()

    # ---- events

    async def handle_event(self, event: Event) -> bool:
        try:
            await self._dispatch(event)
        except EdgegenError as exc:
            if event.type in AUDIO_EVENTS:
                self._abort_audio()
            if event.type in TTS_EVENTS and self.tts is not None:
                await self.tts.close()  # a failed text stream is over; the next synthesize-start begins anew
            await self.send_error(str(exc), type(exc).__name__)
        except (KeyError, TypeError, ValueError) as exc:  # a field missing or of the wrong type in the event
            await self.send_error(f"malformed {event.type!r} event: {type(exc).__name__}: {exc}", "bad-event")
        return True

    async def _dispatch(self, event: Event) -> None:
        kind = event.type
        if Describe.is_type(kind):
            await self.write_event(self.server.catalog.info().event())
        elif Ping.is_type(kind):
            await self.write_event(Pong(text=event.data.get("text")).event())
        elif kind == "select-program":
            pass  # one program per domain here: every name selects it
        elif kind in TTS_EVENTS and self.tts is not None:
            await self._tts(event)
        elif kind == "transcribe" and self.transcriber is not None:
            self.transcriber.transcribe(event)
        elif kind == "detect" and self.wake is not None:
            self.wake.detect(event)
        elif kind in AUDIO_EVENTS and (self._listener() is not None or (self._audio_failed and kind != "audio-start")):
            await self._audio(event)
        elif kind == "transcript" and self.conversation is not None:
            await self.conversation.transcript(event)
        else:
            await self.send_error(self._unsupported(kind), "unsupported-event")

    async def _tts(self, event: Event) -> None:
        kind = event.type
        if kind == "synthesize":
            await self.tts.synthesize(event)
        elif not self.server.tts_defaults.streaming:
            await self.send_error("text streaming is off on this server (--no-streaming); send synthesize", "unsupported-event")
        elif kind == "synthesize-start":
            await self.tts.start(event)
        elif kind == "synthesize-chunk":
            await self.tts.chunk(event)
        else:
            await self.tts.stop()

    def _listener(self) -> Optional[Any]:
        """Audio goes to the wake-word detector after `detect`, else to speech recognition."""
        if self.wake is not None and self.wake.active:
            return self.wake
        return self.transcriber

    def _abort_audio(self) -> None:
        self._audio_failed = True
        if self.wake is not None:
            self.wake.close()
        if self.transcriber is not None:
            self.transcriber.reset()

    async def _audio(self, event: Event) -> None:
        if self._audio_failed and event.type != "audio-start":
            self._audio_failed = event.type != "audio-stop"
            return
        listener = self._listener()
        if event.type == "audio-start":
            self._audio_failed = False
            listener.audio_start(event)
        elif event.type == "audio-chunk":
            result = listener.audio_chunk(event)
            if asyncio.iscoroutine(result):
                await result
        else:
            await listener.audio_stop()

    def _unsupported(self, kind: str) -> str:
        offered = [name for name, on in (("tts", self.tts), ("asr", self.transcriber), ("wake", self.wake),
                                         ("handle", self.conversation)) if on is not None]
        return f"event type {kind!r} is not served here (services: {', '.join(offered) or 'none'})"
