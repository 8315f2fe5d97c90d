"""Bad paths and closed pipes end the CLI with one line (or quietly), never a traceback."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from edgegen.cli.console import EXIT_SIGPIPE
from tests.cli.blocked import REPO


def _edgegen(argv, **kwargs):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "edgegen", *argv], env=env, cwd=REPO, timeout=120, **kwargs)


def test_say_to_a_missing_directory_is_one_line(tmp_path):
    proc = _edgegen(["say", "-o", str(tmp_path / "nonexistent" / "x.wav"), "hi"], capture_output=True, text=True)
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [f"edgegen say: error: cannot write {tmp_path}/nonexistent/x.wav: No such file or directory"]


@pytest.mark.parametrize("argv", [
    ["models", "list"],
    ["run", "Write a long story.", "-n", "24", "--temperature", "0", "--ctx", "256"],
])
def test_a_closed_pipe_ends_quietly(argv):
    # the reader is gone before the first byte: every write fails with EPIPE, as after `| head -c 20`
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        proc = _edgegen(argv, stdout=write_end, stderr=subprocess.PIPE, text=True)
    finally:
        os.close(write_end)
    assert proc.stderr == ""
    assert proc.returncode == EXIT_SIGPIPE
