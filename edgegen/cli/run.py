"""`edgegen run "prompt"`: one-shot generation streamed to stdout (reads stdin when no prompt)."""
from __future__ import annotations

import argparse
import sys

HELP = "one-shot generation; streams to stdout (reads stdin if no prompt)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from edgegen.cli.common import add_model_arguments, add_sampling_arguments
    from edgegen.router import add_route_arguments

    parser.add_argument("prompt", nargs="?", help="the prompt (default: read all of stdin)")
    add_model_arguments(parser)
    add_sampling_arguments(parser, max_tokens=256)
    parser.add_argument("--system", default=None, help="system message (chat mode)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--chat", dest="chat", action="store_true", default=True, help="use the chat template (default)")
    mode.add_argument("--raw", dest="chat", action="store_false", help="plain completion, no chat template")
    add_route_arguments(parser)
    g = parser.add_argument_group("structured output (docs/structured.md)").add_mutually_exclusive_group()
    g.add_argument("--json", action="store_true", help="reply with a JSON object")
    g.add_argument("--json-schema", metavar="FILE", help="reply with JSON valid against this JSON Schema file")
    g.add_argument("--grammar", metavar="FILE", help="reply in this grammar (Lark, or llama.cpp GBNF with ::= rules)")
    g.add_argument("--regex", metavar="PATTERN", help="reply matching this regular expression")


def structured_overrides(args: argparse.Namespace) -> dict:
    """The structured-output arguments of LLM.stream / Router.chat the flags ask for."""
    from edgegen.errors import InvalidRequestError

    def read(path: str) -> str:
        try:
            with open(path, encoding="utf-8") as f:
                return f.read()
        except (OSError, UnicodeDecodeError) as exc:
            raise InvalidRequestError(f"cannot read {path}: {exc}") from None

    if args.json:
        return {"response_format": {"type": "json_object"}}
    if args.json_schema:
        return {"response_format": {"type": "json_schema", "json_schema": {"name": "reply", "schema": read(args.json_schema)}}}
    if args.grammar:
        return {"grammar": read(args.grammar)}
    if args.regex:
        return {"regex": args.regex}
    return {}


def run(args: argparse.Namespace) -> int:
    from edgegen.errors import RouteError
    from edgegen.cli.common import load_options, sampling_overrides
    from edgegen.router import router_from_args

    if args.prompt is None and sys.stdin.isatty():  # else a new user waits on a silent terminal
        print("edgegen run: reading the prompt from stdin; end it with Ctrl-D (or pass it as an argument)",
              file=sys.stderr, flush=True)
    prompt = args.prompt if args.prompt is not None else sys.stdin.read()
    sampling = {**sampling_overrides(args), **structured_overrides(args)}
    router = router_from_args(args, args.model, **load_options(args))
    out = sys.stdout
    if not args.chat:
        if router.route != "local":
            raise RouteError("--raw completions run locally only (the cloud API is chat-shaped)")
        stream = router.local_llm().stream(prompt, **sampling)
    else:
        messages = ([{"role": "system", "content": args.system}] if args.system else []) + [
            {"role": "user", "content": prompt}
        ]
        stream = router.chat(messages, stream=True, **sampling)
    last = None
    with stream:
        for chunk in stream:
            out.write(chunk.text)
            out.flush()
            last = chunk
    out.write("\n")
    if last is not None and last.fallback_reason:
        print(f"edgegen run: answered by {last.route} ({last.fallback_reason})", file=sys.stderr)
    return 0
