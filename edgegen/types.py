"""Results and stream chunks shared by every backend (native, llama.cpp, cloud) and the server.

Streaming is the base primitive: backends yield `TextChunk`s; the non-streaming calls collect
them into a `CompletionResult` / `ChatResult`. Shapes follow the OpenAI API so the server and the
cloud client can pass them through unchanged.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Optional

FinishReason = Literal["stop", "length", "cancelled", "error"]
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

    def to_dict(self) -> dict[str, str]:
        return {"role": self.role, "content": self.content}


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
