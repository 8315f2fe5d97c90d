"""`edgegen devices`: what can compute here — the CPU's kernel set and accelerators (usable or not,
and why), with what `accelerator="auto"` would pick."""
from __future__ import annotations

import argparse
import json
from dataclasses import asdict

HELP = "list compute devices: CPU ISA, QNN HTP (architecture, simulated or real)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def run(args: argparse.Namespace) -> int:
    from edgegen.accelerators import list_devices

    devices = list_devices()
    auto = next((d.name for d in devices if d.name != "cpu" and d.usable and not d.simulated), "cpu")
    if args.json:
        print(json.dumps({"devices": [asdict(d) for d in devices], "auto": auto}, indent=1))
        return 0
    for d in devices:
        state = "simulated" if d.simulated else ("usable" if d.usable else "unusable")
        print(f"{d.name:<8} {state:<10} {d.detail}")
    print(f"accelerator='auto' picks: {auto}")
    return 0
