"""Results and stream chunks shared by every backend (native, llama.cpp, cloud) and the server.

Streaming is the base primitive: backends yield `TextChunk`s; the non-streaming calls collect
them into a `CompletionResult` / `ChatResult`. Shapes follow the OpenAI API so the server and the
cloud client can pass them through unchanged. `validate_messages` checks OpenAI-style chat
messages here, below both the chat templates and the cloud client, which each need it.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Mapping, Optional, Sequence

from .errors import InvalidRequestError

FinishReason = Literal["stop", "length", "cancelled", "error", "tool_calls"]
Route = Literal["local", "cloud"]


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def to_dict(self) -> dict[str, int]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
        }


@dataclass(frozen=True)
class TextChunk:
    """One streamed text delta. `text` is always whole UTF-8 characters.

    The last chunk of a stream carries `finish_reason` (and `usage`); its `text` may be empty.
    """

    text: str
    token_ids: tuple[int, ...] = ()
    finish_reason: Optional[FinishReason] = None
    usage: Optional[Usage] = None
    route: Route = "local"
    backend: str = ""
    fallback_reason: Optional[str] = None
    # OpenAI tool-call deltas ({"index", "id", "type", "function": {"name", "arguments"}}) when the
    # request had tools; `text` then carries only content
    tool_calls: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True)
class CompletionResult:
    text: str
    finish_reason: FinishReason
    usage: Usage
    model: str = ""
    route: Route = "local"
    backend: str = ""
    fallback_reason: Optional[str] = None
    timings: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["usage"] = self.usage.to_dict()
        return d


@dataclass(frozen=True)
class ChatMessage:
    role: str
    content: str
    tool_calls: tuple[Any, ...] = ()  # edgegen.structured.ToolCall, when the model called tools

    def to_dict(self) -> dict[str, Any]:
        if not self.tool_calls:
            return {"role": self.role, "content": self.content}
        return {"role": self.role, "content": self.content or None,
                "tool_calls": [c.to_openai() for c in self.tool_calls]}


@dataclass(frozen=True)
class ChatResult:
    """OpenAI-shaped chat completion (one choice)."""

    message: ChatMessage
    finish_reason: FinishReason
    usage: Usage
    model: str = ""
    route: Route = "local"
    backend: str = ""
    fallback_reason: Optional[str] = None
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def text(self) -> str:
        return self.message.content

    def to_openai(self, id: str = "chatcmpl-edgegen", created: int = 0) -> dict[str, Any]:
        return {
            "id": id,
            "object": "chat.completion",
            "created": created,
            "model": self.model,
            "choices": [
                {"index": 0, "message": self.message.to_dict(), "finish_reason": self.finish_reason}
            ],
            "usage": self.usage.to_dict(),
        }


def validate_messages(messages: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Check OpenAI-style messages; return plain dicts. Content must be a string (or None for
    assistant turns with tool calls); a list of text parts is joined."""
    if isinstance(messages, (str, bytes)) or not isinstance(messages, Sequence) or not messages:
        raise InvalidRequestError("messages must be a non-empty list of {'role', 'content'} objects", param="messages")
    out: list[dict[str, Any]] = []
    for i, m in enumerate(messages):
        if not isinstance(m, Mapping):
            raise InvalidRequestError(f"messages[{i}] is not an object", param="messages")
        role = m.get("role")
        if not isinstance(role, str) or not role:
            raise InvalidRequestError(f"messages[{i}].role must be a non-empty string", param="messages")
        content = m.get("content")
        if isinstance(content, list):  # OpenAI content parts: keep the text ones
            try:
                content = "".join(p["text"] for p in content if isinstance(p, Mapping) and p.get("type") == "text")
            except (KeyError, TypeError):
                raise InvalidRequestError(f"messages[{i}].content parts must carry 'text'", param="messages") from None
        if content is None:
            content = ""
        if not isinstance(content, str):
            raise InvalidRequestError(f"messages[{i}].content must be a string", param="messages")
        d = dict(m)
        d["role"], d["content"] = role, content
        out.append(d)
    return out
