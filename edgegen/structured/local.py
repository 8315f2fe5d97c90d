"""The structured-output arguments of `LLM.stream/generate/chat` and the glue around local
generation: which constraint a request decodes under, and tool-call results and stream deltas."""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Iterator, Optional

from ..errors import ConstraintError
from ..types import TextChunk
from .constraint import Constraint, constraint_from_request
from .tools import ToolCallStream, ToolSpec, parse_tools

STRUCTURED_ARGS = ("response_format", "grammar", "regex", "tools", "tool_choice", "parallel_tool_calls")


@dataclass(frozen=True)
class StructuredRequest:
    """A request's output constraint and tools, checked."""

    constraint: Optional[Constraint] = None  # response_format / grammar / regex
    tools: Optional[ToolSpec] = None

    @property
    def decoding_constraint(self) -> Optional[Constraint]:
        """What decoding obeys: the tool grammar (which holds a JSON content schema, if any) when
        tools are offered, else the plain constraint."""
        if self.tools is not None and self.tools.offered:
            return self.tools.constraint(content=self.constraint)
        return self.constraint

    @property
    def calls_tools(self) -> bool:
        return self.tools is not None and bool(self.tools.offered)


def pop_structured(sampling: dict[str, Any], *, chat: bool) -> StructuredRequest:
    """Removes the structured-output arguments from `sampling` (the rest are sampling parameters)."""
    args = {k: sampling.pop(k) for k in STRUCTURED_ARGS if k in sampling}
    if not args:
        return StructuredRequest()
    tool_args = [k for k in ("tools", "tool_choice", "parallel_tool_calls") if args.get(k) is not None]
    if tool_args and not chat:
        raise ConstraintError(f"{tool_args[0]} works with chat() only (tools need a chat template)", param=tool_args[0])
    constraint = constraint_from_request(args.get("response_format"), args.get("grammar"), args.get("regex"))
    tools = parse_tools(args.get("tools"), args.get("tool_choice"), args.get("parallel_tool_calls"))
    if tools is not None and tools.offered and constraint is not None and constraint.schema is None:
        raise ConstraintError("a grammar or regex cannot be combined with tools; use response_format json_schema",
                              param="tools")
    return StructuredRequest(constraint, tools)


def tool_chunks(chunks: Iterator[TextChunk]) -> Iterator[TextChunk]:
    """A chat stream with tools: content deltas as text, calls as OpenAI tool-call deltas; the last
    chunk says "tool_calls" when the reply was complete calls."""
    parser = ToolCallStream()
    try:
        for chunk in chunks:
            deltas = parser.feed(chunk.text)
            if chunk.finish_reason is not None:
                deltas += parser.finish()
            text = "".join(d.get("content", "") for d in deltas)
            calls = tuple(c for d in deltas for c in d.get("tool_calls", ()))
            finish = chunk.finish_reason
            if finish == "stop" and parser.complete_calls:
                finish = "tool_calls"
            if text or calls or finish is not None:
                yield replace(chunk, text=text, tool_calls=calls, finish_reason=finish)
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()
