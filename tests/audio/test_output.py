"""WAV files, real playback through PortAudio on an ALSA null device, and the device-error paths.

PortAudio enumerates devices once per process, so each device scenario runs in a subprocess
with its own HOME (and so its own ~/.asoundrc).
"""
from __future__ import annotations

import io
import os
import subprocess
import sys
import textwrap
import wave
from pathlib import Path

import numpy as np
import pytest
from piper.config import SynthesisConfig

import edgegen
from edgegen.audio.wav import write_wav

REPO = Path(__file__).resolve().parents[2]


def _run(code: str, home: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("ALSA_CONFIG_PATH",)}
    env.update(HOME=str(home), PYTHONPATH=str(REPO))
    return subprocess.run(
        [sys.executable, *(["-c", textwrap.dedent(code)] if code else []), *args],
        cwd=REPO, env=env, input=stdin, capture_output=True, text=True, timeout=300,
    )


def test_wav_matches_piper_pcm(voice, piper_voice):
    text = "A WAV file, written by edgegen. Two sentences."
    buffer = io.BytesIO()
    seconds = write_wav(buffer, voice.stream(text, split="sentence", noise_scale=0, noise_w=0))
    buffer.seek(0)
    with wave.open(buffer, "rb") as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (1, 2, 22050)
        frames = wav.readframes(wav.getnframes())
        assert wav.getnframes() == round(seconds * 22050)
    reference = b"".join(
        c.audio_int16_bytes for c in piper_voice.synthesize(text, SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0))
    )
    ours, ref = np.frombuffer(frames, "<i2").astype(np.int32), np.frombuffer(reference, "<i2").astype(np.int32)
    assert ours.shape == ref.shape and np.max(np.abs(ours - ref)) <= 4  # AUDIO_ATOL * 32767


def test_empty_stream_is_a_valid_wav():
    buffer = io.BytesIO()
    assert write_wav(buffer, []) == 0.0
    buffer.seek(0)
    with wave.open(buffer, "rb") as wav:
        assert wav.getnframes() == 0 and wav.getframerate() == 22050


PLAY = """
import edgegen
from edgegen.audio.playback import Player, play, check_output_device
import sounddevice as sd
print("devices:", [d["name"] for d in sd.query_devices()])
voice = edgegen.load_voice(threads=2)
check_output_device(None, voice.sample_rate)
chunks = list(voice.stream("Playing through a null device, clause by clause. Done."))
player = Player(voice.sample_rate, autostart=False)  # the null device is not paced: queue first
for chunk in chunks:
    player.write(chunk.samples)
stats = player.finish()
print("played", stats.frames_played, "of", sum(len(c.samples) for c in chunks), "underruns", stats.underruns)
stats = play(voice.stream("Now straight from the stream."))  # chunks played as they arrive
print("streamed", stats.frames_played > 0)
"""


def test_playback_on_alsa_null_device(alsa_null_home):
    result = _run(PLAY, alsa_null_home)
    assert result.returncode == 0, result.stderr
    assert "default" in result.stdout
    played = result.stdout.split("played ")[1].split()
    assert played[0] == played[2] and played[4] == "0"  # every sample handed over, chunks stitched without a gap
    assert "streamed True" in result.stdout


def test_cli_say_plays_and_reads_stdin(alsa_null_home):
    result = _run("", alsa_null_home, "-m", "edgegen", "say", "--threads", "2", "--rate", "1.3", "Hello, device.")
    assert result.returncode == 0, result.stderr
    result = _run("", alsa_null_home, "-m", "edgegen", "say", "--threads", "2", stdin="From standard input, spoken.\n")
    assert result.returncode == 0, result.stderr


NO_DEVICE = """
from edgegen.audio.playback import Player, check_output_device
from edgegen.errors import AudioDeviceError
for attempt in (lambda: check_output_device(), lambda: Player(22050), lambda: check_output_device("no-such-card")):
    try:
        attempt()
        print("no error")
    except AudioDeviceError as exc:
        print("AudioDeviceError:", exc)
"""


def test_no_device_is_audio_device_error(tmp_path):
    result = _run(NO_DEVICE, tmp_path)  # empty HOME: ALSA's default has no card here
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 3 and all(line.startswith("AudioDeviceError:") for line in lines)
    assert "no audio output device" in lines[0]


def test_cli_without_device_suggests_wav(tmp_path):
    result = _run("", tmp_path, "-m", "edgegen", "say", "Hello.")
    assert result.returncode == 1
    assert "AudioDeviceError" not in result.stderr and "Traceback" not in result.stderr
    assert "-o out.wav" in result.stderr and "no audio output device" in result.stderr


def test_cli_writes_wav(tmp_path):
    out = tmp_path / "out.wav"
    result = _run("", tmp_path, "-m", "edgegen", "say", "--threads", "2", "-o", str(out), "Saved, not played.")
    assert result.returncode == 0, result.stderr
    with wave.open(str(out), "rb") as wav:
        assert wav.getframerate() == 22050 and wav.getnframes() > 22050 // 2


MISSING_PORTAUDIO = """
import ctypes.util
ctypes.util.find_library = lambda name: None  # as on a machine without libportaudio2
from edgegen.audio.playback import check_output_device
from edgegen.errors import AudioDeviceError
try:
    check_output_device()
except AudioDeviceError as exc:
    print("AudioDeviceError:", exc)
"""


def test_missing_portaudio_is_audio_device_error(tmp_path):
    result = _run(MISSING_PORTAUDIO, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("AudioDeviceError:") and "PortAudio" in result.stdout
