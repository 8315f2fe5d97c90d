"""`edgegen say "text"`: speak with a Piper voice, or write a WAV with `-o`.

With no text arguments the text is read from stdin as it arrives, so `edgegen run ... | edgegen say`
starts speaking after the first clause, not after the whole answer.
"""
from __future__ import annotations

import argparse
import errno
import os
import sys
from typing import Iterator

HELP = "Speak text with a Piper voice through the default (or a chosen) audio device, or write a WAV with -o."
DEVICE_HINT = 'no usable sound device? write a file instead:  edgegen say -o out.wav "your text"'


def _positive_float(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {value!r}") from None
    if not 0 < number <= 10:
        raise argparse.ArgumentTypeError(f"must be in (0, 10], got {value}")
    return number


def _positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {value!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return number


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("text", nargs="*", help="text to speak (default: read stdin)")
    parser.add_argument("-o", "--output", metavar="FILE.wav", help="write a 16-bit WAV file instead of playing")
    parser.add_argument("--voice", default=None, help="voice name or path to a Piper .onnx (default: joe)")
    parser.add_argument("--rate", type=_positive_float, default=1.0, help="speaking rate; 1.0 normal, 1.5 faster")
    parser.add_argument("--speaker", default=None, help="speaker id or name (multi-speaker voices)")
    parser.add_argument("--threads", type=_positive_int, default=None, help="onnxruntime threads (default: all cores)")
    parser.add_argument("--device", default=None, help="output device index or name (default: system default)")
    parser.add_argument("--volume", type=_positive_float, default=1.0, help="volume multiplier (default 1.0)")
    parser.add_argument("--sentence-silence", type=float, default=0.0, help="seconds of silence between sentences")


def _stdin_deltas() -> Iterator[str]:
    """stdin as it arrives (not line-buffered), decoded without splitting UTF-8 characters."""
    from edgegen.textstream import Utf8StreamDecoder

    decoder = Utf8StreamDecoder()
    stream = sys.stdin.buffer
    read = getattr(stream, "read1", stream.read)
    while True:
        data = read(4096)
        if not data:
            break
        text = decoder.feed(data)
        if text:
            yield text
    tail = decoder.flush()
    if tail:
        yield tail


def run(args: argparse.Namespace) -> int:
    from edgegen.audio.speak import speak_stream
    from edgegen.audio.voice import load_voice
    from edgegen.errors import AudioDeviceError

    device = int(args.device) if args.device is not None and args.device.isdigit() else args.device
    speaker = int(args.speaker) if args.speaker is not None and args.speaker.isdigit() else args.speaker

    if args.output:  # a path that cannot be written fails before the voice loads
        parent = os.path.dirname(os.path.abspath(args.output))
        problem = errno.ENOENT if not os.path.isdir(parent) else None if os.access(parent, os.W_OK) else errno.EACCES
        if problem is not None:
            print(f"edgegen say: error: cannot write {args.output}: {os.strerror(problem)}", file=sys.stderr)
            return 1
    voice = load_voice(args.voice, threads=args.threads)
    settings = dict(length_scale=voice.config.length_scale / args.rate, speaker=speaker, volume=args.volume)
    voice.stream("", **settings)  # raises now on a bad speaker or scale, before any audio work
    text = " ".join(args.text)
    deltas = [text] if text.strip() else _stdin_deltas()
    if args.text and not text.strip():
        print("edgegen say: nothing to say (empty text)", file=sys.stderr)
        return 2

    try:
        if args.output:
            from edgegen.audio.wav import write_wav

            try:
                target = open(args.output, "wb")  # before any synthesis: a bad path fails at once
            except OSError as exc:
                print(f"edgegen say: error: cannot write {args.output}: {exc.strerror or exc}", file=sys.stderr)
                return 1
            with target:
                stream = speak_stream(deltas, voice, sentence_silence=args.sentence_silence, **settings)
                seconds = write_wav(target, stream)
            print(f"wrote {args.output} ({seconds:.2f} s of audio)", file=sys.stderr)
            return 0

        from edgegen.audio.playback import check_output_device, play

        check_output_device(device, voice.sample_rate)  # fail before synthesising anything
        stream = speak_stream(deltas, voice, sentence_silence=args.sentence_silence, **settings)
        with stream:
            play(stream, device)
        return 0
    except AudioDeviceError as exc:
        print(f"edgegen say: error: {exc}\n{DEVICE_HINT}", file=sys.stderr)
        return 1
