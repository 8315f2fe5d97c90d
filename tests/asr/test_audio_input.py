"""Audio input: bad files and arrays give AudioFormatError naming the problem; sources; the resampler;
microphone capture on the ALSA null device and the no-device error (subprocesses: PortAudio
enumerates devices once per process)."""
from __future__ import annotations

import io
import os
import struct
import subprocess
import sys
import textwrap
import wave
from pathlib import Path

import numpy as np
import pytest

from edgegen.audio.decode import Resampler, check_wav_header, load_audio, resample_array
from edgegen.audio.sources import ArraySource, FileSource
from edgegen.errors import AudioFormatError

REPO = Path(__file__).resolve().parents[2]


def _wav_bytes(samples: np.ndarray, rate: int = 16000, width: int = 2) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(samples.tobytes())
    return buf.getvalue()


def test_empty_file(tmp_path):
    (tmp_path / "empty.wav").write_bytes(b"")
    with pytest.raises(AudioFormatError, match="is empty"):
        load_audio(tmp_path / "empty.wav")
    with pytest.raises(AudioFormatError, match="is empty"):
        load_audio(b"")


def test_not_audio(tmp_path):
    p = tmp_path / "notes.wav"
    p.write_text("these are not samples\n" * 50)
    with pytest.raises(AudioFormatError, match="not an audio file"):
        load_audio(p)
    with pytest.raises(AudioFormatError, match="no such audio file"):
        load_audio(tmp_path / "missing.wav")


def test_truncated_wav(tmp_path):
    data = _wav_bytes((np.sin(np.arange(16000) / 5) * 8000).astype("<i2"))
    p = tmp_path / "cut.wav"
    p.write_bytes(data[:len(data) // 2])
    with pytest.raises(AudioFormatError, match="WAV is truncated: its header declares 32000 bytes"):
        load_audio(p)
    with pytest.raises(AudioFormatError, match="truncated"):
        load_audio(data[:30])  # cut inside the header
    # a WAV written to a pipe (size placeholders, as espeak-ng --stdout writes) is not truncated
    streamed = bytearray(data)
    streamed[4:8] = struct.pack("<I", 0x7FFFF024)
    streamed[40:44] = struct.pack("<I", 0x7FFFF000)
    assert len(load_audio(bytes(streamed))) == 16000


def test_two_hour_file_is_refused_before_decoding(tmp_path):
    p = tmp_path / "two-hours.wav"
    n_bytes = 2 * 3600 * 16000 * 2
    with open(p, "wb") as fh:  # a real 2-hour WAV of silence, sparse on disk
        fh.write(_wav_bytes(np.zeros(0, "<i2"))[:40] + struct.pack("<I", n_bytes))
        fh.truncate(44 + n_bytes)
    with wave.open(str(p)) as w:
        assert w.getnframes() / w.getframerate() == 7200
    with pytest.raises(AudioFormatError, match="120.0 min long; the limit is 60.0 min"):
        load_audio(p)
    with pytest.raises(AudioFormatError, match="min long"):
        load_audio(np.zeros(16000 * 61, np.float32), 16000, max_seconds=60)


def test_wrong_sample_formats(tmp_path):
    with pytest.raises(AudioFormatError, match="int16 or float32"):
        load_audio(np.zeros(1600, np.int32), 16000)
    with pytest.raises(AudioFormatError, match="must lie in \\[-1, 1\\]"):
        load_audio(np.full(1600, 12000.0, np.float32), 16000)  # int16 values stored as float
    with pytest.raises(AudioFormatError, match="NaN"):
        load_audio(np.array([0.0, np.nan], np.float32), 16000)
    with pytest.raises(AudioFormatError, match="1-D"):
        load_audio(np.zeros((2, 2, 2), np.float32), 16000)
    with pytest.raises(AudioFormatError, match="sample rate"):
        load_audio(np.zeros(100, np.float32), 0)
    # a WAV whose format tag is not audio FFmpeg decodes from WAV (0x2: MS ADPCM needs extra fields)
    data = bytearray(_wav_bytes(np.zeros(800, "<i2")))
    data[20:22] = struct.pack("<H", 0x50)  # MPEG layer 1/2 tag with PCM data behind it
    with pytest.raises(AudioFormatError, match="WAV sample format not supported"):
        load_audio(bytes(data))
    data = bytearray(_wav_bytes(np.zeros(800, "<i2")))
    data[34:36] = struct.pack("<H", 12)  # 12-bit PCM
    with pytest.raises(AudioFormatError, match="12-bit"):
        load_audio(bytes(data))


def test_stereo_and_8bit_files_decode(tmp_path):
    tone = (np.sin(np.arange(8000) / 3) * 100 + 128).astype(np.uint8)
    assert len(load_audio(_wav_bytes(tone, 8000, width=1))) == 16000
    assert check_wav_header(b"not a wav", 9) is None


def test_streaming_resampler_equals_whole_array():
    rate = 44100
    x = (np.sin(2 * np.pi * 440 * np.arange(rate) / rate) * 0.5).astype(np.float32)
    whole = resample_array(x, rate)
    r = Resampler(rate)
    parts = [r.process(x[i:i + 1000]) for i in range(0, len(x), 1000)] + [r.flush()]
    streamed = np.concatenate(parts)
    assert len(whole) == len(streamed) == 16000
    np.testing.assert_allclose(streamed, whole, atol=1e-6)
    ref = 0.5 * np.sin(2 * np.pi * 440 * np.arange(16000) / 16000)
    assert np.max(np.abs(whole[200:-200] - ref[200:-200])) < 1e-3  # band-limited, phase-true resampling


def test_array_and_file_sources(tmp_path):
    x = (np.random.default_rng(0).standard_normal(16000 * 2) * 0.1).astype(np.float32)
    blocks = list(ArraySource(x, 16000, blocksize=512))
    assert [len(b) for b in blocks[:-1]] == [512] * (len(blocks) - 1)
    np.testing.assert_array_equal(np.concatenate(blocks), x)
    p = tmp_path / "x.wav"
    p.write_bytes(_wav_bytes((x * 32767).astype("<i2")))
    assert sum(len(b) for b in FileSource(p, blocksize=1024)) == len(x)


def _run(code: str, home: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "ALSA_CONFIG_PATH"}
    env.update(HOME=str(home), PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=120)


MIC = """
from edgegen.audio.sources import MicrophoneSource
from edgegen.errors import AudioDeviceError
try:
    src = MicrophoneSource(blocksize=320)
except AudioDeviceError as exc:
    print("ERROR", exc)
else:
    blocks = [next(src) for _ in range(5)]
    src.close()
    print("OK", src.device_name, [len(b) for b in blocks], blocks[0].dtype)
try:
    MicrophoneSource("no such microphone")
except AudioDeviceError as exc:
    print("NAMED", exc)
"""


def test_microphone_on_alsa_null_device(alsa_null_home):
    result = _run(MIC, alsa_null_home)
    assert result.returncode == 0, result.stderr
    assert "OK default [320, 320, 320, 320, 320] float32" in result.stdout
    assert "NAMED no microphone: looked for input device 'no such microphone'" in result.stdout


def test_no_input_device_is_a_clear_error(tmp_path):
    result = _run(MIC, tmp_path)  # no .asoundrc: no devices at all
    assert result.returncode == 0, result.stderr
    assert "ERROR no microphone: looked for the default input device" in result.stdout
