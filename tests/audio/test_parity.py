"""edgegen's Piper pipeline against piper-tts 1.8.0 itself, same voice file, same thread count.

Phoneme ids must be identical. Audio is compared with the model's noise switched off
(noise_scale = noise_w = 0), the only setting under which Piper is deterministic; onnxruntime
then runs the same graph on the same inputs, so we allow only float rounding noise.
"""
from __future__ import annotations

import numpy as np
import pytest
from piper.config import SynthesisConfig

AUDIO_ATOL = 1e-4  # peak-normalised float samples; measured 0.0 on x86-64, margin for other ISAs

SENTENCES = [
    "Hello world",
    "Dr. Smith paid $3.50 for 1,000 apples, didn't he?",
    "Wait... what?! Yes: no; maybe.",
    "It was 3:45 p.m. on Jan. 5th, 2024 - e.g. late.",
    'He said "stop." Then he left (quietly), without a word.',
    "Mr. and Mrs. Jones live at 42 St. James St. in the U.S.A. Really.",
    "The 2nd test costs 15% more: about 7.25 euros per kg!",
    "Call 555-0123 before 10 o'clock; otherwise, email us.",
    "One – two — three, four... five?",
    "line one\nline two\n\nline three",
    "It's the year 1999, and NASA's budget is $19.6 billion.",
    "Numbers like 3.14159 and 2,718 are read out; so is 1/2.",
]


def _piper_ids(piper_voice, text: str) -> list[list[int]]:
    return [piper_voice.phonemes_to_ids(p) for p in piper_voice.phonemize(text) if p]


@pytest.mark.parametrize("text", SENTENCES)
def test_phoneme_ids_equal_piper(voice, piper_voice, text):
    assert voice.phonemize(text) == piper_voice.phonemize(text)
    assert voice.phoneme_ids(text) == _piper_ids(piper_voice, text)


def test_raw_phoneme_blocks_equal_piper(voice, piper_voice):
    text = "Say [[ həlˈoʊ ]] to everyone. And [[ bˈaɪ ]]."
    assert voice.phoneme_ids(text) == _piper_ids(piper_voice, text)


def test_clause_chunks_join_to_piper_sentences(voice, piper_voice):
    """Clause streaming changes the units, never the phonemes: each sentence's clauses join up."""
    text = " ".join(SENTENCES[:6])
    expected = [p for p in piper_voice.phonemize(text) if p]
    got, sentence = [], []
    for chunk in voice.stream(text, noise_scale=0, noise_w=0):
        sentence.extend(chunk.phonemes)
        if chunk.ends_sentence:
            got.append(sentence)
            sentence = []
    assert got == expected


@pytest.mark.parametrize(
    "settings, piper_settings, texts",
    [
        ({}, {}, SENTENCES),
        ({"length_scale": 1.4, "volume": 0.5}, {"length_scale": 1.4, "volume": 0.5}, SENTENCES[1:4]),
        ({"length_scale": 0.8, "normalize": False}, {"length_scale": 0.8, "normalize_audio": False}, SENTENCES[4:7]),
    ],
    ids=["default-all-sentences", "slow-quiet", "fast-unnormalised"],
)
def test_audio_equals_piper_with_noise_off(voice, piper_voice, settings, piper_settings, texts):
    text = " ".join(texts)  # one call; Piper synthesises it sentence by sentence
    config = SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0, **piper_settings)
    reference = [c.audio_float_array for c in piper_voice.synthesize(text, config)]
    ours = list(voice.stream(text, split="sentence", noise_scale=0, noise_w=0, **settings))
    assert len(ours) == len(reference) >= len(texts)
    for chunk, ref in zip(ours, reference):
        assert chunk.samples.dtype == np.float32
        assert chunk.samples.shape == ref.shape
        np.testing.assert_allclose(chunk.samples, ref, rtol=0, atol=AUDIO_ATOL)


def test_synthesize_joins_piper_sentences(voice, piper_voice):
    text = "Short one. And a second, with a comma!"
    config = SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0)
    reference = np.concatenate([c.audio_float_array for c in piper_voice.synthesize(text, config)])
    whole = voice.synthesize(text, noise_scale=0, noise_w=0)
    np.testing.assert_allclose(whole.samples, reference, rtol=0, atol=AUDIO_ATOL)
    assert whole.phoneme_ids == tuple(i for ids in _piper_ids(piper_voice, text) for i in ids)


def test_sentence_silence_matches_piper_cli(voice, piper_voice):
    """piper's CLI writes `--sentence-silence` seconds of zeros between sentences, not after the last."""
    text = "First one. Second one! Third?"
    config = SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0)
    gap = np.zeros(int(voice.sample_rate * 0.3), dtype=np.int16)
    parts = []
    for i, chunk in enumerate(piper_voice.synthesize(text, config)):
        parts += ([gap] if i else []) + [chunk.audio_int16_array]
    ours = voice.synthesize(text, noise_scale=0, noise_w=0, sentence_silence=0.3)
    np.testing.assert_allclose(ours.to_int16().astype(np.int32), np.concatenate(parts).astype(np.int32), atol=4)


def test_default_noise_gives_piper_length_distribution(voice, piper_voice):
    """With noise on, neither side is deterministic; durations still agree within the noise (±15%)."""
    text = SENTENCES[1]
    ours = voice.synthesize(text).duration
    ref = sum(len(c.audio_float_array) for c in piper_voice.synthesize(text)) / voice.sample_rate
    assert abs(ours - ref) / ref < 0.15
