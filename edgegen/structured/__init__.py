"""Structured output: JSON Schema, any JSON object, regex and context-free grammars (Lark, GBNF)
enforced during decoding, and OpenAI-style tool calls on local models (docs/structured.md).

The constraint becomes an allowed-token bitmask per step (llguidance) that the native sampler
applies before any other sampling step; the llama.cpp backend applies it in a logits processor;
the cloud backend passes `response_format` / `tools` through.
"""
from __future__ import annotations

from .constraint import Constraint, constraint_from_request
from .tools import Tool, ToolCall, ToolCallStream, ToolSpec, parse_tool_output, parse_tools

__all__ = [
    "Constraint", "constraint_from_request", "Tool", "ToolCall", "ToolCallStream", "ToolSpec",
    "parse_tool_output", "parse_tools",
]
