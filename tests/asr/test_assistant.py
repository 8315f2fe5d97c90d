"""The conversation loop end to end (tests/asr/loop_driver.py in a subprocess, playback on the ALSA
null device), barge-in with its cuts to history and KV cache, echo rejection, and the memory
budget refusal."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.asr.conftest import word_error_rate

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def loop(tmp_path_factory):
    d = tmp_path_factory.mktemp("loop")
    home = d / "home"
    home.mkdir()
    (home / ".asoundrc").write_text("pcm.!default { type null }\nctl.!default { type hw card 0 }\n")
    interrupt = d / "interrupt.wav"
    subprocess.run(["espeak-ng", "-v", "en-us", "-w", str(interrupt), "Stop. What time is it?"], check=True)
    env = {k: v for k, v in os.environ.items() if k != "ALSA_CONFIG_PATH"}
    env.update(HOME=str(home), PYTHONPATH=str(REPO))
    out = d / "record.json"
    result = subprocess.run([sys.executable, str(REPO / "tests/asr/loop_driver.py"), str(interrupt), str(out)],
                            cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(out.read_text())


@pytest.mark.slow
def test_turns_and_replies(loop):
    heard = [text for kind, text, _ in loop["events"] if kind == "heard"]
    assert len(heard) == 4
    for got, said in zip(heard, ["What is the capital of France?", "Tell me a long story about a dragon and a knight.",
                                 "Stop. What time is it?", "What color is the sky?"]):
        assert word_error_rate(said, got)[0] <= 1, (said, got)
    # a question followed by silence was transcribed from its pause, before the turn ended
    first_heard = next(d for kind, _, d in loop["events"] if kind == "heard")
    assert first_heard["early"] and first_heard["asr_wait_s"] < first_heard["asr_s"] + 0.05
    replies = [(text, d) for kind, text, d in loop["events"] if kind == "reply"]
    assert "Paris" in replies[0][0] and not replies[0][1]["interrupted"]
    assert replies[0][0] == replies[0][1]["full_text"].strip()  # spoken in full
    assert replies[0][1]["first_audio_s"] > 0 and replies[0][1]["llm_first_token_s"] > 0


@pytest.mark.slow
def test_barge_in_cuts_playback_generation_history_and_kv(loop):
    snap = loop["snap"]
    kinds = [k for k, _, _ in loop["events"]]
    assert kinds.count("barge_in") == 1
    assert snap["stop_latency"] < 0.150  # the speaker stopped within 150 ms of the decision
    # generation: cancelled while it was still going, and nothing generated after the cut
    assert snap["finish"] == "cancelled" and len(snap["generated_ids"]) < 200 and snap["generated_after"] == 0
    # history: the clauses that finished playing, a proper prefix of what was generated
    spoken, full = snap["spoken"], snap["full"]
    played = [c for c in snap["clauses"]]
    assert spoken and full.startswith(spoken) and len(spoken) < len(full.strip())
    assert snap["history"][3] == {"role": "assistant", "content": spoken}
    assert snap["history"][2]["role"] == "user" and "dragon" in snap["history"][2]["content"]
    assert len(played) >= 1 and all(c[0].strip() in spoken for c in played[:1])
    # KV: exactly the prompt plus the generated tokens of the spoken text
    keep = snap["prompt_ids"] + snap["generated_ids"][:snap["kept"]]
    assert snap["cached"] == keep and snap["seq_len"] == len(keep)
    assert 0 < snap["kept"] < len(snap["generated_ids"])
    assert spoken.startswith(snap["kept_text"].strip()) and len(spoken) - len(snap["kept_text"].strip()) <= 3
    # the next turn continued from that cache: its prompt reused at least the kept prefix
    assert loop["reused_after"] - snap["reused_before"] >= len(keep) - 3


@pytest.mark.slow
def test_echo_of_our_own_voice_does_not_barge_in(loop):
    last = [(text, d) for kind, text, d in loop["events"] if kind == "reply"][-1]
    assert not last[1]["interrupted"] and last[0] == last[1]["full_text"].strip()
    assert "blue" in last[0].lower()


def test_assistant_refuses_a_set_that_does_not_fit():
    result = subprocess.run([sys.executable, "-m", "edgegen", "assistant", "--memory-budget", "400M"], cwd=REPO,
                            env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    err = result.stderr.strip()
    assert len(err.splitlines()) == 1 and "needs" in err and "but the memory budget is 400.0 MiB" in err
    for part in ("weights", "KV cache", "voice sessions", "speech recogniser", "voice activity"):
        assert part in err
