"""The `wyoming` package's client against `edgegen wyoming`: describe, synthesize (one-shot and
streamed) with audio equal to `Voice`'s, voice/speaker/speed from the event, the conversation
agent against the LLM's own greedy answer, unix sockets and the bind policy."""
from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time

import pytest
from wyoming.asr import Transcript
from wyoming.client import AsyncUnixClient
from wyoming.info import Describe, Info
from wyoming.tts import Synthesize, SynthesizeChunk, SynthesizeStart, SynthesizeStop, SynthesizeVoice

from edgegen.audio.speak import speak_stream
from tests.wyoming.conftest import NOISE_OFF
from tests.wyoming.harness import exchange, is_type, pcm, talk

TEXT = "Hello there, this is edgegen. The lights are off!"


def int16(chunks) -> bytes:
    return b"".join(c.to_int16().astype("<i2").tobytes() for c in chunks)


def test_describe_lists_installed_voice_and_llm(server):
    info = Info.from_event(talk(server.port, [Describe().event()], is_type("info"))[-1])
    (tts,) = info.tts
    assert tts.installed and tts.supports_synthesize_streaming
    joe = {v.name: v for v in tts.voices}["joe"]
    assert joe.languages == ["en_US"] and joe.version == "1.0.0" and joe.speakers is None
    assert joe.attribution.url == "https://github.com/NabuCasa/voice-datasets" and joe.attribution.name == "Nabu Casa"
    (handle,) = info.handle
    (model,) = handle.models
    assert (model.name, model.languages, model.version) == ("smollm2", ["en"], "0.1.2")
    assert model.attribution.name == "HuggingFaceTB" and handle.supports_handled_streaming
    assert info.asr == [] and info.wake == []  # nothing advertised that is not installed here


def test_synthesize_equals_voice(server, voice):
    events = talk(server.port, [Synthesize(text=TEXT).event()], is_type("audio-stop", "error"))
    assert [e.type for e in events[:1] + events[-1:]] == ["audio-start", "audio-stop"]
    assert {e.type for e in events[1:-1]} == {"audio-chunk"}
    start = events[0].data
    assert (start["rate"], start["width"], start["channels"]) == (22050, 2, 1)
    sizes = [len(e.payload) for e in events[1:-1]]  # 1024-frame chunks, a shorter one ending each sentence
    assert max(sizes) == 2048 and sum(size < 2048 for size in sizes) <= 2
    assert pcm(events) == int16(voice.stream(TEXT, **NOISE_OFF))


def test_voice_speaker_and_speed_come_from_the_event(server, voice):
    request = Synthesize(text="Turn left.", voice=SynthesizeVoice(name="en_US-joe-medium", speaker="0"))
    event = request.event()
    event.data["speed"] = 1.5  # edgegen extension: 1.5x faster speech
    audio = pcm(talk(server.port, [event], is_type("audio-stop", "error")))
    expected = int16(voice.stream("Turn left.", length_scale=voice.config.length_scale / 1.5, **NOISE_OFF))
    assert audio == expected and len(expected) < len(int16(voice.stream("Turn left.", **NOISE_OFF))) * 0.8
    bad = [Synthesize(text="x", voice=SynthesizeVoice(name="nobody")).event(), Synthesize(text="x", voice=SynthesizeVoice(name="joe", speaker="alice")).event()]
    for request in bad:
        (error,) = talk(server.port, [request], is_type("error", "audio-stop"))
        assert error.type == "error" and error.data["code"] == "InvalidRequestError"


def test_streamed_text_is_spoken_clause_by_clause(server, voice):
    pieces = ["Hello there,", " this is", " edgegen. The", " lights are off!"]
    events = talk(
        server.port,
        [SynthesizeStart().event()] + [SynthesizeChunk(text=p).event() for p in pieces]
        + [Synthesize(text="".join(pieces)).event(), SynthesizeStop().event()],  # HA's compat synthesize is ignored
        is_type("synthesize-stopped", "error"),
    )
    types = [e.type for e in events]
    assert types[-1] == "synthesize-stopped"
    assert types.count("audio-start") == types.count("audio-stop") == 2  # one group per sentence, as wyoming-piper
    reference = speak_stream(pieces, voice, **NOISE_OFF)
    assert pcm(events) == int16(reference)


def test_handle_answers_with_the_llm_and_keeps_the_conversation(server, llm, greedy):
    from edgegen.wyoming.conversation import DEFAULT_SYSTEM_PROMPT

    question, follow_up = "What is the capital of France?", "And of Italy?"
    context = {"conversation_id": "kitchen-1"}
    first = talk(server.port, [Transcript(text=question, context=context).event()], is_type("handled", "not-handled"))
    assert [e.type for e in first][0] == "handled-start" and first[-2].type == "handled-stop"
    answer = first[-1].data["text"]
    messages = [{"role": "system", "content": DEFAULT_SYSTEM_PROMPT}, {"role": "user", "content": question}]
    assert answer == llm.chat(messages, greedy).text.strip()
    assert "".join(e.data["text"] for e in first if e.type == "handled-chunk").strip() == answer
    assert first[-1].data["context"] == context
    # A new connection, the same conversation id: the history comes along (HA connects per turn).
    second = talk(server.port, [Transcript(text=follow_up, context=context).event()], is_type("handled", "not-handled"))
    messages += [{"role": "assistant", "content": answer}, {"role": "user", "content": follow_up}]
    assert second[-1].data["text"] == llm.chat(messages, greedy).text.strip()
    empty = talk(server.port, [Transcript(text="  ").event()], is_type("handled", "not-handled"))
    assert empty[-1].type == "not-handled"


def test_cli_serves_a_unix_socket_and_stops_on_sigterm(tmp_path, voice):
    """`edgegen wyoming` as a user runs it: loads the store's voices, serves, exits 0 on SIGTERM."""
    path = tmp_path / "edgegen.sock"
    proc = subprocess.Popen([sys.executable, "-m", "edgegen", "wyoming", "--uri", f"unix://{path}", "--no-handle",
                             "--threads", "1", "--noise-scale", "0", "--noise-w", "0"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not path.exists():
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read() if proc.poll() is not None else "timeout"
            time.sleep(0.1)

        async def run():
            async with AsyncUnixClient(path) as client:
                return await exchange(client, [Describe().event(), Synthesize(text="Hi.").event()], is_type("audio-stop"))

        events = asyncio.run(run())
        assert events[0].type == "info" and Info.from_event(events[0]).handle == []
        assert pcm(events) == int16(voice.stream("Hi.", **NOISE_OFF))
    finally:
        proc.send_signal(signal.SIGTERM)
        stderr = proc.communicate(timeout=30)[1]
    assert proc.returncode == 0 and "serving tts (joe)" in stderr and "Traceback" not in stderr
    assert not path.exists()  # the socket file is removed on the way out


def test_cli_refuses_non_loopback_without_allow_remote():
    proc = subprocess.run([sys.executable, "-m", "edgegen", "wyoming", "--uri", "tcp://0.0.0.0:10300"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "refusing to bind 0.0.0.0" in proc.stderr and "--allow-remote" in proc.stderr


@pytest.mark.parametrize("uri, zeroconf, allowed", [
    ("tcp://192.168.1.5:10300", False, False), ("tcp://[::1]:10300", False, True), ("tcp://localhost:1", False, True),
    ("unix:///tmp/x.sock", False, True), ("tcp://127.0.0.1:10300", True, False), ("http://x:1", False, False),
    ("tcp://127.0.0.1", False, False),
])
def test_bind_policy(uri, zeroconf, allowed):
    from edgegen.cli.wyoming import check_bind
    from edgegen.errors import InvalidRequestError

    if allowed:
        check_bind(uri, allow_remote=False, zeroconf=zeroconf)
    else:
        with pytest.raises(InvalidRequestError):
            check_bind(uri, allow_remote=False, zeroconf=zeroconf)
    check_bind("tcp://0.0.0.0:10300", allow_remote=True, zeroconf=True)


def test_zeroconf_advertises_the_server():
    """`--zeroconf`: Home Assistant finds `_wyoming._tcp` with our port over mDNS."""
    from wyoming.server import AsyncTcpServer
    from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf

    from edgegen.wyoming.server import advertise_zeroconf

    async def run():
        advertised = await advertise_zeroconf(AsyncTcpServer("0.0.0.0", 10399), "edgegen-test")
        browser = AsyncZeroconf()
        try:
            info = AsyncServiceInfo("_wyoming._tcp.local.", "edgegen-test._wyoming._tcp.local.")
            found = await info.async_request(browser.zeroconf, 3000)
            return found, info.port, info.parsed_addresses(), advertised.host
        finally:
            await browser.async_close()
            await advertised._aiozc.async_close()

    found, port, addresses, host = asyncio.run(run())
    assert found and port == 10399 and addresses == [host]
