"""Audio input of the speech-recognition path on arbitrary bytes: edgegen.audio.decode (the WAV
header check, then PyAV/FFmpeg's demuxers, decoders and resampler), arrays with any sample rate,
and POST /v1/audio/transcriptions (the multipart form, its fields, the upload's audio) with a
recogniser whose model is replaced by a stub (the parsing is what is fuzzed; whisper is not).

Input: a mode byte, then: 0 any file bytes; 1 a RIFF/WAVE file built from fuzzed header fields
(format tag, channels, rate, bits, block align, declared data size, an extra chunk) around fuzzed
samples; 2 int16 samples with a fuzzed rate (load_audio on an array); 3 a multipart body (its
Content-Type line, NUL, the body) sent to the transcription route; 4 a well-formed multipart body
whose file part holds fuzzed bytes and whose text fields are fuzzed.

Contract: decoding returns mono float32 samples at 16 kHz (finite, within [-1, 1] for files), or
raises AudioFormatError naming the problem, within the `max_seconds` bound; the route answers a
200 or an APIError with a 4xx (never a 5xx or another exception).
"""
from __future__ import annotations

import asyncio
import struct
import threading

import numpy as np

from edgegen.audio.asr import ASR, Transcript, TranscriptSegment
from edgegen.audio.decode import SAMPLE_RATE, decode_audio, load_audio
from edgegen.errors import AudioFormatError
from edgegen.server.errors import api_error
from edgegen.server.schemas import APIError
from edgegen.server.transcriptions import handle_transcription

MAX_SECONDS = 20.0  # bounds the work per input, as the server's MAX_AUDIO_SECONDS bounds a request
_loop = asyncio.new_event_loop()


class _StubASR(ASR):
    """The real ASR's option checks and audio loading; the model's work replaced by a fixed answer."""

    def __init__(self) -> None:  # no model files
        self.name, self.multilingual, self.beam_size, self._manifest = "whisper-tiny.en", False, 1, None
        self._lock = threading.Lock()

    def transcribe(self, audio, sample_rate=None, *, language=None, prompt=None, max_seconds=None, **options):
        return super().transcribe(audio, sample_rate, language=language, prompt=prompt,
                                  max_seconds=min(max_seconds or MAX_SECONDS, MAX_SECONDS), **options)

    def transcribe_samples(self, samples, *, language=None, prompt=None, **options) -> Transcript:
        self._options(language, prompt, **options)
        _check_samples(samples, bounded=True)
        seconds = len(samples) / SAMPLE_RATE
        return Transcript("stub", [TranscriptSegment(0.0, seconds, "stub", (1, 2), -0.1, 0.0, 1.0, 0.0)], "en", seconds)


class _Recogniser:  # what server.transcriptions.recogniser() keeps on the server state
    name = "whisper-tiny.en"

    def __init__(self) -> None:
        self.asr = _StubASR()

    def transcribe(self, data: bytes, **options):
        return self.asr.transcribe(data, **options)


class _State:
    config = None
    _recogniser = _Recogniser()


def _check_samples(samples: np.ndarray, bounded: bool) -> None:
    assert isinstance(samples, np.ndarray) and samples.dtype == np.float32 and samples.ndim == 1, (samples.dtype, samples.shape)
    assert np.all(np.isfinite(samples))
    if bounded:
        assert samples.size == 0 or float(np.max(np.abs(samples))) <= 1.0
    assert samples.size <= (MAX_SECONDS + 2) * SAMPLE_RATE, samples.size


def _built_wav(rest: bytes) -> bytes:
    head = rest[:18].ljust(18, b"\0")
    tag, channels, rate, bits, align, declared, extra = struct.unpack("<HHIHHIH", head)
    tag = (1, 3, 6, 7, 0xFFFE, tag)[tag % 6]
    channels = channels % 4 if channels & 0x8000 else 1 + channels % 2
    rate = (8000, 16000, 22050, 44100, 48000, rate)[rate % 6]
    bits = (8, 16, 24, 32, bits)[bits % 5]
    align = align if align & 0x8000 else max(channels * bits // 8, 1)
    samples = rest[18:]
    declared = declared if declared & 1 else len(samples)
    fmt = struct.pack("<HHIIHH", tag, channels, rate, (rate * align) & 0xFFFFFFFF, align, bits)
    chunks = b"fmt " + struct.pack("<I", len(fmt)) + fmt
    if extra & 1:  # a LIST chunk first (as many writers put one), odd-sized
        chunks = b"LIST" + struct.pack("<I", 5) + b"INFOx\0" + chunks
    body = b"WAVE" + chunks + b"data" + struct.pack("<I", declared) + samples
    return b"RIFF" + struct.pack("<I", len(body) if extra & 2 == 0 else 0xFFFFFFFF) + body


def _multipart(fields: list[bytes], file_bytes: bytes) -> tuple[bytes, bytes]:
    boundary = b"fuzzboundary7MA4YWxkTrZu0gW"
    names = [b"model", b"language", b"prompt", b"response_format", b"temperature", b"stream"]
    parts = []
    for name, value in zip(names, fields):
        if value != b"-":  # "-" leaves the field out
            parts.append(b'Content-Disposition: form-data; name="' + name + b'"\r\n\r\n' + value)
    parts.append(b'Content-Disposition: form-data; name="file"; filename="a.wav"\r\nContent-Type: audio/wav\r\n\r\n'
                 + file_bytes)
    body = b"".join(b"--" + boundary + b"\r\n" + p + b"\r\n" for p in parts) + b"--" + boundary + b"--\r\n"
    return b"multipart/form-data; boundary=" + boundary, body


async def _post(content_type: bytes, body: bytes) -> int:
    from starlette.requests import Request

    sent = False

    async def receive():
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    scope = {"type": "http", "method": "POST", "path": "/v1/audio/transcriptions", "query_string": b"",
             "headers": [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]}
    try:
        response = await handle_transcription(_State(), Request(scope, receive))
    except APIError as exc:
        assert 400 <= exc.status < 500, f"{exc.status}: {exc}"
        return exc.status
    except Exception as exc:  # noqa: BLE001 - the contract is about every exception
        err = api_error(exc)
        assert err.status < 500, f"{type(exc).__name__}: {exc} became a {err.status}"
        return err.status
    assert response.status_code == 200
    return 200


def test_one_input(data: bytes) -> None:
    if not data:
        return
    mode, rest = data[0] % 5, data[1:]
    if mode in (0, 1):
        try:
            samples = decode_audio(rest if mode == 0 else _built_wav(rest), max_seconds=MAX_SECONDS)
        except AudioFormatError as exc:
            assert str(exc)
            return
        _check_samples(samples, bounded=True)
    elif mode == 2:
        rate = int.from_bytes(rest[:3].ljust(3, b"\0"), "little", signed=True)
        pcm = np.frombuffer(rest[3:len(rest) - (len(rest) - 3) % 2], "<i2") if len(rest) > 3 else np.zeros(0, np.int16)
        try:
            samples = load_audio(pcm.astype(np.int16), rate, max_seconds=MAX_SECONDS)
        except AudioFormatError as exc:
            assert str(exc)
            return
        _check_samples(samples, bounded=False)  # a band-limited resampler may ring a little past full scale
    elif mode == 3:
        content_type, _, body = rest.partition(b"\0")
        _loop.run_until_complete(_post(content_type, body))
    else:
        parts = rest.split(b"\0", 6)
        parts += [b"-"] * (7 - len(parts))
        _loop.run_until_complete(_post(*_multipart(parts[:6], parts[6])))
