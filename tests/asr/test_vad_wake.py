"""Silero VAD endpointing against faster-whisper's own Silero VAD segmentation, and wake words
against pymicro-wakeword's own detection loop, on speech from the packaged voice."""
from __future__ import annotations

import numpy as np
import pytest

import edgegen
from edgegen.audio.vad import Endpointer, SpeechEnd, SpeechPause, SpeechStart, VADConfig, load_vad, speech_segments
from edgegen.errors import InvalidRequestError
from tests.asr.conftest import silence, speech


@pytest.fixture(scope="module")
def two_turns(voice):
    first = speech(voice, "Turn on the radio, please.")
    second = speech(voice, "And make it a little louder.")
    return np.concatenate([silence(0.8), first, silence(1.5), second, silence(1.0)]), len(first), len(second)


def test_vad_segments_match_faster_whisper(two_turns):
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    audio, _, _ = two_turns
    ours = speech_segments(load_vad(), audio, VADConfig(min_silence_ms=600, speech_pad_ms=96, min_speech_ms=160))
    ref = get_speech_timestamps(audio, VadOptions(threshold=0.5, min_silence_duration_ms=600, speech_pad_ms=96,
                                                  min_speech_duration_ms=160))
    ref = [(r["start"] / 16000, r["end"] / 16000) for r in ref]
    assert len(ours) == len(ref) == 2
    for (s, e), (rs, re_) in zip(ours, ref):
        assert s == pytest.approx(rs, abs=0.1) and e == pytest.approx(re_, abs=0.15)


def test_streaming_endpointer_any_block_size(two_turns):
    audio, n1, n2 = two_turns
    vad = load_vad()
    results = []
    for block in (160, 512, 1000):
        ep = Endpointer(vad, VADConfig(min_silence_ms=600))
        events = [e for i in range(0, len(audio), block) for e in ep.process(audio[i:i + block])]
        results.append([(type(e).__name__, round(getattr(e, "start", getattr(e, "time", 0)), 3)) for e in events])
        ends = [e for e in events if isinstance(e, SpeechEnd)]
        assert [type(e) for e in events] == [SpeechStart, SpeechPause, SpeechEnd, SpeechStart, SpeechPause, SpeechEnd]
        # the audio handed out at the pause is exactly the turn's final audio (the silence lasted)
        pauses = [e for e in events if isinstance(e, SpeechPause)]
        assert all(np.array_equal(p.audio, e.audio) and p.start == e.start for p, e in zip(pauses, ends))
        assert all(e.reason == "silence" for e in ends)
        # each turn's audio holds its speech (padding on both sides, the silence after it cut away)
        assert [len(e.audio) / 16000 for e in ends] == [pytest.approx(n / 16000, abs=0.35) for n in (n1, n2)]
    assert results[0] == results[1] == results[2]  # the block size changes nothing


def test_a_pause_that_speech_resumes_after_is_stale(voice):
    # a 400 ms gap inside a turn: longer than pause_ms, shorter than min_silence_ms
    first, second = speech(voice, "Turn on the radio."), speech(voice, "In the kitchen.")
    audio = np.concatenate([silence(0.5), first, silence(0.4), second, silence(1.0)])
    events = list(Endpointer(load_vad(), VADConfig(min_silence_ms=700)).process(audio))
    ends = [e for e in events if isinstance(e, SpeechEnd)]
    pauses = [e for e in events if isinstance(e, SpeechPause)]
    assert len(ends) == 1 and len(pauses) == 2  # one turn; a pause in the gap and one at its end
    assert len(pauses[0].audio) < len(ends[0].audio) and np.array_equal(pauses[1].audio, ends[0].audio)
    no_pause = list(Endpointer(load_vad(), VADConfig(min_silence_ms=700, pause_ms=0)).process(audio))
    assert not [e for e in no_pause if isinstance(e, SpeechPause)]


def test_max_utterance_and_threshold(two_turns):
    audio, n1, _ = two_turns
    ep = Endpointer(load_vad(), VADConfig(max_utterance_s=0.5))
    ends = [e for e in ep.process(audio) if isinstance(e, SpeechEnd)]
    assert ends[0].reason == "max_length" and len(ends[0].audio) == pytest.approx(8000, abs=512)
    ep = Endpointer(load_vad(), VADConfig(min_speech_ms=3000))
    assert not [e for e in ep.process(audio) if isinstance(e, SpeechStart)]  # no 3 s of unbroken speech
    noise = (np.random.default_rng(1).standard_normal(16000 * 3) * 0.02).astype(np.float32)
    assert speech_segments(load_vad(), noise) == []  # steady noise is not speech
    with pytest.raises(InvalidRequestError):
        VADConfig(threshold=1.5).validate()
    with pytest.raises(InvalidRequestError):
        VADConfig(max_utterance_s=0).validate()


def _reference_detects(word: str, pcm: np.ndarray) -> bool:
    """pymicro-wakeword's own loop (its __main__): features 10 ms at a time, model per feature."""
    from pymicro_wakeword import MicroWakeWord, MicroWakeWordFeatures, Model

    model, features = MicroWakeWord.from_builtin(Model(word)), MicroWakeWordFeatures()
    return any(model.process_streaming(f) for f in features.process_streaming(pcm.tobytes()))


@pytest.mark.parametrize("word,text", [("okay_nabu", "Okay Nabu!"), ("hey_jarvis", "Hey Jarvis!")])
def test_wake_word_matches_pymicro_wakeword(voice, word, text):
    detector = edgegen.load_wake_word([word, "alexa"])
    assert detector.words == ["alexa", "hey_jarvis", "hey_mycroft", "okay_nabu"]
    for spoken, expect in ((text, True), ("What is the weather like?", False)):
        pcm = (np.concatenate([silence(0.5), speech(voice, spoken), silence(0.8)]) * 32767).astype(np.int16)
        detector.reset()
        hits = [h for i in range(0, len(pcm), 700) for h in detector.process(pcm[i:i + 700])]  # odd block size
        assert _reference_detects(word, pcm) is expect
        assert [h.name for h in hits] == ([word] if expect else [])
        if expect:
            assert 0.5 < hits[0].timestamp <= len(pcm) / 16000


def test_wake_word_errors():
    with pytest.raises(InvalidRequestError, match="unknown wake word 'hey siri'"):
        edgegen.load_wake_word(["hey siri"])
    assert edgegen.load_wake_word(["Okay Nabu"]).active == ["okay_nabu"]
    info = edgegen.load_wake_word().info()
    assert info["active"] == ["okay_nabu"] and info["phrases"]["okay_nabu"] == "Okay Nabu" and info["version"]
