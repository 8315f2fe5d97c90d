"""The LLM as a Wyoming conversation agent: `transcript` in, the answer out.

The answer streams as `handled-start`, `handled-chunk`s, `handled-stop` (the info event says
`supports_handled_streaming`), then comes whole as `handled`, which is what Home Assistant reads
today (it skips events it does not know). A failure is `not-handled` with the reason.

Conversations are kept per client: by `context.conversation_id` when the client sends one (Home
Assistant opens a new connection for every turn and sends the id), else per connection. At most
`max_conversations` are kept (least recently used dropped), each with its last `max_turns`
exchanges, fewer when they do not fit the context window. Generation goes through the HTTP
server's `GenerationWorker`: a fixed number of slots and a bounded queue; a full queue is
answered `not-handled` at once.
"""
from __future__ import annotations

import collections
import threading
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Optional

from wyoming.asr import Transcript
from wyoming.event import Event
from wyoming.handle import Handled, HandledChunk, HandledStart, HandledStop, NotHandled

from edgegen.errors import ContextOverflowError, EdgegenError

Send = Callable[[Event], Awaitable[None]]
MAX_CONVERSATION_ID = 128
DEFAULT_SYSTEM_PROMPT = (
    "You are a helpful voice assistant. Your answers are spoken aloud: keep them short, plain "
    "sentences without lists or markup."
)


@dataclass(frozen=True)
class ConversationSettings:
    system_prompt: Optional[str] = DEFAULT_SYSTEM_PROMPT
    max_turns: int = 6
    max_conversations: int = 64
    max_input_chars: int = 2000


class Conversations:
    """Chat histories by key, bounded in number and length; thread-safe."""

    def __init__(self, llm: Any, worker: Any, params: Any, settings: ConversationSettings, *, name: str = "",
                 manifest: Any = None) -> None:
        self.llm, self.worker, self.params, self.settings = llm, worker, params, settings
        self.name, self.manifest = name or llm.model, manifest  # for the info event
        self._histories: "collections.OrderedDict[str, list[dict]]" = collections.OrderedDict()
        self._lock = threading.Lock()

    def history(self, key: str) -> list[dict]:
        with self._lock:
            return list(self._histories.get(key, []))

    def remember(self, key: str, user: str, assistant: str) -> None:
        with self._lock:
            turns = self._histories.pop(key, [])
            turns += [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]
            self._histories[key] = turns[-2 * self.settings.max_turns:]
            while len(self._histories) > self.settings.max_conversations:
                self._histories.popitem(last=False)

    def prompt(self, key: str, text: str) -> Any:
        """The prepared chat prompt: system, as much history as fits, the new question."""
        system = [{"role": "system", "content": self.settings.system_prompt}] if self.settings.system_prompt else []
        history = self.history(key)
        while True:
            prepared = self.llm.prepare_chat(system + history + [{"role": "user", "content": text}])
            try:
                self.llm.check_request(prepared, self.params)
                return prepared
            except ContextOverflowError:
                if not history:
                    raise
                history = history[2:]  # drop the oldest exchange and try again


class ConversationSession:
    """The conversation side of one connection."""

    def __init__(self, conversations: Conversations, send: Send, run: Callable[..., Awaitable[Any]], connection_key: str) -> None:
        self.conversations, self.send, self.run = conversations, send, run
        self.connection_key = connection_key

    async def transcript(self, event: Event) -> None:
        transcript = Transcript.from_event(event)
        text, context = transcript.text, transcript.context
        if not isinstance(text, str) or not text.strip():
            await self.send(NotHandled(text="nothing to answer: the transcript is empty").event())
            return
        limit = self.conversations.settings.max_input_chars
        if len(text) > limit:
            await self.send(NotHandled(text=f"the question is over {limit} characters").event())
            return
        key = self.connection_key
        if isinstance(context, dict):
            cid = context.get("conversation_id")
            if isinstance(cid, str) and 0 < len(cid) <= MAX_CONVERSATION_ID:
                key = "id:" + cid
        reply_context = context if isinstance(context, dict) else None
        try:
            prepared = await self.run(self.conversations.prompt, key, text)
            params = self.conversations.params
            job = self.conversations.worker.submit(lambda cancel: self.conversations.llm.chat(prepared, params, stream=True, cancel=cancel))
        except EdgegenError as exc:
            await self.send(NotHandled(text=str(exc), context=reply_context).event())
            return
        parts: list[str] = []
        started = False
        try:
            async for chunk in job.events():
                if not chunk.text:
                    continue
                if not started:
                    await self.send(HandledStart(context=reply_context).event())
                    started = True
                parts.append(chunk.text)
                await self.send(HandledChunk(text=chunk.text).event())
        except EdgegenError as exc:
            if started:
                await self.send(HandledStop().event())
            await self.send(NotHandled(text=str(exc), context=reply_context).event())
            return
        if started:
            await self.send(HandledStop().event())
        answer = "".join(parts).strip()
        self.conversations.remember(key, text, answer)
        await self.send(Handled(text=answer, context=reply_context).event())
