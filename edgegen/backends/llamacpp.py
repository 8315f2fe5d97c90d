"""llama.cpp backend through llama-cpp-python: for architectures the native engine does not run
yet, and the yardstick our own engine is measured against.

Only llama.cpp's low-level pieces are used (tokenizer, `Llama.generate` token loop, its sampler
chain); stop strings, UTF-8 assembly, max tokens and usage are computed by `edgegen.llm`, exactly
as for the native backend.
"""
from __future__ import annotations

import ctypes
import os
import random
import threading
from typing import Any, Iterator, Optional, Sequence

from ..errors import ModelFormatError, TokenizerError, UnsupportedModelError
from ..sampling import SamplingParams
from .base import Backend, check_open_options

# edgegen kv_type name -> ggml type id (llama.cpp's enum ggml_type)
_KV_TYPES = {"f16": 1, "q8_0": 8}  # keys: base.KV_TYPES


def supports(path: str) -> bool:
    """llama.cpp reads every GGUF architecture it knows; failures surface at open()."""
    return True


def open(path: str, **options: Any) -> "LlamaCppBackend":  # noqa: A001 (module-level factory)
    return LlamaCppBackend(path, **options)


class LlamaCppBackend(Backend):
    name = "llama.cpp"
    supports_constraints = True  # generate_tokens(..., constraint=TokenMask) through a logits processor

    def __init__(
        self,
        path: str,
        *,
        n_ctx: int = 2048,
        n_threads: Optional[int] = None,
        n_batch: int = 512,
        kv_type: str = "f16",
        verbose: bool = False,
        max_parallel: int = 1,
    ) -> None:
        del max_parallel  # llama-cpp-python's Llama runs one sequence: requests take turns (max_parallel = 1)
        check_open_options(path, backend=self.name, n_ctx=n_ctx, n_threads=n_threads, kv_type=kv_type, kv_types=_KV_TYPES)
        from ..extras import require

        llama_cpp = require("llama_cpp", "llamacpp", "the llama.cpp backend")
        self._lib = llama_cpp
        if not verbose:
            import llama_cpp._logger  # noqa: F401  (installs its callback at import: ours must come after)

            from .llamacpp_log import install

            install(llama_cpp)  # llama.cpp's lines go to logging ("edgegen.llama_cpp"), not stderr
        kv = _KV_TYPES[kv_type]
        try:
            self._llama = llama_cpp.Llama(
                model_path=path,
                n_ctx=n_ctx,
                n_threads=n_threads,
                n_threads_batch=n_threads,
                n_batch=n_batch,
                type_k=kv,
                type_v=kv,
                flash_attn=kv != 1,  # a quantized V cache needs flash attention in llama.cpp
                verbose=verbose,
            )
        except (ValueError, RuntimeError, OSError) as exc:
            from .llamacpp_log import take_errors

            cause = "; ".join(take_errors())
            raise ModelFormatError(f"llama.cpp could not load {path!r}: {exc}" + (f" ({cause})" if cause else "")) from exc
        self._path = path
        # llama.cpp pads its window (to 256), but llama-cpp-python's token buffer holds only the
        # requested n_ctx: the smaller of the two is the window that works.
        self._n_ctx = min(n_ctx, self._llama.n_ctx()) if n_ctx > 0 else self._llama.n_ctx()
        self._vocab = self._llama._model.vocab
        self._n_vocab = self._llama.n_vocab()
        self._piece_cache: dict[tuple[int, bool], bytes] = {}
        meta = self._llama.metadata
        self._meta = meta
        self._add_bos = meta.get("tokenizer.ggml.add_bos_token", "true").lower() == "true"

    # ---- metadata -------------------------------------------------------------------------------
    @property
    def n_ctx(self) -> int:
        return self._n_ctx

    @property
    def n_vocab(self) -> int:
        return self._n_vocab

    @property
    def model_name(self) -> str:
        return self._meta.get("general.name") or os.path.splitext(os.path.basename(self._path))[0]

    @property
    def architecture(self) -> str:
        return self._meta.get("general.architecture", "")

    @property
    def chat_template(self) -> Optional[str]:
        return self._meta.get("tokenizer.chat_template") or None

    @property
    def bos_id(self) -> Optional[int]:
        t = self._llama.token_bos()
        return t if t >= 0 else None

    @property
    def eos_id(self) -> Optional[int]:
        t = self._llama.token_eos()
        return t if t >= 0 else None

    @property
    def add_bos(self) -> bool:
        return self._add_bos

    def is_eog(self, token_id: int) -> bool:
        return bool(self._lib.llama_vocab_is_eog(self._vocab, token_id))

    # ---- tokenizer ------------------------------------------------------------------------------
    def tokenize(self, text: str, add_special: bool, parse_special: bool) -> list[int]:
        if not text:
            return [self.bos_id] if add_special and self._add_bos and self.bos_id is not None else []
        try:
            return list(self._llama.tokenize(text.encode("utf-8"), add_bos=add_special, special=parse_special))
        except RuntimeError as exc:
            raise TokenizerError(f"llama.cpp tokenizer failed: {exc}") from exc

    def token_bytes(self, token_id: int, special: bool = False) -> bytes:
        key = (token_id, special)
        piece = self._piece_cache.get(key)
        if piece is not None:
            return piece
        if not 0 <= token_id < self._n_vocab:
            raise TokenizerError(f"token id {token_id} outside the vocabulary (0..{self._n_vocab - 1})")
        size = 64
        while True:
            buf = ctypes.create_string_buffer(size)
            n = self._lib.llama_token_to_piece(self._vocab, token_id, buf, size, 0, special)
            if n >= 0:
                piece = buf.raw[:n]
                break
            size = -n  # llama.cpp returns the negated size it needs
        self._piece_cache[key] = piece
        return piece

    # ---- generation -----------------------------------------------------------------------------
    def generate_tokens(
        self, prompt_ids: Sequence[int], params: SamplingParams, cancel: threading.Event, constraint: Any = None
    ) -> Iterator[int]:
        llama = self._llama
        # llama.cpp treats 0xFFFFFFFF as "random"; draw our own so every call is independent.
        llama.set_seed(params.seed if params.seed is not None else random.getrandbits(31))
        processors = []
        if constraint is not None:
            processors.append(_mask_processor(constraint, len(prompt_ids), self._n_vocab))
        if params.logit_bias:
            import numpy as np

            ids = np.fromiter(params.logit_bias.keys(), dtype=np.intc)
            bias = np.fromiter(params.logit_bias.values(), dtype=np.single)

            def apply_bias(_input_ids: Any, scores: Any) -> Any:
                scores[ids] += bias
                return scores

            processors.append(apply_bias)
        gen = llama.generate(
            list(prompt_ids),
            top_k=params.top_k,
            top_p=params.top_p,
            min_p=params.min_p,
            temp=params.temperature,
            repeat_penalty=params.repeat_penalty,
            frequency_penalty=params.frequency_penalty,
            presence_penalty=params.presence_penalty,
            logits_processor=self._lib.LogitsProcessorList(processors) if processors else None,
            reset=True,
        )
        used = len(prompt_ids)
        try:
            if cancel.is_set():
                return
            for token in gen:
                yield int(token)
                if constraint is not None and self.is_eog(int(token)):
                    return  # the grammar accepted and the model ended
                used += 1
                # The next step would evaluate this token at position `used - 1`; stop at the window.
                if used >= self.n_ctx or cancel.is_set():
                    return
        finally:
            gen.close()

    def close(self) -> None:
        llama = getattr(self, "_llama", None)
        if llama is not None:
            llama.close()
            self._llama = None  # type: ignore[assignment]


def _mask_processor(constraint: Any, n_prompt: int, n_vocab: int) -> Any:
    """A llama-cpp-python logits processor that removes the tokens `constraint` (a TokenMask)
    does not allow, before llama.cpp's sampler chain sees the scores (as the native sampler does)."""
    import numpy as np

    seen = [n_prompt]  # tokens of input_ids already consumed by the constraint

    def apply_mask(input_ids: Any, scores: Any) -> Any:
        for t in input_ids[seen[0]:]:
            constraint.consume(int(t))
        seen[0] = len(input_ids)
        words = constraint.next_mask()
        allowed = np.unpackbits(words.view(np.uint8), bitorder="little")[:len(scores)]  # bit i = token i
        scores[allowed == 0] = -np.inf
        return scores

    return apply_mask
