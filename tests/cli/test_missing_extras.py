"""A missing optional dependency is one line naming the extra to install, never a traceback."""
from __future__ import annotations

import pytest

from edgegen.errors import MissingExtraError
from edgegen.extras import EXTRAS, needs_extra, require
from tests.cli.blocked import run_cli, run_python

CLOUD_ENV = {"EDGEGEN_CLOUD_URL": "http://127.0.0.1:9/v1", "EDGEGEN_CLOUD_MODEL": "m"}


@pytest.mark.parametrize("argv,blocked,env,extra", [
    (["run", "hi", "--route", "cloud"], ("httpx",), CLOUD_ENV, "cloud"),
    (["serve", "--port", "1"], ("fastapi",), {}, "server"),
    (["run", "hi", "--backend", "llama.cpp", "-n", "1"], ("llama_cpp",), {}, "llamacpp"),
    (["say", "-o", "/dev/null", "hi"], ("piper",), {}, "voice"),
    (["wyoming", "--no-handle"], ("wyoming",), {}, "wyoming"),
])
def test_cli_names_the_extra_in_one_line(argv, blocked, env, extra, tmp_path):
    proc = run_cli(argv, blocked=blocked, env=env)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"edgegen {argv[0]}: error: ")
    assert f"pip install 'edgegen[{extra}]'" in lines[0] and blocked[0] in lines[0]
    assert blocked[0] in EXTRAS[extra]


def test_playback_without_sounddevice_names_the_extra():
    code = "from edgegen.audio.playback import check_output_device\ncheck_output_device(None, 22050)\n"
    proc = run_python(code, blocked=("sounddevice",))
    assert "AudioDeviceError" in proc.stderr and "pip install 'edgegen[voice]'" in proc.stderr


def test_needs_extra_passes_a_missing_edgegen_module_through():
    # a missing edgegen module is a broken install, not a missing extra
    with pytest.raises(ModuleNotFoundError) as info:
        with needs_extra("server", "x"):
            import edgegen.no_such_module  # noqa: F401
    assert not isinstance(info.value, MissingExtraError)
    with pytest.raises(MissingExtraError, match=r"x needs no_such_pkg_123, .*edgegen\[cloud\]"):
        require("no_such_pkg_123.sub", "cloud", "x")
    assert issubclass(MissingExtraError, ImportError)  # "use it if present" code keeps working


def test_the_default_job_runs_without_any_extra():
    # what scripts/demo.sh installs (`pip install -e .`, no extras) is enough for `edgegen run`
    every_extra = tuple(m for modules in EXTRAS.values() for m in modules)
    proc = run_cli(["run", "Say hi", "-n", "3", "--temperature", "0", "--ctx", "256"], blocked=every_extra)
    assert proc.returncode == 0 and proc.stdout.strip() and proc.stderr == "", proc.stderr
