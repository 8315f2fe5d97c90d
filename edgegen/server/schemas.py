"""Request bodies of the OpenAI-compatible routes, and OpenAI-style error bodies.

Bodies are validated strictly (pydantic strict mode: a string is never coerced to a number) from
the raw bytes, so invalid UTF-8, invalid JSON and wrong types all become 400 errors that name the
offending field. Unknown fields are ignored, as clients send vendor extras. Range checks of the
sampling values live once in `SamplingParams.validate`.
"""
from __future__ import annotations

from typing import Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..errors import InvalidRequestError

MAX_BODY_BYTES = 4 << 20  # a generous ceiling for one prompt; larger bodies are refused (413)
MAX_SPEECH_CHARS = 4096  # OpenAI's limit for /v1/audio/speech input


class _Strict(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)


class ContentPart(_Strict):
    type: str
    text: Optional[str] = None


class Message(_Strict):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: Union[str, list[ContentPart], None] = None
    name: Optional[str] = None
    tool_calls: Optional[list[dict[str, Any]]] = None  # an assistant turn that called tools
    tool_call_id: Optional[str] = None  # a tool turn: the call it answers

    def as_dict(self) -> dict[str, Any]:
        content = self.content
        if isinstance(content, list):
            content = "".join(p.text or "" for p in content if p.type == "text")
        # Templates know system/user/assistant; "developer" is OpenAI's newer name for system.
        role = "system" if self.role == "developer" else self.role
        d: dict[str, Any] = {"role": role, "content": content or ""}
        if self.tool_calls:
            d["tool_calls"] = self.tool_calls
        if self.tool_call_id is not None:
            d["tool_call_id"] = self.tool_call_id
        return d


class StreamOptions(_Strict):
    include_usage: bool = False


class LoraRef(_Strict):
    """llama-server's per-request adapter form: the id is the adapter's place in `--lora` order."""
    id: int
    scale: float


class _Sampling(_Strict):
    model: str
    stream: bool = False
    stream_options: Optional[StreamOptions] = None
    max_tokens: Optional[int] = None
    temperature: Optional[float] = None
    top_p: Optional[float] = None
    top_k: Optional[int] = None  # extension (llama.cpp servers accept it too)
    min_p: Optional[float] = None  # extension
    repeat_penalty: Optional[float] = None  # extension
    presence_penalty: Optional[float] = None
    frequency_penalty: Optional[float] = None
    seed: Optional[int] = None
    stop: Union[str, list[str], None] = None
    logit_bias: Optional[dict[str, float]] = None
    n: int = 1
    route: Optional[str] = None  # extension: ask for a cloud route, capped by the server's policy
    # structured output (docs/structured.md); grammar (Lark or GBNF) and regex are extensions
    response_format: Optional[dict[str, Any]] = None
    grammar: Optional[str] = None
    regex: Optional[str] = None
    adapters: Optional[dict[str, float]] = None  # extension: LoRA adapters {name: scale} (docs/adapters.md)
    lora: Optional[list[LoraRef]] = None  # llama-server's form of the same: [{"id": i, "scale": s}]

    def sampling(self, adapter_names: tuple[str, ...] = ()) -> dict[str, Any]:
        """Overrides for SamplingParams.with_overrides (None means the server default).
        `adapter_names`: the loaded adapters in `--lora` order (what `lora` ids index)."""
        if self.n != 1:
            raise InvalidRequestError("only n=1 is supported", param="n")
        values = {
            "max_tokens": self.max_tokens, "temperature": self.temperature, "top_p": self.top_p,
            "top_k": self.top_k, "min_p": self.min_p, "repeat_penalty": self.repeat_penalty,
            "presence_penalty": self.presence_penalty, "frequency_penalty": self.frequency_penalty,
            "seed": self.seed, "stop": self.stop, "logit_bias": self.logit_bias,
        }
        out = {k: v for k, v in values.items() if v is not None}
        if self.adapters is not None and self.lora is not None:
            raise InvalidRequestError("give adapters or lora, not both", param="adapters")
        if self.adapters is not None:
            out["adapters"] = self.adapters
        elif self.lora is not None:
            for ref in self.lora:
                if not 0 <= ref.id < len(adapter_names):
                    raise InvalidRequestError(f"lora id {ref.id} is not a loaded adapter (0..{len(adapter_names) - 1})", param="lora")
            out["adapters"] = [(adapter_names[ref.id], ref.scale) for ref in self.lora]
        return out

    def structured(self) -> dict[str, Any]:
        """The structured-output arguments given (for LLM.chat / stream and the router)."""
        values = {"response_format": self.response_format, "grammar": self.grammar, "regex": self.regex}
        return {k: v for k, v in values.items() if v is not None}

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)


class ChatCompletionRequest(_Sampling):
    messages: list[Message] = Field(min_length=1)
    max_completion_tokens: Optional[int] = None  # OpenAI's newer name for max_tokens
    tools: Optional[list[dict[str, Any]]] = None
    tool_choice: Union[str, dict[str, Any], None] = None
    parallel_tool_calls: Optional[bool] = None

    def structured(self) -> dict[str, Any]:
        out = super().structured()
        values = {"tools": self.tools, "tool_choice": self.tool_choice, "parallel_tool_calls": self.parallel_tool_calls}
        out.update({k: v for k, v in values.items() if v is not None})
        return out

    def sampling(self, adapter_names: tuple[str, ...] = ()) -> dict[str, Any]:
        out = super().sampling(adapter_names)
        if self.max_completion_tokens is not None and self.max_tokens is None:
            out["max_tokens"] = self.max_completion_tokens
        return out


class CompletionRequest(_Sampling):
    prompt: Union[str, list[str]]
    echo: bool = False
    logprobs: Optional[int] = None
    suffix: Optional[str] = None

    def prompt_text(self) -> str:
        if self.echo or self.logprobs or self.suffix:
            raise InvalidRequestError("echo, logprobs and suffix are not supported",
                                      param="echo" if self.echo else "logprobs" if self.logprobs else "suffix")
        if isinstance(self.prompt, list):
            if len(self.prompt) != 1:
                raise InvalidRequestError("prompt must be one string (batches are not supported)", param="prompt")
            return self.prompt[0]
        return self.prompt


class SpeechRequest(_Strict):
    model: str
    input: str = Field(min_length=1, max_length=MAX_SPEECH_CHARS)
    voice: Union[str, dict[str, Any]]
    response_format: Optional[str] = None
    speed: Optional[float] = None
    instructions: Optional[str] = None  # accepted and ignored: Piper voices take no style prompt


# ---- errors ---------------------------------------------------------------------------------------

class APIError(Exception):
    """An error the server answers with an OpenAI-style body."""

    def __init__(self, status: int, message: str, *, type: str = "invalid_request_error",
                 param: Optional[str] = None, code: Optional[str] = None, headers: Optional[dict[str, str]] = None) -> None:
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type, param, code
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        code = self.code or _DEFAULT_CODES.get(self.status, "error")
        if code == "invalid_request" and self.param:
            code = "invalid_value"
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": code}}


# OpenAI's codes are snake_case strings: a status without a more precise one gets its own
_DEFAULT_CODES = {400: "invalid_request", 401: "invalid_api_key", 403: "forbidden", 404: "not_found",
                  405: "method_not_allowed", 413: "request_too_large", 415: "unsupported_media_type",
                  422: "invalid_request", 429: "rate_limit_exceeded", 500: "internal_error",
                  501: "not_implemented", 502: "upstream_error", 503: "unavailable"}


def parse_body(model: type[_Strict], raw: bytes) -> Any:
    """Validate raw request bytes into `model`, or raise APIError(400) naming the problem."""
    if len(raw) > MAX_BODY_BYTES:
        raise APIError(413, f"request body is larger than {MAX_BODY_BYTES} bytes", code="request_too_large")
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise APIError(400, f"request body is not valid UTF-8 (byte {exc.start})", code="invalid_utf8") from None
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        err = exc.errors(include_url=False, include_input=False)[0]
        if err["type"] == "json_invalid":
            raise APIError(400, f"request body is not valid JSON: {err['msg']}", code="invalid_json") from None
        where = ".".join(str(p) for p in err["loc"]) or "body"  # may name a union member, e.g. prompt.str
        param = str(err["loc"][0]) if err["loc"] else None
        raise APIError(400, f"{where}: {err['msg']}", param=param, code="invalid_type") from None
