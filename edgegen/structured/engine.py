"""Constraints compiled to token masks with llguidance (the library llama.cpp itself uses; the
choice and its measurements are in docs/structured.md).

    tok = grammar_tokenizer(backend)            # once per loaded model (cached)
    mask = compile_constraint(tok, constraint)  # compile once (LRU cache), a fresh matcher per call
    words = mask.next_mask()                    # uint32[ceil(n_vocab/32)], bit i = token i allowed
    mask.consume(token)                         # after the token was sampled under that mask

The mask is what the native sampler takes (`Sampler::sample(logits, allowed)`), what the llama.cpp
backend applies in a logits processor, and what any batched decode carries per sequence.
End-of-generation tokens are allowed only where the grammar accepts.
"""
from __future__ import annotations

import hashlib
import threading
import time
import weakref
from collections import OrderedDict
from typing import Any, Optional

import numpy as np

from ..errors import ConstraintError
from .constraint import Constraint
from .grammar_check import unfinishable_start

# JSON is generated on one line with the usual separators: flexible whitespace lets a small model
# fill max_tokens with newlines, and one fixed shape makes tool-call streaming simple.
JSON_OPTIONS = {"whitespace_flexible": False, "item_separator": ", ", "key_separator": ": "}
COMPILE_CACHE_SIZE = 64
# llguidance's resource limits (its defaults allow ~250k lexer states, 0.5 GB): bounded memory and
# time for a hostile grammar; every schema in tests/structured compiles well inside them.
_LIMITS = dict(max_items_in_row=2000, initial_lexer_fuel=1_000_000, step_lexer_fuel=200_000,
               step_max_items=50_000, max_lexer_states=50_000, max_grammar_size=200_000,
               verbose_errors=False)


def _llguidance() -> Any:
    """llguidance, or MissingExtraError naming edgegen[structured]."""
    from ..extras import require

    return require("llguidance", "structured", "structured output (response_format, grammar, regex, tools)")


# ---- the tokenizer llguidance sees ------------------------------------------------------------
class GrammarTokenizer:
    """One model's vocabulary as llguidance needs it: every token's bytes (control tokens marked
    with a leading 0xFF, llguidance's convention), the end-of-generation ids and an encoder."""

    def __init__(self, backend: Any) -> None:
        llg = _llguidance()
        n_vocab = int(backend.n_vocab)
        tokens: list[bytes] = []
        for i in range(n_vocab):
            raw = backend.token_bytes(i, special=True)
            if raw and not backend.token_bytes(i, special=False):
                raw = b"\xff" + raw  # a control token: text can never produce it
            tokens.append(raw)
        self.eog_ids = sorted(i for i in range(n_vocab) if backend.is_eog(i))
        if not self.eog_ids:
            raise ConstraintError("the model has no end-of-generation token; a constraint cannot end")
        h = hashlib.blake2b(digest_size=16)
        for t in tokens:
            h.update(len(t).to_bytes(4, "little") + t)
        h.update(repr(self.eog_ids).encode())
        self.fingerprint = h.hexdigest()
        self.n_vocab = n_vocab
        self.n_words = (n_vocab + 31) // 32

        class _Wrapped:  # the shape llguidance.TokenizerWrapper reads
            eos_token_id = self.eog_ids[0]
            bos_token_id = backend.bos_id
            special_token_ids: list[int] = []

            def __init__(self) -> None:
                self.tokens = tokens

            def __call__(self, text: Any) -> list[int]:
                if not isinstance(text, str):
                    raise TypeError("str only")  # llguidance probes with bytes, then sends str
                return list(backend.tokenize(text, False, False))

        self.ll = llg.LLTokenizer(llg.TokenizerWrapper(_Wrapped()), n_vocab=n_vocab, eos_token=self.eog_ids)


_tokenizers: "weakref.WeakKeyDictionary[Any, GrammarTokenizer]" = weakref.WeakKeyDictionary()
_tokenizers_lock = threading.Lock()


def grammar_tokenizer(backend: Any) -> GrammarTokenizer:
    """The backend's GrammarTokenizer, built on first use (SmolLM2: ~1 s) and kept with it."""
    with _tokenizers_lock:
        tok = _tokenizers.get(backend)
        if tok is None:
            tok = _tokenizers[backend] = GrammarTokenizer(backend)
        return tok


# ---- compiling --------------------------------------------------------------------------------
def llguidance_grammar(constraint: Constraint) -> str:
    """The llguidance grammar text of a constraint (no tokenizer needed yet)."""
    llg = _llguidance()
    try:
        if constraint.kind in ("json_schema", "json_object"):
            return llg.LLMatcher.grammar_from_json_schema(constraint.schema, overrides=JSON_OPTIONS)
        if constraint.kind == "regex":
            return llg.LLMatcher.grammar_from_regex(constraint.source)
        if constraint.kind == "lark":
            return llg.LLMatcher.grammar_from_lark(constraint.source)
        return llg.grammar_from("gbnf", constraint.source)
    except (ValueError, TypeError, RecursionError) as exc:
        raise ConstraintError(f"invalid {_what(constraint)}: {_short(exc)}", param=_param(constraint)) from None


class CompiledConstraint:
    """A constraint compiled for one tokenizer: a pristine matcher copied for each generation."""

    def __init__(self, tok: GrammarTokenizer, constraint: Constraint) -> None:
        llg = _llguidance()
        self.constraint = constraint
        self.tokenizer = tok
        t0 = time.perf_counter()
        grammar = llguidance_grammar(constraint)
        if constraint.kind in ("lark", "gbnf") and unfinishable_start(grammar):
            # accepts nothing; llguidance's first mask for such a grammar can take minutes
            raise ConstraintError(f"the {_what(constraint)} can never finish: every alternative of its start rule "
                                  "recurses without end", param=_param(constraint))
        matcher = llg.LLMatcher(tok.ll, grammar, log_level=0, limits=llg.LLParserLimits(**_LIMITS))
        _raise_if_error(matcher, constraint, "")
        # A grammar that accepts nothing has no first token at all: refuse it now, not mid-request.
        first = np.zeros(tok.n_words, np.uint32)
        matcher.deep_copy().unsafe_compute_mask_ptr(first.ctypes.data, first.nbytes)
        if not first.any():
            raise ConstraintError(f"the {_what(constraint)} accepts no output", param=_param(constraint))
        self.compile_seconds = time.perf_counter() - t0
        self._pristine = matcher
        self._lock = threading.Lock()

    def matcher(self) -> "TokenMask":
        with self._lock:
            return TokenMask(self._pristine.deep_copy(), self)


class TokenMask:
    """One generation's walk through a compiled constraint."""

    def __init__(self, matcher: Any, compiled: CompiledConstraint) -> None:
        self._m = matcher
        self.compiled = compiled
        self.words = np.zeros(compiled.tokenizer.n_words, np.uint32)

    def next_mask(self) -> np.ndarray:
        """The allowed tokens for the next step (the same buffer, refilled each call)."""
        self._m.unsafe_compute_mask_ptr(self.words.ctypes.data, self.words.nbytes)
        _raise_if_error(self._m, self.compiled.constraint, "during generation: ")
        return self.words

    def consume(self, token: int) -> None:
        """Advance past a sampled token; an end-of-generation token ends the walk."""
        if self._m.is_stopped() and int(token) in self.compiled.tokenizer.eog_ids:
            return
        if not self._m.consume_token(int(token)):
            # a sampled token is always allowed: only a resource limit (a grammar too complex or
            # one that can never finish) gets here
            raise ConstraintError(f"the {_what(self.compiled.constraint)} stopped generation: "
                                  f"{_short(self._m.get_error())}", param=_param(self.compiled.constraint))

    def ends(self, token: int) -> bool:
        """True for an end-of-generation token (sampled only where the grammar accepts)."""
        return int(token) in self.compiled.tokenizer.eog_ids

    def allows(self, token: int) -> bool:
        return bool(self.words[token >> 5] >> np.uint32(token & 31) & np.uint32(1))

    @property
    def accepting(self) -> bool:
        """True when the output so far is complete (the grammar accepts it)."""
        return bool(self._m.is_accepting())


class _CompileCache:
    """LRU of compiled constraints keyed by (tokenizer fingerprint, constraint)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: "OrderedDict[tuple[str, Constraint], CompiledConstraint]" = OrderedDict()
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def get(self, tok: GrammarTokenizer, constraint: Constraint) -> CompiledConstraint:
        key = (tok.fingerprint, constraint)
        with self._lock:
            hit = self._items.get(key)
            if hit is not None:
                self._items.move_to_end(key)
                self.hits += 1
                return hit
            self.misses += 1
        compiled = CompiledConstraint(tok, constraint)  # outside the lock: llguidance drops the GIL
        with self._lock:
            self._items[key] = compiled
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return compiled

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


compile_cache = _CompileCache(COMPILE_CACHE_SIZE)


def compile_constraint(tok: GrammarTokenizer, constraint: Constraint) -> CompiledConstraint:
    return compile_cache.get(tok, constraint)


def token_mask(backend: Any, constraint: Optional[Constraint]) -> Optional[TokenMask]:
    """A fresh per-generation mask for `constraint` on `backend`'s vocabulary (None: no constraint)."""
    if constraint is None:
        return None
    return compile_constraint(grammar_tokenizer(backend), constraint).matcher()


def _raise_if_error(matcher: Any, constraint: Constraint, when: str) -> None:
    if matcher.is_error():
        raise ConstraintError(f"{when}the {_what(constraint)} is not usable: {_short(matcher.get_error())}",
                              param=_param(constraint))


def _what(c: Constraint) -> str:
    return {"json_schema": "JSON schema", "json_object": "JSON object format", "regex": "regex",
            "lark": "Lark grammar", "gbnf": "GBNF grammar"}[c.kind]


def _param(c: Constraint) -> str:
    return {"regex": "regex", "lark": "grammar", "gbnf": "grammar"}.get(c.kind, "response_format")


def _short(exc: Any, limit: int = 300) -> str:
    s = str(exc).strip().replace("\n", " ")
    return s if len(s) <= limit else s[:limit] + "..."
