"""One set of model/memory flags and KV types across `run`, `chat`, `serve` and `models info`;
errors advise only flags that exist and name the backend that refused."""
from __future__ import annotations

import argparse
import importlib
import re
import sys
import types

import pytest

from edgegen import backends
from edgegen.backends.base import KV_TYPES
from edgegen.cli.main import main
from edgegen.errors import EdgegenWarning, InvalidRequestError, MissingExtraError, UnsupportedModelError

MEMORY_FLAGS = ("--ctx", "--kv-type", "--memory-budget")


def _parser(command: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"edgegen {command}")
    importlib.import_module(f"edgegen.cli.{command}").add_arguments(parser)
    if command == "models":  # the memory flags belong to `models info`
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        return sub.choices["info"]
    return parser


def _options(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {s: a for a in parser._actions for s in a.option_strings}


@pytest.mark.parametrize("command", ["run", "chat", "serve", "models"])
def test_memory_flags_and_kv_types_are_the_same_everywhere(command):
    options = _options(_parser(command))
    for flag in MEMORY_FLAGS:
        assert flag in options, f"edgegen {command} lacks {flag}"
    assert tuple(options["--kv-type"].choices) == KV_TYPES
    if command != "models":
        assert {"--model", "--backend", "--threads"} <= set(options)


def test_sampling_flags_have_help():
    options = _options(_parser("run"))
    for flag in ("--top-k", "--top-p", "--min-p", "--repeat-penalty"):
        assert options[flag].help and "default" in options[flag].help


@pytest.mark.parametrize("kv_type", ["f32", "q4_0"])
def test_load_refuses_other_kv_types_before_choosing_a_backend(kv_type):
    import edgegen

    with pytest.raises(InvalidRequestError, match="use one of f16, q8_0") as info:
        edgegen.load("smollm2", kv_type=kv_type)
    assert info.value.param == "kv_type" and "llama.cpp" not in str(info.value)


def test_memory_error_advises_flags_that_run_accepts(capsys):
    assert main(["run", "x", "--ctx", "8192", "--memory-budget", "100M"]) == 1
    err = capsys.readouterr().err
    assert "does not fit" in err or "memory budget" in err
    advised = set(re.findall(r"--[a-z][a-z-]+", err))
    assert advised == set(MEMORY_FLAGS)
    assert advised <= set(_options(_parser("run")))
    assert "q8_0" in err


def test_load_warns_and_clamps_above_the_trained_context():
    import edgegen

    with pytest.warns(EdgegenWarning, match=r"context 100000 is above .*trained context \(8192 tokens\); using 8192"):
        llm = edgegen.load("smollm2", n_ctx=100_000)
    assert llm.n_ctx == 8192


def test_the_cli_shows_the_context_warning_as_one_line(capsys, monkeypatch):
    import warnings

    monkeypatch.setattr(warnings, "showwarning", warnings.showwarning)  # main() replaces it
    assert main(["run", "hi", "--ctx", "100000", "-n", "1", "--temperature", "0"]) == 0
    assert capsys.readouterr().err.splitlines() == [
        "edgegen run: warning: context 100000 is above SmolLM2-135M-Instruct.Q4_1.gguf's trained context "
        "(8192 tokens); using 8192"]


@pytest.mark.parametrize("failure", [UnsupportedModelError("no kernel for this type"),
                                     MissingExtraError("the llama.cpp backend needs llama_cpp, ...")])
def test_auto_names_both_backends_when_the_fallback_fails_too(monkeypatch, failure):
    def mod(name, opens):
        m = types.ModuleType(name)
        m.supports = lambda path, gguf_file=None: True
        m.open = opens
        monkeypatch.setitem(sys.modules, name, m)

    def native_refuses(path, **opts):
        raise UnsupportedModelError("tensor type IQ2_XS not supported")

    def llama_fails(path, **opts):
        raise failure

    monkeypatch.setitem(backends.BACKENDS, "native", "edgegen_test_native_x")
    monkeypatch.setitem(backends.BACKENDS, "llama.cpp", "edgegen_test_llama_x")
    mod("edgegen_test_native_x", native_refuses)
    mod("edgegen_test_llama_x", llama_fails)
    with pytest.raises(type(failure)) as info:
        backends.open_backend("/m/x.gguf")
    assert str(info.value) == (f"backend auto: the native engine declined x.gguf (tensor type IQ2_XS not supported), "
                               f"and llama.cpp: {failure}")
