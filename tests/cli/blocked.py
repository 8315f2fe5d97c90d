"""Run the edgegen CLI in a subprocess in which some modules cannot be imported, as on a machine
where an optional dependency (an extra) was never installed."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# A meta-path finder placed first: `import NAME` (or NAME.sub) raises ModuleNotFoundError, exactly
# what Python raises for a package that is not installed.
_RUNNER = """
import sys
blocked = set(sys.argv[1].split(",")) if sys.argv[1] else set()
class Blocker:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in blocked:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None
sys.meta_path.insert(0, Blocker())
"""
_CLI = "from edgegen.cli.main import main\nsys.exit(main(sys.argv[2:]))\n"


def run_python(code: str, argv: list[str] = (), *, blocked: tuple[str, ...] = (), env: dict[str, str] | None = None,
               stdin: str = "", timeout: float = 120) -> subprocess.CompletedProcess:
    """`code` in a fresh interpreter with `blocked` modules missing; `sys.argv[2:]` is `argv`."""
    full_env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    return subprocess.run([sys.executable, "-c", _RUNNER + code, ",".join(blocked), *argv], input=stdin,
                          capture_output=True, text=True, env=full_env, timeout=timeout, cwd=REPO)


def run_cli(argv: list[str], **kwargs) -> subprocess.CompletedProcess:
    """`edgegen ARGV...` as run_python runs code."""
    return run_python(_CLI, argv, **kwargs)
