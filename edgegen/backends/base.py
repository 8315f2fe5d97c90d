"""The interface every local backend implements (native engine, llama.cpp).

A backend is deliberately small: a tokenizer, the model's metadata, and a token-level generator.
Everything a caller sees as text (UTF-8-safe streaming, stop strings, max tokens, usage counts,
chat templates, cancellation into a final chunk) lives once in `edgegen.llm.LLM`, so results are
identical whichever backend ran the model.

Contract for `generate_tokens(prompt_ids, params, cancel)`:
  * `prompt_ids` fits the context (the LLM layer checked `len(prompt_ids) < n_ctx`).
  * `params` is a validated `SamplingParams`; backends honour temperature (0 = greedy), top_k,
    top_p, min_p, the three penalties, logit_bias and seed. `stop` and `max_tokens` are the LLM
    layer's business: a backend simply keeps yielding.
  * It yields sampled token ids one at a time, end-of-generation tokens included (the LLM layer
    stops on `is_eog`). It must stop by itself once the context is full (return, no exception).
  * It checks `cancel.is_set()` between tokens and returns promptly when set.
  * The caller may `close()` it at any yield point; cleanup goes in `finally`.
  * It may reuse cached state (a KV prefix) from the previous call. A backend with
    `max_parallel` = 1 runs one generation at a time (the LLM layer serialises calls); one with
    more (the native engine's batch scheduler) takes concurrent calls from any threads.

Every backend constructor starts with `check_open_options(...)`, so a missing file, a bad window
or thread count and an unsupported KV type give the same typed errors and messages whichever
backend was asked.
"""
from __future__ import annotations

import abc
import os
import threading
from typing import Any, Collection, Iterator, Optional, Sequence

from ..errors import InvalidRequestError, ModelNotFoundError, UnsupportedModelError
from ..sampling import SamplingParams

MIN_N_CTX = 16  # a smaller window cannot hold a chat template's framing and a reply


def check_n_ctx(n_ctx: Any, *, model_window_ok: bool = True) -> None:
    """`n_ctx` is an int >= MIN_N_CTX, or 0 for the model's training window when
    `model_window_ok` (backends take 0; `edgegen.load` needs a number to size the KV cache)."""
    if isinstance(n_ctx, bool) or not isinstance(n_ctx, int) or not (n_ctx >= MIN_N_CTX or (model_window_ok and n_ctx == 0)):
        zero = " (or 0 for the model's training window)" if model_window_ok else ""
        raise InvalidRequestError(f"n_ctx must be an integer >= {MIN_N_CTX}{zero}, got {n_ctx!r}")


def check_n_threads(n_threads: Any) -> None:
    """`n_threads` is None (the backend's choice) or a positive int."""
    if n_threads is not None and (isinstance(n_threads, bool) or not isinstance(n_threads, int) or n_threads < 1):
        raise InvalidRequestError(f"n_threads must be a positive integer or None, got {n_threads!r}")


MAX_PARALLEL_LIMIT = 64  # the native engine's step holds at most 64 token rows: one per running sequence


def check_max_parallel(n: Any) -> None:
    """`max_parallel` is an int in 1..MAX_PARALLEL_LIMIT (InvalidRequestError otherwise)."""
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_PARALLEL_LIMIT:
        raise InvalidRequestError(f"max_parallel must be an integer in 1..{MAX_PARALLEL_LIMIT}, got {n!r}")


# The KV cache element types: one set for every backend, `edgegen.load`, and the CLI's --kv-type.
KV_TYPES = ("f16", "q8_0")


def check_kv_type(kv_type: Any) -> None:
    if not isinstance(kv_type, str) or kv_type not in KV_TYPES:
        raise InvalidRequestError(f"kv_type {kv_type!r} is not supported; use one of {', '.join(KV_TYPES)}",
                                  param="kv_type")


def check_open_options(
    path: Any, *, backend: str, n_ctx: Any, n_threads: Any, kv_type: Any, kv_types: Collection[str]
) -> None:
    """The checks every backend constructor makes before it reads the file.

    Raises InvalidRequestError for a bad `n_ctx` / `n_threads`, ModelNotFoundError when `path` is
    not a file, and UnsupportedModelError when `kv_type` is not one of this backend's `kv_types`
    (unsupported rather than invalid: `auto` then tries the next backend, which may have it).
    """
    check_n_ctx(n_ctx)
    check_n_threads(n_threads)
    if not isinstance(path, (str, os.PathLike)) or not os.path.isfile(path):
        raise ModelNotFoundError(f"no model file at {path!r}")
    if not isinstance(kv_type, str) or kv_type not in kv_types:
        raise UnsupportedModelError(
            f"kv_type {kv_type!r} is not supported by the {backend} backend; use one of {', '.join(kv_types)}"
        )


class Backend(abc.ABC):
    """A loaded local model. Subclasses set `name` and implement the abstract members."""

    name: str = "base"
    max_parallel: int = 1  # generations it runs at once

    # ---- model metadata -------------------------------------------------------------------------
    @property
    @abc.abstractmethod
    def n_ctx(self) -> int:
        """Context window of this instance in tokens (prompt + generated)."""

    @property
    @abc.abstractmethod
    def n_vocab(self) -> int: ...

    @property
    def model_name(self) -> str:
        """A short human name (GGUF general.name or the file stem)."""
        return ""

    @property
    def architecture(self) -> str:
        """GGUF general.architecture, e.g. 'llama', 'gemma3'."""
        return ""

    @property
    def chat_template(self) -> Optional[str]:
        """The GGUF tokenizer.chat_template string, or None when the file has none."""
        return None

    # ---- special tokens -------------------------------------------------------------------------
    @property
    @abc.abstractmethod
    def bos_id(self) -> Optional[int]: ...

    @property
    @abc.abstractmethod
    def eos_id(self) -> Optional[int]: ...

    @property
    def add_bos(self) -> bool:
        """Whether raw prompts get a BOS token prepended (GGUF tokenizer.ggml.add_bos_token)."""
        return False

    @abc.abstractmethod
    def is_eog(self, token_id: int) -> bool:
        """True for tokens that end generation (EOS, EOT, <|im_end|> ...)."""

    # ---- tokenizer ------------------------------------------------------------------------------
    @abc.abstractmethod
    def tokenize(self, text: str, add_special: bool, parse_special: bool) -> list[int]:
        """Text -> ids. `add_special` adds BOS/EOS as the model wants; `parse_special` turns
        written special tokens (e.g. '<|im_start|>') into their ids. `text` is valid Unicode."""

    @abc.abstractmethod
    def token_bytes(self, token_id: int, special: bool = False) -> bytes:
        """The raw bytes of one token (may be part of a UTF-8 character). Control tokens give
        b'' unless `special`. Raises TokenizerError for an id outside the vocabulary."""

    def detokenize(self, ids: Sequence[int], special: bool = False) -> bytes:
        return b"".join(self.token_bytes(i, special) for i in ids)

    # ---- generation -----------------------------------------------------------------------------
    @abc.abstractmethod
    def generate_tokens(
        self, prompt_ids: Sequence[int], params: SamplingParams, cancel: threading.Event
    ) -> Iterator[int]:
        """Yield sampled token ids; see the module docstring for the contract."""

    # ---- LoRA adapters (edgegen.adapters); backends that apply them override these ------------
    def load_adapter(self, name: str, path: Any) -> Any:
        raise UnsupportedModelError(f"the {self.name} backend does not apply LoRA adapters; load the model with backend='native'")

    def adapter_info(self) -> list[Any]:
        return []

    def check_adapters(self, selection: Sequence[tuple[str, float]]) -> None:
        """InvalidRequestError when `selection` names an adapter that is not loaded."""
        if selection:
            raise InvalidRequestError(f"no LoRA adapters are loaded on the {self.name} backend", param="adapters")

    def close(self) -> None:
        """Free the model (idempotent)."""

    # A backend module may define `supports(path) -> bool` at module level; `auto` uses it.
