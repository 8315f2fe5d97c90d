"""Flags shared by the model-running subcommands (`run`, `chat`, `serve`) and their conversion
into `edgegen.load` options and sampling overrides. Imports stay light: this module is loaded
for `--help` of those subcommands."""
from __future__ import annotations

import argparse
from typing import Any, Optional


def add_memory_arguments(group: Any, *, ctx_default: Optional[int] = 2048) -> None:
    """--ctx, --kv-type, --memory-budget: what decides the memory a model needs. The same three
    flags (and the advice of a MemoryBudgetError) for `run`, `chat`, `serve` and `models info`."""
    from edgegen.backends.base import KV_TYPES

    ctx_help = f"default {ctx_default}" if ctx_default else "default: the manifest's"
    group.add_argument("--ctx", type=int, default=ctx_default,
                       help=f"context window in tokens ({ctx_help}; at most the model's trained context)")
    group.add_argument("--kv-type", default="f16", choices=KV_TYPES, help="KV cache element type (default f16)")
    group.add_argument("--memory-budget", default=None, metavar="SIZE",
                       help="e.g. 2G (default: $EDGEGEN_MEMORY_BUDGET, else available RAM minus a margin)")


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """--model, --backend, --threads and the memory flags."""
    g = parser.add_argument_group("model")
    g.add_argument("--model", "-m", default="smollm2", help="store name or .gguf path (default: smollm2)")
    g.add_argument("--backend", default="auto", choices=["auto", "native", "llama.cpp"], help="local backend")
    g.add_argument("--threads", "-t", type=int, default=None, help="CPU threads (default: the backend's choice)")
    add_memory_arguments(g)


def add_sampling_arguments(parser: argparse.ArgumentParser, *, max_tokens: int = 256) -> None:
    """--max-tokens, --temperature, --top-k, --top-p, --min-p, --repeat-penalty, --seed."""
    g = parser.add_argument_group("sampling (defaults: llama.cpp's)")
    g.add_argument("--max-tokens", "-n", type=int, default=max_tokens, help=f"tokens per reply (default {max_tokens})")
    g.add_argument("--temperature", type=float, default=None, help="0 = greedy (default 0.8)")
    g.add_argument("--top-k", type=int, default=None, help="sample from the K likeliest tokens; 0 = all (default 40)")
    g.add_argument("--top-p", type=float, default=None,
                   help="sample from the likeliest tokens whose probabilities sum to P; 1 = off (default 0.95)")
    g.add_argument("--min-p", type=float, default=None,
                   help="drop tokens less likely than P times the likeliest; 0 = off (default 0.05)")
    g.add_argument("--repeat-penalty", type=float, default=None,
                   help="penalize tokens seen in the last 64 by this factor; 1 = off (default 1.0)")
    g.add_argument("--seed", type=int, default=None, help="fixed seed for reproducible sampling")


def load_options(args: argparse.Namespace) -> dict[str, Any]:
    """`edgegen.load` keyword arguments from the model flags."""
    return {"backend": args.backend, "n_ctx": args.ctx, "n_threads": args.threads, "kv_type": args.kv_type,
            "memory_budget": args.memory_budget}


def sampling_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """Sampling overrides from the flags; unset flags are left out (the model's defaults apply)."""
    values = {
        "max_tokens": args.max_tokens, "temperature": args.temperature, "top_k": args.top_k,
        "top_p": args.top_p, "min_p": getattr(args, "min_p", None),
        "repeat_penalty": getattr(args, "repeat_penalty", None), "seed": args.seed,
    }
    return {k: v for k, v in values.items() if v is not None}


def default_params(args: argparse.Namespace) -> Any:
    """A validated SamplingParams from the flags (raises InvalidRequestError on bad values)."""
    from edgegen.sampling import SamplingParams

    return SamplingParams().with_overrides(**sampling_overrides(args))
