"""Runs one Python fuzz target under atheris: python tests/fuzz/atheris_main.py NAME [libFuzzer args].

The target module tests/fuzz/python/fuzz_NAME.py is imported with edgegen's modules instrumented
for coverage; its optional setup() runs once (loading models, building tokenizers), then
test_one_input(data) runs for every input. An exception escaping test_one_input is a finding.
"""
from __future__ import annotations

import importlib
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import atheris  # noqa: E402


def main() -> None:
    if len(sys.argv) < 2:
        sys.exit("usage: atheris_main.py TARGET [libFuzzer args]")
    name = sys.argv[1]
    # Only modules imported inside this block get coverage: targets import what they test at the
    # top of their module, not inside setup().
    with atheris.instrument_imports(include=["edgegen", "tests.fuzz.python"]):
        import edgegen  # noqa: F401  (every edgegen module the target pulls in gets coverage)

        module = importlib.import_module(f"tests.fuzz.python.fuzz_{name}")
    if hasattr(module, "setup"):
        module.setup()
    atheris.Setup([sys.argv[0], *sys.argv[2:]], module.test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
