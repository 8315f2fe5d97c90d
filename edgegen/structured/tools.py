"""OpenAI `tools` / `tool_choice` on local models: the prompt that offers the functions, the
grammar that makes every call valid, and the parse of the output back into `tool_calls`.

The call format is the Hermes one (Qwen2.5's chat template and many fine-tunes use it):

    <tool_call>{"name": "move_arm", "arguments": {"joint": "elbow", "degrees": 30}}</tool_call>

A chat template that has its own tool convention (it reads `tools`) gets the tools and renders
them itself; any other template gets the default prompt (`DEFAULT_TOOL_PROMPT`) as a system
message. Either way decoding is constrained by a grammar built from the functions' parameter
schemas, so `arguments` always parses and validates. tool_choice: "none" (no tools offered, no
calls), "auto" (free text or calls; text may not start with the call tag), "required" (one or
more calls), or {"type": "function", "function": {"name": ...}} (that function).
"""
from __future__ import annotations

import json
import re
import secrets
from dataclasses import dataclass
from typing import Any, Mapping, Optional, Sequence

from ..errors import ConstraintError
from .constraint import Constraint

OPEN, CLOSE = "<tool_call>", "</tool_call>"
MAX_TOOLS = 128
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")  # OpenAI's rule for function names

DEFAULT_TOOL_PROMPT = (
    "You can call functions to help with the user's request. The functions are described below "
    "as JSON Schema, one per line:\n{tools}\n"
    "To call a function, reply with only\n"
    '<tool_call>{{"name": "<function name>", "arguments": <arguments as a JSON object>}}</tool_call>\n'
    "(one such line per call). Otherwise reply to the user in plain text."
)


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    parameters: str  # canonical JSON of the parameter schema

    def to_openai(self) -> dict[str, Any]:
        fn: dict[str, Any] = {"name": self.name, "parameters": json.loads(self.parameters)}
        if self.description:
            fn["description"] = self.description
        return {"type": "function", "function": fn}


@dataclass(frozen=True)
class ToolCall:
    """One call the model made; `arguments` is JSON text (as OpenAI sends it)."""

    id: str
    name: str
    arguments: str

    def to_openai(self) -> dict[str, Any]:
        return {"id": self.id, "type": "function", "function": {"name": self.name, "arguments": self.arguments}}


@dataclass(frozen=True)
class ToolSpec:
    """A request's checked tools and choice ('auto' | 'none' | 'required' | a function name)."""

    tools: tuple[Tool, ...]
    choice: str
    parallel: bool = True

    @property
    def offered(self) -> tuple[Tool, ...]:
        if self.choice == "none":
            return ()
        if self.choice in ("auto", "required"):
            return self.tools
        return tuple(t for t in self.tools if t.name == self.choice)

    def constraint(self, content: Optional[Constraint] = None) -> Optional[Constraint]:
        """The Lark grammar every reply must match (None for tool_choice 'none'). Under 'auto' a
        reply is calls or content: free text, or JSON of `content`'s schema when given."""
        offered = self.offered
        if not offered:
            return None
        lines = []
        bodies = []
        for i, t in enumerate(offered):
            lines.append(f'fn_{i}: "{{\\"name\\": \\"{t.name}\\", \\"arguments\\": " args_{i} "}}"')
            lines.append(f"args_{i}: %json {_one_line(t.parameters)}")
            bodies.append(f"fn_{i}")
        calls = 'call ("\\n" call)*' if self.parallel else "call"
        start = "content | calls" if self.choice == "auto" else "calls"
        schema = content.schema if content is not None else None
        content_rule = "content: TEXT" if schema is None else f"content: %json {_one_line(json.dumps(schema))}"
        grammar = "\n".join([
            f"start: {start}",
            content_rule,
            f"calls: {calls}",
            f'call: "{OPEN}" body "{CLOSE}"',
            f"body: {' | '.join(bodies)}",
            *lines,
            # free text, but never the call tag at its start (that would be a call, parsed as one)
            f"TEXT: /(?s:.+)/ & ~/(?s:{re.escape(OPEN)}.*)/",
        ])
        return Constraint("lark", grammar)


def _one_line(schema_json: str) -> str:
    """The schema with llguidance's JSON options set as for response_format (one line, `, ` and
    `: `): a %json block in a grammar does not take the compile-time options."""
    from .engine import JSON_OPTIONS

    schema = json.loads(schema_json)
    if isinstance(schema, dict):
        schema = {**schema, "x-guidance": {**JSON_OPTIONS, **(schema.get("x-guidance") or {})}}
    return json.dumps(schema)


def parse_tools(tools: Any, tool_choice: Any = None, parallel_tool_calls: Any = None) -> Optional[ToolSpec]:
    """Check OpenAI `tools` / `tool_choice` / `parallel_tool_calls`; None when no tools are given."""
    if tools is None:
        if tool_choice not in (None, "none", "auto"):
            raise ConstraintError("tool_choice needs tools", param="tool_choice")
        return None
    if isinstance(tools, (str, bytes)) or not isinstance(tools, Sequence) or not tools:
        raise ConstraintError("tools must be a non-empty list of {'type': 'function', 'function': {...}}", param="tools")
    if len(tools) > MAX_TOOLS:
        raise ConstraintError(f"at most {MAX_TOOLS} tools per request", param="tools")
    parsed: list[Tool] = []
    for i, t in enumerate(tools):
        fn = t.get("function") if isinstance(t, Mapping) and t.get("type", "function") == "function" else None
        if not isinstance(fn, Mapping):
            raise ConstraintError(f"tools[{i}] must be {{'type': 'function', 'function': {{...}}}}", param="tools")
        name = fn.get("name")
        if not isinstance(name, str) or not _NAME.match(name):
            raise ConstraintError(f"tools[{i}].function.name must match [A-Za-z0-9_-]{{1,64}}", param="tools")
        if any(p.name == name for p in parsed):
            raise ConstraintError(f"two tools are named {name!r}", param="tools")
        desc = fn.get("description") or ""
        if not isinstance(desc, str):
            raise ConstraintError(f"tools[{i}].function.description must be a string", param="tools")
        params = fn.get("parameters", {"type": "object", "properties": {}})
        schema = Constraint.json_schema(params)  # the same size and depth checks as response_format
        parsed.append(Tool(name, desc, schema.source))
    choice = _parse_choice(tool_choice, {t.name for t in parsed})
    if parallel_tool_calls is not None and not isinstance(parallel_tool_calls, bool):
        raise ConstraintError("parallel_tool_calls must be a boolean", param="parallel_tool_calls")
    return ToolSpec(tuple(parsed), choice, parallel_tool_calls is not False)


def _parse_choice(choice: Any, names: set[str]) -> str:
    if choice is None:
        return "auto"
    if choice in ("auto", "none", "required"):
        return choice
    if isinstance(choice, Mapping) and choice.get("type") == "function" and isinstance(choice.get("function"), Mapping):
        name = choice["function"].get("name")
        if name in names:
            return str(name)
        raise ConstraintError(f"tool_choice names {name!r}, which is not among the tools", param="tool_choice")
    raise ConstraintError("tool_choice must be 'auto', 'none', 'required' or {'type': 'function', 'function': "
                          "{'name': ...}}", param="tool_choice")


# ---- prompts ------------------------------------------------------------------------------------
def template_has_tools(template: Optional[str]) -> bool:
    """Whether a chat template renders `tools` itself in the Hermes convention we parse."""
    return bool(template) and "tools" in template and OPEN in template  # type: ignore[operator]


def tool_messages(messages: Sequence[Mapping[str, Any]], spec: Optional[ToolSpec], native: bool) -> list[dict[str, Any]]:
    """The messages to render. `native`: the template renders tools and tool turns itself (it gets
    arguments as objects, the HF convention); otherwise the default prompt goes in the system
    message, earlier calls are written in the call format and tool results become user turns."""
    out: list[dict[str, Any]] = []
    for m in messages:
        d = dict(m)
        calls = d.get("tool_calls")
        if calls:
            if native:
                d["tool_calls"] = [_hf_call(c) for c in calls]
            else:
                text = "\n".join(_call_text(c) for c in calls)
                d = {"role": d["role"], "content": (d.get("content") or "") + text}
        elif d.get("role") == "tool" and not native:
            d = {"role": "user", "content": f"<tool_response>\n{d.get('content') or ''}\n</tool_response>"}
        out.append(d)
    if spec is None or native or not spec.offered:
        return out
    prompt = DEFAULT_TOOL_PROMPT.format(tools="\n".join(json.dumps(t.to_openai()) for t in spec.offered))
    if out and out[0].get("role") == "system":
        out[0] = {**out[0], "content": f"{out[0].get('content') or ''}\n\n{prompt}".lstrip()}
    else:
        out.insert(0, {"role": "system", "content": prompt})
    return out


def _function_of(call: Any) -> Mapping[str, Any]:
    fn = call.get("function") if isinstance(call, Mapping) else None
    if not isinstance(fn, Mapping) or not isinstance(fn.get("name"), str):
        raise ConstraintError("an assistant message's tool_calls need function.name and function.arguments",
                              param="messages")
    return fn


def _arguments_obj(fn: Mapping[str, Any]) -> Any:
    args = fn.get("arguments", "{}")
    if isinstance(args, str):
        try:
            return json.loads(args or "{}")
        except (ValueError, RecursionError):  # RecursionError: nested deeper than the JSON parser goes
            raise ConstraintError(f"tool call {fn['name']!r} has arguments that are not JSON", param="messages") from None
    return args


def _hf_call(call: Any) -> dict[str, Any]:
    fn = _function_of(call)
    return {"type": "function", "function": {"name": fn["name"], "arguments": _arguments_obj(fn)}}


def _call_text(call: Any) -> str:
    fn = _function_of(call)
    return f"{OPEN}{json.dumps({'name': fn['name'], 'arguments': _arguments_obj(fn)})}{CLOSE}"


# ---- parsing the output -------------------------------------------------------------------------
def new_call_id() -> str:
    return "call_" + secrets.token_hex(12)


def parse_tool_output(text: str) -> tuple[str, list[ToolCall]]:
    """(content, calls) of a finished reply. Calls are parsed only from a complete, grammar-shaped
    reply; an unfinished one (max_tokens hit mid-call) is returned as content, never as a call."""
    if not text.startswith(OPEN):
        return text, []
    calls: list[ToolCall] = []
    for part in text.split("\n"):
        if not (part.startswith(OPEN) and part.endswith(CLOSE)):
            return text, []
        try:
            obj = json.loads(part[len(OPEN):-len(CLOSE)])
            name, args = obj["name"], obj["arguments"]
            arguments = json.dumps(args)
        except (ValueError, KeyError, TypeError, RecursionError):  # arguments nested past the JSON parser's depth
            return text, []
        if not isinstance(name, str):
            return text, []
        calls.append(ToolCall(new_call_id(), name, arguments))
    return "", calls


class ToolCallStream:
    """Turns streamed reply text into OpenAI deltas: content text, or tool-call deltas (first the
    id and name with empty arguments, then pieces of the arguments), as the reply grows.

    The grammar fixes the shape, so a call streams as: `<tool_call>{"name": "NAME", "arguments": `
    ARGS `}</tool_call>`; ARGS is emitted as it arrives, holding back only what could be the
    closing `}</tool_call>`."""

    _HEAD = re.compile(re.escape(OPEN) + r'\{"name": "([A-Za-z0-9_-]{1,64})", "arguments": ')
    _TAIL = "}" + CLOSE

    def __init__(self) -> None:
        self._buf = ""
        self._mode: Optional[str] = None  # None (undecided), "text", "calls"
        self.calls: list[ToolCall] = []
        self._args: list[str] = []  # arguments text of the open call
        self._sent = 0  # characters of the open call's arguments already emitted

    def feed(self, text: str) -> list[dict[str, Any]]:
        """Deltas for the new text: {"content": str} or {"tool_calls": [delta]}."""
        self._buf += text
        if self._mode is None:
            if self._buf.startswith(OPEN):
                self._mode = "calls"
            elif OPEN.startswith(self._buf):
                return []  # could still become a call
            else:
                self._mode = "text"
        if self._mode == "text":
            out, self._buf = self._buf, ""
            return [{"content": out}] if out else []
        return self._feed_calls()

    def _feed_calls(self) -> list[dict[str, Any]]:
        deltas: list[dict[str, Any]] = []
        while True:
            if not self._args:  # waiting for a call's head
                if self._buf.startswith("\n"):
                    self._buf = self._buf[1:]
                m = self._HEAD.match(self._buf)
                if m is None:
                    return deltas
                call = ToolCall(new_call_id(), m.group(1), "")
                self.calls.append(call)
                deltas.append({"tool_calls": [{"index": len(self.calls) - 1, "id": call.id, "type": "function",
                                               "function": {"name": call.name, "arguments": ""}}]})
                self._buf = self._buf[m.end():]
                self._args = [""]
                self._sent = 0
            args = self._args[0] + self._buf
            self._buf = ""
            end = _call_end(args, self._TAIL)
            if end >= 0:
                piece, rest = args[self._sent:end], args[end + len(self._TAIL):]
                self._finish_call(args[:end])
                if piece:
                    deltas.append(self._args_delta(piece))
                self._args, self._buf = [], rest
                continue
            hold = _overlap(args, self._TAIL)
            piece = args[self._sent:len(args) - hold]
            self._args[0] = args
            if piece:
                self._sent += len(piece)
                deltas.append(self._args_delta(piece))
            return deltas

    def _args_delta(self, piece: str) -> dict[str, Any]:
        return {"tool_calls": [{"index": len(self.calls) - 1, "function": {"arguments": piece}}]}

    def _finish_call(self, args: str) -> None:
        c = self.calls[-1]
        self.calls[-1] = ToolCall(c.id, c.name, args)

    def finish(self) -> list[dict[str, Any]]:
        """Deltas for what is held back at the end of the reply (undecided text is content)."""
        if self._mode != "calls" and self._buf:
            out, self._buf = self._buf, ""
            return [{"content": out}]
        return []

    @property
    def complete_calls(self) -> list[ToolCall]:
        """The calls whose closing tag arrived (an unfinished call is not a call)."""
        return self.calls if not self._args else self.calls[:-1]


def merge_tool_deltas(calls: list[dict[str, Any]], deltas: Sequence[Mapping[str, Any]]) -> None:
    """Folds streamed tool-call deltas into whole OpenAI tool calls (`calls`, by index)."""
    for d in deltas:
        i = int(d["index"])
        while len(calls) <= i:
            calls.append({"id": "", "type": "function", "function": {"name": "", "arguments": ""}})
        c = calls[i]
        if d.get("id"):
            c["id"] = d["id"]
        fn = d.get("function") or {}
        c["function"]["name"] += fn.get("name") or ""
        c["function"]["arguments"] += fn.get("arguments") or ""


def _call_end(args: str, tail: str) -> int:
    """Where the arguments end: the first `tail` before which they are a whole JSON value (a JSON
    string may itself hold the text of the tail)."""
    end = args.find(tail)
    while end >= 0:
        try:
            json.loads(args[:end])  # the tail's brace closes the call object, not the arguments
            return end
        except (ValueError, RecursionError):
            end = args.find(tail, end + 1)
    return -1


def _overlap(text: str, tag: str) -> int:
    """Length of the longest suffix of `text` that is a proper prefix of `tag`."""
    for n in range(min(len(tag) - 1, len(text)), 0, -1):
        if text.endswith(tag[:n]):
            return n
    return 0
