"""Routing policy: local model, or a cloud endpoint only when the caller's policy allows it.

Routes (per call, or as the Router's default; the default default is `EDGEGEN_ROUTE`, else
"local"):

  local        the local model only; never opens a network connection.
  cloud        the cloud endpoint only.
  local-first  the local model; the cloud only when the local model cannot serve: not installed,
               over the memory budget, prompt beyond its context, or a local model/backend error
               (unsupported architecture, malformed file, broken template, backend failure).
               The caller's own mistakes (bad parameters, invalid text) never go to the cloud.
  cloud-first  the cloud; the local model when the cloud is unreachable, times out or stalls,
               resets, answers 5xx/429 (after its bounded retries) or sends a malformed stream.
               Auth and other 4xx errors are raised: they are configuration to fix, not load.

Fallback happens only before the first chunk reaches the caller; a failure later in a stream is
raised. Every result and chunk records where it ran (`route`) and why it fell back
(`fallback_reason`). An optional `redact(messages) -> messages` hook runs on a copy of the
messages before anything leaves the device.
"""
from __future__ import annotations

import argparse
import copy
import os
import threading
from dataclasses import replace
from typing import Any, Callable, Iterator, Mapping, Optional, Sequence, Union

from .errors import (
    CloudError,
    ContextOverflowError,
    EdgegenError,
    InvalidRequestError,
    MemoryBudgetError,
    ModelFormatError,
    ModelNotFoundError,
    RouteError,
    TemplateError,
    TokenizerError,
    UnsupportedModelError,
)
from .llm import LLM, PreparedPrompt
from .textstream import TextStream
from .sampling import SamplingParams
from .types import ChatResult, TextChunk

ROUTES = ("local", "local-first", "cloud-first", "cloud")  # ordered by how readily they use the cloud
_CLOUD_EXPOSURE = {name: i for i, name in enumerate(ROUTES)}
_CLOUD_FALLBACK_KINDS = {"connect_timeout", "unreachable", "timeout", "idle_timeout", "reset", "protocol"}

Messages = Union[Sequence[Mapping[str, Any]], PreparedPrompt]  # a PreparedPrompt from the local LLM's prepare_chat()
Redactor = Callable[[list[dict[str, Any]]], Sequence[Mapping[str, Any]]]


def parse_route(value: Optional[str]) -> str:
    if value not in ROUTES:
        raise RouteError(f"unknown route {value!r}; choose one of {', '.join(ROUTES)}")
    return value  # type: ignore[return-value]


def default_route() -> str:
    """The configured default: the EDGEGEN_ROUTE environment variable, else "local"."""
    return parse_route(os.environ.get("EDGEGEN_ROUTE", "local") or "local")


def cap_route(requested: Optional[str], allowed: str, default: Optional[str] = None) -> str:
    """The route a request gets under a server policy: what it asked for, lowered to at most the
    cloud exposure `allowed` permits (local < local-first < cloud-first < cloud). No request ->
    `default` (itself capped), else `allowed`. E.g. cap_route("cloud", "local-first") is
    "local-first"; cap_route("cloud", "local") is "local"."""
    allowed = parse_route(allowed)
    wanted = parse_route(requested if requested is not None else (default or allowed))
    return wanted if _CLOUD_EXPOSURE[wanted] <= _CLOUD_EXPOSURE[allowed] else allowed


def local_fallback_reason(exc: BaseException) -> Optional[str]:
    """Why a local failure may go to the cloud under local-first, or None when it may not."""
    if isinstance(exc, (InvalidRequestError, TokenizerError, RouteError)):
        return None  # the request itself is wrong; the cloud would be no better
    if isinstance(exc, ModelNotFoundError):
        return "local_not_installed"
    if isinstance(exc, ContextOverflowError):
        return "local_context_overflow"
    if isinstance(exc, MemoryBudgetError):
        return "local_memory_budget"
    if isinstance(exc, (UnsupportedModelError, ModelFormatError, TemplateError)):
        return f"local_error:{type(exc).__name__}"
    if isinstance(exc, EdgegenError) and not isinstance(exc, CloudError):
        return f"local_error:{type(exc).__name__}"
    return None


def cloud_fallback_reason(exc: BaseException) -> Optional[str]:
    """Why a cloud failure may run locally under cloud-first, or None when it may not."""
    if not isinstance(exc, CloudError):
        return None
    kind = getattr(exc, "kind", "")
    status = getattr(exc, "status", None)
    if kind in _CLOUD_FALLBACK_KINDS:
        return f"cloud_{kind}"
    if kind == "http" and isinstance(status, int) and (status >= 500 or status == 429):
        return f"cloud_http_{status}"
    return None


class Router:
    """Chat through the local model and/or a cloud endpoint under a routing policy.

    `local` is an `LLM`, a model name/path loaded on first local use (with `load_options`), or
    None (no local model). `cloud` is an `edgegen.Cloud` or None.
    """

    def __init__(
        self,
        local: Union[LLM, str, None] = None,
        cloud: Any = None,
        *,
        route: Optional[str] = None,
        redact: Optional[Redactor] = None,
        load_options: Optional[Mapping[str, Any]] = None,
    ) -> None:
        self.route = parse_route(route) if route is not None else default_route()
        self._local = local
        self.cloud = cloud
        self.redact = redact
        self.load_options = dict(load_options or {})
        self._load_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Router(route={self.route!r}, local={self._local!r}, cloud={self.cloud!r})"

    def local_llm(self) -> LLM:
        """The local model, loading it on first use (raises ModelNotFoundError etc.)."""
        with self._load_lock:
            if self._local is None:
                raise ModelNotFoundError("no local model configured")
            if not isinstance(self._local, LLM):
                from .llm import load

                self._local = load(self._local, **self.load_options)
            return self._local

    def close(self) -> None:
        if isinstance(self._local, LLM):
            self._local.backend.close()
        if self.cloud is not None:
            self.cloud.close()

    # ---- the call ------------------------------------------------------------------------------
    def chat(
        self,
        messages: Messages,
        params: Optional[SamplingParams] = None,
        *,
        route: Optional[str] = None,
        stream: bool = False,
        cancel: Optional[threading.Event] = None,
        **sampling: Any,
    ) -> Union[ChatResult, TextStream]:
        r = parse_route(route) if route is not None else self.route
        if r in ("cloud", "cloud-first") and self.cloud is None:
            raise RouteError(f"route {r!r} needs a cloud endpoint; none is configured")
        event = cancel if cancel is not None else threading.Event()
        if stream:
            chunks = self._route(r, lambda target: self._stream_on(target, messages, params, event, sampling))
            first = next(chunks)  # errors and fallbacks surface here, at the call, as for LLM.stream
            return TextStream(_prepend(first, chunks), event)
        # Non-streaming calls use each target's non-streaming API (a cloud reports usage there).
        result = next(self._route(r, lambda target: iter([self._result_on(target, messages, params, event, sampling)])))
        return result

    def _route(self, r: str, serve: Callable[[str], Iterator[Any]]) -> Iterator[Any]:
        """Items from the route's primary target, or from the fallback target when the primary
        fails before its first item under a policy that allows it (items get fallback_reason)."""
        if r in ("local", "cloud"):
            yield from serve(r)
            return
        primary, secondary = ("local", "cloud") if r == "local-first" else ("cloud", "local")
        why = local_fallback_reason if r == "local-first" else cloud_fallback_reason
        try:
            items = serve(primary)
            first = next(items)
        except EdgegenError as exc:
            reason = why(exc)
            if reason is None or (secondary == "cloud" and self.cloud is None):
                raise
            for item in serve(secondary):
                yield replace(item, fallback_reason=reason)
            return
        try:
            yield first
            yield from items
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()

    def _stream_on(self, target: str, messages: Messages, params: Any, cancel: threading.Event, sampling: dict) -> Iterator[TextChunk]:
        return self._local_stream(messages, params, cancel, sampling) if target == "local" else self._cloud_stream(messages, params, cancel, sampling)

    def _result_on(self, target: str, messages: Messages, params: Any, cancel: threading.Event, sampling: dict) -> ChatResult:
        if target == "local":
            return self.local_llm().chat(messages, params, cancel=cancel, **sampling)
        return self.cloud.chat(self._outgoing(messages), params, cancel=cancel, **sampling)

    def _local_stream(self, messages: Messages, params: Any, cancel: threading.Event, sampling: dict) -> Iterator[TextChunk]:
        stream = self.local_llm().chat(messages, params, stream=True, cancel=cancel, **sampling)
        with stream:
            for chunk in stream:
                yield replace(chunk, route="local")

    def _outgoing(self, messages: Messages) -> list[Any]:
        """A copy of the messages, through the redaction hook, ready to leave the device."""
        if isinstance(messages, PreparedPrompt):
            if messages.messages is None:
                raise RouteError("a raw prompt runs locally only (the cloud API is chat-shaped)")
            messages = messages.messages
        outgoing = copy.deepcopy([dict(m) for m in messages])
        if self.redact is not None:
            try:
                outgoing = list(self.redact(outgoing))
            except Exception as exc:  # a broken hook must not let unredacted text leave
                raise RouteError(f"redaction hook failed; nothing was sent: {exc}") from exc
        return outgoing

    def _cloud_stream(self, messages: Messages, params: Any, cancel: threading.Event, sampling: dict) -> Iterator[TextChunk]:
        stream = self.cloud.chat(self._outgoing(messages), params, stream=True, cancel=cancel, **sampling)
        with stream:
            yield from stream


# ---- CLI / server glue -------------------------------------------------------------------------

def add_route_arguments(parser: argparse.ArgumentParser) -> None:
    """Add --route and the --cloud-* flags (for `edgegen run`, `chat`, `serve`)."""
    g = parser.add_argument_group("cloud routing (nothing leaves the device unless --route allows it)")
    g.add_argument("--route", choices=ROUTES, default=None, help="local (default; or $EDGEGEN_ROUTE), cloud, local-first, cloud-first")
    g.add_argument("--cloud-url", default=None, help="OpenAI-compatible base URL, e.g. https://host/v1 (or $EDGEGEN_CLOUD_URL)")
    g.add_argument("--cloud-model", default=None, help="model name at the cloud endpoint (or $EDGEGEN_CLOUD_MODEL)")
    g.add_argument("--cloud-key-env", default="EDGEGEN_CLOUD_API_KEY", help="environment variable holding the API key")
    g.add_argument("--cloud-timeout", type=float, default=120.0, help="whole-request timeout, seconds")
    g.add_argument("--cloud-idle-timeout", type=float, default=30.0, help="longest silence inside a reply, seconds")


def cloud_from_args(args: argparse.Namespace) -> Any:
    url = args.cloud_url or os.environ.get("EDGEGEN_CLOUD_URL")
    if not url:
        return None
    from .cloud import Cloud

    model = args.cloud_model or os.environ.get("EDGEGEN_CLOUD_MODEL") or ""
    return Cloud(url, model, api_key_env=args.cloud_key_env, timeout=args.cloud_timeout, idle_timeout=args.cloud_idle_timeout)


def router_from_args(args: argparse.Namespace, local: Union[LLM, str, None], **load_options: Any) -> Router:
    """A Router from the flags `add_route_arguments` added; `local` as for `Router`."""
    route = args.route or default_route()
    cloud = cloud_from_args(args) if route != "local" else None  # route=local never builds a client
    return Router(local, cloud, route=route, load_options=load_options)


def _prepend(first: TextChunk, rest: Iterator[TextChunk]) -> Iterator[TextChunk]:
    try:
        yield first
        yield from rest
    finally:
        rest.close()  # type: ignore[attr-defined]
