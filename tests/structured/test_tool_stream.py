"""Streaming tool-call parsing (no model): any split of a reply into deltas gives the same calls
as parsing the whole reply, including argument strings that contain the closing tag."""
from __future__ import annotations

import json
import random

from edgegen.structured.tools import ToolCallStream, merge_tool_deltas, parse_tool_output

CALLS = ('<tool_call>{"name": "say", "arguments": {"text": "a }</tool_call> b", "n": [1, {"x": 2}]}}</tool_call>\n'
         '<tool_call>{"name": "move_arm", "arguments": {"joint": "elbow", "degrees": -30}}</tool_call>')


def stream(text, sizes):
    p, deltas, content, i = ToolCallStream(), [], "", 0
    for n in sizes:
        for d in p.feed(text[i:i + n]):
            content += d.get("content", "")
            deltas.extend(d.get("tool_calls", ()))
        i += n
    for d in p.finish():
        content += d.get("content", "")
    calls: list = []
    merge_tool_deltas(calls, deltas)
    return content, calls, p


def test_any_split_gives_the_whole_reply_calls():
    _, whole = parse_tool_output(CALLS)
    rng = random.Random(0)
    for _ in range(50):
        sizes = [rng.randint(1, 9) for _ in range(len(CALLS))]
        content, calls, p = stream(CALLS, sizes)
        assert content == "" and len(p.complete_calls) == 2
        assert [c["function"]["name"] for c in calls] == [c.name for c in whole]
        assert [json.loads(c["function"]["arguments"]) for c in calls] == [json.loads(c.arguments) for c in whole]
        assert all(c["id"].startswith("call_") for c in calls)


def test_text_and_unfinished_calls():
    content, calls, _ = stream("<tool is not a call", [3] * 10)
    assert content == "<tool is not a call" and calls == []
    cut = CALLS[:40]  # max_tokens hit inside the first call
    _, _, p = stream(cut, [1] * len(cut))
    assert p.complete_calls == []
    assert parse_tool_output(cut) == (cut, [])  # an unfinished call is returned as text, never as a call
