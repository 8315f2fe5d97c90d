"""The README's Python snippets run as printed (the first thing a newcomer pastes)."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
SNIPPETS = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.DOTALL)


def test_the_readme_has_snippets():
    assert len(SNIPPETS) >= 2


@pytest.mark.parametrize("index", range(len(SNIPPETS)))
def test_a_readme_snippet_runs_as_printed(index, capsys):
    exec(compile(SNIPPETS[index], f"README.md snippet {index + 1}", "exec"), {"__name__": "__readme__"})
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if line.strip()]
    assert lines, "a README snippet should show its result"
    if "llm.chat" in SNIPPETS[index]:
        assert "Paris" in lines[0]  # the chat answer, printed
        assert len(lines) >= 2  # and the streamed one
    if "load_voice" in SNIPPETS[index]:
        assert all(re.match(r"\d+\.\d\d s at 22050 Hz: '", line) for line in lines) and len(lines) >= 2
