"""POST /v1/audio/transcriptions: OpenAI's speech-to-text endpoint over the local recogniser.

Multipart form as OpenAI defines it: `file` (any format PyAV reads), `model` ("whisper-1" or the
recogniser's own name), optional `language`, `prompt`, `response_format` (json, text,
verbose_json) and `temperature`. Unusable audio (empty, not audio, truncated, over
`MAX_AUDIO_SECONDS`) is a 400 naming the problem; an upload over `MAX_UPLOAD_BYTES` is a 413.
The recogniser is loaded on the first request and serves one transcription at a time (it uses
every thread it was given), off the event loop.
"""
from __future__ import annotations

import threading
from typing import Any, Optional

from fastapi import Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from starlette.concurrency import run_in_threadpool

from ..errors import AudioFormatError, InvalidRequestError
from .schemas import APIError

MAX_UPLOAD_BYTES = 25 << 20  # OpenAI's limit
MAX_AUDIO_SECONDS = 3600.0
RESPONSE_FORMATS = ("json", "text", "verbose_json")
OPENAI_ASR_MODELS = {"whisper-1", "gpt-4o-transcribe", "gpt-4o-mini-transcribe"}
_FIELDS = {"file", "model", "language", "prompt", "response_format", "temperature", "timestamp_granularities[]",
           "chunking_strategy", "include[]", "stream"}
_LANGUAGE_NAMES = {"en": "english"}


class _Recogniser:
    """The server's one ASR, loaded lazily; one transcription at a time."""

    def __init__(self, name: str, threads: Optional[int]) -> None:
        self.name, self.threads = name, threads
        self.lock = threading.Lock()
        self._asr: Any = None

    def transcribe(self, data: bytes, **options: Any) -> Any:
        with self.lock:
            if self._asr is None:
                from ..audio.asr import load_asr

                self._asr = load_asr(self.name, threads=self.threads)
            return self._asr.transcribe(data, max_seconds=MAX_AUDIO_SECONDS, **options)


def recogniser(state: Any) -> _Recogniser:
    rec = getattr(state, "_recogniser", None)
    if rec is None:
        config = state.config
        rec = _Recogniser(getattr(config, "asr", None) or "whisper-tiny.en", getattr(config, "asr_threads", None))
        state._recogniser = rec
    return rec


async def _form(request: Request) -> Any:
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise APIError(400, "send the audio as multipart/form-data with a 'file' field", param="file")
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > MAX_UPLOAD_BYTES + (64 << 10):
        raise APIError(413, f"upload is larger than {MAX_UPLOAD_BYTES >> 20} MB", code="request_too_large")
    try:
        return await request.form(max_files=1, max_fields=32, max_part_size=MAX_UPLOAD_BYTES)
    except AssertionError:  # starlette without python-multipart
        raise APIError(500, "this server lacks python-multipart: pip install 'edgegen[server]'", type="server_error") from None
    except Exception as exc:
        raise APIError(400, f"malformed multipart body: {exc}", param="file") from None


def _text_field(form: Any, name: str) -> Optional[str]:
    value = form.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise APIError(400, f"{name} must be a text field", param=name)
    return value


async def handle_transcription(state: Any, request: Request) -> Response:
    form = await _form(request)
    upload = form.get("file")
    if upload is None or isinstance(upload, str):
        raise APIError(400, "missing the audio 'file' field", param="file")
    model = _text_field(form, "model")
    rec = recogniser(state)
    if not model:
        raise APIError(400, "missing 'model' (use 'whisper-1' or the recogniser's name)", param="model")
    if model not in OPENAI_ASR_MODELS | {rec.name, "whisper-tiny.en"}:
        raise APIError(404, f"transcription model {model!r} is not served here; use 'whisper-1' or {rec.name!r}",
                       param="model", code="model_not_found")
    fmt = _text_field(form, "response_format") or "json"
    if fmt not in RESPONSE_FORMATS:
        raise APIError(400, f"response_format {fmt!r} is not supported; use one of {RESPONSE_FORMATS}", param="response_format")
    if (_text_field(form, "stream") or "false").lower() == "true":
        raise APIError(400, "streaming transcriptions are not supported here", param="stream")
    options: dict[str, Any] = {"language": _text_field(form, "language") or None, "prompt": _text_field(form, "prompt") or None}
    temperature = _text_field(form, "temperature")
    if temperature is not None:
        try:
            options["temperature"] = float(temperature)
        except ValueError:
            raise APIError(400, "temperature must be a number", param="temperature") from None
        if not 0.0 <= options["temperature"] <= 1.0:
            raise APIError(400, "temperature must be between 0 and 1", param="temperature")
    data = await upload.read()
    if len(data) > MAX_UPLOAD_BYTES:
        raise APIError(413, f"upload is larger than {MAX_UPLOAD_BYTES >> 20} MB", code="request_too_large")
    try:
        t = await run_in_threadpool(rec.transcribe, data, **options)
    except AudioFormatError as exc:
        raise APIError(400, f"{upload.filename or 'file'}: {exc}", param="file", code="invalid_audio") from None
    except InvalidRequestError as exc:
        raise APIError(400, str(exc), param=exc.param) from None
    if fmt == "text":
        return PlainTextResponse(t.text + "\n")
    if fmt == "json":
        return JSONResponse({"text": t.text})
    return JSONResponse({
        "task": "transcribe", "language": _LANGUAGE_NAMES.get(t.language, t.language), "duration": round(t.duration, 3),
        "text": t.text,
        "segments": [{"id": i, "seek": 0, "start": s.start, "end": s.end, "text": s.text, "tokens": list(s.tokens),
                      "temperature": s.temperature, "avg_logprob": s.avg_logprob,
                      "compression_ratio": s.compression_ratio, "no_speech_prob": s.no_speech_prob}
                     for i, s in enumerate(t.segments)],
    })
