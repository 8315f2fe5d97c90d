"""The server's generation scheduler: a bounded FIFO queue in front of a fixed number of slots.

A loaded model runs `slots` generations at once — 1 for a backend that runs one sequence at a
time (llama.cpp here), `backend.max_parallel` for the native engine, whose batch scheduler
decodes all of them together in one forward pass per step (`edgegen serve --parallel N`). Every other request waits in a bounded FIFO queue, so many
clients share one model fairly in arrival order; a full queue is refused at once (the server
answers 429 with Retry-After) instead of piling up unbounded work.

Each job is a function `start(cancel) -> Iterator[TextChunk]` run on a slot thread; its chunks
go to the request's asyncio loop through `Job.events()`. Cancelling a job (the client went away)
sets its event: a queued job is dropped without running; a running one stops after the current
token and its stream is closed at once, which frees the slot (and the sequence's KV) for the
next request.
"""
from __future__ import annotations

import asyncio
import collections
import itertools
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Callable, Iterator, Optional

from ..errors import EdgegenError
from ..types import TextChunk

log = logging.getLogger("edgegen.server")

StartFn = Callable[[threading.Event], Iterator[TextChunk]]


class QueueFullError(EdgegenError):
    """Every slot is busy and the wait queue is full; retry after `retry_after` seconds."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class _Done:
    """End-of-job marker carrying the failure, if any."""

    def __init__(self, error: Optional[BaseException] = None) -> None:
        self.error = error


@dataclass
class Job:
    start: StartFn
    loop: asyncio.AbstractEventLoop
    id: int = 0
    cancel: threading.Event = field(default_factory=threading.Event)
    enqueued_at: float = field(default_factory=time.monotonic)
    started_at: Optional[float] = None
    _items: "asyncio.Queue[Any]" = field(default_factory=asyncio.Queue)

    def _post(self, item: Any) -> None:
        # From a slot thread. A closed loop means the server is stopping: nobody to tell.
        try:
            self.loop.call_soon_threadsafe(self._items.put_nowait, item)
        except RuntimeError:
            self.cancel.set()

    async def events(self) -> AsyncIterator[TextChunk]:
        """The job's chunks as they are made; raises the job's error. Leaving early cancels it."""
        try:
            while True:
                item = await self._items.get()
                if isinstance(item, _Done):
                    if item.error is not None:
                        raise item.error
                    return
                yield item
        finally:
            self.cancel.set()  # no-op after a normal end; stops the generation otherwise


class GenerationWorker:
    """`slots` threads running jobs from a FIFO queue holding at most `max_queue` waiting jobs."""

    def __init__(self, slots: int = 1, max_queue: int = 32, *, name: str = "edgegen-slot") -> None:
        if slots < 1 or max_queue < 0:
            raise ValueError("need slots >= 1 and max_queue >= 0")
        self.slots = slots
        self.max_queue = max_queue
        self._waiting: "collections.deque[Job]" = collections.deque()
        self._cond = threading.Condition()
        self._running: dict[int, Job] = {}
        self._ids = itertools.count(1)
        self._closed = False
        self._avg_job_s = 2.0  # running mean of job durations, for Retry-After
        self.counters = {"completed": 0, "cancelled": 0, "failed": 0, "rejected": 0}
        self._threads = [
            threading.Thread(target=self._slot_loop, name=f"{name}-{i}", daemon=True) for i in range(slots)
        ]
        for t in self._threads:
            t.start()

    # ---- requests (event-loop side) -------------------------------------------------------------
    def submit(self, start: StartFn) -> Job:
        """Queue `start` to run on the next free slot; raises QueueFullError when the queue is full.
        Call from the event loop whose `events()` will read the job."""
        job = Job(start=start, loop=asyncio.get_running_loop())
        with self._cond:
            if self._closed:
                raise EdgegenError("the server is shutting down")
            busy = len(self._running) >= self.slots
            if busy and len(self._waiting) >= self.max_queue:
                self.counters["rejected"] += 1
                raise QueueFullError(
                    f"server busy: {len(self._running)} generation(s) running and {len(self._waiting)} waiting",
                    self.retry_after(),
                )
            job.id = next(self._ids)
            self._waiting.append(job)
            self._cond.notify()
        return job

    def retry_after(self) -> int:
        """Seconds until a queue place is likely free: one average job per slot ahead."""
        return max(1, int(round(self._avg_job_s * (len(self._waiting) + 1) / self.slots)))

    def stats(self) -> dict[str, Any]:
        with self._cond:
            return {
                "slots": self.slots,
                "running": len(self._running),
                "waiting": len(self._waiting),
                "max_queue": self.max_queue,
                **self.counters,
            }

    def close(self, timeout: float = 5.0) -> None:
        """Cancel everything queued or running and stop the slot threads."""
        with self._cond:
            self._closed = True
            for job in list(self._waiting) + list(self._running.values()):
                job.cancel.set()
            self._cond.notify_all()
        for t in self._threads:
            t.join(timeout)

    # ---- slots (worker threads) -----------------------------------------------------------------
    def _next_job(self) -> Optional[Job]:
        with self._cond:
            while True:
                while self._waiting:
                    job = self._waiting.popleft()
                    if job.cancel.is_set():  # its client left while it waited: never start it
                        self.counters["cancelled"] += 1
                        job._post(_Done())
                        continue
                    job.started_at = time.monotonic()
                    self._running[job.id] = job
                    return job
                if self._closed:
                    return None
                self._cond.wait()

    def _slot_loop(self) -> None:
        while True:
            job = self._next_job()
            if job is None:
                return
            outcome = "completed"
            error: Optional[BaseException] = None
            chunks: Optional[Iterator[TextChunk]] = None
            try:
                chunks = job.start(job.cancel)
                for chunk in chunks:
                    job._post(chunk)
                    if job.cancel.is_set():
                        break
                if job.cancel.is_set():
                    outcome = "cancelled"
            except BaseException as exc:  # every failure goes to the request, never kills the slot
                outcome, error = "failed", exc
                if not isinstance(exc, EdgegenError):
                    log.exception("generation failed")
            finally:
                close = getattr(chunks, "close", None)
                if close is not None:
                    try:
                        close()  # stops the backend's generator now: frees the model for the next job
                    except Exception:  # pragma: no cover - closing must not take the slot down
                        log.exception("closing a stream failed")
                duration = time.monotonic() - (job.started_at or time.monotonic())
                with self._cond:
                    self._running.pop(job.id, None)
                    self.counters[outcome] += 1
                    if outcome == "completed":
                        self._avg_job_s = 0.8 * self._avg_job_s + 0.2 * duration
                job._post(_Done(error))
