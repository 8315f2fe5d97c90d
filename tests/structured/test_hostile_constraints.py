"""Untrusted schemas and grammars: each ends in a typed ConstraintError within a bounded time,
never a hang or a crash (the server turns it into a 400, see test_server_tools.py)."""
from __future__ import annotations

import json
import time

import pytest

from edgegen.errors import ConstraintError, InvalidRequestError

TIME_BOUND_S = 10.0  # generous for a loaded 2-core machine; each case takes well under a second alone


def deep_schema(depth: int) -> dict:
    schema: dict = {"type": "integer"}
    for _ in range(depth):
        schema = {"type": "object", "properties": {"a": schema}, "required": ["a"]}
    return schema


def fmt(schema) -> dict:
    return {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}


HOSTILE = {
    "deep_nesting": dict(response_format=fmt(deep_schema(500))),
    "deep_nesting_text": dict(response_format=fmt('{"items":' * 20_000 + "{}" + "}" * 20_000)),
    "huge_enum": dict(response_format=fmt({"enum": [f"v{i}" for i in range(200_000)]})),
    "one_mb_schema": dict(response_format=fmt({"type": "object", "description": "x" * (1 << 20)})),
    "recursive_ref": dict(response_format=fmt({"$ref": "#/$defs/a", "$defs": {"a": {"$ref": "#/$defs/b"},
                                                                              "b": {"$ref": "#/$defs/a"}}})),
    "accepts_nothing_regex": dict(regex=r"[^\s\S]"),
    "accepts_nothing_grammar": dict(grammar="start: a\na: \"x\" a"),
    "bad_gbnf": dict(grammar="root ::= \"a\" missing_rule"),
    "bad_lark": dict(grammar="start: ("),
    "not_a_schema": dict(response_format=fmt([1, 2])),
    "unknown_type": dict(response_format={"type": "xml"}),
    "two_constraints": dict(regex="a", grammar="start: \"a\""),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_constraint_is_a_typed_error_in_bounded_time(native_llm, case):
    start = time.monotonic()
    with pytest.raises(ConstraintError) as info:
        native_llm.chat([{"role": "user", "content": "hi"}], max_tokens=64, **HOSTILE[case])
    assert time.monotonic() - start < TIME_BOUND_S
    assert isinstance(info.value, InvalidRequestError) and str(info.value)


def test_catastrophic_backtracking_regex_runs_in_bounded_time(native_llm):
    # llguidance matches regexes by derivatives (no backtracking): this compiles and runs normally
    start = time.monotonic()
    r = native_llm.generate("x", regex=r"(a+)+(b+)+(c+)+" * 50 + r"[\s\S]{100}(x|y){50}", max_tokens=8, temperature=0)
    assert time.monotonic() - start < TIME_BOUND_S
    assert r.finish_reason == "length" and set(r.text) <= set("abc")


def test_hostile_tools_are_typed_errors(native_llm):
    msgs = [{"role": "user", "content": "hi"}]
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    for bad in (dict(tools=[]), dict(tools=[{"type": "function", "function": {"name": "bad name!"}}]),
                dict(tools=[tool, tool]), dict(tools=[tool], tool_choice={"type": "function", "function": {"name": "g"}}),
                dict(tool_choice="required"), dict(tools=[tool] * 200)):
        with pytest.raises(ConstraintError):
            native_llm.chat(msgs, max_tokens=4, **bad)
    with pytest.raises(ConstraintError, match="chat"):
        native_llm.generate("hi", tools=[tool])


def test_a_missing_llguidance_is_a_one_line_error(monkeypatch):
    import sys

    from edgegen.errors import MissingExtraError
    from edgegen.structured import engine

    monkeypatch.setitem(sys.modules, "llguidance", None)  # import llguidance -> ModuleNotFoundError
    with pytest.raises(MissingExtraError, match=r"pip install 'edgegen\[structured\]'"):
        engine.llguidance_grammar(engine.Constraint.regex("a"))
