"""Speech to text and wake words over Wyoming, against edgegen's ASR and wake-word API
(`edgegen.load_asr`, `edgegen.audio.wake.load_wake_word`; issue 20). The reference is the same
API called directly on the same 16 kHz samples the server hands it.

Written against the contract before the speech-recognition work landed: these tests need
`edgegen.audio.asr` / `edgegen.audio.wake` and their models installed (scripts/setup.sh).
"""
from __future__ import annotations

import io
import wave

import numpy as np
import pytest
from wyoming.asr import Transcribe
from wyoming.audio import AudioChunk, AudioChunkConverter, AudioStart, AudioStop, wav_to_chunks
from wyoming.event import Event
from wyoming.info import Describe, Info
from wyoming.wake import Detect

from edgegen.wyoming.protocol import Limits
from tests.wyoming.conftest import THREADS
from tests.wyoming.harness import ThreadServer, is_type, talk

pytestmark = pytest.mark.slow  # loads the ASR and wake-word models


@pytest.fixture(scope="module")
def asr():
    import edgegen

    return edgegen.load_asr("whisper-tiny.en", threads=THREADS)


@pytest.fixture(scope="module")
def wake_words():
    """A detector listening for every bundled word, as `edgegen wyoming` offers them."""
    from edgegen.audio.wake import load_wake_word

    return load_wake_word(list(load_wake_word().words))


@pytest.fixture(scope="module")
def listening(voice, asr, wake_words):
    from edgegen.audio.wake import load_wake_word
    from edgegen.store import ModelStore
    from edgegen.wyoming.server import WyomingServer
    from edgegen.wyoming.services import Catalog, VoiceLibrary

    words = list(wake_words.active)
    catalog = Catalog(voices=VoiceLibrary.from_store(ModelStore(), "joe", loader=lambda entry: voice), asr=asr,
                      wake_info=wake_words.info(), wake_words=tuple(words))
    server = WyomingServer(catalog, limits=Limits(max_audio_seconds=5.0), asr=asr,
                           detector_factory=lambda: load_wake_word(words))
    s = ThreadServer(server)
    yield s
    s.close()


def _wav(samples: np.ndarray, rate: int) -> wave.Wave_read:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.astype("<i2").tobytes())
    buffer.seek(0)
    return wave.open(buffer, "rb")


def _spoken(voice, text: str) -> np.ndarray:
    return voice.synthesize(text, noise_scale=0.0, noise_w=0.0).to_int16()


def _as_16k_chunks(samples: np.ndarray, rate: int, frames: int = 1024) -> list[np.ndarray]:
    """What the server hands the models: wyoming's converter, chunk by chunk as sent."""
    converter = AudioChunkConverter(rate=16000, width=2, channels=1)
    return [np.frombuffer(converter.convert(c).audio, dtype="<i2")
            for c in wav_to_chunks(_wav(samples, rate), frames) if isinstance(c, AudioChunk)]


def _as_16k(samples: np.ndarray, rate: int) -> np.ndarray:
    return np.concatenate(_as_16k_chunks(samples, rate))


def test_describe_lists_asr_and_wake(listening, asr, wake_words):
    info = Info.from_event(talk(listening.port, [Describe().event()], is_type("info"))[-1])
    (program,) = info.asr
    (model,) = program.models
    meta = asr.info()
    assert (model.name, model.languages, model.version) == (meta["name"], list(meta["languages"]), meta.get("version"))
    (wake,) = info.wake
    assert [m.name for m in wake.models] == list(wake_words.active)
    assert all(m.phrase and m.version == wake_words.info()["version"] for m in wake.models)


def test_transcribe_a_wav(listening, voice, asr):
    audio = _spoken(voice, "Turn on the kitchen lights.")  # 22.05 kHz: the server resamples it
    events = [Transcribe(language="en").event()] + [c.event() for c in wav_to_chunks(
        _wav(audio, voice.sample_rate), 1024, start_event=True, stop_event=True)]
    (transcript,) = talk(listening.port, events, is_type("transcript", "error"))
    assert transcript.type == "transcript"
    expected = asr.transcribe(_as_16k(audio, voice.sample_rate), 16000, language="en").text.strip()
    assert transcript.data["text"] == expected
    assert "kitchen" in expected.lower()


def test_detect_a_wake_word(listening, voice, wake_words):
    """A wake phrase spoken by the joe voice, as 22.05 kHz audio the server resamples: detected
    by the server exactly when the detector itself, fed the same 16 kHz chunks, detects it."""
    from edgegen.audio.wake import load_wake_word

    heard = None
    for word in wake_words.active:
        phrase = wake_words.info()["phrases"].get(word) or word.replace("_", " ")
        audio = np.concatenate([np.zeros(8000, np.int16), _spoken(voice, phrase + "."), np.zeros(16000, np.int16)])
        reference = load_wake_word([word])
        if any(d.name == word for chunk in _as_16k_chunks(audio, voice.sample_rate) for d in reference.process(chunk)):
            heard = word, audio
            break
    assert heard is not None, "the reference detector heard none of the synthesized wake phrases"
    word, audio = heard
    events = [Detect(names=[word]).event()] + [c.event() for c in wav_to_chunks(
        _wav(audio, voice.sample_rate), 1024, start_event=True, stop_event=True)]
    got = talk(listening.port, events, is_type("detection", "not-detected", "error"))
    assert got[-1].type == "detection" and got[-1].data["name"] == word
    assert isinstance(got[-1].data["timestamp"], int) and got[-1].data["timestamp"] > 0


def test_silence_is_not_detected(listening):
    silence = np.zeros(16000, np.int16).tobytes()
    events = [Detect().event(), AudioStart(16000, 2, 1).event(), AudioChunk(16000, 2, 1, silence).event(),
              AudioStop().event()]
    assert talk(listening.port, events, is_type("not-detected", "detection", "error"))[-1].type == "not-detected"


@pytest.mark.parametrize("start, chunk", [
    ({"rate": 4000, "width": 2, "channels": 1}, None),
    ({"rate": 16000, "width": 3, "channels": 1}, None),
    ({"rate": 16000, "width": 2, "channels": 6}, None),
    ({"rate": 16000, "width": 2}, None),
    ({"rate": 16000, "width": 2, "channels": 1}, AudioChunk(16000, 2, 1, b"\x00\x01\x02").event()),  # half a frame
    ({"rate": 16000, "width": 2, "channels": 1}, AudioChunk(8000, 2, 1, b"\x00\x00").event()),  # format changed
])
def test_unsupported_audio_gets_an_error(listening, start, chunk):
    events = [Transcribe().event(), Event("audio-start", data=start)]
    if chunk is not None:
        events += [chunk, chunk]  # the rest of a refused stream is dropped quietly
    events += [AudioStop().event(), Describe().event()]
    got = talk(listening.port, events, is_type("info"))
    assert [e.type for e in got] == ["error", "info"]


def test_too_much_audio_to_transcribe(listening):
    second = np.zeros(16000, np.int16).tobytes()
    events = [Transcribe().event(), AudioStart(16000, 2, 1).event()] + [AudioChunk(16000, 2, 1, second).event()] * 7
    events += [AudioStop().event(), Describe().event()]
    got = talk(listening.port, events, is_type("info"))
    assert [e.type for e in got] == ["error", "info"] and "more than 5 s" in got[0].data["text"]
