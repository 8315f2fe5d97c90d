"""backend="auto": native when it exists and supports the file, llama.cpp otherwise."""
from __future__ import annotations

import sys
import types

import pytest

from edgegen import backends
from edgegen.errors import UnsupportedModelError


def _fake_module(monkeypatch, name, *, supports=None, opens=None):
    mod = types.ModuleType(name)
    if supports is not None:
        mod.supports = supports
    mod.open = opens or (lambda path, **opts: (name, path, opts))
    monkeypatch.setitem(sys.modules, name, mod)
    return mod


@pytest.fixture
def fake_registry(monkeypatch):
    monkeypatch.setitem(backends.BACKENDS, "native", "edgegen_test_fake_native")
    monkeypatch.setitem(backends.BACKENDS, "llama.cpp", "edgegen_test_fake_llama")
    _fake_module(monkeypatch, "edgegen_test_fake_llama")
    monkeypatch.delitem(sys.modules, "edgegen_test_fake_native", raising=False)


def test_auto_uses_llama_cpp_when_native_module_is_missing(fake_registry):
    assert backends.open_backend("m.gguf", "auto", n_ctx=8)[0] == "edgegen_test_fake_llama"


def test_auto_uses_native_when_it_supports_the_file(fake_registry, monkeypatch):
    _fake_module(monkeypatch, "edgegen_test_fake_native", supports=lambda p: True)
    assert backends.open_backend("m.gguf")[0] == "edgegen_test_fake_native"


@pytest.mark.parametrize("supports", [None, lambda p: False, lambda p: 1 / 0])
def test_auto_falls_back_when_native_says_no_or_has_no_check(fake_registry, monkeypatch, supports):
    _fake_module(monkeypatch, "edgegen_test_fake_native", supports=supports)
    assert backends.open_backend("m.gguf")[0] == "edgegen_test_fake_llama"


def test_auto_falls_back_when_native_declines_at_open(fake_registry, monkeypatch):
    def refuse(path, **opts):
        raise UnsupportedModelError("tensor type not supported")

    _fake_module(monkeypatch, "edgegen_test_fake_native", supports=lambda p: True, opens=refuse)
    assert backends.open_backend("m.gguf")[0] == "edgegen_test_fake_llama"


def test_explicit_backend_names(fake_registry):
    assert backends.open_backend("m.gguf", "llamacpp")[0] == "edgegen_test_fake_llama"
    with pytest.raises(UnsupportedModelError, match="not available"):
        backends.open_backend("m.gguf", "native")
    with pytest.raises(UnsupportedModelError, match="unknown backend"):
        backends.open_backend("m.gguf", "tensorrt")
