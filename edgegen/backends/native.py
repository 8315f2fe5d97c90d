"""The native backend: edgegen's own C++ engine (edgegen._native) behind the Backend interface.

Generation runs on a scheduler thread (edgegen.scheduler.BatchScheduler): every active request
(up to `max_parallel`, default 1) advances in one native forward pass per step that releases the
GIL; more requests wait first come, first served. `generate_tokens` only submits a request and
yields the ids the steps produce, so several threads can stream from one backend at once.

Prefix reuse: the KV cache holds one sequence per slot plus a few saved prompt prefixes that
share blocks (copy-on-write). A new prompt resumes from the longest evaluated common prefix of
any of them, so requests that share a system prompt do not recompute it, and concurrent ones
store it once. Sliding-window layers (Gemma 3) keep only a ring of their window, so a prefix can
be resumed only where its window is still stored (KVCache.seq_resume_min); elsewhere the prompt
is evaluated again.

The model file is opened once: the validated mapping (edgegen.gguf.GGUFFile) feeds the tokenizer,
the model description and the engine's weights.
"""
from __future__ import annotations

import atexit
import os
import random
import threading
import weakref
from typing import Any, Iterator, Mapping, Optional, Sequence

from .. import _native
from ..adapters import AdapterInfo, AdapterSet, Selection
from ..errors import MemoryBudgetError, UnsupportedModelError
from ..accelerators import check_accelerator
from ..accelerators import open_model as open_accelerated_model
from ..gguf import GGUFFile
from ..scheduler import BatchScheduler
from ..sampling import SamplingParams
from ..tokenizer import Tokenizer
from .base import KV_TYPES, Backend, check_max_parallel, check_open_options


def supported_architectures() -> tuple[str, ...]:
    """The architectures the native engine runs (the list lives in native/model_spec.cpp)."""
    return tuple(_native.supported_architectures())


def supports(path: str, gguf_file: Optional[GGUFFile] = None) -> bool:
    """True when the file is a GGUF model whose architecture the native engine runs."""
    if gguf_file is not None and not gguf_file.closed:
        return gguf_file.architecture in supported_architectures()
    with GGUFFile(path) as f:
        return f.architecture in supported_architectures()


def open(path: str, **options: Any) -> "NativeBackend":  # noqa: A001 (module-level factory)
    return NativeBackend(path, **options)


class NativeBackend(Backend):
    name = "native"
    supports_constraints = True  # generate_tokens(..., constraint=TokenMask): the mask goes to the native sampler

    def __init__(
        self,
        path: str,
        *,
        n_ctx: int = 2048,
        n_threads: Optional[int] = None,
        n_batch: int = 512,
        kv_type: str = "f16",
        n_saved_prefixes: int = 3,
        max_parallel: int = 1,
        verbose: bool = False,
        gguf_file: Optional[GGUFFile] = None,
        accelerator: str = "auto",
        accelerator_options: Optional[dict[str, Any]] = None,
        adapters: Optional[Mapping[str, Any]] = None,
    ) -> None:
        del n_batch, verbose  # the engine batches internally; it never logs
        check_open_options(path, backend=self.name, n_ctx=n_ctx, n_threads=n_threads, kv_type=kv_type, kv_types=KV_TYPES)
        check_max_parallel(max_parallel)
        self._path = path
        self._file = gguf_file if gguf_file is not None and not gguf_file.closed else GGUFFile(path)
        arch = self._file.architecture
        if arch not in supported_architectures():
            raise UnsupportedModelError(
                f"architecture {arch!r} is not supported by the native engine "
                f"(supported: {', '.join(supported_architectures())})")
        check_accelerator(accelerator)
        self._tok = Tokenizer.from_gguf(self._file)
        # the same mapping, not a second open; batched products on an NPU when asked (accelerators/)
        self._model, self.accelerator = open_accelerated_model(
            self._file.native, n_threads or 0, accelerator, model_path=path, options=accelerator_options,
            encode=lambda text: self._tok.encode(text, add_special=True, parse_special=False))
        cfg = self._model.spec
        self.config = cfg
        train_ctx = int(cfg["n_ctx_train"])
        self._n_ctx = min(n_ctx, train_ctx) if n_ctx > 0 else train_ctx
        self.max_parallel = max_parallel
        n_saved = max(0, n_saved_prefixes)
        # n_ctx positions of global layers per slot (the cache adds a spare block per extra sequence
        # for copy-on-write); saved prefixes share the slots' blocks and are dropped when a step
        # needs their room
        self._cache = self._model.new_cache(self._n_ctx * max_parallel, kv_type, max_parallel + n_saved)
        self._kv_type = kv_type
        # LoRA: the adapters of each request are set on its slot's sequence when it is admitted;
        # prefixes are shared only between sequences computed under the same selection
        self._adapters = AdapterSet(self._model, path)
        for name, where in (adapters or {}).items():
            self._adapters.load(name, where)
        self._adapter_lock = threading.Lock()
        self._sched = BatchScheduler(self._model, self._cache, n_slots=max_parallel, n_ctx=self._n_ctx,
                                     n_saved=n_saved)
        self.stats = self._sched.stats
        # A process that exits with a stream still open must not tear the model down under a step
        # running on the scheduler thread (a native abort): stop that thread first.
        atexit.register(_close_at_exit, weakref.ref(self._sched))

    # ---- metadata -------------------------------------------------------------------------------
    @property
    def n_ctx(self) -> int:
        return self._n_ctx

    @property
    def n_vocab(self) -> int:
        return int(self.config["n_vocab"])

    @property
    def model_name(self) -> str:
        return str(self._file.metadata_summary.get("general.name") or os.path.splitext(os.path.basename(self._path))[0])

    @property
    def architecture(self) -> str:
        return self._file.architecture

    @property
    def chat_template(self) -> Optional[str]:
        return self._file.metadata_summary.get("tokenizer.chat_template") or None

    @property
    def bos_id(self) -> Optional[int]:
        return self._tok.bos_id

    @property
    def eos_id(self) -> Optional[int]:
        return self._tok.eos_id

    @property
    def add_bos(self) -> bool:
        return bool(self._tok.add_bos)

    @property
    def kv_cache(self) -> Any:
        return self._cache

    def is_eog(self, token_id: int) -> bool:
        return self._tok.is_eog(token_id)

    # ---- LoRA adapters (edgegen.adapters) -------------------------------------------------------
    def load_adapter(self, name: str, path: Any) -> AdapterInfo:
        # between steps: no forward pass runs while the model's adapter list changes
        with self._adapter_lock:
            return self._sched.between_steps(lambda: self._adapters.load(name, path))

    def adapter_info(self) -> list[AdapterInfo]:
        return self._adapters.info()

    def check_adapters(self, selection: Selection) -> None:
        self._adapters.check(selection)

    def _resolve_adapters(self, selection: Selection) -> tuple[Any, Selection]:
        """(what Model.set_adapters takes, the key prefixes are shared under)."""
        with self._adapter_lock:
            return self._adapters.resolve(selection)

    # ---- tokenizer ------------------------------------------------------------------------------
    def tokenize(self, text: str, add_special: bool, parse_special: bool) -> list[int]:
        return self._tok.encode(text, add_special=add_special, parse_special=parse_special)

    def token_bytes(self, token_id: int, special: bool = False) -> bytes:
        return self._tok.token_to_bytes(token_id, special)

    @property
    def scheduler(self) -> BatchScheduler:
        return self._sched

    # ---- generation -----------------------------------------------------------------------------
    def make_sampler(self, params: SamplingParams) -> Any:
        seed = params.seed if params.seed is not None else random.getrandbits(63)
        return _native.Sampler(
            self.n_vocab,
            temperature=float(params.temperature),
            top_k=int(params.top_k or 0),
            top_p=float(params.top_p if params.top_p is not None else 1.0),
            min_p=float(params.min_p or 0.0),
            repeat_penalty=float(params.repeat_penalty),
            presence_penalty=float(params.presence_penalty),
            frequency_penalty=float(params.frequency_penalty),
            logit_bias={int(k): float(v) for k, v in dict(params.logit_bias or {}).items()},
            seed=int(seed) & 0xFFFFFFFFFFFFFFFF,
        )

    def generate_tokens(
        self, prompt_ids: Sequence[int], params: SamplingParams, cancel: threading.Event, constraint: Any = None
    ) -> Iterator[int]:
        """`constraint`: an edgegen.structured TokenMask; each step samples under its next mask."""
        prompt = [int(t) for t in prompt_ids]
        if not prompt:
            prompt = [self.bos_id if self.bos_id is not None else 0]
        req = self._sched.submit(prompt, self.make_sampler(params), cancel,
                                 adapters=self._resolve_adapters(tuple(params.adapters or ())), constraint=constraint)
        try:
            yield from req.tokens()
        finally:
            req.close()  # the slot and its KV are free when this returns

    def kv_stats(self) -> Optional[dict[str, int]]:
        """KV blocks in all (total), free, and referenced by the cached sequences; total - free >
        referenced would be a leak (bench/soak.py checks it). Read between scheduler steps."""
        def count() -> dict[str, int]:
            c = self._cache
            total = free = referenced = 0
            for gi, g in enumerate(c.layout["groups"]):
                total += int(g["n_blocks"])
                free += int(c.free_blocks(gi))
                referenced += len({b for s in range(c.n_seq) for b in c.block_table(s, gi) if b >= 0})
            return {"blocks_total": total, "blocks_free": free, "blocks_referenced": referenced,
                    "tokens_cached": sum(int(c.seq_len(s)) for s in range(c.n_seq))}

        return self._sched.between_steps(count)
    # ---- cutting the context back (barge-in: keep only what the listener heard) ----------------
    @property
    def cached_seq(self) -> Optional[int]:
        """The KV sequence holding the last finished generation (prompt + reply), kept as a saved
        prefix so the next turn resumes after it; None before any."""
        return self._sched.last_kept

    @property
    def cached_tokens(self) -> list[int]:
        """The token ids whose K/V `cached_seq` holds (prompt, then generated tokens)."""
        seq = self._sched.last_kept
        return [] if seq is None else list(self._sched.seq_tokens.get(seq, []))

    def truncate_cache(self, n_tokens: int) -> None:
        """Cut the last finished generation's kept K/V after its first `n_tokens` tokens (barge-in:
        keep what the listener heard). Runs between scheduler steps, after the generation ended."""
        def cut() -> None:
            seq = self._sched.last_kept
            if seq is None:
                return
            toks = self._sched.seq_tokens[seq]
            n = max(0, min(int(n_tokens), len(toks)))
            self._cache.seq_truncate(seq, n)
            del toks[n:]

        self._sched.between_steps(cut)

    def eval_logits(self, tokens: Sequence[int], adapters: Selection = ()) -> Any:
        """Logits (n, n_vocab) of every position of `tokens` evaluated from an empty context
        (through `adapters`, ((name, scale), ...), when given)."""
        toks = [int(t) for t in tokens]
        engine, _ = self._resolve_adapters(tuple(adapters))

        def run(slot: int) -> Any:
            self._model.set_adapters(slot, engine)
            try:
                return self._model.eval(self._cache, slot, toks, all_logits=True)
            finally:
                self._cache.seq_clear(slot)

        return self._sched.run_exclusive(run)

    # ---- prompt cache files (edgegen.prompt_cache) ----------------------------------------------
    def prefix_fingerprint(self) -> dict[str, Any]:
        """What a cached prefix's KV depends on besides the model file."""
        from .. import __version__
        from ..prompt_cache import FORMAT

        lay = self._cache.layout
        groups = [[g["window"], list(g["layers"]), g["ring_blocks"], g["block_bytes"]] for g in lay["groups"]]
        return {"engine": f"edgegen {__version__} kv-format {FORMAT}", "isa": self._model.compute,
                "kv_type": self._kv_type, "layout": {"block_tokens": lay["block_tokens"], "groups": groups}}

    def export_prefix(self, tokens: Sequence[int]) -> bytes:
        """The KV of `tokens` (computed, or forked from a sequence that holds it) as bytes; it is
        also kept as a saved prefix."""
        toks = [int(t) for t in tokens]
        sched, cache = self._sched, self._cache

        def job(slot: int) -> bytes:
            self._model.set_adapters(slot, [])  # prompt cache files hold the base model's K/V
            try:
                src = sched.holder_of(toks)
                if src is None:
                    self._model.eval(cache, slot, toks)
                else:
                    cache.seq_fork(src, slot, len(toks))
                data = cache.seq_export(slot)
                if sched.saved_sequences:
                    sched.adopt_prefix(toks, lambda seq: cache.seq_fork(slot, seq, len(toks)))
                return data
            finally:
                cache.seq_clear(slot)

        return sched.run_exclusive(job)

    def import_prefix(self, tokens: Sequence[int], payload: bytes) -> int:
        """Makes a saved prefix of exported KV bytes for `tokens`; returns the token count."""
        from ..errors import PromptCacheError

        toks = [int(t) for t in tokens]
        if any(t >= self.n_vocab for t in toks):
            raise PromptCacheError("the cached prefix has token ids outside this model's vocabulary", reason="model")
        cache = self._cache

        def load(seq: int) -> None:
            try:
                cache.seq_import(seq, payload)
            except MemoryBudgetError:
                raise
            except Exception as exc:  # the layout check in the engine
                raise PromptCacheError(f"the cached KV does not fit this cache: {exc}", reason="kv") from exc
            if cache.seq_len(seq) != len(toks):
                cache.seq_clear(seq)
                raise PromptCacheError("the cached KV and its token ids disagree in length", reason="corrupt")

        self._sched.run_exclusive(lambda _slot: self._sched.adopt_prefix(toks, load))
        return len(toks)

    def kv_usage(self) -> dict[str, Any]:
        """KV bytes in use: per running slot (blocks only it holds), shared (blocks held by more
        than one sequence, counted once), saved prefixes (held by them alone), and the total."""
        return self._sched.between_steps(self._sched.kv_usage)

    def close(self) -> None:
        sched = getattr(self, "_sched", None)
        if sched is not None:
            sched.close()
            sched.drop_saved_prefixes()
            self._sched = None
        self._cache = None
        self._model = None
        f = getattr(self, "_file", None)
        if f is not None:
            f.close()


def _close_at_exit(ref: "weakref.ref[BatchScheduler]") -> None:
    sched = ref()
    if sched is not None:
        sched.close()
