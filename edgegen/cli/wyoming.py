"""`edgegen wyoming`: text-to-speech, speech-to-text, wake word and an LLM conversation agent for
Home Assistant over the Wyoming protocol, from one process (docs/wyoming.md).

Binds 127.0.0.1 by default; any other address needs --allow-remote. Services whose models are
not installed are simply not offered (say so on stderr) unless they were asked for by name.
"""
from __future__ import annotations

import argparse
import importlib.util
import sys
from typing import Any, Optional

HELP = "Wyoming protocol server for Home Assistant: tts, asr, wake word, LLM conversation (tcp://127.0.0.1:10300)"
DEFAULT_ASR = "whisper-tiny.en"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from edgegen.cli.common import add_model_arguments, add_sampling_arguments

    g = parser.add_argument_group("server")
    g.add_argument("--uri", default="tcp://127.0.0.1:10300", help="tcp://HOST:PORT or unix:///PATH (default tcp://127.0.0.1:10300)")
    g.add_argument("--allow-remote", action="store_true", help="allow binding an address other than loopback")
    g.add_argument("--zeroconf", nargs="?", const="edgegen", default=None, metavar="NAME",
                   help="advertise over mDNS for Home Assistant discovery (name default: edgegen)")
    g.add_argument("--max-connections", type=int, default=32, help="open connections at once (default 32)")
    g.add_argument("--idle-timeout", type=float, default=300.0, help="seconds a connection may wait between events")
    g.add_argument("--event-timeout", type=float, default=10.0, help="seconds for the rest of an event once begun")
    g.add_argument("--max-event-bytes", type=int, default=1024 * 1024, help="cap on an event's data and payload")
    g.add_argument("--log-level", default="warning", choices=["error", "warning", "info", "debug"])

    t = parser.add_argument_group("text to speech (every installed voice is offered)")
    t.add_argument("--no-tts", action="store_true", help="do not offer text to speech")
    t.add_argument("--voice", default=None, help="default voice: store name or .onnx path (default: joe)")
    t.add_argument("--speaker", default=None, help="default speaker of the default voice")
    t.add_argument("--length-scale", type=float, default=None, help="phoneme length (> 1 slower; default: the voice's)")
    t.add_argument("--noise-scale", type=float, default=None, help="generator noise (default: the voice's)")
    t.add_argument("--noise-w", type=float, default=None, help="phoneme width noise (default: the voice's)")
    t.add_argument("--samples-per-chunk", type=int, default=1024, help="audio frames per audio-chunk event")
    t.add_argument("--no-streaming", action="store_true", help="refuse streamed text (synthesize-start/chunk/stop)")

    a = parser.add_argument_group("speech to text and wake word")
    a.add_argument("--asr", default=None, help=f"speech recognition model (default {DEFAULT_ASR} when installed)")
    a.add_argument("--no-asr", action="store_true", help="do not offer speech recognition")
    a.add_argument("--wake-word", action="append", default=None, metavar="WORD", help="wake word(s) to offer (default: all installed)")
    a.add_argument("--no-wake", action="store_true", help="do not offer wake word detection")

    c = parser.add_argument_group("conversation (the LLM answers transcripts)")
    c.add_argument("--no-handle", action="store_true", help="do not load an LLM or offer conversation")
    c.add_argument("--system", default=None, help="system prompt for the conversation agent")
    c.add_argument("--max-turns", type=int, default=6, help="exchanges remembered per conversation (default 6)")
    add_model_arguments(parser)
    add_sampling_arguments(parser, max_tokens=256)


def check_bind(uri: str, allow_remote: bool, zeroconf: bool = False) -> None:
    """Loopback or a Unix socket, unless --allow-remote (raises InvalidRequestError)."""
    from edgegen.cli.serve import is_loopback
    from edgegen.errors import InvalidRequestError
    from edgegen.wyoming.server import parse_uri

    scheme, host, _ = parse_uri(uri)
    if scheme == "tcp" and not is_loopback(host or "") and not allow_remote:
        raise InvalidRequestError(
            f"refusing to bind {host}: Wyoming has no authentication, so anyone who can reach the port can use it. "
            "Pass --allow-remote to serve your network (Home Assistant on another machine needs it)."
        )
    if zeroconf and (scheme != "tcp" or is_loopback(host or "")):
        raise InvalidRequestError("--zeroconf advertises the server to the network: bind a network address "
                                  "(--uri tcp://0.0.0.0:10300 --allow-remote)")


def _log(message: str) -> None:
    print(f"edgegen wyoming: {message}", file=sys.stderr, flush=True)


def _load_asr(args: argparse.Namespace) -> Any:
    """The ASR model, or None when speech recognition is not offered (not built in, not installed)."""
    if args.no_asr:
        return None
    if importlib.util.find_spec("edgegen.audio.asr") is None:
        if args.asr:
            raise SystemExit("edgegen wyoming: --asr: speech recognition is not part of this edgegen build")
        _log("speech recognition not offered (not part of this build)")
        return None
    from edgegen import errors
    from edgegen.audio.asr import load_asr

    try:
        return load_asr(args.asr or DEFAULT_ASR, threads=args.threads)
    except (errors.ModelNotFoundError, ImportError) as exc:
        if args.asr:
            raise
        _log(f"speech recognition not offered: {exc}")
        return None


def _wake_factory(args: argparse.Namespace) -> tuple[Any, Optional[dict], tuple[str, ...]]:
    """(detector factory, info, words), or (None, None, ()) when wake words are not offered."""
    if args.no_wake:
        return None, None, ()
    if importlib.util.find_spec("edgegen.audio.wake") is None:
        if args.wake_word:
            raise SystemExit("edgegen wyoming: --wake-word: wake word detection is not part of this edgegen build")
        _log("wake word detection not offered (not part of this build)")
        return None, None, ()
    from edgegen import errors
    from edgegen.audio.wake import load_wake_word

    try:
        # Default: every bundled word, so a satellite may `detect` any of them.
        probe = load_wake_word(args.wake_word or None)
        words = list(args.wake_word or probe.words)
        first = probe if args.wake_word else load_wake_word(words)
    except (errors.ModelNotFoundError, ImportError) as exc:
        if args.wake_word:
            raise
        _log(f"wake word detection not offered: {exc}")
        return None, None, ()
    spare = [first]

    def factory() -> Any:
        return spare.pop() if spare else load_wake_word(words)

    return factory, first.info(), tuple(getattr(first, "active", first.words))


def build_server(args: argparse.Namespace) -> Any:
    from edgegen.store import ModelStore
    from edgegen.wyoming.protocol import Limits
    from edgegen.wyoming.server import WyomingServer
    from edgegen.wyoming.services import Catalog, VoiceLibrary
    from edgegen.wyoming.tts import TtsDefaults

    limits = Limits(max_data_bytes=args.max_event_bytes, max_payload_bytes=args.max_event_bytes,
                    idle_timeout=args.idle_timeout, event_timeout=args.event_timeout,
                    max_connections=args.max_connections)
    store = ModelStore()
    catalog = Catalog(supports_streaming_tts=not args.no_streaming)
    if not args.no_tts:
        catalog.voices = VoiceLibrary.from_store(store, args.voice, threads=args.threads)
        catalog.voices.load(catalog.voices.default)  # as wyoming-piper does: the first request pays no load
    asr = _load_asr(args)
    catalog.asr = asr
    factory, catalog.wake_info, catalog.wake_words = _wake_factory(args)
    conversations = None
    if not args.no_handle:
        conversations = _conversations(args, store)
        catalog.llm_name = conversations.name
        catalog.llm_manifest = conversations.manifest
    tts = TtsDefaults(length_scale=args.length_scale, noise_scale=args.noise_scale, noise_w=args.noise_w,
                      speaker=args.speaker, samples_per_chunk=args.samples_per_chunk, streaming=not args.no_streaming)
    return WyomingServer(catalog, limits=limits, tts_defaults=tts, asr=asr, detector_factory=factory,
                         conversations=conversations)


def _conversations(args: argparse.Namespace, store: Any) -> Any:
    import os

    from edgegen.cli.common import default_params, load_options
    from edgegen.errors import ModelNotFoundError
    from edgegen.llm import load
    from edgegen.server.worker import GenerationWorker
    from edgegen.wyoming.conversation import DEFAULT_SYSTEM_PROMPT, ConversationSettings, Conversations

    params = default_params(args)
    llm = load(args.model, **load_options(args))
    worker = GenerationWorker(slots=max(1, int(getattr(llm.backend, "max_parallel", 1))), max_queue=8,
                              name="edgegen-wyoming-llm")
    settings = ConversationSettings(system_prompt=args.system if args.system is not None else DEFAULT_SYSTEM_PROMPT,
                                    max_turns=args.max_turns)
    base = os.path.basename(str(args.model))
    try:
        manifest = store.manifest(args.model) if not str(args.model).endswith(".gguf") else None
    except ModelNotFoundError:
        manifest = None
    return Conversations(llm, worker, params, settings, name=base[:-5] if base.endswith(".gguf") else base,
                         manifest=manifest)


def run(args: argparse.Namespace) -> int:
    from edgegen.extras import require

    require("wyoming", "wyoming", "edgegen wyoming")  # one line naming the extra when it is missing
    import asyncio
    import logging
    import signal

    check_bind(args.uri, args.allow_remote, args.zeroconf is not None)  # before anything loads
    if args.max_connections < 1 or args.samples_per_chunk < 1 or args.max_event_bytes < 1:
        print("edgegen wyoming: --max-connections, --samples-per-chunk and --max-event-bytes must be >= 1", file=sys.stderr)
        return 2
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    from edgegen.wyoming.server import serve_wyoming

    wyoming = build_server(args)
    info = wyoming.catalog.info()
    offered = [f"{k} ({', '.join(names)})" for k, names in (
        ("tts", [v.name for p in info.tts for v in p.voices]), ("asr", [m.name for p in info.asr for m in p.models]),
        ("wake", [m.name for p in info.wake for m in p.models]), ("handle", [m.name for p in info.handle for m in p.models]),
    ) if names]

    def ready(server: Any) -> None:
        port = server.bound_port()
        where = args.uri if not port else args.uri.rsplit(":", 1)[0] + f":{port}"
        _log(f"serving {'; '.join(offered) or 'nothing'} on {where}")

    async def main() -> None:
        task = asyncio.ensure_future(serve_wyoming(wyoming, args.uri, zeroconf=args.zeroconf, ready=ready))
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, task.cancel)
        try:
            await task
        except asyncio.CancelledError:
            pass

    try:
        asyncio.run(main())
    except OSError as exc:
        print(f"edgegen wyoming: cannot serve {args.uri}: {exc}", file=sys.stderr)
        return 1
    return 0
