"""Chat templates: equal to llama-cpp-python's Jinja2ChatFormatter on real templates; hostile
templates stop with TemplateError at their limits."""
from __future__ import annotations

import pytest
from llama_cpp.llama_chat_format import Jinja2ChatFormatter

from edgegen.chat import CHATML_TEMPLATE, TemplateLimits, render_chat
from edgegen.errors import InvalidRequestError, TemplateError

# Llama 3 Instruct's template (as published in its GGUF metadata)
LLAMA3 = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}"
    "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}"
    "{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)
# Gemma's template: rejects a system role ordering it does not support via raise_exception
GEMMA = (
    "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}"
    "{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if (message['role'] == 'assistant') %}{% set role = 'model' %}{% else %}{% set role = message['role'] %}{% endif %}"
    "{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{'<start_of_turn>model\n'}}{% endif %}"
)

CONVERSATIONS = [
    [{"role": "user", "content": "Hi ✓ 日本語 😀"}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "  spaced  "}],
    [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}, {"role": "user", "content": "c\n{{ not jinja }}"}],
]


def _reference(template, messages, bos, eos, add_generation_prompt=True):
    fmt = Jinja2ChatFormatter(template, eos_token=eos, bos_token=bos, add_generation_prompt=add_generation_prompt)
    return fmt(messages=messages).prompt


@pytest.mark.parametrize("messages", CONVERSATIONS)
def test_smollm2_template_matches_llama_cpp_python(llm, messages):
    ours = llm.render_chat(messages)
    assert ours == _reference(llm.chat_template, messages, "<|im_start|>", "<|im_end|>")
    assert ours.endswith("<|im_start|>assistant\n")


@pytest.mark.parametrize("template", [LLAMA3, GEMMA, CHATML_TEMPLATE])
@pytest.mark.parametrize("add_generation_prompt", [True, False])
def test_other_real_templates_match_llama_cpp_python(template, add_generation_prompt):
    messages = CONVERSATIONS[2]
    ours = render_chat(template, messages, bos_token="<s>", eos_token="</s>", add_generation_prompt=add_generation_prompt)
    assert ours == _reference(template, messages, "<s>", "</s>", add_generation_prompt)


def test_raise_exception_in_a_template_is_a_template_error():
    with pytest.raises(TemplateError, match="System role not supported"):
        render_chat(GEMMA, CONVERSATIONS[1])


def test_missing_template_falls_back_to_chatml():
    out = render_chat(None, [{"role": "user", "content": "hi"}])
    assert out == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"


@pytest.mark.parametrize("bad", [[], "hello", [{"content": "x"}], [{"role": "user", "content": 5}], [3]])
def test_malformed_messages_are_invalid_requests(bad):
    with pytest.raises(InvalidRequestError):
        render_chat(None, bad)


def test_content_parts_are_joined_like_openai():
    out = render_chat(None, [{"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}])
    assert "user\nab<|im_end|>" in out


# ---- hostile templates --------------------------------------------------------------------------
# Limits are chosen so the *count* limits fire long before the generous deadline: the outcome is
# deterministic and a broken guard shows up as a failure, not as a slow pass.
COUNTED = TemplateLimits(max_output_chars=100_000, max_ops=20_000, timeout_s=60.0)

HOSTILE = {
    "nested range loops": "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
    "nested loops over a list": "{% set l = range(10000)|list %}{% for a in l %}{% for b in l %}{% endfor %}{% endfor %}",
    "recursive macro": "{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}",
    "recursive loop": "{% for m in messages recursive %}{{ loop(messages) }}{% endfor %}",
    "string repeat": "{{ 'x' * 1000000000 }}",
    "list repeat": "{{ [1] * 1000000000 }}",
    "doubling by concatenation": "{% set ns = namespace(x='ab') %}{% for i in range(64) %}{% set ns.x = ns.x ~ ns.x %}{% endfor %}",
    "doubling by plus": "{% set ns = namespace(x='ab') %}{% for i in range(64) %}{% set ns.x = ns.x + ns.x %}{% endfor %}",
    "big output": "{% for i in range(100000) %}xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx{% endfor %}",
    "output buffered in a macro": "{% macro m() %}{% for i in range(100000) %}yyyyyyyyyyyyyyyyyyyy{% endfor %}{% endmacro %}{% set x = m() %}",
    "replace blow-up": "{{ ('x' * 1000)|replace('', 'y' * 1000) }}",
    "method replace blow-up": "{{ ('x' * 1000).replace('', 'y' * 1000) }}",
    "percent width": "{{ '%999999999d' % 1 }}",
    "format width": "{{ '{:>999999999}'.format(1) }}",
    "center width": "{{ 'a'.center(1000000000) }}",
    "indent blow-up": "{{ ('x\n' * 10000)|indent(100000) }}",
    "dunder access": "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "mutating a list": "{% set l = [] %}{{ l.append(1) }}",
    "lipsum": "{{ lipsum(100000000) }}",
    "syntax error": "{% for %}",
    "undefined call": "{{ nothing() }}",
}


# which guard must stop each one (a different error would mean a guard did not fire)
EXPECTED = {
    "nested range loops": "operations", "nested loops over a list": "operations", "recursive macro": "recursed",
    "recursive loop": "recursed", "string repeat": "repeat", "list repeat": "repeat",
    "doubling by concatenation": "value would exceed", "doubling by plus": "concatenation",
    "big output": "output would exceed", "output buffered in a macro": "output would exceed",
    "replace blow-up": "replace", "method replace blow-up": "replace", "percent width": "width",
    "format width": "width", "center width": "width", "indent blow-up": "indent", "dunder access": "sandbox",
    "mutating a list": "sandbox", "lipsum": "undefined", "syntax error": "Expected", "undefined call": "undefined",
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_template_raises_template_error(name):
    with pytest.raises(TemplateError, match=EXPECTED[name]):
        render_chat(HOSTILE[name], CONVERSATIONS[0], limits=COUNTED)


def test_deadline_stops_work_that_stays_under_the_operation_count():
    limits = TemplateLimits(max_ops=10**12, timeout_s=0.05)
    with pytest.raises(TemplateError, match="took longer"):
        render_chat(HOSTILE["nested range loops"], CONVERSATIONS[0], limits=limits)


def test_oversized_template_source_is_refused():
    with pytest.raises(TemplateError, match="limit"):
        render_chat("x" * 300_000, CONVERSATIONS[0])


def test_model_template_failure_surfaces_through_llm_chat(llm, monkeypatch):
    monkeypatch.setattr(type(llm.backend), "chat_template", property(lambda self: HOSTILE["string repeat"]))
    with pytest.raises(TemplateError):
        llm.chat(CONVERSATIONS[0], max_tokens=1)


# ---- compiled once ------------------------------------------------------------------------------

def test_a_template_is_compiled_once_and_rendered_many_times():
    from edgegen import chat

    template = LLAMA3 + "{# compiled-once probe #}"  # a source no other test renders
    before = chat._compile.cache_info()
    first = render_chat(template, CONVERSATIONS[0], bos_token="<s>")
    for messages in CONVERSATIONS * 3:
        render_chat(template, messages, bos_token="<s>")
    after = chat._compile.cache_info()
    assert after.misses == before.misses + 1  # one compile ...
    assert after.hits >= before.hits + 9  # ... and every later render reuses it
    assert render_chat(template, CONVERSATIONS[0], bos_token="<s>") == first


def test_the_compiled_template_cache_is_bounded():
    from edgegen import chat

    for i in range(chat.COMPILED_CACHE_SIZE + 5):
        render_chat(CHATML_TEMPLATE + f"{{# {i} #}}", CONVERSATIONS[0])
    assert chat._compile.cache_info().currsize <= chat.COMPILED_CACHE_SIZE


@pytest.mark.parametrize("template, what", [
    ("{{ 'a'|center(50000) }}", "center width"),  # constant arguments: Jinja would fold it when compiling
    ("{{ 'a'.center(50000) }}", "width"),
    ("{% for i in range(3000) %}{{ i }}{% endfor %}", "operations"),
])
def test_a_cached_template_obeys_each_callers_limits(template, what):
    generous = TemplateLimits(max_output_chars=100_000, max_ops=100_000)
    tight = TemplateLimits(max_output_chars=1_000, max_ops=1_000)
    for _ in range(2):  # either order, compiled or cached
        assert render_chat(template, CONVERSATIONS[0], limits=generous)
        with pytest.raises(TemplateError, match=what):
            render_chat(template, CONVERSATIONS[0], limits=tight)
