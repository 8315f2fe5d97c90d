"""Clause streaming, cancellation and LLM-delta speech (speak_stream)."""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest

import edgegen
from edgegen.audio.speak import SpeechStream
from edgegen.errors import InvalidRequestError
from edgegen.types import TextChunk

LONG_FIRST = "When the morning train finally arrived, forty minutes late, the passengers climbed aboard. It left."


class CountingSession:
    """Wraps the onnxruntime session to count model runs (to see that work really stops)."""

    def __init__(self, session):
        self.session, self.runs = session, 0

    def run(self, *args, **kwargs):
        self.runs += 1
        return self.session.run(*args, **kwargs)


@pytest.fixture()
def counted(voice):
    counter = CountingSession(voice.session)
    yield edgegen.Voice(counter, voice.config, voice.model_path), counter


def test_auto_split_first_clause_then_sentences(voice):
    chunks = list(voice.stream(LONG_FIRST, noise_scale=0, noise_w=0))
    assert [c.text for c in chunks] == [
        "When the morning train finally arrived,",
        "forty minutes late, the passengers climbed aboard.",
        "It left.",
    ]
    clauses = list(voice.stream(LONG_FIRST, split="clause", noise_scale=0, noise_w=0))
    np.testing.assert_allclose(chunks[0].samples, clauses[0].samples, atol=1e-4)


def test_stream_yields_clause_by_clause(voice):
    chunks = list(voice.stream(LONG_FIRST, split="clause", noise_scale=0, noise_w=0))
    assert [c.text for c in chunks] == [
        "When the morning train finally arrived,",
        "forty minutes late,",
        "the passengers climbed aboard.",
        "It left.",
    ]
    assert [c.ends_sentence for c in chunks] == [False, False, True, True]
    for c in chunks:
        assert isinstance(c, edgegen.AudioChunk) and c.samples.dtype == np.float32 and c.sample_rate == 22050
        assert c.phoneme_ids[0] == 1 and c.phoneme_ids[-1] == 2  # BOS ... EOS per chunk
    sentence = voice.synthesize(LONG_FIRST.split(". ")[0] + ".", noise_scale=0, noise_w=0)
    # the first clause is a fraction of the first sentence, so first audio comes much sooner
    assert chunks[0].duration < 0.5 * sentence.duration


def test_closing_the_stream_stops_synthesis(counted):
    voice, counter = counted
    stream = voice.stream(LONG_FIRST)
    next(stream)
    assert counter.runs == 1
    stream.close()
    with pytest.raises(StopIteration):
        next(stream)
    assert counter.runs == 1


def test_empty_and_blank_text(voice):
    assert list(voice.stream("")) == [] and list(voice.stream("   \n ")) == []
    assert voice.synthesize("").samples.size == 0


def test_speak_stream_from_text_chunks(voice):
    text = "Sure, here is the answer. It costs $3.50, give or take. Bye"
    words = [TextChunk(w + " ") for w in text.split(" ")] + [TextChunk("", finish_reason="stop")]
    stream = edgegen.speak_stream(iter(words), voice, noise_scale=0, noise_w=0)
    chunks = list(stream)
    reference = list(voice.stream(text, split="clause", noise_scale=0, noise_w=0))
    assert [c.text for c in chunks] == [c.text for c in reference]
    assert [c.phoneme_ids for c in chunks] == [c.phoneme_ids for c in reference]
    for got, want in zip(chunks, reference):  # same clause units -> same audio
        np.testing.assert_allclose(got.samples, want.samples, atol=1e-4)
    assert stream.time_to_first_audio is not None and stream.time_to_first_audio > 0
    assert stream.audio_seconds == pytest.approx(sum(c.duration for c in chunks))
    assert stream.text == "".join(w.text for w in words)


def test_speak_stream_synthesises_while_text_arrives(voice):
    """The first audio is out before the delta iterator has finished."""
    finished = threading.Event()

    def slow_llm():
        yield "Hello there, "
        for i in range(10):
            time.sleep(0.05)
            yield f"word{i} "
        finished.set()

    stream = edgegen.speak_stream(slow_llm(), voice)
    first = next(stream)
    assert first.text == "Hello there," and not finished.is_set()
    stream.close()


def test_backpressure_and_cancellation(counted):
    voice, counter = counted
    pulled = 0
    closed = threading.Event()

    def endless():
        nonlocal pulled
        try:
            while True:
                pulled += 1
                yield f"clause {pulled}, "
        finally:
            closed.set()

    stream = edgegen.speak_stream(endless(), voice, max_queue=2)
    next(stream)
    time.sleep(0.3)
    # the producer is blocked on the full queue: a handful of clauses ahead, not thousands
    assert pulled <= 2 + 4
    stream.close()
    assert closed.wait(2.0)
    runs = counter.runs
    time.sleep(0.1)
    assert counter.runs == runs and not stream._thread.is_alive()


def test_speak_stream_errors(voice):
    def broken():
        yield "Fine so far, "
        raise RuntimeError("llm died")

    with pytest.raises(RuntimeError, match="llm died"):
        list(edgegen.speak_stream(broken(), voice))
    with pytest.raises(InvalidRequestError):
        list(edgegen.speak_stream([TextChunk("ok, "), object.__new__(type("Bad", (), {"text": 3}))], voice))
    with pytest.raises(InvalidRequestError):
        edgegen.speak_stream(["hi"], voice, max_queue=0)


def test_long_text_without_punctuation_is_cut(voice):
    text = " ".join(["word"] * 60)
    stream = edgegen.speak_stream([text], voice, max_clause_chars=100)
    chunks = list(stream)
    assert len(chunks) >= 3 and all(len(c.text) <= 100 for c in chunks)


def test_synthesis_guard_is_held_around_each_synthesis_only(counted) -> None:
    """The guard (the LLM's hold() in a Reply) is entered for every model run and released while
    the caller holds a chunk (playing it), so the LLM can go on meanwhile."""
    voice, counter = counted
    inside = {"now": False, "runs_inside": 0, "entered": 0}
    original = counter.run

    def run(*args, **kwargs):
        inside["runs_inside"] += inside["now"]
        return original(*args, **kwargs)

    counter.run = run

    class Guard:
        def __enter__(self):
            inside["now"] = True
            inside["entered"] += 1

        def __exit__(self, *exc):
            inside["now"] = False

    stream = SpeechStream(iter(["One, ", "two. ", "Three."]), voice, synthesis_guard=Guard, noise_scale=0,
                                  noise_w=0)
    for _ in stream:
        assert not inside["now"]  # the caller's turn: not held
    assert counter.runs == inside["runs_inside"] == 3 and inside["entered"] == 3 + 3  # plus each clause's end


def test_max_phonemes_cuts_long_units_at_words(voice) -> None:
    """Units over max_phonemes are spoken in halves cut at word boundaries: every part within the
    limit, the phonemes those of the whole (less the spaces cut at), the label only where it is
    sure (text and phonemes word for word), else on the last part."""
    text = "The tallest mountain in the whole wide world is Mount Everest, near the border of Nepal and China."
    whole = list(voice.stream(text, split="clause", noise_scale=0, noise_w=0))
    parts = list(voice.stream(text, split="clause", max_phonemes=24, noise_scale=0, noise_w=0))
    assert len(parts) > len(whole) and all(len(p.phonemes) <= 24 for p in parts)
    assert [p for c in whole for p in c.phonemes if p != " "] == [p for c in parts for p in c.phonemes if p != " "]
    assert " ".join(p.text for p in parts if p.text).split() == text.split()
    assert parts[-1].text and parts[-1].ends_sentence and not any(p.ends_sentence for p in parts[:-1])
    with pytest.raises(InvalidRequestError, match="max_phonemes"):
        voice.stream(text, max_phonemes=2)
