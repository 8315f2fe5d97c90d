"""`edgegen serve`: the OpenAI-compatible HTTP server (FastAPI + uvicorn), 127.0.0.1:8080 by default.

A bind beyond loopback needs an API key (--api-key or $EDGEGEN_API_KEY) unless --insecure; on
loopback binds the Host header must name localhost/127.0.0.1/[::1] with the port (a DNS-rebinding
page in a browser cannot reach the server under its own host name).
"""
from __future__ import annotations

import argparse
import ipaddress
import os
import socket
import sys
from typing import Any, Optional

HELP = "OpenAI-compatible HTTP server (127.0.0.1:8080 by default); see docs/server.md"
API_KEY_ENV = "EDGEGEN_API_KEY"
# On 2-4 cores a step of four sequences costs little more than one (docs/benchmarks.md); more
# slots mostly add KV memory and per-stream latency.
DEFAULT_PARALLEL = 4


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from edgegen.cli.common import add_model_arguments, add_sampling_arguments
    from edgegen.router import add_route_arguments

    g = parser.add_argument_group("server")
    g.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    g.add_argument("--port", type=int, default=8080, help="TCP port (default 8080)")
    g.add_argument("--api-key", default=None, help=f"require 'Authorization: Bearer KEY' (default: ${API_KEY_ENV})")
    g.add_argument("--insecure", action="store_true", help="allow a non-loopback bind without an API key")
    g.add_argument("--max-queue", type=int, default=32, help="requests waiting for a slot before 429 (default 32)")
    g.add_argument("--parallel", type=int, default=None, metavar="N",
                   help=f"generations decoded together in one batch (native engine; default {DEFAULT_PARALLEL}, "
                        "fewer when their KV does not fit the memory budget)")
    g.add_argument("--prompt-cache", default=None, metavar="DIR",
                   help="keep the KV of system prompts in DIR and load it at start (native engine)")
    g.add_argument("--model-id", default=None, help="the model name clients use (default: from --model)")
    g.add_argument("--voice", default=None, help="Piper voice for /v1/audio/speech (default: joe; loaded on first use)")
    g.add_argument("--lora", action="append", default=None, metavar="NAME=PATH",
                   help="load a LoRA adapter (GGUF) that requests select by name; repeatable (docs/adapters.md)")
    g.add_argument("--log-level", default="warning", choices=["critical", "error", "warning", "info", "debug"])
    add_model_arguments(parser)
    add_sampling_arguments(parser, max_tokens=1024)
    add_route_arguments(parser)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name other than localhost may resolve anywhere


def model_id_for(model: str) -> str:
    base = os.path.basename(model)
    return base[:-5] if base.endswith(".gguf") else base


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on host:port (OSError when the port is taken or the host is not ours):
    bound before the model loads and before the banner, so the banner never names a port that
    someone else holds."""
    infos = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, _, _, _, address = infos[0]
    sock = socket.create_server(address, family=family, backlog=2048)  # SO_REUSEADDR, as uvicorn sets it
    sock.set_inheritable(True)
    return sock


def run(args: argparse.Namespace) -> int:
    api_key = args.api_key or os.environ.get(API_KEY_ENV) or None
    loopback = is_loopback(args.host)
    if not loopback and api_key is None and not args.insecure:
        print(f"edgegen serve: refusing to bind {args.host} without an API key; set --api-key or ${API_KEY_ENV} "
              "(or pass --insecure to serve everyone on the network)", file=sys.stderr)
        return 2
    if not 0 < args.port < 65536 or args.max_queue < 0 or (args.parallel is not None and not 1 <= args.parallel <= 64):
        print("edgegen serve: --port must be 1..65535, --max-queue >= 0 and --parallel 1..64", file=sys.stderr)
        return 2

    from edgegen.extras import needs_extra

    with needs_extra("server", "the server"):  # before anything else: a missing extra is one line
        import uvicorn  # noqa: F401

        import edgegen.server.app  # noqa: F401
    from edgegen.cli.common import default_params

    from edgegen.adapters import parse_lora_options

    defaults = default_params(args)
    args.lora_adapters = parse_lora_options(args.lora)  # a bad --lora is one line, before binding
    shown = f"[{args.host}]" if ":" in args.host else args.host
    try:
        sock = bind(args.host, args.port)
    except OSError as exc:  # address in use, a host that is not this machine's, no permission
        reason = os.strerror(exc.errno) if exc.errno and exc.errno > 0 else (exc.strerror or str(exc))
        print(f"edgegen serve: error: cannot listen on {shown}:{args.port}: {reason}", file=sys.stderr)
        return 1
    try:
        return _serve(args, sock, shown, api_key, loopback, defaults)
    finally:
        sock.close()


def _serve(args: argparse.Namespace, sock: socket.socket, shown: str, api_key: Optional[str], loopback: bool,
           defaults: Any) -> int:
    import uvicorn

    from edgegen.cli.common import load_options
    from edgegen.llm import load
    from edgegen.router import router_from_args
    from edgegen.server.app import ServerConfig, create_app

    llm = _load_parallel(load, args.model, {"adapters": args.lora_adapters, **load_options(args)}, args.parallel)
    cache_dir = None
    if args.prompt_cache:
        from edgegen.prompt_cache import CacheDir

        cache_dir = CacheDir(llm, args.prompt_cache)
        loaded = cache_dir.load_all()
        print(f"edgegen serve: prompt cache {args.prompt_cache}: {loaded} prefix(es) loaded", file=sys.stderr, flush=True)
    router = router_from_args(args, llm)
    config = ServerConfig(
        model_id=args.model_id or model_id_for(args.model), api_key=api_key,
        port=args.port if loopback else None, max_queue=args.max_queue, route=router.route,
        voice=args.voice, defaults=defaults, prompt_cache=cache_dir,
    )
    app = create_app(llm, config, router)
    print(f"edgegen serve: {config.model_id} ({llm.backend_name}, n_ctx {llm.n_ctx}, "
          f"{getattr(llm.backend, 'max_parallel', 1)} slot(s)) on http://{shown}:{args.port}/v1"
          + (" (API key required)" if api_key else ""), file=sys.stderr, flush=True)
    try:
        server = uvicorn.Server(uvicorn.Config(app, log_level=args.log_level, access_log=False,
                                               timeout_graceful_shutdown=5))
        server.run(sockets=[sock])
    finally:
        router.close()
    return 0


def _load_parallel(load, model, options, parallel):
    """`--parallel N` as asked; by default DEFAULT_PARALLEL slots, halved until their KV fits."""
    from edgegen.errors import MemoryBudgetError

    if parallel is not None:
        return load(model, max_parallel=parallel, **options)
    n = DEFAULT_PARALLEL
    while True:
        try:
            return load(model, max_parallel=n, **options)
        except MemoryBudgetError:
            if n == 1:
                raise
            n //= 2
