"""`edgegen run "prompt"`: one-shot generation streamed to stdout (reads stdin when no prompt)."""
from __future__ import annotations

import argparse
import sys

HELP = "one-shot generation; streams to stdout (reads stdin if no prompt)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from edgegen.router import add_route_arguments

    parser.add_argument("prompt", nargs="?", help="the prompt (default: read all of stdin)")
    parser.add_argument("--model", "-m", default="smollm2", help="store name or .gguf path (default: smollm2)")
    parser.add_argument("--backend", default="auto", choices=["auto", "native", "llama.cpp"], help="local backend")
    parser.add_argument("--threads", "-t", type=int, default=None, help="CPU threads (default: the backend's choice)")
    parser.add_argument("--ctx", type=int, default=2048, help="context window in tokens")
    parser.add_argument("--max-tokens", "-n", type=int, default=256)
    parser.add_argument("--temperature", type=float, default=None)
    parser.add_argument("--top-k", type=int, default=None)
    parser.add_argument("--top-p", type=float, default=None)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--system", default=None, help="system message (chat mode)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--chat", dest="chat", action="store_true", default=True, help="use the chat template (default)")
    mode.add_argument("--raw", dest="chat", action="store_false", help="plain completion, no chat template")
    add_route_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from edgegen.errors import RouteError
    from edgegen.router import router_from_args

    prompt = args.prompt if args.prompt is not None else sys.stdin.read()
    sampling = {
        "max_tokens": args.max_tokens, "temperature": args.temperature,
        "top_k": args.top_k, "top_p": args.top_p, "seed": args.seed,
    }
    sampling = {k: v for k, v in sampling.items() if v is not None}
    load_options = {"backend": args.backend, "n_ctx": args.ctx, "n_threads": args.threads}
    router = router_from_args(args, args.model, **load_options)
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
