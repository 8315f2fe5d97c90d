"""The on-disk cache of compiled accelerator graphs, next to the model.

Layout: `<model>.npu/<key>/` beside the model file (or, when that directory is not writable,
`$EDGEGEN_NPU_CACHE` / `~/.cache/edgegen/npu/<model sha256[:16]>/<key>/`), holding the compiled
graphs, the calibration ranges and `manifest.json`, written last. `key` hashes the model's sha256,
the provider's versions and every option that changes the graphs, so a new model file, provider
release or option set gets its own entry and never reads another's.

An entry is used only when its manifest names exactly the expected key fields and every file it
lists has the sha256 it records; anything else (truncated, edited, copied from another model) is
refused with a logged reason and rebuilt. Builders take a per-key file lock, build into a
temporary directory and publish it with one atomic rename, so two processes preparing the same
model never see (or leave) a half-written entry: the second waits, then loads the first's.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import uuid
from pathlib import Path
from typing import Any, Callable, Optional

log = logging.getLogger("edgegen.accelerators")

MANIFEST = "manifest.json"
FORMAT = 1
_SHA_MEMO: dict[tuple[str, int, int], str] = {}


def file_sha256(path: str) -> str:
    """sha256 of a file, remembered per (path, size, mtime) for this process."""
    st = os.stat(path)
    memo_key = (os.path.realpath(path), st.st_size, st.st_mtime_ns)
    if memo_key not in _SHA_MEMO:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        _SHA_MEMO[memo_key] = h.hexdigest()
    return _SHA_MEMO[memo_key]


def _writable_dir(d: Path) -> bool:
    try:
        d.mkdir(parents=True, exist_ok=True)
        probe = d / f".probe-{os.getpid()}-{uuid.uuid4().hex}"
        probe.write_bytes(b"")
        probe.unlink()
        return True
    except OSError:
        return False


def cache_root(model_path: str, model_sha256: str) -> Path:
    """Where the entries of this model live: beside it when possible."""
    beside = Path(model_path).with_name(Path(model_path).name + ".npu")
    if _writable_dir(beside):
        return beside
    base = Path(os.environ.get("EDGEGEN_NPU_CACHE") or Path.home() / ".cache" / "edgegen" / "npu")
    root = base / model_sha256[:16]
    if not _writable_dir(root):
        from ..errors import AcceleratorError

        raise AcceleratorError(f"no writable place for the compiled graphs: {beside} and {root} are read-only "
                               "(set EDGEGEN_NPU_CACHE)")
    return root


class ContextCache:
    def __init__(self, root: Path, key_fields: dict[str, Any]) -> None:
        self.key_fields = json.loads(json.dumps(key_fields, sort_keys=True))  # as it reads back from JSON
        self.key = hashlib.sha256(json.dumps(self.key_fields, sort_keys=True).encode()).hexdigest()[:24]
        self.root = Path(root)
        self.dir = self.root / self.key

    def lock(self, timeout: float = 3600.0) -> Any:
        from filelock import FileLock  # a dependency of the [qnn] extra

        self.root.mkdir(parents=True, exist_ok=True)
        return FileLock(str(self.root / f"{self.key}.lock"), timeout=timeout)

    def validate(self) -> Optional[dict[str, Any]]:
        """The entry's manifest when it is complete and belongs to these key fields, else None
        (the reason is logged)."""
        path = self.dir / MANIFEST
        if not self.dir.exists():
            return None
        try:
            manifest = json.loads(path.read_text(encoding="utf-8"))
            if manifest.get("format") != FORMAT or manifest.get("key_fields") != self.key_fields:
                raise ValueError("it was built for another model, provider version or option set")
            for name, digest in manifest["files"].items():
                f = self.dir / name
                if Path(name).name != name or not f.is_file():
                    raise ValueError(f"{name} is missing")
                if file_sha256(str(f)) != digest:
                    raise ValueError(f"{name} does not match its recorded sha256")
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            log.warning("compiled-graph cache %s refused (%s); rebuilding it", self.dir, exc)
            return None
        return manifest

    def publish(self, build: Callable[[Path], dict[str, Any]]) -> dict[str, Any]:
        """Builds an entry with build(tmp_dir) -> manifest extras, records every file's sha256 in
        the manifest, and puts it in place atomically. Call with lock() held."""
        tmp = self.root / f".{self.key}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        tmp.mkdir(parents=True)
        try:
            extras = build(tmp)
            files = {p.name: file_sha256(str(p)) for p in sorted(tmp.iterdir()) if p.is_file()}
            manifest = {"format": FORMAT, "key": self.key, "key_fields": self.key_fields, "files": files,
                        "built_by_pid": os.getpid(), **extras}
            data = json.dumps(manifest, indent=1, sort_keys=True).encode()
            with open(tmp / MANIFEST, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            if self.dir.exists():  # a refused entry: move it aside first (rename is atomic)
                stale = self.root / f".{self.key}.stale-{os.getpid()}-{uuid.uuid4().hex[:8]}"
                os.rename(self.dir, stale)
                shutil.rmtree(stale, ignore_errors=True)
            os.rename(tmp, self.dir)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return manifest
