"""The local LLM API: `edgegen.load(model) -> LLM` with stream / generate / chat.

Everything text-shaped happens here, once for all local backends: prompt checks (valid Unicode,
fits the context), chat templates, UTF-8-safe assembly of token bytes, stop strings, max tokens,
usage counts, and cancellation. A backend only tokenizes and yields token ids
(see `edgegen.backends.base`).

    llm = edgegen.load("smollm2")
    for chunk in llm.stream("Once upon a time", max_tokens=32, temperature=0):
        print(chunk.text, end="")
    reply = llm.chat([{"role": "user", "content": "Hi!"}])

A caller that checks a prompt before it runs it (the server does, to answer 4xx before queueing)
prepares it once with `prepare()` / `prepare_chat()` and passes the `PreparedPrompt` to
`stream()` / `chat()` (or `Router.chat`) in place of the text or messages: the template is
rendered and the text tokenized once per request.
"""
from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping, Optional, Sequence, Union

from .backends import open_backend
from .backends.base import Backend, check_kv_type, check_max_parallel, check_n_ctx, check_n_threads
from .chat import TemplateLimits, render_chat
from .chat_formats import FORMATS, chat_format_for, completion_prompt, family_template
from .fit import fit_context
from .errors import (
    ContextOverflowError,
    EdgegenError,
    InvalidRequestError,
    MemoryBudgetError,
    ModelNotFoundError,
    TokenizerError,
)
from .sampling import SamplingParams
from .structured.local import StructuredRequest, pop_structured, tool_chunks
from .textstream import StopStringMatcher, TextStream, Utf8StreamDecoder, collect
from .types import ChatMessage, ChatResult, CompletionResult, TextChunk, Usage, validate_messages

DEFAULT_MODEL = "smollm2"
DEFAULT_N_CTX = 2048

def resolve_model_path(model: Union[str, os.PathLike]) -> str:
    """A .gguf path, or a store name ("smollm2") -> the installed file's path (never downloads)."""
    from .store import resolve_model

    return str(resolve_model(model, "llm"))


def load(
    model: Union[str, os.PathLike] = DEFAULT_MODEL,
    backend: str = "auto",
    *,
    n_ctx: int = DEFAULT_N_CTX,
    n_threads: Optional[int] = None,
    kv_type: str = "f16",
    memory_budget: Union[None, int, str] = None,
    template_limits: TemplateLimits = TemplateLimits(),
    defaults: Optional[SamplingParams] = None,
    adapters: Optional[Mapping[str, Union[str, os.PathLike]]] = None,
    max_parallel: int = 1,
    **backend_options: Any,
) -> "LLM":
    """Load a local model. `backend`: "auto" (native when it supports the file, else llama.cpp),
    "native" or "llama.cpp". Weights + KV cache + scratch must fit `memory_budget` (bytes or "2G";
    default $EDGEGEN_MEMORY_BUDGET, else available RAM) or MemoryBudgetError is raised before loading.
    `adapters`: LoRA adapters to load, {name: .gguf path or store name}; a request picks them with
    `adapters={name: scale}` (edgegen.adapters).
    `max_parallel`: generations that run at once in one shared batch on the native engine (each
    with n_ctx of KV, counted by the fit check); more wait their turn. llama.cpp runs one."""
    check_n_ctx(n_ctx, model_window_ok=False)  # the fit check needs the window's size
    check_n_threads(n_threads)
    check_kv_type(kv_type)  # one set for every backend: a refusal here never depends on `auto`'s choice
    check_max_parallel(max_parallel)
    path = resolve_model_path(model)
    gguf = _open_gguf(path)  # mapped once: the fit check and the native engine share it
    n_ctx = fit_context(n_ctx, gguf, os.path.basename(path))  # warns above the trained context
    one_at_a_time = backend in ("llama.cpp", "llamacpp", "llama_cpp")  # it ignores max_parallel
    _check_fit(path, n_ctx, kv_type, memory_budget, gguf, 1 if one_at_a_time else max_parallel)
    if max_parallel > 1:
        backend_options["max_parallel"] = max_parallel
    be = open_backend(path, backend, gguf_file=gguf, n_ctx=n_ctx, n_threads=n_threads, kv_type=kv_type,
                      **backend_options)
    try:
        for name, where in (adapters or {}).items():
            be.load_adapter(name, where)
    except BaseException:
        be.close()
        raise
    chat_format, name = chat_format_for(model, be.chat_template is not None)
    return LLM(be, path, template_limits=template_limits, defaults=defaults, chat_format=chat_format, name=name)


def _open_gguf(path: str) -> Any:
    """The validated mapping of a GGUF file, or None when it cannot be read here (the backend
    then reports the problem precisely, or llama.cpp reads a file our reader does not)."""
    try:
        from .gguf import GGUFFile

        return GGUFFile(path)
    except (ImportError, EdgegenError, OSError):
        return None


def _check_fit(path: str, n_ctx: int, kv_type: str, budget: Union[None, int, str], gguf: Any = None,
               n_parallel: int = 1) -> None:
    try:
        from .fit import check_model_fit
    except ImportError:  # fit estimates not in this build: weights alone must fit an explicit budget
        if isinstance(budget, int) and os.path.getsize(path) > budget:
            raise MemoryBudgetError(f"{os.path.basename(path)} weights exceed the {budget}-byte memory budget") from None
        return
    try:
        check_model_fit(path, n_ctx, kv_type, budget=budget, gguf_file=gguf, n_parallel=n_parallel)
    except MemoryBudgetError:
        raise
    except (ModelNotFoundError, ValueError, OSError) as exc:
        # The estimate needs readable GGUF metadata; let the backend report a bad file precisely.
        if isinstance(exc, ModelNotFoundError):
            raise


@dataclass(frozen=True)
class PreparedPrompt:
    """A prompt made ready for one LLM: the text it runs (a rendered chat, or a raw prompt) and
    its token ids, from `LLM.prepare_chat()` / `LLM.prepare()`. Ids belong to the model that made
    them: an `LLM` handed another model's PreparedPrompt prepares it again from `messages`/`text`."""

    text: str
    ids: tuple[int, ...]
    messages: Optional[tuple[dict[str, Any], ...]] = None  # the validated chat; None for a raw prompt
    add_generation_prompt: bool = True
    llm: Optional["LLM"] = field(default=None, repr=False, compare=False)
    tools: Optional[Any] = None  # the edgegen.structured.ToolSpec the prompt offers, if any


class LLM:
    """A loaded local model. A backend with `max_parallel` > 1 (the native engine loaded with
    `max_parallel=N`) runs up to N generations from any threads at once in one shared batch;
    otherwise one runs at a time and calls from other threads wait."""

    def __init__(
        self,
        backend: Backend,
        model_path: str = "",
        *,
        template_limits: TemplateLimits = TemplateLimits(),
        defaults: Optional[SamplingParams] = None,
        chat_format: str = "template",
        name: Optional[str] = None,
    ) -> None:
        if chat_format not in FORMATS:
            raise InvalidRequestError(f"chat_format must be one of {', '.join(FORMATS)}, got {chat_format!r}")
        self.backend = backend
        self.model_path = model_path
        # "template": the file's chat template (a file without one runs chat as completion);
        # "completion": a base model; or a family whose known template the file lacks
        self.chat_format = chat_format if chat_format != "template" or backend.chat_template else "completion"
        self._name = name
        self.template_limits = template_limits
        self.defaults = (defaults or SamplingParams()).validate()
        self._lock = threading.Lock()
        self._owner: Optional[int] = None
        self._open_streams: dict[int, int] = {}  # thread id -> open streams (parallel backends)

    # ---- facts ----------------------------------------------------------------------------------
    @property
    def backend_name(self) -> str:
        return self.backend.name

    @property
    def model(self) -> str:
        return self.backend.model_name or os.path.basename(self.model_path)

    @property
    def name(self) -> str:
        """A short name for people: the store name, else the file's name without .gguf."""
        return self._name or os.path.splitext(os.path.basename(self.model_path))[0] or self.model

    @property
    def is_base_model(self) -> bool:
        """True when chat runs as a plain completion (no chat template to follow)."""
        return self.chat_format == "completion"

    @property
    def n_ctx(self) -> int:
        return self.backend.n_ctx

    @property
    def chat_template(self) -> Optional[str]:
        return self.backend.chat_template

    def __repr__(self) -> str:
        return f"LLM(model={self.model!r}, backend={self.backend_name!r}, n_ctx={self.n_ctx})"

    # ---- LoRA adapters --------------------------------------------------------------------------
    def load_adapter(self, name: str, path: Union[str, os.PathLike]) -> Any:
        """Load a LoRA adapter (checked against this model) for requests to select by name."""
        with self._lock:
            return self.backend.load_adapter(name, path)

    @property
    def adapters(self) -> list[Any]:
        """The loaded adapters (edgegen.adapters.AdapterInfo)."""
        return self.backend.adapter_info()

    # ---- tokenizer ------------------------------------------------------------------------------
    def tokenize(self, text: str, *, add_special: bool = True, parse_special: bool = True) -> list[int]:
        """Text -> token ids, exactly as `stream(text)` tokenizes its prompt."""
        _check_text(text)
        return self.backend.tokenize(text, add_special, parse_special)

    def detokenize(self, ids: Sequence[int], *, special: bool = False) -> str:
        """Token ids -> text (invalid UTF-8 from a partial sequence becomes U+FFFD)."""
        for i in ids:
            if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < self.backend.n_vocab:
                raise TokenizerError(f"token id {i!r} outside the vocabulary (0..{self.backend.n_vocab - 1})")
        return self.backend.detokenize(ids, special).decode("utf-8", errors="replace")

    # ---- prompts: chat templates and prepared prompts -------------------------------------------
    def _special_text(self, token_id: Optional[int]) -> str:
        return "" if token_id is None else self.backend.token_bytes(token_id, special=True).decode("utf-8", "replace")

    def render_chat(self, messages: Sequence[Mapping[str, Any]], *, add_generation_prompt: bool = True,
                    tools: Optional[Any] = None) -> str:
        """The prompt text the chat template makes of `messages`; for a base model (no template,
        see edgegen.chat_formats) the messages' plain text. `tools` (a ToolSpec) are offered in the
        template's own convention or the default tool prompt (docs/structured.md)."""
        from .structured.tools import template_has_tools, tool_messages

        be = self.backend
        template = None
        if self.chat_format == "template":
            template = be.chat_template
        elif self.chat_format != "completion":
            template = family_template(self.chat_format)
        native = template_has_tools(template)
        extra: dict[str, Any] = {}
        if tools is not None or any(m.get("tool_calls") or m.get("role") == "tool" for m in messages):
            messages = tool_messages(messages, tools, native)
            if native and tools is not None and tools.offered:
                extra["tools"] = [t.to_openai() for t in tools.offered]
        if self.chat_format == "completion":
            return completion_prompt(validate_messages(messages))
        return render_chat(
            template, messages, bos_token=self._special_text(be.bos_id), eos_token=self._special_text(be.eos_id),
            add_generation_prompt=add_generation_prompt, limits=self.template_limits, **extra,
        )

    def prepare_chat(self, messages: Sequence[Mapping[str, Any]], *, add_generation_prompt: bool = True,
                     tools: Optional[Any] = None) -> PreparedPrompt:
        """`messages` rendered through the chat template and tokenized, once, for `chat()`."""
        msgs = validate_messages(messages)
        text = self.render_chat(msgs, add_generation_prompt=add_generation_prompt, tools=tools)
        _check_text(text)
        be = self.backend
        bos_text = self._special_text(be.bos_id)
        # The template usually writes BOS itself; add it only when the model wants one and it is missing.
        add = be.add_bos and not (bos_text and text.startswith(bos_text))
        ids = be.tokenize(text, add, True)
        return PreparedPrompt(text, tuple(ids), tuple(msgs), add_generation_prompt, self, tools)

    def prepare(self, prompt: str) -> PreparedPrompt:
        """A raw prompt (no template) tokenized once, for `stream()` / `generate()`."""
        return PreparedPrompt(prompt, tuple(self.tokenize(prompt)), llm=self)

    def chat_prompt_ids(self, messages: Sequence[Mapping[str, Any]], *, add_generation_prompt: bool = True) -> list[int]:
        return list(self.prepare_chat(messages, add_generation_prompt=add_generation_prompt).ids)

    def _own(self, prepared: PreparedPrompt) -> PreparedPrompt:
        """`prepared` when this LLM made it; else the same prompt prepared for this model."""
        if prepared.llm is self:
            return prepared
        if prepared.messages is not None:
            return self.prepare_chat(prepared.messages, add_generation_prompt=prepared.add_generation_prompt,
                                     tools=prepared.tools)
        return self.prepare(prepared.text)

    def check_request(self, prompt: PreparedPrompt, params: SamplingParams) -> None:
        """Raise now what generating `prompt` with `params` would raise before its first token:
        InvalidRequestError (empty prompt, logit_bias id outside the vocabulary) or
        ContextOverflowError (the prompt leaves no room in the window)."""
        ids = self._own(prompt).ids
        self.backend.check_adapters(params.adapters)
        for token in params.logit_bias:
            if token >= self.backend.n_vocab:
                raise InvalidRequestError(f"logit_bias token id {token} outside the vocabulary", param="logit_bias")
        if not ids:
            raise InvalidRequestError("the prompt is empty: it produced no tokens to continue from")
        if len(ids) >= self.n_ctx:
            raise ContextOverflowError(
                f"prompt is {len(ids)} tokens; the context window is {self.n_ctx} (leaving no room to generate)"
            )

    # ---- prompt cache files (edgegen.prompt_cache) -----------------------------------------------
    def save_prefix(self, prefix: Union[str, Sequence[Mapping[str, Any]]], path: Union[str, os.PathLike]) -> int:
        """Compute the KV of a prefix (a text, or chat messages such as the system prompt) and write
        it to `path` atomically; it also stays cached for this LLM. Returns its token count."""
        from .prompt_cache import save_prefix

        return save_prefix(self, prefix, path)

    def load_prefix(self, path: Union[str, os.PathLike]) -> int:
        """Load a prefix written by save_prefix (on this model file, engine and KV type): prompts
        that start with it skip computing it. Raises PromptCacheError for a file it cannot trust."""
        from .prompt_cache import load_prefix

        return load_prefix(self, path)

    def ensure_prefix(self, prefix: Union[str, Sequence[Mapping[str, Any]]], path: Union[str, os.PathLike]) -> str:
        """Load `path` if it holds this prefix for this model ('loaded'); else compute the prefix
        and (re)write the file ('computed')."""
        from .prompt_cache import ensure_prefix

        return ensure_prefix(self, prefix, path)

    # ---- generation -----------------------------------------------------------------------------
    def stream(
        self,
        prompt: Union[str, PreparedPrompt],
        params: Optional[SamplingParams] = None,
        *,
        cancel: Optional[threading.Event] = None,
        **sampling: Any,
    ) -> TextStream:
        """Stream a raw completion of `prompt` (no chat template), or of a PreparedPrompt as it is.
        `response_format=`, `grammar=` (Lark or GBNF) or `regex=` constrain the output while it is
        decoded (docs/structured.md)."""
        structured = pop_structured(sampling, chat=False)
        prepared = self._own(prompt) if isinstance(prompt, PreparedPrompt) else self.prepare(prompt)
        return self._stream_prepared(prepared, params, cancel, sampling, structured)

    def generate(
        self,
        prompt: Union[str, PreparedPrompt],
        params: Optional[SamplingParams] = None,
        *,
        cancel: Optional[threading.Event] = None,
        **sampling: Any,
    ) -> CompletionResult:
        text, last, timings = collect(self.stream(prompt, params, cancel=cancel, **sampling))
        return CompletionResult(
            text=text, finish_reason=last.finish_reason or "stop", usage=last.usage or Usage(),
            model=self.model, route="local", backend=self.backend_name, timings=timings,
        )

    def chat(
        self,
        messages: Union[Sequence[Mapping[str, Any]], PreparedPrompt],
        params: Optional[SamplingParams] = None,
        *,
        stream: bool = False,
        cancel: Optional[threading.Event] = None,
        **sampling: Any,
    ) -> Union[ChatResult, TextStream]:
        """Chat completion through the model's template; `stream=True` returns a TextStream.
        `messages` may be a PreparedPrompt from `prepare_chat()` (not rendered again).
        Structured output: `response_format=`, `grammar=`, `regex=`, and OpenAI `tools=` with
        `tool_choice=` / `parallel_tool_calls=` (calls come back in `message.tool_calls`, or as
        chunks' `tool_calls` deltas when streaming; see docs/structured.md)."""
        structured = pop_structured(sampling, chat=True)
        if isinstance(messages, PreparedPrompt):
            prepared = self._own(messages)
            if prepared.tools != structured.tools:  # prepared for other tools: offer these instead
                prepared = self.prepare_chat(prepared.messages or (), tools=structured.tools,
                                             add_generation_prompt=prepared.add_generation_prompt)
        else:
            prepared = self.prepare_chat(messages, tools=structured.tools)
        chunks = self._stream_prepared(prepared, params, cancel, sampling, structured)
        if stream:
            return TextStream(tool_chunks(chunks), chunks.cancel_event) if structured.calls_tools else chunks
        text, last, timings = collect(chunks)
        finish, calls = last.finish_reason or "stop", ()
        if structured.calls_tools:
            from .structured.tools import parse_tool_output

            text, parsed = parse_tool_output(text)
            calls = tuple(parsed)
            finish = "tool_calls" if calls and finish == "stop" else finish
        return ChatResult(
            message=ChatMessage("assistant", text, calls), finish_reason=finish,  # type: ignore[arg-type]
            usage=last.usage or Usage(), model=self.model, route="local", backend=self.backend_name,
            timings=timings,
        )

    def _stream_prepared(
        self, prepared: PreparedPrompt, params: Optional[SamplingParams], cancel: Optional[threading.Event], overrides: dict,
        structured: StructuredRequest = StructuredRequest(),
    ) -> TextStream:
        p = (params or self.defaults).with_overrides(**overrides) if overrides else (params or self.defaults).validate()
        self.check_request(prepared, p)
        ids = list(prepared.ids)
        event = cancel if cancel is not None else threading.Event()
        mask = self._token_mask(structured)  # compiled now: a bad constraint fails at the call
        return TextStream(self._run(ids, p, event, mask), event)

    def check_structured(self, structured: StructuredRequest) -> None:
        """Raise now what the request's constraint would raise at its call (ConstraintError for
        a bad schema, grammar or tool; the compiled result is cached for the run)."""
        self._token_mask(structured)

    def _token_mask(self, structured: StructuredRequest) -> Any:
        constraint = structured.decoding_constraint
        if constraint is None:
            return None
        if not getattr(self.backend, "supports_constraints", False):
            raise InvalidRequestError(f"the {self.backend_name} backend cannot enforce structured output")
        from .structured.engine import token_mask

        return token_mask(self.backend, constraint)

    def _run(self, prompt_ids: list[int], p: SamplingParams, cancel: threading.Event, mask: Any = None) -> Iterator[TextChunk]:
        me = threading.get_ident()
        slots = int(getattr(self.backend, "max_parallel", 1))
        if slots > 1:  # the backend schedules; one thread may hold several streams, up to the slots
            with self._lock:
                if self._open_streams.get(me, 0) >= slots:
                    raise InvalidRequestError(
                        f"this thread already holds {slots} open streams of this LLM (max_parallel); close() one first")
                self._open_streams[me] = self._open_streams.get(me, 0) + 1
            try:
                yield from self._assemble(prompt_ids, p, cancel)
            finally:
                with self._lock:
                    self._open_streams[me] -= 1
                    if not self._open_streams[me]:
                        del self._open_streams[me]
            return
        if self._owner == me:
            raise InvalidRequestError("another stream of this LLM is still open in this thread; close() it first")
        with self._lock:
            self._owner = me
            try:
                yield from self._assemble(prompt_ids, p, cancel, mask)
            finally:
                self._owner = None

    def _assemble(self, prompt_ids: list[int], p: SamplingParams, cancel: threading.Event, mask: Any = None) -> Iterator[TextChunk]:
        be = self.backend
        room = self.n_ctx - len(prompt_ids)  # the prompt fills the window first
        max_new = room if p.max_tokens is None else min(p.max_tokens, room)
        decoder = Utf8StreamDecoder()
        stopper = StopStringMatcher(p.stop)
        n_generated = 0
        pending: list[int] = []  # ids sampled since the last chunk
        finish: Optional[str] = None
        tail = ""
        matched_stop = False
        # a constrained generation hands its per-step token mask to the backend (edgegen.structured)
        tokens = be.generate_tokens(prompt_ids, p, cancel, constraint=mask) if mask is not None else \
            be.generate_tokens(prompt_ids, p, cancel)
        try:
            for token in tokens:
                if be.is_eog(token):
                    finish = "stop"
                    break
                n_generated += 1
                pending.append(token)
                out, hit = stopper.feed(decoder.feed(be.token_bytes(token)))
                if hit:
                    finish, tail, matched_stop = "stop", out, True
                    break
                if out:
                    yield TextChunk(out, tuple(pending), backend=be.name)
                    pending = []
                if n_generated >= max_new:
                    finish = "length"
                    break
                if cancel.is_set():
                    finish = "cancelled"
                    break
            else:  # the backend returned by itself: cancelled, or the context is full
                finish = "cancelled" if cancel.is_set() else "length"
        except EdgegenError:
            raise
        except Exception as exc:  # a backend failure is still a typed error for the caller
            raise EdgegenError(f"{be.name} backend failed during generation: {type(exc).__name__}: {exc}") from exc
        finally:
            tokens.close()
        if not matched_stop:  # release held-back text; a dangling partial character becomes U+FFFD
            rest, hit = stopper.feed(decoder.flush())
            tail = rest if hit else rest + stopper.flush()
        yield TextChunk(
            tail, tuple(pending), finish_reason=finish,  # type: ignore[arg-type]
            usage=Usage(len(prompt_ids), n_generated), backend=be.name,
        )


def _check_text(text: Any) -> None:
    if not isinstance(text, str):
        raise TokenizerError(f"text must be str, got {type(text).__name__}")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise TokenizerError(f"text is not valid Unicode (lone surrogate at index {exc.start})") from None
