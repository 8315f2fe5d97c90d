"""`edgegen models` end to end through the CLI dispatcher (in process)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgegen.cli.main import main


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = main(["models", *argv])
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_list_and_info_on_the_packaged_models(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = run(capsys, "list", "--json")
    rows = {r["name"]: r for r in json.loads(out)}
    assert rc == 0 and rows["smollm2"]["installed"] and rows["joe"]["kind"] == "voice"
    assert rows["gemma3-270m"]["quantization"] == "Q4_K_M" and rows["gemma3-270m"]["size"] == 253113024
    rc, out, _ = run(capsys, "list")
    assert rc == 0 and "smollm2" in out and "yes (package)" in out

    rc, out, _ = run(capsys, "info", "smollm2", "--ctx", "4096", "--memory-budget", "8G", "--json")
    info = json.loads(out)
    assert rc == 0 and info["file"]["layers"] == 30 and info["file"]["chat_template"] is True
    assert info["memory"]["kv_cache"] == 2 * 30 * 4096 * 3 * 64 * 2 and info["memory"]["fits"] is True
    rc, out, _ = run(capsys, "info", "smollm2", "--ctx", "8192", "--memory-budget", "100M")
    assert rc == 0 and "KV cache 180.0 MiB (8192 tokens, f16)" in out and "DOES NOT FIT" in out
    rc, out, _ = run(capsys, "info", "joe")
    assert rc == 0 and "sample_rate" in out and "22050" in out


def test_errors_are_one_line_with_exit_1(capsys: pytest.CaptureFixture[str]) -> None:
    rc, _, err = run(capsys, "pull", "../etc")
    assert rc == 1 and "invalid model name" in err and "Traceback" not in err
    rc, _, err = run(capsys, "info", "nothing-here")
    assert rc == 1 and "no model or voice named" in err
    rc, _, err = run(capsys, "rm", "smollm2")
    assert rc == 1 and "pip" in err  # served by its Python package: nothing to delete


def test_add_info_rm_round_trip(capsys: pytest.CaptureFixture[str], tmp_path: Path, tiny_gguf_bytes: bytes,
                                private_home: Path) -> None:
    src = tmp_path / "t.gguf"
    src.write_bytes(tiny_gguf_bytes)
    rc, out, _ = run(capsys, "add", str(src), "--name", "tiny")
    assert rc == 0 and "added llm tiny" in out
    rc, out, _ = run(capsys, "info", "tiny", "--json")
    assert rc == 0 and json.loads(out)["file"]["context_length"] == 64
    rc, out, _ = run(capsys, "verify", "tiny")
    assert rc == 0 and "OK" in out
    rc, out, _ = run(capsys, "rm", "tiny")
    assert rc == 0 and not (private_home / "models" / "tiny").exists()
    rc, _, err = run(capsys, "info", "tiny")
    assert rc == 1
