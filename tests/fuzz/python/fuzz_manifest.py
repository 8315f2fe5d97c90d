"""The model store's manifest reader (load_manifest: size limit, UTF-8, TOML, schema) on arbitrary
bytes, and the writer (dump_manifest, used by `edgegen models add`) on what it accepted.

Contract: load_manifest() returns a Manifest or raises StoreError; names and archive members of
an accepted manifest are single safe path components / relative paths without '..'; dumping an
accepted manifest and loading the text again gives the same manifest.
"""
from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path, PurePosixPath

from edgegen.errors import StoreError
from edgegen.store.manifest import dump_manifest, load_manifest

_dir = Path(tempfile.mkdtemp(prefix="edgegen-fuzz-manifest-"))


def _load(raw: bytes, name: str) -> object:
    path = _dir / f"{name}.toml"
    path.write_bytes(raw)
    return load_manifest(path)


def _comparable(m: object) -> dict:
    return {k: v for k, v in dataclasses.asdict(m).items() if k not in ("origin", "user")}


def test_one_input(data: bytes) -> None:
    try:
        m = _load(data, "fuzz")
    except StoreError:
        try:  # the same text under the name it declares (load_manifest wants NAME.toml)
            import tomllib

            name = tomllib.loads(data.decode("utf-8")).get("name")
        except Exception:  # noqa: BLE001 - not TOML: nothing more to try
            return
        if not isinstance(name, str) or not name.isascii() or not name.replace(".", "").replace("_", "").replace("-", "").isalnum():
            return
        try:
            m = _load(data, name)
        except StoreError:
            return
    for f in m.files:
        assert "/" not in f.name and "\\" not in f.name and ".." not in f.name, f.name
        for member in [f.member] + [c.member for c in f.chunks]:
            if member is not None:
                assert not member.startswith("/") and ".." not in PurePosixPath(member).parts, member
    again = _load(dump_manifest(m).encode("utf-8"), m.name)
    assert _comparable(again) == _comparable(m), (_comparable(m), _comparable(again))
