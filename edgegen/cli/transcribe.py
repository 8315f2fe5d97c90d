"""`edgegen transcribe FILE...`: speech to text with the local recogniser, one transcript per file."""
from __future__ import annotations

import argparse
import json
import sys

HELP = "Transcribe audio files (any format FFmpeg reads) with the local Whisper model; prints one transcript per file."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", metavar="FILE", help="audio files ('-' reads stdin)")
    parser.add_argument("--model", default="whisper-tiny.en", help="recogniser: store name or CTranslate2 directory")
    parser.add_argument("--language", default=None, help="language code (default: the model's / detected)")
    parser.add_argument("--prompt", default=None, help="text that primes spelling and style")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: up to 4)")
    parser.add_argument("--beam-size", type=int, default=5, help="beam size (1 = greedy, faster)")
    parser.add_argument("--format", choices=["text", "json", "segments"], default="text",
                        help="text: the transcript; json: one JSON object per file; segments: timed lines")


def run(args: argparse.Namespace) -> int:
    import edgegen
    from edgegen.errors import AudioFormatError

    asr = edgegen.load_asr(args.model, threads=args.threads, beam_size=args.beam_size)
    failed = 0
    for name in args.files:
        source = sys.stdin.buffer.read() if name == "-" else name
        try:
            t = asr.transcribe(source, language=args.language, prompt=args.prompt)
        except AudioFormatError as exc:
            print(f"edgegen transcribe: {name}: {exc}", file=sys.stderr)
            failed += 1
            continue
        prefix = f"{name}: " if len(args.files) > 1 and args.format == "text" else ""
        if args.format == "json":
            print(json.dumps({"file": name, "text": t.text, "language": t.language, "duration": round(t.duration, 3),
                              "segments": [{"start": s.start, "end": s.end, "text": s.text} for s in t.segments]},
                             ensure_ascii=False))
        elif args.format == "segments":
            for s in t.segments:
                print(f"[{s.start:7.2f} -> {s.end:7.2f}]{s.text}")
        else:
            print(prefix + t.text)
        sys.stdout.flush()
    return 1 if failed else 0
