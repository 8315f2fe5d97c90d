"""Speech recognition against faster-whisper itself, and word error rates on synthetic speech.

The reference is faster-whisper's WhisperModel on the same CTranslate2 files, compute type and
threads, called directly: our transcripts must equal its transcripts, segment for segment."""
from __future__ import annotations

import numpy as np
import pytest

import edgegen
from edgegen.errors import InvalidRequestError
from tests.asr.conftest import SENTENCES, word_error_rate


def _reference(model, audio, **options):
    segments, info = model.transcribe(audio, **options)
    return [(round(s.start, 3), round(s.end, 3), s.text) for s in segments], info.language


def _ours(t):
    return [(s.start, s.end, s.text) for s in t.segments], t.language


def test_store_resolves_whisper_and_info(asr):
    assert asr.name == "whisper-tiny.en"
    info = asr.info()
    assert info["languages"] == ["en"] and info["version"] == "0.1.0"
    assert "OpenAI" in info["attribution"] and info["license"] == "MIT"
    assert (asr.model_dir / "model.bin").is_file() and (asr.model_dir / "tokenizer.json").is_file()


@pytest.mark.parametrize("kind,index", [("piper", 2), ("espeak", 5)])
def test_file_transcript_equals_faster_whisper(asr, reference_whisper, clips, kind, index):
    path = clips[kind][index]
    t = asr.transcribe(path)
    assert _ours(t) == _reference(reference_whisper, str(path), beam_size=5)
    assert t.text == "".join(s.text for s in t.segments).strip()
    assert t.duration == pytest.approx(t.segments[-1].end, abs=1.0)


def test_array_prompt_and_greedy_equal_faster_whisper(asr, reference_whisper, clips):
    from faster_whisper import decode_audio

    samples = decode_audio(str(clips["piper"][4]))  # float32 at 16 kHz, as faster-whisper decodes it
    options = dict(initial_prompt="Timer, sister.", beam_size=1)
    ours = asr.transcribe(samples, 16000, prompt="Timer, sister.", beam_size=1)
    assert _ours(ours) == _reference(reference_whisper, samples, **options)
    as_int16 = asr.transcribe((samples * 32768).astype(np.int16), 16000, prompt="Timer, sister.", beam_size=1)
    assert as_int16.text == ours.text


def test_any_rate_is_resampled(asr, voice):
    """The voice's 22.05 kHz samples straight in: resampled to 16 kHz on the way."""
    chunks = list(voice.stream("Good morning, how are you?", noise_scale=0.0, noise_w=0.0))
    audio = np.concatenate([c.samples for c in chunks])
    t = asr.transcribe(audio, voice.sample_rate)
    assert word_error_rate("Good morning, how are you?", t.text)[0] == 0
    assert t.duration == pytest.approx(len(audio) / voice.sample_rate, abs=0.01)


def test_language_checks(asr, clips):
    assert asr.transcribe(clips["piper"][0], language="en").language == "en"
    with pytest.raises(InvalidRequestError, match="does not understand language 'de'"):
        asr.transcribe(clips["piper"][0], language="de")


@pytest.mark.slow
def test_word_error_rate_on_piper_and_espeak(asr, clips, record_property):
    """WER of whisper-tiny.en (int8, faster-whisper's default beam 5) on SENTENCES; docs/listening.md
    states the measured figures (and the greedy ones). Bounds leave room for CPU-dependent int8
    rounding, not for a broken pipeline."""
    rates = {}
    for kind, paths in clips.items():
        edits = words = 0
        for text, path in zip(SENTENCES, paths):
            e, n = word_error_rate(text, asr.transcribe(path).text)
            edits, words = edits + e, words + n
        rates[kind] = edits / words
        record_property(f"wer_{kind}", rates[kind])
    print("WER", rates)
    assert rates["piper"] <= 0.05
    assert rates["espeak"] <= 0.2


def test_load_errors():
    with pytest.raises(edgegen.ModelNotFoundError):
        edgegen.load_asr("no-such-recogniser")
    with pytest.raises(edgegen.ModelNotFoundError):
        edgegen.load_asr("joe")  # a voice, not a recogniser
    with pytest.raises(InvalidRequestError):
        edgegen.load_asr(compute_type="float64")
    with pytest.raises(edgegen.MemoryBudgetError, match="speech recogniser"):
        edgegen.load_asr(memory_budget="64M")
