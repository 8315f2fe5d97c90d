"""LoRA adapters in the model store: `edgegen models add --kind adapter --base ...` records the base
model's sha256, `models info` shows it, `edgegen.load(..., adapters={name: store name})` loads the
adapter by name and refuses it next to a model with another sha256."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

import edgegen
from edgegen.cli.main import main
from edgegen.errors import AdapterError, StoreError
from edgegen.store.fetch import sha256_file
from tests.engine.test_architectures import CONFIGS
from tests.engine.tiny_lora import LoraConfig, write_lora
from tests.engine.tiny_models import variant, write_tiny_gguf


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = main(["models", *argv])
    out, err = capsys.readouterr()
    return rc, out, err


def test_adapter_manifest_round_trip(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    base_cfg = CONFIGS["llama"][1]
    base = write_tiny_gguf(base_cfg, tmp_path / "base.gguf")
    other = write_tiny_gguf(variant(base_cfg, seed=7), tmp_path / "other.gguf")  # same shapes, other weights
    adapter = write_lora(base_cfg, LoraConfig(16, ("attn_q", "ffn_up"), "F16"), tmp_path / "menu.gguf")

    assert run(capsys, "add", str(base), "--name", "tiny")[0] == 0
    rc, _, err = run(capsys, "add", str(adapter), "--name", "menu")  # no --base
    assert rc == 1 and "--base" in err
    rc, out, _ = run(capsys, "add", str(adapter), "--name", "menu", "--base", "tiny")
    assert rc == 0 and "added adapter menu" in out
    rc, out, _ = run(capsys, "info", "menu", "--json")
    info = json.loads(out)
    assert info["kind"] == "adapter" and info["base"] == "tiny" and info["base_sha256"] == sha256_file(base)
    assert info["file"]["ranks"] == [16] and info["file"]["targets"] == 2 * base_cfg.n_layer
    rc, out, _ = run(capsys, "list")
    assert "menu" in out and "adapter" in out

    llm = edgegen.load(str(base), backend="native", n_ctx=64, n_threads=1, adapters={"menu": "menu"})
    try:
        assert [a.name for a in llm.adapters] == ["menu"]
    finally:
        llm.backend.close()
    with pytest.raises(AdapterError, match="made for tiny"):
        edgegen.load(str(other), backend="native", n_ctx=64, n_threads=1, adapters={"menu": "menu"})

    # an adapter for another architecture is refused at registration
    qwen = write_lora(CONFIGS["qwen2"][2], LoraConfig(8, ("attn_q",), "F32", layers=(0,)), tmp_path / "q.gguf")
    with pytest.raises(AdapterError, match="architecture 'qwen2'"):
        edgegen.store.ModelStore().add(qwen, "qmenu", kind="adapter", base="tiny")
    with pytest.raises(StoreError, match="base_sha256"):
        from edgegen.store.manifest import parse_manifest

        parse_manifest({"name": "x", "kind": "adapter",
                        "files": [{"name": "x.gguf", "size": 1, "sha256": "0" * 64, "path": "/x.gguf"}]})
