"""Many sessions on one native model: a scheduler thread runs every active sequence in one
forward pass per step (`_native.Model.step`), so each weight is read once per step for all.

    sched = BatchScheduler(model, cache, n_slots=4, n_ctx=2048, n_saved=3)
    req = sched.submit(prompt_ids, sampler, cancel)     # from any thread
    for token in req.tokens(): ...                       # yields as the steps produce them
    req.close()                                          # frees the slot (and its KV) before returning

Each request owns a KV sequence (a slot) from admission to its end; requests beyond `n_slots`
wait first-come first-served. A step feeds every generating request its last sampled token and
spends the rest of its row budget (`ROWS_PER_STEP`) on pending prompt chunks, oldest request
first. A request's tokens do not depend on its neighbours (native/batch_decode.h says why), so
the scheduler only decides *when* rows run, never what they compute.

Shared prefixes stay shared: a prompt resumes from the longest evaluated common prefix of any
sequence (another running request, or a saved prefix: the last few prompts, or ones loaded from
a prompt cache) by forking its blocks (copy-on-write). Requests that arrive together with the
same system prompt do not all compute it: a later one waits while an earlier one evaluates the
part they share, then forks it.

Only the scheduler thread changes the cache; callers talk to it through the request queue.
"""
from __future__ import annotations

import collections
import contextlib
import itertools
import queue
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Optional, Sequence

from .errors import EdgegenError, MemoryBudgetError

ROWS_PER_STEP = 64  # the engine's largest step (Model.kMaxBatch)
_END = object()
_POLL_S = 0.05  # how often a waiting consumer looks at its cancel event


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


@dataclass(eq=False)
class Request:
    """One generation (or one logits evaluation) on the shared batch."""

    prompt: list[int]
    sampler: Any
    cancel: threading.Event
    job: Optional[Callable[[int], Any]] = None  # run_exclusive: fn(free slot) on the scheduler thread
    adapters: Any = ()       # LoRA: what Model.set_adapters takes for this request's slot
    adapter_key: tuple = ()  # ...and the key prefixes are shared under (same key: same K/V)
    constraint: Any = None   # structured output: an edgegen.structured TokenMask walked on this thread
    id: int = 0
    slot: Optional[int] = None
    evaluated: list[int] = field(default_factory=list)  # tokens in this slot's KV, in order
    next_token: Optional[int] = None                     # sampled, not yet fed back
    following: bool = False                              # waited for an earlier request's shared prefix
    result: Any = None
    _out: "queue.Queue[Any]" = field(default_factory=queue.Queue)
    _released: threading.Event = field(default_factory=threading.Event)
    _closed: threading.Event = field(default_factory=threading.Event)  # the consumer left (close())
    _scheduler: Optional["BatchScheduler"] = None

    @property
    def stopped(self) -> bool:
        """Cancelled by the caller's event, or closed by the consumer."""
        return self.cancel.is_set() or self._closed.is_set()

    @property
    def prefilling(self) -> bool:
        return self.next_token is None and len(self.evaluated) < len(self.prompt)

    def tokens(self) -> Iterator[int]:
        """The sampled ids as steps produce them; ends at the context limit or on cancel."""
        while True:
            try:
                item = self._out.get(timeout=_POLL_S)
            except queue.Empty:
                if self.stopped:
                    return
                continue
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def wait(self) -> Any:
        """An eval job's result (raises its error)."""
        for _ in self.tokens():
            pass
        return self.result

    def close(self, timeout: float = 30.0) -> None:
        """Stop (a no-op after the end) and wait until the scheduler has freed the slot. The
        caller's cancel event is left as it is: closing is not cancelling."""
        self._closed.set()
        if self._scheduler is not None:
            self._scheduler.wake()
        self._released.wait(timeout)


class BatchScheduler:
    """The scheduler thread of one model and cache (see the module docstring)."""

    def __init__(self, model: Any, cache: Any, *, n_slots: int, n_ctx: int, n_saved: int,
                 on_step: Optional[Callable[[int], None]] = None) -> None:
        if n_slots < 1:
            raise ValueError("need n_slots >= 1")
        self._model = model
        self._cache = cache
        self.n_slots = n_slots
        self.n_ctx = n_ctx
        self._saved = list(range(n_slots, n_slots + max(0, n_saved)))  # saved-prefix sequences
        self.seq_tokens: dict[int, list[int]] = {s: [] for s in range(n_slots + len(self._saved))}
        self.seq_keys: dict[int, tuple] = {s: () for s in self.seq_tokens}  # LoRA selection per sequence
        self._cond = threading.Condition()
        self._waiting: "collections.deque[Request]" = collections.deque()
        self._active: list[Request] = []  # admission order
        self._free = list(range(n_slots))
        self._calls: list[tuple[Callable[[], Any], list[Any], threading.Event]] = []  # between_steps
        self._ids = itertools.count(1)
        self._closed = False
        self._holds = 0  # hold(): steps wait while > 0
        self._on_step = on_step
        self.stats = {"prompt_tokens_evaluated": 0, "prompt_tokens_reused": 0, "steps": 0, "step_rows": 0}
        self._thread: Optional[threading.Thread] = None
        self.last_kept: Optional[int] = None  # the saved sequence holding the last finished generation

    # ---- callers --------------------------------------------------------------------------------
    def submit(self, prompt: Sequence[int], sampler: Any, cancel: threading.Event, *,
               job: Optional[Callable[[int], Any]] = None, adapters: tuple[Any, tuple] = ((), ()),
               constraint: Any = None) -> Request:
        """Queue a generation; `adapters` = (engine selection, key) from AdapterSet.resolve;
        `constraint`: a TokenMask whose mask each of this request's samples obeys."""
        req = Request([int(t) for t in prompt], sampler, cancel, job=job, adapters=adapters[0],
                      adapter_key=tuple(adapters[1]), constraint=constraint)
        req._scheduler = self
        with self._cond:
            if self._closed:
                raise EdgegenError("the model is closed")
            req.id = next(self._ids)
            self._waiting.append(req)
            self._start()
            self._cond.notify()
        return req

    def wake(self) -> None:
        with self._cond:
            self._cond.notify()

    def run_exclusive(self, fn: Callable[[int], Any]) -> Any:
        """Runs fn(slot) on the scheduler thread between steps, in arrival order, with a free slot
        it may use (and must leave empty); returns fn's result (raises its error)."""
        return self.submit([], None, threading.Event(), job=fn).wait()

    def between_steps(self, fn: Callable[[], Any]) -> Any:
        """Runs fn() on the scheduler thread at the next step boundary (no slot needed: it must not
        change the cache's sequences); returns its result."""
        box: list[Any] = []
        done = threading.Event()
        with self._cond:
            if self._closed:
                raise EdgegenError("the model is closed")
            self._calls.append((fn, box, done))
            self._start()
            self._cond.notify()
        done.wait()
        if isinstance(box[0], BaseException):
            raise box[0]
        return box[0]

    @contextlib.contextmanager
    def hold(self) -> Iterator[None]:
        """No step starts while the block runs (one already running finishes): the cores go to
        latency-critical work beside the model, e.g. the voice synthesising the clause a person is
        about to hear while the rest of the reply can wait. Holds every sequence; nests."""
        with self._cond:
            self._holds += 1
        try:
            yield
        finally:
            with self._cond:
                self._holds -= 1
                self._cond.notify()

    def _start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="edgegen-batch", daemon=True)
            self._thread.start()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            for r in list(self._waiting) + self._active:
                r._closed.set()
            self._cond.notify_all()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(10)

    @property
    def saved_sequences(self) -> list[int]:
        return list(self._saved)

    def active_slots(self) -> dict[int, int]:
        """slot -> request id of the running requests."""
        with self._cond:
            return {r.slot: r.id for r in self._active if r.slot is not None}

    # ---- the scheduler thread -------------------------------------------------------------------
    def _loop(self) -> None:
        while True:
            with self._cond:
                while True:
                    self._run_calls()
                    self._retire_cancelled()
                    if self._closed and not self._active:
                        for r in self._waiting:
                            self._finish(r, None)
                        self._waiting.clear()
                        return
                    if self._holds and not self._closed:
                        self._cond.wait()
                        continue
                    admitted = self._admit()
                    if self._active or admitted:
                        break
                    self._cond.wait()
            if self._active:
                self._step()

    def _run_calls(self) -> None:
        calls, self._calls = self._calls, []
        for fn, box, done in calls:
            try:
                box.append(fn())
            except BaseException as exc:  # noqa: BLE001 - handed to the caller
                box.append(exc)
            done.set()

    def _finish(self, req: Request, error: Optional[BaseException]) -> None:
        if req.slot is not None and error is None and req.job is None and len(req.evaluated) > len(req.prompt):
            # The conversation's next turn starts with this prompt and reply: keep their K/V as a
            # saved prefix (a barge-in cuts it to what was heard: NativeBackend.truncate_cache).
            self.last_kept = self._save_tokens(req.slot, list(req.evaluated), req.adapter_key)
        if req.slot is not None:
            self._cache.seq_clear(req.slot)
            self.seq_tokens[req.slot] = []
            self.seq_keys[req.slot] = ()
            self._free.append(req.slot)
            self._free.sort()
            req.slot = None
        if req in self._active:
            self._active.remove(req)
        req._out.put(error if error is not None else _END)
        req._released.set()

    def _retire_cancelled(self) -> None:
        for r in [r for r in self._active if r.stopped]:
            self._finish(r, None)
        for r in [r for r in self._waiting if r.stopped]:
            self._waiting.remove(r)
            self._finish(r, None)

    def _admit(self) -> bool:
        """Moves waiting requests into free slots, first come first served."""
        admitted = False
        while self._waiting and self._free:
            req = self._waiting.popleft()
            if req.job is not None:  # run_exclusive: nothing else runs while it does
                try:
                    req.result = req.job(self._free[0])
                    self._finish(req, None)
                except BaseException as exc:  # noqa: BLE001 - handed to the caller
                    self._finish(req, exc)
                admitted = True
                continue
            req.slot = self._free.pop(0)
            self._active.append(req)
            try:
                self._model.set_adapters(req.slot, list(req.adapters))
            except BaseException as exc:  # noqa: BLE001 - an adapter the engine refuses ends this request
                self._finish(req, exc)
                continue
            self.seq_keys[req.slot] = req.adapter_key
            admitted = True
        return admitted

    def _best_source(self, req: Request) -> tuple[int, int]:
        """(sequence, length) of the longest evaluated prefix of req.prompt held elsewhere."""
        limit = len(req.prompt) - 1  # the last prompt token is always evaluated (its logits sample)
        best_seq, best = -1, len(req.evaluated)
        for seq, toks in self.seq_tokens.items():
            if seq == req.slot or not toks or self.seq_keys[seq] != req.adapter_key:
                continue  # (another LoRA selection computed other K/V)
            n = min(common_prefix(toks, req.prompt), limit)
            if n > best and n >= self._cache.seq_resume_min(seq):
                best_seq, best = seq, n
        return best_seq, best

    def _resume(self, req: Request) -> None:
        seq, n = self._best_source(req)
        if seq < 0:
            return
        self._cache.seq_fork(seq, req.slot, n)
        new = req.prompt[len(req.evaluated):n]
        if req.sampler is not None:
            for t in new:
                req.sampler.accept(t)
        self.stats["prompt_tokens_reused"] += len(new)
        req.evaluated = list(req.prompt[:n])
        self.seq_tokens[req.slot] = list(req.evaluated)

    def _leader_pending(self, req: Request) -> bool:
        """True when an earlier request still evaluates a prefix req shares (req waits, then forks)."""
        need_end = len(req.prompt) - 1
        for other in self._active:
            if other is req:
                return False
            if not other.prefilling or other.adapter_key != req.adapter_key:
                continue
            c = min(common_prefix(other.prompt, req.prompt), need_end)
            if c > len(req.evaluated) and len(other.evaluated) < c and c >= 32:
                return True
        return False

    def _plan(self) -> list[tuple[Request, list[int], bool]]:
        budget = ROWS_PER_STEP
        plan: list[tuple[Request, list[int], bool]] = []
        for r in self._active:  # decode rows first: they keep every running stream moving
            if r.next_token is not None and budget > 0:
                plan.append((r, [r.next_token], True))
                budget -= 1
        for r in self._active:  # then prompt chunks, oldest request first
            if budget <= 0:
                break
            if not r.prefilling:
                continue
            if r.following or not r.evaluated:
                self._resume(r)
            r.following = self._leader_pending(r)
            if r.following:
                continue
            start = len(r.evaluated)
            chunk = r.prompt[start:start + budget]
            plan.append((r, chunk, start + len(chunk) == len(r.prompt)))
            budget -= len(chunk)
        return plan

    def _masks(self, plan: list[tuple[Request, list[int], bool]]) -> list[tuple[Request, list[int], bool]]:
        """Each constrained sample's mask for this step (about 20 µs each, on this thread); a
        request whose constraint fails ends with that error and leaves the step."""
        kept = []
        for r, toks, sample in plan:
            mask = None
            if sample and r.constraint is not None:
                try:
                    mask = r.constraint.next_mask()
                except BaseException as exc:  # noqa: BLE001 - ConstraintError and the like end this request
                    with self._cond:
                        self._finish(r, exc)
                    continue
            kept.append((r, toks, sample, mask))
        return kept

    def _step(self) -> None:
        plan = self._plan()
        if not plan:
            return
        masked = self._masks(plan)
        plan = [(r, toks, sample) for r, toks, sample, _ in masked]
        if not plan:
            return
        items = [(r.slot, toks, r.sampler, sample, mask) for r, toks, sample, mask in masked]
        try:
            out = self._model.step(self._cache, items)
        except MemoryBudgetError as exc:
            with self._cond:
                if any(self.seq_tokens[s] for s in self._saved):
                    self.drop_saved_prefixes()  # they hold blocks: free them and try again next step
                else:
                    self._finish(plan[-1][0], exc)  # the newest work gives way; the others go on
            return
        except BaseException as exc:  # noqa: BLE001 - a failed step ends the requests in it
            with self._cond:
                for r, _, _ in plan:
                    self._finish(r, exc)
            return
        self.stats["steps"] += 1
        self.stats["step_rows"] += sum(len(t) for _, t, _ in plan)
        with self._cond:
            for (r, toks, sample), token in zip(plan, out):
                was_prefill = r.next_token is None
                r.evaluated.extend(toks)
                self.seq_tokens[r.slot] = r.evaluated  # same list: the slot's tokens
                if was_prefill:
                    self.stats["prompt_tokens_evaluated"] += len(toks)
                if not sample:
                    continue
                if was_prefill:
                    self._save_prefix(r)
                r.next_token = int(token)
                r._out.put(int(token))
                if r.constraint is not None and not r.stopped:
                    if r.constraint.ends(int(token)):
                        self._finish(r, None)  # the grammar accepted and the model ended
                        continue
                    try:
                        r.constraint.consume(int(token))
                    except BaseException as exc:  # noqa: BLE001 - a constraint that can never finish
                        self._finish(r, exc)
                        continue
                if r.stopped or len(r.evaluated) + 1 >= self.n_ctx:
                    self._finish(r, None)  # the context is full (or the caller left)
        if self._on_step is not None:
            self._on_step(len(plan))

    # ---- saved prefixes -------------------------------------------------------------------------
    def _save_prefix(self, req: Request) -> None:
        """Keeps req's prompt as a saved prefix (shared blocks)."""
        self._save_tokens(req.slot, req.prompt, req.adapter_key)

    def _save_tokens(self, seq: int, tokens: list[int], key: tuple) -> Optional[int]:
        """Forks the first len(tokens) positions of `seq` into a saved-prefix sequence; returns it.
        A saved prefix that the new one extends (and can stand in for) is replaced first, then an
        empty one, then the one sharing least with it."""
        if not self._saved or not tokens:
            return None
        for s in self._saved:
            if self.seq_tokens[s] == tokens and self.seq_keys[s] == key:
                return s
        resume_min = self._cache.seq_resume_min(seq)

        def order(s: int) -> tuple:
            held = self.seq_tokens[s]
            extended = (bool(held) and self.seq_keys[s] == key and tokens[:len(held)] == held
                        and resume_min <= len(held))  # the new one can be forked where the old one ended
            return (not extended, len(held) > 0, common_prefix(held, tokens))

        slot = min(self._saved, key=order)
        self._cache.seq_fork(seq, slot, len(tokens))
        self.seq_tokens[slot] = list(tokens)
        self.seq_keys[slot] = key
        return slot

    def holder_of(self, tokens: Sequence[int], key: tuple = ()) -> Optional[int]:
        """A sequence whose evaluated tokens start with all of `tokens` (and can be forked there),
        computed under LoRA selection `key` (() = the base model)."""
        n = len(tokens)
        for seq, toks in self.seq_tokens.items():
            if self.seq_keys[seq] != key:
                continue
            if len(toks) >= n and toks[:n] == list(tokens) and self._cache.seq_resume_min(seq) <= n:
                return seq
        return None

    def kv_usage(self) -> dict[str, Any]:
        """Scheduler thread (between_steps): KV bytes by holder, from the block tables."""
        cache = self._cache
        groups = cache.layout["groups"]
        saved = set(self._saved)
        slot_bytes = {s: 0 for s in range(self.n_slots)}
        shared: set[tuple[int, int]] = set()
        shared_bytes = saved_bytes = 0
        for g, grp in enumerate(groups):
            size = int(grp["block_bytes"])
            for seq in list(slot_bytes) + sorted(saved):
                for b in cache.block_table(seq, g):
                    if b < 0:
                        continue
                    if cache.block_refcount(b, g) > 1:
                        if (g, b) not in shared:
                            shared.add((g, b))
                            shared_bytes += size
                    elif seq in saved:
                        saved_bytes += size
                    else:
                        slot_bytes[seq] += size
        return {"slots": slot_bytes, "shared": shared_bytes, "saved_prefixes": saved_bytes,
                "used": sum(slot_bytes.values()) + shared_bytes + saved_bytes, "capacity": int(cache.nbytes)}

    def drop_saved_prefixes(self) -> None:
        for s in self._saved:
            self._cache.seq_clear(s)
            self.seq_tokens[s] = []
            self.seq_keys[s] = ()

    def adopt_prefix(self, tokens: Sequence[int], load: Callable[[int], None]) -> int:
        """Scheduler thread (run_exclusive): load(seq) fills a saved-prefix sequence with the base
        model's K/V of `tokens` (a prompt cache file); returns the sequence."""
        if not self._saved:
            raise EdgegenError("this model keeps no saved prefixes (n_saved_prefixes=0)")
        toks = list(tokens)
        for s in self._saved:
            if self.seq_tokens[s] == toks and self.seq_keys[s] == ():
                return s
        slot = min(self._saved, key=lambda s: (len(self.seq_tokens[s]) > 0, common_prefix(self.seq_tokens[s], toks)))
        self._cache.seq_clear(slot)
        self.seq_tokens[slot] = []
        load(slot)
        self.seq_tokens[slot] = toks
        self.seq_keys[slot] = ()  # prompt cache files hold the base model's K/V
        return slot
