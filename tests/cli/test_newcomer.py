"""What a first session at the terminal meets: help that lists everything, a bare `run` that says
what it waits for, a clean model name in the chat banner, llama.cpp quiet on stderr."""
from __future__ import annotations

import io

import pytest

from edgegen.cli.main import main
from tests.cli.blocked import run_python


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_help_lists_models_verify(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    models_line = next(line for line in capsys.readouterr().out.splitlines() if line.strip().startswith("models"))
    assert "verify" in models_line


def test_a_bare_run_on_a_terminal_says_it_reads_stdin(monkeypatch, capsys):
    monkeypatch.setattr("sys.stdin", _Terminal("Say hi"))
    assert main(["run", "-n", "2", "--temperature", "0", "--ctx", "256"]) == 0
    captured = capsys.readouterr()
    assert captured.err.startswith("edgegen run: reading the prompt from stdin; end it with Ctrl-D")
    assert captured.out.strip()


def test_the_chat_banner_shows_the_store_name(monkeypatch, capsys):
    monkeypatch.setattr("sys.stdin", io.StringIO(""))  # Ctrl-D at the first prompt
    assert main(["chat", "--ctx", "256", "-t", "1"]) == 0
    banner = capsys.readouterr().err.splitlines()[0]
    assert banner.startswith("smollm2 (native, n_ctx 256);")


def test_llama_cpp_loads_gemma_without_a_word_on_stderr():
    code = ("import edgegen\n"
            "llm = edgegen.load('gemma3-270m', backend='llama.cpp', n_ctx=256, n_threads=1)\n"
            "print(llm.generate('Hi', max_tokens=1, temperature=0).text)\n")
    proc = run_python(code)
    assert proc.returncode == 0 and proc.stderr == ""  # no `using full-size SWA cache` line


def test_a_llama_cpp_load_failure_is_one_error_with_llama_cpp_s_cause(tmp_path, capsys):
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF\x03\x00\x00\x00garbage")
    assert main(["run", "hi", "-m", str(bad), "--backend", "llama.cpp"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "failed to read header" in err
