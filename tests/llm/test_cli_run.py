"""`edgegen run`: one-shot generation streamed to stdout, same text as the API."""
from __future__ import annotations

import io

import pytest

from edgegen.cli.main import main

COMMON = ["--backend", "llama.cpp", "--threads", "1", "--ctx", "256", "--temperature", "0", "-n", "6"]


def test_run_chat_prints_the_same_text_as_the_api(llm, model_path, capsys):
    assert main(["run", "Say hi", "--model", model_path, *COMMON]) == 0
    out = capsys.readouterr().out
    expected = llm.chat([{"role": "user", "content": "Say hi"}], temperature=0, max_tokens=6).text
    assert out == expected + "\n"


def test_run_raw_reads_the_prompt_from_stdin(llm, model_path, capsys, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO("The capital of France is"))
    assert main(["run", "--raw", "--model", model_path, *COMMON]) == 0
    expected = llm.generate("The capital of France is", temperature=0, max_tokens=6).text
    assert capsys.readouterr().out == expected + "\n"


def test_run_with_a_system_message(llm, model_path, capsys):
    assert main(["run", "Say hi", "--system", "Answer in French.", "--model", model_path, *COMMON]) == 0
    msgs = [{"role": "system", "content": "Answer in French."}, {"role": "user", "content": "Say hi"}]
    assert capsys.readouterr().out == llm.chat(msgs, temperature=0, max_tokens=6).text + "\n"


@pytest.mark.parametrize(
    "argv,message",
    [
        (["run", "x", "--route", "cloud"], "needs a cloud endpoint"),
        (["run", "x", "--model", "/nonexistent.gguf"], "nonexistent.gguf"),
        (["run", "x", "--ctx", "4"], "n_ctx"),
    ],
)
def test_run_errors_are_one_line_and_exit_1(argv, message, capsys, monkeypatch):
    monkeypatch.delenv("EDGEGEN_CLOUD_URL", raising=False)
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("edgegen run: error:") and message in err
