"""The chat-template renderer (jinja2 sandbox with work, time and size limits) on hostile
templates and messages.

Input: template, then messages (role, content pairs), NUL-separated. Contract: render_chat()
returns a str no longer than the output limit, or raises TemplateError (InvalidRequestError for
malformed messages), within the time limit; nothing else escapes (no sandbox escape, no
RecursionError/MemoryError/TypeError, no hang).
"""
from __future__ import annotations

import time

from edgegen.chat import TemplateLimits, render_chat
from edgegen.errors import InvalidRequestError, TemplateError
from tests.fuzz.python.common import fields

# Small limits keep one execution cheap; the limits themselves are what is tested.
LIMITS = TemplateLimits(max_ops=5_000, max_output_chars=8_000, timeout_s=0.5, max_template_chars=20_000)


def test_one_input(data: bytes) -> None:
    parts = fields(data, 9)
    template = parts[0]
    messages = []
    for role, content in zip(parts[1::2], parts[2::2]):
        if role or content:
            messages.append({"role": role or "user", "content": content})
    if not messages:
        messages = [{"role": "user", "content": "hi"}]
    t0 = time.monotonic()
    try:
        out = render_chat(template, messages, bos_token="<s>", eos_token="</s>", limits=LIMITS)
    except (TemplateError, InvalidRequestError):
        out = ""
    elapsed = time.monotonic() - t0
    assert isinstance(out, str) and len(out) <= LIMITS.max_output_chars
    assert elapsed < LIMITS.timeout_s + 2.0, f"render took {elapsed:.1f} s"
