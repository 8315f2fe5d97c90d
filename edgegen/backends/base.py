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
  * It may reuse cached state (a KV prefix) from the previous call; only one generation runs
    on a backend at a time (the LLM layer serialises calls).
"""
from __future__ import annotations

import abc
import threading
from typing import Iterator, Optional, Sequence

from ..sampling import SamplingParams


class Backend(abc.ABC):
    """A loaded local model. Subclasses set `name` and implement the abstract members."""

    name: str = "base"

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

    def close(self) -> None:
        """Free the model (idempotent)."""

    # A backend module may define `supports(path) -> bool` at module level; `auto` uses it.
