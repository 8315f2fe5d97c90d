"""Tools and response_format through the official `openai` client against `edgegen serve`'s app
(real uvicorn, the default model on the native engine): tool_choice variants, streamed and not;
every call's arguments validate against the function's parameter schema."""
from __future__ import annotations

import json

import jsonschema
import openai
import pytest

from tests.server.server_harness import ThreadServer
from tests.structured.conftest import ROBOT, SCHEMAS

TOOLS = [
    {"type": "function", "function": {"name": "move_arm", "description": "Move one joint of the robot arm.",
                                      "parameters": ROBOT}},
    {"type": "function", "function": {"name": "say", "description": "Say something out loud.",
                                      "parameters": {"type": "object", "properties": {"text": {"type": "string", "maxLength": 40}},
                                                     "required": ["text"], "additionalProperties": False}}},
]
PARAMS = {t["function"]["name"]: t["function"]["parameters"] for t in TOOLS}
MSGS = [{"role": "user", "content": "Turn the elbow 30 degrees."}]


@pytest.fixture(scope="module")
def server(native_llm):
    with ThreadServer(native_llm) as s:
        yield s


@pytest.fixture(scope="module")
def client(server):
    return server.client()


def check_calls(calls, only=None):
    assert calls
    for c in calls:
        assert c.type == "function" and c.id.startswith("call_")
        assert only is None or c.function.name == only
        jsonschema.validate(json.loads(c.function.arguments), PARAMS[c.function.name])


@pytest.mark.slow
def test_required_and_named_tool_calls(client):
    r = client.chat.completions.create(model="smollm2", messages=MSGS, tools=TOOLS, tool_choice="required",
                                       parallel_tool_calls=False, temperature=0, max_tokens=120)
    assert r.choices[0].finish_reason == "tool_calls" and len(r.choices[0].message.tool_calls) == 1
    check_calls(r.choices[0].message.tool_calls)
    r = client.chat.completions.create(model="smollm2", messages=MSGS, tools=TOOLS, temperature=1.0, seed=5,
                                       tool_choice={"type": "function", "function": {"name": "say"}},
                                       parallel_tool_calls=False, max_tokens=120)
    assert r.choices[0].finish_reason == "tool_calls" and len(r.choices[0].message.tool_calls) == 1
    check_calls(r.choices[0].message.tool_calls, only="say")


def test_streamed_tool_call_deltas(client):
    stream = client.chat.completions.create(model="smollm2", messages=MSGS, tools=TOOLS, stream=True,
                                            tool_choice={"type": "function", "function": {"name": "move_arm"}},
                                            parallel_tool_calls=False, temperature=0, max_tokens=120)
    calls: dict[int, dict] = {}
    finish = None
    for event in stream:
        for choice in event.choices:
            finish = choice.finish_reason or finish
            assert not choice.delta.content
            for d in choice.delta.tool_calls or []:
                if d.index not in calls:  # the first delta of a call carries its id and name
                    assert d.id and d.function.name
                    calls[d.index] = {"name": d.function.name, "arguments": ""}
                calls[d.index]["arguments"] += d.function.arguments or ""
    assert finish == "tool_calls" and list(calls) == [0]
    assert calls[0]["name"] == "move_arm"
    jsonschema.validate(json.loads(calls[0]["arguments"]), ROBOT)


@pytest.mark.slow
def test_auto_and_none(client):
    r = client.chat.completions.create(model="smollm2", messages=MSGS, tools=TOOLS, tool_choice="auto",
                                       parallel_tool_calls=False, temperature=1.0, seed=1, max_tokens=60)
    msg = r.choices[0].message
    if msg.tool_calls:
        assert r.choices[0].finish_reason == "tool_calls"
        check_calls(msg.tool_calls)
    elif r.choices[0].finish_reason == "stop":  # free text never starts with the call tag
        assert msg.content and not msg.content.startswith("<tool_call>")
    r = client.chat.completions.create(model="smollm2", messages=MSGS, tools=TOOLS, tool_choice="none",
                                       temperature=0, max_tokens=8)
    assert r.choices[0].message.tool_calls is None and r.choices[0].message.content


def test_a_tool_result_turn_continues_the_chat(client):
    first = client.chat.completions.create(model="smollm2", messages=MSGS, tools=TOOLS, tool_choice="required",
                                           parallel_tool_calls=False, temperature=0, max_tokens=120)
    call = first.choices[0].message.tool_calls[0]
    msgs = MSGS + [first.choices[0].message.model_dump(exclude_none=True),
                   {"role": "tool", "tool_call_id": call.id, "content": '{"ok": true}'}]
    r = client.chat.completions.create(model="smollm2", messages=msgs, tools=TOOLS, tool_choice="none",
                                       temperature=0, max_tokens=8)
    assert r.choices[0].message.content


def test_response_format_and_bad_schemas(client):
    fmt = {"type": "json_schema", "json_schema": {"name": "robot", "schema": SCHEMAS["robot"]}}
    r = client.chat.completions.create(model="smollm2", messages=MSGS, response_format=fmt, temperature=0, max_tokens=60)
    jsonschema.validate(json.loads(r.choices[0].message.content), ROBOT)
    bad = {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object", "minProperties": "two"}}}
    for kw in (dict(response_format=bad), dict(response_format={"type": "json_schema", "json_schema": {"name": "x"}}),
               dict(tools=[{"type": "function", "function": {"name": "bad name"}}]),
               dict(extra_body={"regex": "[^\\s\\S]"})):
        with pytest.raises(openai.BadRequestError) as info:
            client.chat.completions.create(model="smollm2", messages=MSGS, max_tokens=8, **kw)
        assert info.value.status_code == 400 and info.value.body["message"]


def test_the_cloud_backend_passes_response_format_and_tools_through(server):
    from edgegen.cloud import Cloud
    from edgegen.errors import ConstraintError

    cloud = Cloud(server.base + "/v1", "smollm2", timeout=120.0, idle_timeout=60.0)
    try:
        r = cloud.chat(MSGS, tools=TOOLS, tool_choice={"type": "function", "function": {"name": "move_arm"}},
                       parallel_tool_calls=False, temperature=0, max_tokens=120)
        assert r.finish_reason == "tool_calls" and r.message.tool_calls[0].name == "move_arm"
        jsonschema.validate(json.loads(r.message.tool_calls[0].arguments), ROBOT)
        with pytest.raises(ConstraintError, match="local models only"):
            cloud.chat(MSGS, regex="a+", max_tokens=4)
    finally:
        cloud.close()
