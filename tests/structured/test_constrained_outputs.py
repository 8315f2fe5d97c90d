"""Every output of the default model under a constraint is valid: it parses and validates against
the schema (the `jsonschema` package), or matches the regex / grammar, for greedy decoding and
for temperature-1.0 sampling with several seeds, on the native engine and on llama.cpp."""
from __future__ import annotations

import json
import re

import jsonschema
import pytest

from tests.structured.conftest import MAX_TOKENS, SCHEMAS

PROMPT = {
    "robot": "Turn the elbow 30 degrees to the left.",
    "nested": "Describe a robot called Rex standing near the center.",
    "anyof_const_ref": "Set the light to blue.",
    "array_root": "List a few small numbers.",
}
SAMPLING = [dict(temperature=0.0), dict(temperature=1.0, seed=1), dict(temperature=1.0, seed=7)]


def ask(llm, name, **kw):
    fmt = {"type": "json_schema", "json_schema": {"name": name, "schema": SCHEMAS[name]}}
    msgs = [{"role": "system", "content": "Answer in JSON."}, {"role": "user", "content": PROMPT[name]}]
    return llm.chat(msgs, response_format=fmt, max_tokens=MAX_TOKENS, **kw)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_every_sample_validates_on_the_native_engine(native_llm, name):
    for sampling in SAMPLING:
        r = ask(native_llm, name, **sampling)
        assert r.finish_reason == "stop", (sampling, r.text)
        jsonschema.validate(json.loads(r.text), SCHEMAS[name])


def test_streamed_json_equals_the_collected_reply(native_llm):
    stream = native_llm.chat([{"role": "user", "content": "Move the wrist."}], stream=True, temperature=0,
                             max_tokens=MAX_TOKENS, response_format={"type": "json_object"})
    chunks = list(stream)
    text = "".join(c.text for c in chunks)
    assert chunks[-1].finish_reason == "stop"
    assert isinstance(json.loads(text), dict)


def test_regex_lark_and_gbnf(native_llm):
    r = native_llm.generate("The serial number is", regex=r"[A-Z]{2}-[0-9]{4}", max_tokens=16, temperature=1.0, seed=3)
    assert re.fullmatch(r"[A-Z]{2}-[0-9]{4}", r.text) and r.finish_reason == "stop"
    lark = 'start: "The answer is " ANSWER "."\nANSWER: "yes" | "no"'
    r = native_llm.chat([{"role": "user", "content": "Is the sky blue?"}], grammar=lark, max_tokens=16, temperature=0)
    assert r.text in ("The answer is yes.", "The answer is no.")
    gbnf = 'root ::= "turn " dir " " [0-9] [0-9]? " degrees"\ndir ::= "left" | "right"'
    for seed in (1, 2):
        r = native_llm.chat([{"role": "user", "content": "Turn a bit."}], grammar=gbnf, max_tokens=16,
                            temperature=1.0, seed=seed)
        assert re.fullmatch(r"turn (left|right) [0-9][0-9]? degrees", r.text), r.text


def test_unsatisfiable_within_max_tokens_ends_with_length(native_llm):
    schema = {"type": "object", "properties": {"essay": {"type": "string", "minLength": 400}}, "required": ["essay"]}
    r = native_llm.chat([{"role": "user", "content": "Write."}], max_tokens=12, temperature=0,
                        response_format={"type": "json_schema", "json_schema": {"name": "e", "schema": schema}})
    assert r.finish_reason == "length"
    with pytest.raises(ValueError):
        json.loads(r.text)  # the partial reply is not passed off as a complete one


def test_the_llama_cpp_backend_obeys_the_same_constraints(llama_llm):
    for name, sampling in (("robot", SAMPLING[1]), ("anyof_const_ref", SAMPLING[0])):
        r = ask(llama_llm, name, **sampling)
        assert r.finish_reason == "stop"
        jsonschema.validate(json.loads(r.text), SCHEMAS[name])
    r = llama_llm.generate("Code:", regex=r"[A-Z]{2}-[0-9]{4}", max_tokens=16, temperature=1.0, seed=3)
    assert re.fullmatch(r"[A-Z]{2}-[0-9]{4}", r.text)


def test_the_robot_command_example(native_llm):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "examples" / "robot_command.py"
    spec = importlib.util.spec_from_file_location("robot_command", path)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    command = example.to_command(native_llm, "turn the wrist 45 degrees to the right, slowly")
    jsonschema.validate(command, example.COMMAND)


def test_edgegen_run_takes_a_grammar_file(tmp_path):
    from tests.cli.blocked import run_cli

    gbnf = tmp_path / "turn.gbnf"
    gbnf.write_text('root ::= "turn " ("left" | "right")\n')
    proc = run_cli(["run", "Turn please", "--grammar", str(gbnf), "-n", "8", "--temperature", "0", "--ctx", "256"])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() in ("turn left", "turn right")
