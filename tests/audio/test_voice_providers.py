"""load_voice(providers=...): onnxruntime providers pass through; unknown or missing ones are a
clear InvalidRequestError (onnxruntime alone would fall back to the CPU silently). Whether the
QNN HTP simulator runs Piper's graph is measured by bench/piper_htp.py (docs/accelerators.md)."""
from __future__ import annotations

import sys

import pytest

from edgegen.audio.voice import load_voice
from edgegen.errors import InvalidRequestError


def test_cpu_provider_passes_through_and_keeps_lanes():
    v = load_voice(None, providers=["CPUExecutionProvider"], threads=2)
    assert v.session.get_providers() == ["CPUExecutionProvider"] and v.lanes == 2
    assert v.synthesize("Hi.").samples.size > 0


@pytest.mark.parametrize("providers, message", [
    (["NoSuchExecutionProvider"], "not available here"),
    ("CPUExecutionProvider", "non-empty list"),
    ([], "non-empty list"),
    ([42], "name or a"),
])
def test_bad_providers_are_refused(providers, message):
    with pytest.raises(InvalidRequestError, match=message):
        load_voice(None, providers=providers)


def test_qnn_without_its_package_names_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime_qnn", None)  # as if not installed
    with pytest.raises(InvalidRequestError, match=r"onnxruntime-qnn"):
        load_voice(None, providers=[("QNNExecutionProvider", {"htp_arch": "68"})])
