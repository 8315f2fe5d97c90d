"""Kernel parity on every ISA: scripts/arm_parity.sh builds native/tests/kernel_parity.cpp natively
(x86: avx2 vs scalar) and for aarch64, and runs the aarch64 build under qemu on a cortex-a53 (neon)
and a cortex-a76 (neon + dotprod). The driver compares every SIMD table entry with the scalar
reference on awkward shapes at named tolerances (bit-exact where integer parts decide)."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "arm_parity.sh"


def test_kernels_match_scalar_reference_on_x86_and_emulated_aarch64() -> None:
    missing = [tool for tool in ("aarch64-linux-gnu-g++", "qemu-aarch64", "g++") if shutil.which(tool) is None]
    if missing:
        pytest.fail(f"missing {', '.join(missing)}: run scripts/setup.sh --test "
                    "(it installs g++-aarch64-linux-gnu and qemu-user)")
    proc = subprocess.run(["bash", str(SCRIPT)], cwd=ROOT, capture_output=True, text=True, timeout=600)
    output = proc.stdout + proc.stderr
    # The per-run summaries (ISAs tested, N passed, M failed) show in pytest's report with -s or -rA.
    print(output)
    assert proc.returncode == 0, f"scripts/arm_parity.sh failed (exit {proc.returncode}):\n{output[-6000:]}"
    # The script checks this too; asserting here keeps the test honest if the script changes.
    assert "[qemu-cortex-a53] tested isa=neon " in output
    assert "[qemu-cortex-a76] tested isa=neon_dotprod " in output
    assert " 0 failed" in output and "arm_parity: OK" in output
