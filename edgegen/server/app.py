"""The OpenAI-compatible HTTP API over one loaded model (FastAPI).

Routes: POST /v1/chat/completions, POST /v1/completions (JSON or SSE streams), GET /v1/models,
POST /v1/audio/speech (Piper voice, loaded on first use), GET /health, GET /metrics (Prometheus).

Every request is checked on the event loop side before it queues: body (UTF-8, JSON, types),
model name, sampling ranges, and for local generation the tokenized prompt against the context.
That check prepares the prompt (template rendered, text tokenized) as a `PreparedPrompt`, and the
job runs that same prepared prompt: nothing is rendered or tokenized twice.
Those failures are 4xx OpenAI-style bodies; a failure after an SSE stream started is sent as an
`error` event followed by `[DONE]`. Generation itself runs on the worker's slot threads
(`edgegen.server.worker`); a client that disconnects cancels its job.
"""
from __future__ import annotations

import asyncio
import contextlib
import hmac
import io
import json
import logging
import os
import threading
import time
import uuid
from http import HTTPStatus
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Optional, Union

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.concurrency import iterate_in_threadpool, run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..errors import EdgegenError
from ..llm import LLM, PreparedPrompt
from ..router import Router, cap_route
from ..sampling import SamplingParams
from ..structured.local import pop_structured
from ..structured.tools import merge_tool_deltas
from ..types import TextChunk
from .schemas import APIError, ChatCompletionRequest, CompletionRequest, SpeechRequest, parse_body
from .errors import TEXT_FIELDS, api_error, snake_case
from .worker import GenerationWorker, Job

log = logging.getLogger("edgegen.server")

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]")
# OpenAI's voice names, so stock clients work: each speaks with the server's Piper voice.
OPENAI_VOICES = frozenset({"alloy", "ash", "ballad", "coral", "echo", "fable", "nova", "onyx", "sage", "shimmer", "verse"})
TTS_MODELS = frozenset({"tts-1", "tts-1-hd", "gpt-4o-mini-tts", "piper"})


@dataclass
class ServerConfig:
    model_id: str  # the name clients pass as "model"
    api_key: Optional[str] = None  # Bearer key for /v1/*; None = open (loopback only, or --insecure)
    port: Optional[int] = None  # set on loopback binds: Host must be localhost/127.0.0.1/[::1]:port
    max_queue: int = 32
    route: str = "local"  # the most cloud exposure a request may ask for (cap_route)
    voice: Optional[str] = None  # Piper voice name or path; None = the packaged default
    voice_threads: Optional[int] = None
    defaults: SamplingParams = field(default_factory=lambda: SamplingParams(max_tokens=1024))
    asr: Optional[str] = None  # recogniser for /v1/audio/transcriptions; None = whisper-tiny.en
    asr_threads: Optional[int] = None
    prompt_cache: Any = None  # edgegen.prompt_cache.CacheDir: system prompts kept on disk


# ---- security: Host check and API key, as plain ASGI middleware (keeps streaming untouched) --------

class _Guard:
    def __init__(self, app: Any, config: ServerConfig) -> None:
        self.app = app
        self.key = config.api_key.encode() if config.api_key else None
        self.hosts: Optional[set[bytes]] = None
        if config.port is not None:
            self.hosts = {f"{name}:{config.port}".encode() for name in LOOPBACK_NAMES}
            if config.port == 80:
                self.hosts |= {name.encode() for name in LOOPBACK_NAMES}

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        if self.hosts is not None and headers.get(b"host", b"").lower() not in self.hosts:
            # A DNS-rebinding page reaches a loopback server under its own host name: refuse it.
            return await _send_error(send, APIError(400, "invalid Host header for a loopback server", code="invalid_host"))
        if self.key is not None and scope["path"].startswith("/v1/"):
            auth = headers.get(b"authorization", b"")
            given = auth[7:].strip() if auth[:7].lower() == b"bearer " else b""
            if not hmac.compare_digest(given, self.key):
                return await _send_error(send, APIError(401, "missing or invalid API key", type="authentication_error", code="invalid_api_key"))
        return await self.app(scope, receive, send)


async def _send_error(send: Any, err: APIError) -> None:
    body = json.dumps(err.body()).encode()
    await send({"type": "http.response.start", "status": err.status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


# ---- errors ----------------------------------------------------------------------------------------

def _error_response(err: APIError) -> JSONResponse:
    return JSONResponse(err.body(), status_code=err.status, headers=err.headers)


def _sse(obj: Any) -> str:
    return f"data: {json.dumps(obj, ensure_ascii=False)}\n\n"


def _finish(reason: Optional[str]) -> Optional[str]:
    # "cancelled" only reaches a client that is gone; keep the OpenAI vocabulary.
    return None if reason is None else (reason if reason in ("length", "tool_calls") else "stop")


# ---- the application -------------------------------------------------------------------------------

class _Server:
    """State shared by the routes: the model, its router and worker, the lazily loaded voice."""

    def __init__(self, llm: LLM, config: ServerConfig, router: Optional[Router]) -> None:
        self.llm = llm
        self.config = config
        self.router = router or Router(llm, None, route="local")
        self.worker = GenerationWorker(slots=max(1, int(getattr(llm.backend, "max_parallel", 1))), max_queue=config.max_queue)
        self.model_names = {config.model_id, llm.model}
        self._voice: Any = None
        self._voice_lock = threading.Lock()  # one load, then one synthesis at a time (it uses every core)

    def check_model(self, name: str) -> None:
        cloud = self.router.cloud
        if name not in self.model_names and not (cloud is not None and name == getattr(cloud, "model", None)):
            raise APIError(404, f"model {name!r} is not served here; GET /v1/models lists the models", param="model", code="model_not_found")

    def adapter_names(self) -> tuple[str, ...]:
        return tuple(a.name for a in self.llm.adapters)

    def voice(self) -> Any:
        if self._voice is None:
            from ..audio.voice import load_voice

            self._voice = load_voice(self.config.voice, threads=self.config.voice_threads)
        return self._voice

    # -- request preparation (threadpool: templates and tokenizers are CPU work) --
    def prepare_chat(self, body: ChatCompletionRequest) -> tuple[Union[list[dict[str, Any]], PreparedPrompt], SamplingParams, str]:
        """(messages, or the prepared prompt on the local route; params; route)."""
        self.check_model(body.model)
        route = cap_route(body.route, self.config.route)
        params = self.config.defaults.with_overrides(**body.sampling(self.adapter_names()))
        messages = [m.as_dict() for m in body.messages]
        structured = pop_structured(body.structured(), chat=True)  # a bad schema or tool is a 400 now
        if route != "local":  # a local failure may go to the cloud: the router decides, at run time
            return messages, params, route
        prepared = self.llm.prepare_chat(messages, tools=structured.tools)
        self.llm.check_request(prepared, params)  # fail now with a 4xx rather than after queueing
        self.llm.check_structured(structured)  # compiles now (cached for the run)
        if self.config.prompt_cache is not None:
            self.config.prompt_cache.remember(messages)
        return prepared, params, route

    def prepare_completion(self, body: CompletionRequest) -> tuple[PreparedPrompt, SamplingParams]:
        self.check_model(body.model)
        params = self.config.defaults.with_overrides(**body.sampling(self.adapter_names()))
        prepared = self.llm.prepare(body.prompt_text())
        self.llm.check_request(prepared, params)
        self.llm.check_structured(pop_structured(body.structured(), chat=False))
        return prepared, params


async def _collect(job: Job, request: Request) -> tuple[str, TextChunk, list[dict[str, Any]]]:
    """All of a job's text, cancelling it if the client disconnects while waiting."""

    async def watch() -> None:
        while True:  # the body is read already, so the next message is the disconnect
            message = await request.receive()
            if message["type"] == "http.disconnect":
                job.cancel.set()
                return

    watcher = asyncio.create_task(watch())
    parts: list[str] = []
    calls: list[dict[str, Any]] = []
    last: Optional[TextChunk] = None
    try:
        async for chunk in job.events():
            parts.append(chunk.text)
            merge_tool_deltas(calls, chunk.tool_calls)
            last = chunk
    finally:
        watcher.cancel()
    if last is None or last.finish_reason is None:
        raise EdgegenError("generation ended without a final chunk")
    return "".join(parts), last, calls


def create_app(llm: LLM, config: ServerConfig, router: Optional[Router] = None) -> Any:
    """The ASGI application serving `llm` (wrapped in the Host/API-key guard)."""
    state = _Server(llm, config, router)

    @contextlib.asynccontextmanager
    async def lifespan(_: Any) -> AsyncIterator[None]:
        yield
        state.worker.close()  # cancel queued and running generations on shutdown

    app = FastAPI(title="edgegen", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.state.server = state

    @app.exception_handler(APIError)
    async def _api_error(_: Request, exc: APIError) -> JSONResponse:
        return _error_response(exc)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _error_response(APIError(exc.status_code, str(exc.detail), code=snake_case(HTTPStatus(exc.status_code).phrase)))

    @app.exception_handler(Exception)
    async def _any_error(request: Request, exc: Exception) -> JSONResponse:
        return _error_response(api_error(exc, TEXT_FIELDS.get(request.url.path)))

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "model": config.model_id, "backend": llm.backend_name, "n_ctx": llm.n_ctx,
                "queue": state.worker.stats(), "rss_bytes": _rss_bytes(), "threads": threading.active_count(),
                "kv": getattr(llm.backend, "kv_stats", lambda: None)()}

    @app.get("/metrics")
    async def metrics() -> Response:
        from .metrics import render_metrics

        text = await run_in_threadpool(render_metrics, state.llm, state.worker, _rss_bytes())
        return Response(text, media_type="text/plain; version=0.0.4; charset=utf-8")

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        entry = {"id": config.model_id, "object": "model", "created": 0, "owned_by": "edgegen"}
        if llm.adapters:  # LoRA adapters a request can select (docs/adapters.md)
            entry["adapters"] = [dict(a.to_dict(), id=i) for i, a in enumerate(llm.adapters)]
        return {"object": "list", "data": [entry]}

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Response:
        body = parse_body(ChatCompletionRequest, await request.body())
        try:
            chat, params, route = await run_in_threadpool(state.prepare_chat, body)
            job = state.worker.submit(lambda cancel: state.router.chat(chat, params, route=route, stream=True, cancel=cancel,
                                                                       **body.structured()))
        except Exception as exc:
            return _error_response(api_error(exc))
        rid, created = f"chatcmpl-{uuid.uuid4().hex[:24]}", int(time.time())
        model = body.model
        if body.stream:
            return _sse_response(_chat_events(job, rid, created, model, body.include_usage))
        try:
            text, last, calls = await _collect(job, request)
        except Exception as exc:
            return _error_response(api_error(exc))
        message: dict[str, Any] = {"role": "assistant", "content": text}
        if calls:
            message = {"role": "assistant", "content": text or None, "tool_calls": calls}
        return JSONResponse({
            "id": rid, "object": "chat.completion", "created": created, "model": model,
            "choices": [{"index": 0, "message": message, "logprobs": None,
                         "finish_reason": _finish(last.finish_reason)}],
            "usage": (last.usage.to_dict() if last.usage else None),
        })

    @app.post("/v1/completions")
    async def completions(request: Request) -> Response:
        body = parse_body(CompletionRequest, await request.body())
        try:
            prompt, params = await run_in_threadpool(state.prepare_completion, body)
            job = state.worker.submit(lambda cancel: llm.stream(prompt, params, cancel=cancel, **body.structured()))
        except Exception as exc:
            return _error_response(api_error(exc, "prompt"))
        rid, created = f"cmpl-{uuid.uuid4().hex[:24]}", int(time.time())
        if body.stream:
            return _sse_response(_completion_events(job, rid, created, body.model, body.include_usage))
        try:
            text, last, _calls = await _collect(job, request)
        except Exception as exc:
            return _error_response(api_error(exc, "prompt"))
        return JSONResponse({
            "id": rid, "object": "text_completion", "created": created, "model": body.model,
            "choices": [{"index": 0, "text": text, "logprobs": None, "finish_reason": _finish(last.finish_reason)}],
            "usage": (last.usage.to_dict() if last.usage else None),
        })

    @app.post("/v1/audio/speech")
    async def speech(request: Request) -> Response:
        body = parse_body(SpeechRequest, await request.body())
        fmt, speed = check_speech(body, config)
        return await _speech_response(state, body.input, fmt, speed)

    @app.post("/v1/audio/transcriptions")
    async def transcriptions(request: Request) -> Response:
        from .transcriptions import handle_transcription

        return await handle_transcription(state, request)

    return _Guard(app, config)


def check_speech(body: SpeechRequest, config: ServerConfig) -> tuple[str, float]:
    """(response format, speed) of a speech request, or APIError(4xx) naming the bad field."""
    fmt = body.response_format or "wav"  # no mp3 encoder on board: WAV is our default
    if fmt not in ("wav", "pcm"):
        raise APIError(400, f"response_format {fmt!r} is not supported; use 'wav' or 'pcm'", param="response_format")
    if body.model not in TTS_MODELS and body.model != (config.voice or "joe"):
        raise APIError(404, f"speech model {body.model!r} is not served here; use one of {sorted(TTS_MODELS)}", param="model", code="model_not_found")
    voice_name = body.voice if isinstance(body.voice, str) else body.voice.get("id")
    if voice_name not in OPENAI_VOICES | {"default", "joe", config.voice}:
        raise APIError(400, f"voice {voice_name!r} is not available", param="voice")
    speed = 1.0 if body.speed is None else body.speed
    if not 0.25 <= speed <= 4.0:
        raise APIError(400, "speed must be between 0.25 and 4.0", param="speed")
    if not body.input.strip():
        raise APIError(400, "input has nothing to say", param="input")
    return fmt, speed


def _sse_response(events: AsyncIterator[str]) -> StreamingResponse:
    return StreamingResponse(events, media_type="text/event-stream", headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


async def _chat_events(job: Job, rid: str, created: int, model: str, include_usage: bool) -> AsyncIterator[str]:
    head = {"id": rid, "object": "chat.completion.chunk", "created": created, "model": model}
    usage = None
    try:
        yield _sse({**head, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]})
        async for chunk in job.events():
            if chunk.text:
                yield _sse({**head, "choices": [{"index": 0, "delta": {"content": chunk.text}, "finish_reason": None}]})
            if chunk.tool_calls:  # OpenAI's tool-call deltas: id and name first, then argument pieces
                yield _sse({**head, "choices": [{"index": 0, "delta": {"tool_calls": list(chunk.tool_calls)},
                                                 "finish_reason": None}]})
            if chunk.finish_reason is not None:
                usage = chunk.usage
                yield _sse({**head, "choices": [{"index": 0, "delta": {}, "finish_reason": _finish(chunk.finish_reason)}]})
        if include_usage and usage is not None:
            yield _sse({**head, "choices": [], "usage": usage.to_dict()})
    except Exception as exc:  # after the 200 went out, an error can only be an event
        yield _sse(api_error(exc).body())
    yield "data: [DONE]\n\n"


async def _completion_events(job: Job, rid: str, created: int, model: str, include_usage: bool) -> AsyncIterator[str]:
    head = {"id": rid, "object": "text_completion", "created": created, "model": model}
    usage = None
    try:
        async for chunk in job.events():
            if chunk.text or chunk.finish_reason is not None:
                yield _sse({**head, "choices": [{"index": 0, "text": chunk.text, "logprobs": None,
                                                 "finish_reason": _finish(chunk.finish_reason)}]})
            if chunk.finish_reason is not None:
                usage = chunk.usage
        if include_usage and usage is not None:
            yield _sse({**head, "choices": [], "usage": usage.to_dict()})
    except Exception as exc:
        yield _sse(api_error(exc, "prompt").body())
    yield "data: [DONE]\n\n"


async def _speech_response(state: _Server, text: str, fmt: str, speed: float) -> Response:
    def synthesize_wav() -> bytes:
        from ..audio.wav import write_wav

        with state._voice_lock:
            voice = state.voice()
            out = io.BytesIO()
            write_wav(out, voice.stream(text, length_scale=voice.config.length_scale / speed))
            return out.getvalue()

    try:
        if fmt == "wav":
            return Response(await run_in_threadpool(synthesize_wav), media_type="audio/wav")
        voice = await run_in_threadpool(_locked_voice, state)
        rate = voice.sample_rate
        chunks = voice.stream(text, length_scale=voice.config.length_scale / speed)  # checks settings now
    except Exception as exc:
        return _error_response(api_error(exc, "input"))

    def pcm() -> Any:
        from ..audio.wav import float_to_pcm16

        with state._voice_lock:
            for chunk in chunks:  # clause by clause: the first audio leaves after the first clause
                yield float_to_pcm16(chunk.samples)

    # Raw mono s16le at the voice's own rate (Piper voices are mostly 22050 Hz; OpenAI's pcm is 24 kHz).
    return StreamingResponse(iterate_in_threadpool(pcm()), media_type="audio/pcm",
                             headers={"X-Sample-Rate": str(rate), "X-Audio-Format": "s16le; channels=1"})


def _locked_voice(state: _Server) -> Any:
    with state._voice_lock:
        return state.voice()


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0
