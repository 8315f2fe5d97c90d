"""`edgegen listen`: microphone -> text lines, one per spoken turn (Silero VAD endpointing)."""
from __future__ import annotations

import argparse
import sys

HELP = "Listen to the microphone and print what is said, one line per turn (partials on stderr with --partials)."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default="whisper-tiny.en", help="recogniser: store name or CTranslate2 directory")
    parser.add_argument("--device", default=None, help="input device index or name (default: system default)")
    parser.add_argument("--file", default=None, help="listen to an audio file instead of the microphone (paced in real time)")
    parser.add_argument("--blocksize", type=int, default=512, help="samples per capture block at 16 kHz (default 512)")
    parser.add_argument("--language", default=None)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--threshold", type=float, default=0.5, help="VAD speech threshold (0-1)")
    parser.add_argument("--min-silence-ms", type=int, default=600, help="silence that ends a turn")
    parser.add_argument("--max-utterance-s", type=float, default=20.0, help="longest turn before it is cut")
    parser.add_argument("--partials", action="store_true", help="print partial guesses to stderr while speech goes on")


def run(args: argparse.Namespace) -> int:
    import edgegen
    from edgegen.audio.sources import FileSource, MicrophoneSource
    from edgegen.audio.vad import VADConfig

    config = VADConfig(threshold=args.threshold, min_silence_ms=args.min_silence_ms,
                       max_utterance_s=args.max_utterance_s).validate()
    device = int(args.device) if args.device is not None and args.device.isdigit() else args.device
    source = (FileSource(args.file, blocksize=args.blocksize, realtime=True) if args.file
              else MicrophoneSource(device, blocksize=args.blocksize))
    asr = edgegen.load_asr(args.model, threads=args.threads, beam_size=1)
    if not args.file:
        print(f"listening on {source.device_name!r} (Ctrl-C to stop)", file=sys.stderr)
    for event in asr.stream(source, vad_config=config, language=args.language, partials=args.partials):
        if event.is_final:
            if event.text:
                print(event.text, flush=True)
        else:
            print(f"... {event.text}", file=sys.stderr, flush=True)
    return 0
