"""The native backend: edgegen's own C++ engine (edgegen._native) behind the Backend interface.

Each decode step (forward pass + sampling over the vocabulary) is one native call that releases
the GIL; the loop stays in Python (DESIGN.md: move it only if a measurement says so).

Prefix reuse: the KV cache holds a working sequence (0) plus a few saved prompt prefixes that
share its blocks (copy-on-write). A new prompt resumes from the longest cached common prefix, so
requests that share a system prompt do not recompute it. Sliding-window layers (Gemma 3) keep only
a ring of their window, so a prefix can be resumed only where its window is still stored
(KVCache.seq_resume_min); elsewhere the prompt is evaluated again.

The model file is opened once: the validated mapping (edgegen.gguf.GGUFFile) feeds the tokenizer,
the model description and the engine's weights.
"""
from __future__ import annotations

import os
import random
import threading
from typing import Any, Iterator, Mapping, Optional, Sequence

from .. import _native
from ..adapters import AdapterInfo, AdapterSet, Selection
from ..errors import MemoryBudgetError, UnsupportedModelError
from ..gguf import GGUFFile
from ..sampling import SamplingParams
from ..tokenizer import Tokenizer
from .base import KV_TYPES, Backend, check_open_options

_WORK = 0  # the working sequence id


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


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


class NativeBackend(Backend):
    name = "native"
    max_parallel = 1

    def __init__(
        self,
        path: str,
        *,
        n_ctx: int = 2048,
        n_threads: Optional[int] = None,
        n_batch: int = 512,
        kv_type: str = "f16",
        n_saved_prefixes: int = 3,
        verbose: bool = False,
        gguf_file: Optional[GGUFFile] = None,
        adapters: Optional[Mapping[str, Any]] = None,
    ) -> None:
        del n_batch, verbose  # the engine batches internally; it never logs
        check_open_options(path, backend=self.name, n_ctx=n_ctx, n_threads=n_threads, kv_type=kv_type, kv_types=KV_TYPES)
        self._path = path
        self._file = gguf_file if gguf_file is not None and not gguf_file.closed else GGUFFile(path)
        arch = self._file.architecture
        if arch not in supported_architectures():
            raise UnsupportedModelError(
                f"architecture {arch!r} is not supported by the native engine "
                f"(supported: {', '.join(supported_architectures())})")
        self._model = _native.Model(self._file.native, n_threads or 0)  # the same mapping, not a second open
        self._tok = Tokenizer.from_gguf(self._file)
        cfg = self._model.spec
        self.config = cfg
        train_ctx = int(cfg["n_ctx_train"])
        self._n_ctx = min(n_ctx, train_ctx) if n_ctx > 0 else train_ctx
        n_seq = 1 + max(0, n_saved_prefixes)
        # n_ctx positions for the global layers (the cache adds a spare block per saved prefix for
        # copy-on-write); saved prefixes share the working sequence's blocks, and are dropped when
        # a request needs their room (see _decode)
        self._cache = self._model.new_cache(self._n_ctx, kv_type, n_seq)
        self._kv_type = kv_type
        self._seq_tokens: list[list[int]] = [[] for _ in range(n_seq)]  # tokens evaluated per sequence
        # LoRA: the adapters each sequence's tokens were computed under (a prefix is reused only
        # under the same selection)
        self._seq_adapters: list[Selection] = [() for _ in range(n_seq)]
        self._adapters = AdapterSet(self._model, path)
        for name, where in (adapters or {}).items():
            self._adapters.load(name, where)
        self._lock = threading.Lock()
        self.stats: dict[str, int] = {"prompt_tokens_evaluated": 0, "prompt_tokens_reused": 0}

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
        with self._lock:
            return self._adapters.load(name, path)

    def adapter_info(self) -> list[AdapterInfo]:
        return self._adapters.info()

    def check_adapters(self, selection: Selection) -> None:
        self._adapters.check(selection)

    def _select_adapters(self, selection: Selection) -> Selection:
        engine, key = self._adapters.resolve(selection)
        self._model.set_adapters(_WORK, engine)
        return key

    # ---- tokenizer ------------------------------------------------------------------------------
    def tokenize(self, text: str, add_special: bool, parse_special: bool) -> list[int]:
        return self._tok.encode(text, add_special=add_special, parse_special=parse_special)

    def token_bytes(self, token_id: int, special: bool = False) -> bytes:
        return self._tok.token_to_bytes(token_id, special)

    # ---- KV prefix reuse ------------------------------------------------------------------------
    def _resume(self, prompt: Sequence[int], adapters: Selection = ()) -> int:
        """Points the working sequence at the longest cached prefix of `prompt`; returns its length.
        At least the last prompt token is always left to evaluate (its logits pick the next token)."""
        limit = len(prompt) - 1
        best_seq, best = _WORK, 0
        for s in range(len(self._seq_tokens)):
            if self._seq_adapters[s] != adapters:
                continue  # computed under other adapters: its K/V are not this request's
            n = min(_common_prefix(self._seq_tokens[s], prompt), limit)
            if n > 0 and n < self._cache.seq_resume_min(s):
                n = 0  # a sliding-window ring no longer holds the window before that point
            if n > best or (s == _WORK and n == best):
                best_seq, best = s, n
        if best_seq == _WORK:
            self._cache.seq_truncate(_WORK, best)
        else:
            self._cache.seq_fork(best_seq, _WORK, best)
        self._seq_tokens[_WORK] = list(prompt[:best])
        self._seq_adapters[_WORK] = adapters
        return best

    def _save_prefix(self, n: int) -> None:
        """Keeps the first n tokens of the working sequence as a saved prefix (shared blocks)."""
        if n <= 0 or len(self._seq_tokens) < 2:
            return
        work = self._seq_tokens[_WORK][:n]
        slots = range(1, len(self._seq_tokens))
        key = self._seq_adapters[_WORK]
        if any(self._seq_tokens[s] == work and self._seq_adapters[s] == key for s in slots):
            return
        # replace the slot sharing least with this prompt (empty slots first)
        slot = min(slots, key=lambda s: (len(self._seq_tokens[s]) > 0, _common_prefix(self._seq_tokens[s], work)))
        self._cache.seq_fork(_WORK, slot, n)
        self._seq_tokens[slot] = work
        self._seq_adapters[slot] = key

    def _drop_saved_prefixes(self) -> None:
        for s in range(1, len(self._seq_tokens)):
            self._cache.seq_clear(s)
            self._seq_tokens[s] = []
            self._seq_adapters[s] = ()

    def _decode(self, tokens: Sequence[int], sampler: Any) -> int:
        try:
            tok = self._model.decode(self._cache, _WORK, list(tokens), sampler)
        except MemoryBudgetError:
            if not any(self._seq_tokens[1:]):
                raise
            self._drop_saved_prefixes()  # saved prefixes hold blocks: free them and retry once
            tok = self._model.decode(self._cache, _WORK, list(tokens), sampler)
        self._seq_tokens[_WORK].extend(tokens)
        return int(tok)

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
        self, prompt_ids: Sequence[int], params: SamplingParams, cancel: threading.Event
    ) -> Iterator[int]:
        prompt = [int(t) for t in prompt_ids]
        if not prompt:
            prompt = [self.bos_id if self.bos_id is not None else 0]
        with self._lock:
            sampler = self.make_sampler(params)
            reused = self._resume(prompt, self._select_adapters(params.adapters))
            for t in prompt[:reused]:
                sampler.accept(t)
            self.stats["prompt_tokens_reused"] += reused
            self.stats["prompt_tokens_evaluated"] += len(prompt) - reused
            if cancel.is_set():
                return
            tok = self._decode(prompt[reused:], sampler)
            self._save_prefix(len(prompt))
            while True:
                yield tok
                if cancel.is_set() or len(self._seq_tokens[_WORK]) + 1 >= self._n_ctx:
                    return
                tok = self._decode([tok], sampler)

    # ---- cutting the context back (barge-in: keep only what the listener heard) ----------------
    @property
    def cached_tokens(self) -> list[int]:
        """The token ids whose K/V the working sequence holds (prompt, then generated tokens)."""
        return list(self._seq_tokens[_WORK])

    def truncate_cache(self, n_tokens: int) -> None:
        """Drop the working sequence's K/V after its first `n_tokens` tokens. Waits for a running
        generation to end (the lock), so call it after cancelling one."""
        with self._lock:
            n = max(0, min(int(n_tokens), len(self._seq_tokens[_WORK])))
            self._cache.seq_truncate(_WORK, n)
            del self._seq_tokens[_WORK][n:]

    def eval_logits(self, tokens: Sequence[int], adapters: Selection = ()) -> Any:
        """Logits (n, n_vocab) of every position of `tokens` evaluated from an empty context
        (through `adapters`, ((name, scale), ...), when given)."""
        with self._lock:
            self._cache.seq_clear(_WORK)
            self._seq_tokens[_WORK] = []
            self._seq_adapters[_WORK] = self._select_adapters(tuple(adapters))
            out = self._model.eval(self._cache, _WORK, list(tokens), all_logits=True)
            self._seq_tokens[_WORK] = list(tokens)
            return out

    def close(self) -> None:
        self._drop_saved_prefixes() if hasattr(self, "_cache") else None
        self._cache = None
        self._model = None
        f = getattr(self, "_file", None)
        if f is not None:
            f.close()
