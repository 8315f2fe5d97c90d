"""POST /v1/audio/transcriptions through the official openai client, its errors, and the
`edgegen transcribe` / `edgegen listen` commands."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.asr.conftest import SENTENCES, word_error_rate
from tests.server.server_harness import ThreadServer

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def server(asr):
    import edgegen

    llm = edgegen.load("smollm2", n_ctx=256, n_threads=2)
    with ThreadServer(llm, asr_threads=2) as s:
        s.state._recogniser = None  # loaded by the first request, like in production
        yield s


def test_transcriptions_json_text_verbose(server, asr, clips):
    client = server.client()
    path = clips["piper"][0]
    expected = asr.transcribe(path)
    with open(path, "rb") as fh:
        result = client.audio.transcriptions.create(model="whisper-1", file=fh)
    assert result.text == expected.text
    with open(path, "rb") as fh:
        text = client.audio.transcriptions.create(model="whisper-tiny.en", file=fh, response_format="text")
    assert text.strip() == expected.text
    with open(path, "rb") as fh:
        verbose = client.audio.transcriptions.create(model="whisper-1", file=fh, response_format="verbose_json",
                                                     language="en", prompt="Paris.")
    assert verbose.language == "english" and verbose.duration == pytest.approx(expected.duration, abs=0.01)
    assert verbose.text == asr.transcribe(path, language="en", prompt="Paris.").text
    assert [(s.start, s.end) for s in verbose.segments] and verbose.segments[0].tokens


@pytest.mark.parametrize("payload,status,match", [
    (b"", 400, "is empty"),
    (b"PK\x03\x04 certainly not audio" * 20, 400, "not an audio file"),
    (None, 400, "truncated"),
])
def test_transcriptions_bad_audio(server, clips, payload, status, match):
    import openai

    if payload is None:
        payload = clips["piper"][1].read_bytes()[:-4000]
    with pytest.raises(openai.BadRequestError) as info:
        server.client().audio.transcriptions.create(model="whisper-1", file=("clip.wav", payload))
    assert info.value.status_code == status and match in str(info.value)
    assert info.value.body["param"] == "file"


def test_transcriptions_bad_arguments(server, clips):
    import httpx
    import openai

    client = server.client()
    audio = clips["piper"][0].read_bytes()
    with pytest.raises(openai.BadRequestError, match="does not understand language 'fr'"):
        client.audio.transcriptions.create(model="whisper-1", file=("a.wav", audio), language="fr")
    with pytest.raises(openai.BadRequestError, match="response_format 'srt'"):
        client.audio.transcriptions.create(model="whisper-1", file=("a.wav", audio), response_format="srt")
    with pytest.raises(openai.NotFoundError, match="not served here"):
        client.audio.transcriptions.create(model="whisper-large", file=("a.wav", audio))
    r = httpx.post(server.base + "/v1/audio/transcriptions", json={"model": "whisper-1"})
    assert r.status_code == 400 and "multipart" in r.json()["error"]["message"]
    r = httpx.post(server.base + "/v1/audio/transcriptions", data={"model": "whisper-1"}, files={"x": ("a", b"1")})
    assert r.status_code == 400 and r.json()["error"]["param"] == "file"


def _cli(*args: str, home: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    if home is not None:
        env["HOME"] = str(home)
    return subprocess.run([sys.executable, "-m", "edgegen", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=300)


def test_cli_transcribe_and_listen(clips, asr, tmp_path, alsa_null_home):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF")
    result = _cli("transcribe", "--threads", "2", "--format", "json", str(clips["piper"][3]), str(bad))
    assert result.returncode == 1
    line = json.loads(result.stdout.splitlines()[0])
    assert line["text"] == asr.transcribe(clips["piper"][3]).text and line["segments"]
    assert "bad.wav" in result.stderr and "truncated" in result.stderr and "Traceback" not in result.stderr
    result = _cli("listen", "--threads", "2", "--file", str(clips["piper"][0]), home=alsa_null_home)
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.splitlines()) == 1 and word_error_rate(SENTENCES[0], result.stdout)[0] <= 1
    result = _cli("listen", home=tmp_path)  # no devices at all
    assert result.returncode == 1 and "no microphone: looked for the default input device" in result.stderr
