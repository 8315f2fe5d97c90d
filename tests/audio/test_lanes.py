"""Units after the first synthesised side by side (edgegen/audio/lanes.py): same audio, in order,
against piper-tts itself; the scheduling helpers; cancellation."""
from __future__ import annotations

import random
import threading
import time

import numpy as np
import pytest
from piper.config import SynthesisConfig

import edgegen
from edgegen.audio import voice as voice_module
from edgegen.audio.lanes import in_lanes, lane_makespan, lanes_pay_off

from .test_parity import SENTENCES

FIVE = (
    "Edge devices can speak without a network connection. "
    "The voice model runs on two small cores, using onnxruntime. "
    "Each clause is synthesised as soon as its text is known, so playback starts early. "
    "Numbers like 3.50 and 1,000 are read out in full. "
    "That is all for today, thank you for listening!"
)


class CountingSession:
    def __init__(self, session):
        self.session, self.runs, self.threads = session, 0, set()
        self._lock = threading.Lock()

    def run(self, *args, **kwargs):
        with self._lock:
            self.runs += 1
            self.threads.add(threading.current_thread().name)
        return self.session.run(*args, **kwargs)


@pytest.fixture()
def laned(voice):
    """A 2-lane voice whose main and lane sessions count their runs."""
    main = CountingSession(voice.session)
    v = edgegen.Voice(main, voice.config, voice.model_path, lanes=2)
    v._lane_session = lane = CountingSession(voice._lanes_session())
    return v, main, lane


# --------------------------------------------------------------------------- scheduling helpers


def test_makespan_and_pay_off():
    assert lane_makespan([3, 3, 3, 3], 2) == 6
    assert lane_makespan([5, 1, 1, 1], 2) == 5  # the others fit beside the long one
    assert lane_makespan([4, 2, 2], 1) == 8
    assert lanes_pay_off([145, 185, 163, 101], 2)  # the 5-sentence text after its first sentence
    assert not lanes_pay_off([245], 2)  # one unit left: the main session, all threads
    assert not lanes_pay_off([300, 60], 2)  # lopsided: the long one alone on one thread loses
    assert not lanes_pay_off([100, 100], 1)


def test_in_lanes_keeps_order_and_bounds_lookahead():
    started, yielded, running, peak = [], [], [0], [0]
    lock = threading.Lock()

    def work(i):
        with lock:
            started.append(i)
            running[0] += 1
            peak[0] = max(peak[0], running[0])
            assert i < len(yielded) + 4  # never more than `ahead` past the consumer
        time.sleep(random.uniform(0.001, 0.02))
        with lock:
            running[0] -= 1
        return i * i

    for value in in_lanes(work, list(range(20)), lanes=3, ahead=4):
        yielded.append(value)
    assert yielded == [i * i for i in range(20)]
    assert sorted(started) == list(range(20)) and peak[0] <= 3


def test_in_lanes_raises_at_the_failing_item_and_stops():
    def work(i):
        if i == 2:
            raise ValueError("unit 2 failed")
        return i

    got = []
    with pytest.raises(ValueError, match="unit 2 failed"):
        for value in in_lanes(work, list(range(10)), lanes=2, ahead=2):
            got.append(value)
    assert got == [0, 1]
    assert not [t for t in threading.enumerate() if t.name.startswith("edgegen-voice-lane")]


def test_closing_in_lanes_starts_nothing_more_and_joins():
    started = []

    def work(i):
        started.append(i)
        time.sleep(0.01)
        return i

    it = in_lanes(work, list(range(50)), lanes=2, ahead=2)
    assert next(it) == 0
    it.close()
    assert len(started) <= 4  # the first item, plus what `ahead` allowed before close
    assert not [t for t in threading.enumerate() if t.name.startswith("edgegen-voice-lane")]
    with pytest.raises(ValueError):
        next(in_lanes(work, [1], lanes=2, ahead=1))


# --------------------------------------------------------------------------- in the voice


def test_lanes_give_the_same_audio_as_one_session(voice, laned):
    v, main, lane = laned
    sequential = edgegen.Voice(voice.session, voice.config, voice.model_path, lanes=1)
    ours = list(v.stream(FIVE, noise_scale=0, noise_w=0))
    ref = list(sequential.stream(FIVE, noise_scale=0, noise_w=0))
    assert main.runs == 1 and lane.runs == 4  # first sentence on the main session, 4 in lanes
    assert len(lane.threads) == 2 and "MainThread" not in lane.threads
    assert [c.text for c in ours] == [c.text for c in ref]
    for a, b in zip(ours, ref):
        assert a.phoneme_ids == b.phoneme_ids
        np.testing.assert_allclose(a.samples, b.samples, rtol=0, atol=1e-4)


def test_lanes_audio_equals_piper(laned, piper_voice):
    """Sentence units, noise off: audio in lanes is still piper's, sentence by sentence."""
    v, main, lane = laned
    text = " ".join(SENTENCES[:8])
    config = SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0, volume=0.7)
    reference = [c.audio_float_array for c in piper_voice.synthesize(text, config)]
    ours = list(v.stream(text, split="sentence", noise_scale=0, noise_w=0, volume=0.7))
    assert lane.runs == len(reference) - 1 and main.runs == 1
    assert len(ours) == len(reference) >= 8
    for chunk, ref in zip(ours, reference):
        assert chunk.samples.shape == ref.shape
        np.testing.assert_allclose(chunk.samples, ref, rtol=0, atol=1e-4)


def test_two_units_stay_on_the_main_session(laned):
    """The long first sentence: first clause, then the rest: one unit left, all threads on it."""
    v, main, lane = laned
    text = ("When the morning train finally pulled into the station, forty minutes late and packed to the "
            "doors, the passengers who had waited in the cold climbed aboard without a word.")
    assert len(list(v.stream(text))) == 2
    assert main.runs == 2 and lane.runs == 0


def test_no_lanes_when_a_lane_would_fall_behind_real_time(laned, monkeypatch):
    v, main, lane = laned
    monkeypatch.setattr(voice_module, "MAX_LANE_RTF", 0.0)
    list(v.stream(FIVE))
    assert main.runs == 5 and lane.runs == 0


def test_closing_the_stream_stops_the_lanes(laned):
    v, main, lane = laned
    stream = v.stream(" ".join(SENTENCES))
    next(stream)
    next(stream)  # the lanes are running now
    stream.close()
    runs = lane.runs
    assert runs <= 1 + 2 * 2  # the yielded unit, plus at most `ahead` more
    time.sleep(0.2)
    assert lane.runs == runs
    assert not [t for t in threading.enumerate() if t.name.startswith("edgegen-voice-lane")]


def test_parallel_units_option(joe_files):
    model, _ = joe_files
    assert edgegen.load_voice(model, threads=2).lanes == 2
    assert edgegen.load_voice(model, threads=2, parallel_units=False).lanes == 1
    assert edgegen.load_voice(model, threads=1).lanes == 1
    assert edgegen.load_voice(model, threads=8).lanes == 1  # over MAX_LANES: one session
    assert edgegen.Voice(object(), edgegen.load_voice(model, threads=1).config, lanes=2).lanes == 1  # no model path


def test_session_options(laned):
    """Both sessions hand their cores back when a run returns and share one memory arena (the
    audio tests against piper run on these same sessions, so the options leave the audio as it
    was)."""
    v, _, _ = laned
    assert voice_module._SHARED_ARENA is True
    for session in (v.session.session, v._lane_session.session):
        options = session.get_session_options()
        assert options.get_session_config_entry("session.force_spinning_stop") == "1"
        assert options.get_session_config_entry("session.use_env_allocators") == "1"
