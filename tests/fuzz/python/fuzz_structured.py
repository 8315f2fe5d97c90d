"""Structured output on hostile constraints: JSON schemas, `response_format` objects, regexes, Lark
and GBNF grammars and OpenAI `tools` compiled by edgegen.structured (the checks of constraint.py,
then llguidance under the engine's resource limits) for SmolLM2's vocabulary, then the compiled
constraint driven through a few token ids; and the tool-call parsers on arbitrary reply text.

Input: a mode byte, then the constraint's text, then (after a NUL) the token choices (u16 each).
Contract (docs/structured.md "Bad constraints"): building and compiling return a constraint or
raise ConstraintError within a bounded time (TIME_BOUND_S; libFuzzer's -timeout catches a hang);
a compiled constraint's masks hold only ids inside the vocabulary, are never empty while the walk
goes on, allow an end-of-generation token only where the output so far is accepted, and every
allowed token is consumed; a resource limit mid-walk is a ConstraintError. The tool-call parsers
return content and calls for any text (calls with JSON arguments), never raise.
"""
from __future__ import annotations

import json
import struct
import time

import numpy as np

from edgegen.errors import ConstraintError
from edgegen.structured import constraint_from_request, parse_tool_output, parse_tools
from edgegen.structured.constraint import Constraint
from edgegen.structured.engine import CompiledConstraint, grammar_tokenizer
from edgegen.structured.tools import ToolCallStream
from tests.fuzz.python.common import smollm2_path

TIME_BOUND_S = 8.0  # tests/structured/test_hostile_constraints.py allows 10 s on a loaded machine
MAX_STEPS = 12
tok = None
llm = None  # kept: the tokenizer cache holds the backend weakly


def setup() -> None:
    global tok, llm
    import edgegen

    llm = edgegen.load(str(smollm2_path()), backend="native", n_ctx=64, n_threads=1)
    tok = grammar_tokenizer(llm.backend)  # built once (~1 s)


def _constraint(mode: int, text: str):
    """The Constraint (or None) the mode builds from text; ConstraintError for a bad one."""
    if mode == 0:
        return Constraint.json_schema(text)
    if mode == 1:
        return Constraint.regex(text)
    if mode == 2:
        return Constraint.grammar(text, "lark")
    if mode == 3:
        return Constraint.grammar(text, "gbnf")
    if mode == 4:
        return Constraint.grammar(text)  # "auto": ::= reads as GBNF
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError):
        return None
    if mode == 5:  # a request's response_format object
        return constraint_from_request(response_format=doc)
    spec = parse_tools(doc.get("tools") if isinstance(doc, dict) else doc,  # mode 6: tools (+ tool_choice)
                       doc.get("tool_choice") if isinstance(doc, dict) else None)
    return spec.constraint() if spec is not None else None


def _walk(compiled: CompiledConstraint, choices: list[int]) -> None:
    n_vocab = tok.n_vocab
    mask = compiled.matcher()
    for choice in choices[:MAX_STEPS]:
        words = mask.next_mask()
        allowed = np.flatnonzero(np.unpackbits(words.view(np.uint8), bitorder="little"))
        assert allowed.size > 0, "an empty mask while the walk goes on"
        assert allowed[-1] < n_vocab, f"mask allows id {allowed[-1]} outside the vocabulary ({n_vocab})"
        token = int(allowed[choice % allowed.size])
        if mask.ends(token):
            assert mask.accepting, "an end-of-generation token allowed where the output is incomplete"
            return
        mask.consume(token)


def _tool_text(text: str) -> None:
    content, calls = parse_tool_output(text)
    assert isinstance(content, str)
    for call in calls:
        assert isinstance(call.name, str)
        json.loads(call.arguments)
    stream = ToolCallStream()
    for i in range(0, len(text), 7):  # fed in pieces, as a stream arrives
        assert isinstance(stream.feed(text[i:i + 7]), list)
    assert isinstance(stream.finish(), list)


def test_one_input(data: bytes) -> None:
    if tok is None:
        setup()
    if not data:
        return
    mode = data[0] % 8
    text_raw, _, rest = data[1:].partition(b"\0")
    text = text_raw.decode("utf-8", errors="replace")
    if mode == 7:
        _tool_text(text)
        return
    choices = [c for (c,) in struct.iter_unpack("<H", rest[:len(rest) & ~1])] or [0]
    t0 = time.monotonic()
    try:
        c = _constraint(mode, text)
        if c is None:
            return
        compiled = CompiledConstraint(tok, c)
    except ConstraintError:
        return
    finally:
        elapsed = time.monotonic() - t0
        assert elapsed < TIME_BOUND_S, f"building the constraint took {elapsed:.1f} s"
    try:
        _walk(compiled, choices)
    except ConstraintError:  # a resource limit hit mid-walk (a grammar that cannot finish)
        pass
