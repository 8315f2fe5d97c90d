"""`edgegen assistant`: the offline voice assistant (wake word or always listening, barge-in).

The whole set (LLM, voice, recogniser, VAD, wake word) is checked against the memory budget
before anything loads: when it does not fit, the command refuses with the numbers.
"""
from __future__ import annotations

import argparse
import sys

HELP = "Offline voice assistant: microphone -> Whisper -> LLM -> Piper voice -> speaker, with barge-in."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", "-m", default="smollm2", help="LLM: store name or .gguf path")
    parser.add_argument("--voice", default="joe", help="Piper voice: name or .onnx path")
    parser.add_argument("--asr", default="whisper-tiny.en", help="recogniser: store name or CTranslate2 directory")
    parser.add_argument("--wake-word", action="append", default=None, metavar="WORD",
                        help="wake word (okay_nabu, hey_jarvis, hey_mycroft, alexa); repeatable. Default: always listening")
    parser.add_argument("--push-to-talk", action="store_true", help="press Enter to talk instead of a wake word")
    parser.add_argument("--input-device", default=None, help="microphone index or name")
    parser.add_argument("--output-device", default=None, help="speaker index or name")
    parser.add_argument("--file", default=None, help="take the microphone audio from a file (paced in real time)")
    parser.add_argument("--threads", "-t", type=int, default=None, help="CPU threads for every model")
    parser.add_argument("--ctx", type=int, default=2048, help="LLM context window")
    parser.add_argument("--max-tokens", "-n", type=int, default=96, help="tokens per reply")
    parser.add_argument("--temperature", type=float, default=0.0)
    parser.add_argument("--system", default=None, help="system prompt")
    parser.add_argument("--no-barge-in", action="store_true", help="do not let speech interrupt a reply")
    parser.add_argument("--echo-ratio", type=float, default=0.2,
                        help="barge-in needs the mic louder than this x the playback level (echo gate)")
    parser.add_argument("--memory-budget", default=None, help="e.g. 512M; default: available RAM minus a margin")


def _device(value):
    return int(value) if value is not None and value.isdigit() else value


def run(args: argparse.Namespace) -> int:
    from edgegen.audio.assistant import DEFAULT_SYSTEM_PROMPT, check_assistant_fit, load_assistant
    from edgegen.audio.sources import FileSource, MicrophoneSource

    mode = "push_to_talk" if args.push_to_talk else ("wake" if args.wake_word else "always")
    check_assistant_fit(args.model, args.voice, args.asr, n_ctx=args.ctx, wake_words=len(args.wake_word or []),
                        memory_budget=args.memory_budget)  # refuse before opening devices or loading anything
    source = (FileSource(args.file, realtime=True) if args.file else MicrophoneSource(_device(args.input_device)))
    try:
        assistant = load_assistant(
            args.model, args.voice, args.asr, wake_words=args.wake_word, threads=args.threads, n_ctx=args.ctx,
            memory_budget=args.memory_budget, mode=mode, system_prompt=args.system or DEFAULT_SYSTEM_PROMPT,
            barge_in=not args.no_barge_in, echo_ratio=args.echo_ratio,
            sampling={"max_tokens": args.max_tokens, "temperature": args.temperature},
            output_device=_device(args.output_device),
        )
    except BaseException:
        source.close()
        raise
    if mode == "push_to_talk":
        import threading

        def keys() -> None:
            for _ in sys.stdin:
                assistant.push_to_talk()

        threading.Thread(target=keys, daemon=True).start()
    hint = {"always": "listening", "wake": f"say {' or '.join(args.wake_word or [])}", "push_to_talk": "press Enter to talk"}
    print(f"edgegen assistant: {hint[mode]} (Ctrl-C to stop)", file=sys.stderr)
    for event in assistant.run(source):
        if event.kind == "heard" and event.text:
            print(f"you: {event.text}", flush=True)
        elif event.kind == "reply":
            cut = " [interrupted]" if event.detail.get("interrupted") else ""
            print(f"assistant: {event.text}{cut}", flush=True)
        elif event.kind in ("wake", "barge_in"):
            print(f"[{event.kind}]", file=sys.stderr, flush=True)
    return 0
