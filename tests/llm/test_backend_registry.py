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


# ---- the constructor checks every backend shares (edgegen.backends.base.check_open_options) -------

from edgegen.backends.base import check_open_options  # noqa: E402
from edgegen.errors import InvalidRequestError, ModelNotFoundError  # noqa: E402


@pytest.fixture
def model_file(tmp_path):
    path = tmp_path / "m.gguf"
    path.write_bytes(b"GGUF")
    return str(path)


def _check(path, **overrides):
    options = dict(backend="test", n_ctx=256, n_threads=None, kv_type="f16", kv_types=("f16", "q8_0"))
    options.update(overrides)
    check_open_options(path, **options)


@pytest.mark.parametrize("n_ctx", [0, 16, 4096])
@pytest.mark.parametrize("n_threads", [None, 1, 8])
def test_good_options_pass(model_file, n_ctx, n_threads):
    _check(model_file, n_ctx=n_ctx, n_threads=n_threads)


@pytest.mark.parametrize("overrides, error, message", [
    ({"n_ctx": 15}, InvalidRequestError, "n_ctx must be an integer >= 16 \\(or 0"),
    ({"n_ctx": -1}, InvalidRequestError, "n_ctx"),
    ({"n_ctx": 256.0}, InvalidRequestError, "n_ctx"),
    ({"n_ctx": True}, InvalidRequestError, "n_ctx"),
    ({"n_ctx": "256"}, InvalidRequestError, "n_ctx"),
    ({"n_threads": 0}, InvalidRequestError, "n_threads must be a positive integer"),
    ({"n_threads": 2.5}, InvalidRequestError, "n_threads"),
    ({"n_threads": False}, InvalidRequestError, "n_threads"),
    ({"kv_type": "q4_0"}, UnsupportedModelError, "kv_type 'q4_0' is not supported by the test backend; use one of f16, q8_0"),
    ({"kv_type": ["f16"]}, UnsupportedModelError, "kv_type"),
])
def test_bad_options_raise_typed_errors_that_name_the_option(model_file, overrides, error, message):
    with pytest.raises(error, match=message):
        _check(model_file, **overrides)


def test_a_missing_file_is_model_not_found(tmp_path):
    with pytest.raises(ModelNotFoundError, match="no model file"):
        _check(str(tmp_path / "absent.gguf"))
    with pytest.raises(ModelNotFoundError):
        _check(str(tmp_path))  # a directory is not a model file


def test_llama_cpp_backend_runs_the_shared_checks(model_file, tmp_path):
    from edgegen.backends.llamacpp import LlamaCppBackend

    with pytest.raises(ModelNotFoundError):
        LlamaCppBackend(str(tmp_path / "absent.gguf"))
    with pytest.raises(InvalidRequestError, match="n_threads"):
        LlamaCppBackend(model_file, n_threads=0)
    with pytest.raises(UnsupportedModelError, match="llama.cpp backend"):
        LlamaCppBackend(model_file, kv_type="bf16")
