"""`edgegen` command line: a tiny dispatcher; each subcommand lives in its own lazily imported module.

A subcommand module defines `HELP: str`, `add_arguments(parser)` and `run(args) -> int`.
Only the chosen subcommand's module is imported, so `edgegen --help` stays fast.
"""
from __future__ import annotations

import argparse
import importlib
import sys

# name -> (module, one-line help). Help text lives here so --help imports nothing.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "chat": ("edgegen.cli.chat", "interactive chat REPL with streaming replies"),
    "run": ("edgegen.cli.run", "one-shot generation; streams to stdout (reads stdin if no prompt)"),
    "say": ("edgegen.cli.say", "speak text with a Piper voice (or write a WAV with -o)"),
    "serve": ("edgegen.cli.serve", "OpenAI-compatible HTTP server (127.0.0.1 by default)"),
    "models": ("edgegen.cli.models", "model store: list, pull, info, add, rm, verify"),
    "devices": ("edgegen.cli.devices", "compute devices: CPU ISA, NPU (QNN HTP) usable, simulated or real"),
    "transcribe": ("edgegen.cli.transcribe", "speech to text for audio files (Whisper, offline)"),
    "listen": ("edgegen.cli.listen", "microphone -> text lines, one per spoken turn"),
    "assistant": ("edgegen.cli.assistant", "offline voice assistant with wake word and barge-in"),
    "wyoming": ("edgegen.cli.wyoming", "Wyoming server for Home Assistant: tts, asr, wake word, conversation"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edgegen", description="On-device generative runtime.")
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_text) in SUBCOMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in SUBCOMMANDS:
        name = argv[0]
        module_name, help_text = SUBCOMMANDS[name]
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:
                print(f"edgegen {name}: not available in this build", file=sys.stderr)
                return 2
            raise
        parser = argparse.ArgumentParser(prog=f"edgegen {name}", description=getattr(module, "HELP", help_text))
        module.add_arguments(parser)
        args = parser.parse_args(argv[1:])
        from edgegen.errors import EdgegenError

        from edgegen.cli.console import closed_pipe_exit, flush_stdout, print_warnings_as_lines

        print_warnings_as_lines(f"edgegen {name}")
        try:
            code = int(module.run(args) or 0)
            flush_stdout()
            return code
        except EdgegenError as exc:
            print(f"edgegen {name}: error: {exc}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            return 130
        except BrokenPipeError:  # the reader went away (`| head -1`): stop quietly, like Unix tools
            return closed_pipe_exit()
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        from edgegen import __version__

        print(__version__)
        return 0
    parser.print_help()
    return 0 if not argv else 2


if __name__ == "__main__":
    sys.exit(main())
