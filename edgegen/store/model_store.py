"""ModelStore: the models and voices on this machine, under $EDGEGEN_HOME (default ~/.cache/edgegen).

Layout::

    $EDGEGEN_HOME/models/<name>/<file>     pulled or added files (only verified files get real names)
    $EDGEGEN_HOME/manifests/<name>.toml    manifests of models registered with `add`
    $EDGEGEN_HOME/locks/<name>.lock        fcntl locks: one writer per model at a time
    $EDGEGEN_HOME/digests.json             sha256 cache keyed by (path, size, mtime, inode)

A model counts as installed when every file is in the store, or when the Python package named
in its manifest is installed and carries the files (no copy is made). Nothing here downloads
unless `pull` is called.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Optional, Union

from ..errors import ChecksumError, EdgegenError, ModelFormatError, ModelNotFoundError, StoreError
from . import fetch
from .inspect import check_onnx_file, describe_file, read_gguf_summary, read_voice_config
from .manifest import KINDS, FileSpec, Manifest, builtin_manifest_dirs, dump_manifest, load_manifest, validate_name

PathLike = Union[str, os.PathLike]


def default_home() -> Path:
    env = os.environ.get("EDGEGEN_HOME")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "edgegen"


@dataclass(frozen=True)
class StoreEntry:
    """One row of `edgegen models list`."""

    name: str
    kind: str
    size: int
    quantization: str
    installed: bool
    location: str  # "store", "package", or "" when not installed
    path: Optional[Path]


class ModelStore:
    """Manifests plus installed files. `pip_args` are extra pip options for PyPI pulls
    (default: $EDGEGEN_PIP_ARGS), e.g. ["--no-index", "--find-links", "/mirror"]."""

    def __init__(self, home: Optional[PathLike] = None, pip_args: Optional[list[str]] = None,
                 progress: bool = False, manifest_dirs: Optional[list[Path]] = None):
        self.home = Path(home).expanduser() if home is not None else default_home()
        self.pip_args = list(pip_args) if pip_args is not None else fetch.default_pip_args()
        self.progress = progress
        self._builtin_dirs = list(manifest_dirs) if manifest_dirs is not None else builtin_manifest_dirs()

    # --- paths ---------------------------------------------------------------------------

    @property
    def models_dir(self) -> Path:
        return self.home / "models"

    @property
    def user_manifest_dir(self) -> Path:
        return self.home / "manifests"

    def model_dir(self, name: str) -> Path:
        return self.models_dir / validate_name(name)

    # --- manifests -----------------------------------------------------------------------

    def manifests(self) -> dict[str, Manifest]:
        """Every known manifest by name; user manifests override built-in ones of the same name."""
        found: dict[str, Manifest] = {}
        for directory, user in [(d, False) for d in reversed(self._builtin_dirs)] + [(self.user_manifest_dir, True)]:
            if not directory.is_dir():
                continue
            for path in sorted(directory.glob("*.toml")):
                found[path.stem] = load_manifest(path, user=user)
        return found

    def manifest(self, name: str) -> Manifest:
        validate_name(name)
        for directory in [self.user_manifest_dir] + list(self._builtin_dirs):
            path = directory / f"{name}.toml"
            if path.is_file():
                return load_manifest(path, user=directory == self.user_manifest_dir)
        known = ", ".join(sorted(self.manifests())) or "none"
        raise ModelNotFoundError(f"no model or voice named {name!r} (known: {known})")

    # --- installed files -----------------------------------------------------------------

    def _store_paths(self, m: Manifest) -> Optional[dict[str, Path]]:
        d = self.model_dir(m.name)
        paths = {}
        for f in m.files:
            p = d / f.name
            if f.path and m.user and not p.exists():  # registered in place with `add --no-copy`
                p = Path(f.path)
            if not (p.is_file() and p.stat().st_size == f.size):
                return None
            paths[f.name] = p
        return paths

    def _package_paths(self, m: Manifest) -> Optional[dict[str, Path]]:
        """Files served straight from an installed Python package (single-member files only:
        chunked files must be assembled, which `pull` does from the installed chunks)."""
        if not m.package:
            return None
        paths = {}
        for f in m.files:
            if not f.member or f.chunks:
                return None
            p = fetch.installed_member(m.package, f.member)
            if p is None or p.stat().st_size != f.size:
                return None
            paths[f.name] = p
        return paths

    def locate(self, m: Manifest) -> tuple[str, Optional[dict[str, Path]]]:
        paths = self._store_paths(m)
        if paths is not None:
            return "store", paths
        paths = self._package_paths(m)
        if paths is not None:
            return "package", paths
        return "", None

    def is_installed(self, name: str) -> bool:
        return self.locate(self.manifest(name))[1] is not None

    def list(self) -> list[StoreEntry]:
        rows = []
        for m in self.manifests().values():
            where, paths = self.locate(m)
            primary = paths[m.primary.name] if paths else None
            rows.append(StoreEntry(m.name, m.kind, m.size, m.quantization, paths is not None, where, primary))
        return sorted(rows, key=lambda r: (r.kind, r.name))

    def resolve(self, name: str, kind: Optional[str] = None, verify: bool = True) -> Path:
        """Path of an installed model's primary file (a voice's .onnx; its .onnx.json is beside it).

        With verify, each file's sha256 is checked once and then cached by (path, size, mtime)."""
        m = self.manifest(name)
        if kind is not None and m.kind != kind:
            an = lambda k: "an" if k in ("llm", "adapter", "asr") else "a"  # noqa: E731
            raise ModelNotFoundError(f"{name!r} is {an(m.kind)} {m.kind}, not {an(kind)} {kind}")
        where, paths = self.locate(m)
        if paths is None:
            raise ModelNotFoundError(f"{m.kind} {name!r} is not installed; run `edgegen models pull {name}`")
        if verify:
            for f in m.files:
                self._verify_cached(paths[f.name], f)
        primary = paths[m.primary.name]
        if m.kind == "voice":
            config = Path(str(primary) + ".json")
            if not config.is_file():
                raise ModelFormatError(f"voice {name!r}: no config {config.name} beside {primary}")
        return primary

    # --- verification with a digest cache ------------------------------------------------

    def _digest_cache_path(self) -> Path:
        return self.home / "digests.json"

    def _read_digests(self) -> dict[str, str]:
        try:
            data = json.loads(self._digest_cache_path().read_text("utf-8"))
            return data if isinstance(data, dict) else {}
        except (OSError, ValueError):
            return {}

    @staticmethod
    def _stat_key(path: Path) -> str:
        st = path.stat()
        return f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}|{st.st_ino}"

    def _remember_digest(self, path: Path, digest: str) -> None:
        key = self._stat_key(path)
        # One entry per path (older stats of it are stale) and none for deleted files.
        cache = {k: v for k, v in self._read_digests().items()
                 if k.split("|", 1)[0] != key.split("|", 1)[0] and os.path.exists(k.split("|", 1)[0])}
        cache[key] = digest
        with contextlib.suppress(OSError):  # a cache we cannot write only costs a re-hash later
            self.home.mkdir(parents=True, exist_ok=True)
            tmp = self.home / f".digests.{os.getpid()}.{uuid.uuid4().hex[:8]}"
            tmp.write_text(json.dumps(cache, indent=0, sort_keys=True), "utf-8")
            os.replace(tmp, self._digest_cache_path())

    def _verify_cached(self, path: Path, spec: FileSpec) -> None:
        if self._read_digests().get(self._stat_key(path)) == spec.sha256:
            return
        with fetch.progress_bar(spec.size, f"verify {spec.name}", self.progress) as bar:
            actual = fetch.sha256_file(path, bar)
        if actual != spec.sha256:
            raise ChecksumError(f"{path}: sha256 {actual} does not match the manifest's {spec.sha256}")
        self._remember_digest(path, actual)

    def file_digest(self, path: PathLike) -> str:
        """sha256 of a file, from the digest cache when its (path, size, mtime) was hashed before."""
        p = Path(path)
        cached = self._read_digests().get(self._stat_key(p))
        if cached:
            return cached
        digest = fetch.sha256_file(p)
        self._remember_digest(p, digest)
        return digest

    def verify(self, name: str) -> Path:
        """Re-hashes every file of an installed model, ignoring the digest cache."""
        m = self.manifest(name)
        _, paths = self.locate(m)
        if paths is None:
            raise ModelNotFoundError(f"{name!r} is not installed")
        for f in m.files:
            with fetch.progress_bar(f.size, f"verify {f.name}", self.progress) as bar:
                actual = fetch.sha256_file(paths[f.name], bar)
            if actual != f.sha256:
                raise ChecksumError(f"{paths[f.name]}: sha256 {actual} does not match the manifest's {f.sha256}")
            self._remember_digest(paths[f.name], actual)
        return paths[m.primary.name]

    # --- writing -------------------------------------------------------------------------

    @contextlib.contextmanager
    def _lock(self, name: str) -> Iterator[None]:
        """Exclusive per-model lock; flock locks belong to the open file, so threads exclude too."""
        lock_dir = self.home / "locks"
        try:
            lock_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(lock_dir / f"{validate_name(name)}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise StoreError(f"cannot create a lock in {lock_dir}: {exc}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    def pull(self, name: str, source: Optional[str] = None, force: bool = False) -> Path:
        """Installs a model into the store and returns its primary file.

        source: "package" (copy from installed packages), "pypi", "url", "path", or None to take
        the first that applies in that order. A model already served by an installed package is
        left there unless force or an explicit source asks for a copy.
        """
        m = self.manifest(name)
        if source not in (None, "package", "pypi", "url", "path"):
            raise StoreError(f"unknown source {source!r}; use package, pypi, url or path")
        with self._lock(m.name):
            where, paths = self.locate(m)
            if paths is not None and not force and (where == "store" or source is None):
                return paths[m.primary.name]
            d = self.model_dir(m.name)
            for f in m.files:
                self._fetch_file(m, f, d / f.name, source)
                self._remember_digest(d / f.name, f.sha256)
        return d / m.primary.name

    def _fetch_file(self, m: Manifest, f: FileSpec, dest: Path, source: Optional[str]) -> None:
        order = [source] if source else ["package", "pypi", "url", "path"]
        for kind in order:
            if kind == "package":
                local = fetch.installed_sources(f, m.package)
                if local is not None:
                    return fetch.copy_local(dest, f, local, self.progress)
            elif kind == "pypi" and (f.chunks or f.member):
                return fetch.fetch_from_pypi(dest, f, m.package, m.version, self.pip_args, self.progress)
            elif kind == "url" and f.url:
                return fetch.fetch_from_url(dest, f, self.progress)
            elif kind == "path" and f.path:
                return fetch.copy_local(dest, f, [Path(f.path)], self.progress)
        raise StoreError(f"{m.name}: file {f.name} has no {source or 'usable'} source")

    def remove(self, name: str) -> None:
        """Deletes a model's files from the store (and its manifest if it was added by the user)."""
        m = self.manifest(name)
        with self._lock(m.name):
            d = self.model_dir(m.name)
            had_files = d.exists()
            if had_files:
                try:
                    shutil.rmtree(d)
                except OSError as exc:
                    raise StoreError(f"cannot remove {d}: {exc}") from exc
            if m.user and m.origin is not None:
                with contextlib.suppress(FileNotFoundError):
                    m.origin.unlink()
            elif not had_files:
                where, _ = self.locate(m)
                hint = f" (it comes from the Python package {m.package}; use pip to uninstall it)" if where == "package" else ""
                raise StoreError(f"{name!r} has no files in the store{hint}")

    def add(self, path: PathLike, name: str, kind: Optional[str] = None, copy: bool = True,
            license: str = "", notes: str = "", base: Optional[str] = None) -> Manifest:
        """Registers a local GGUF model, GGUF LoRA adapter (`base`: the store name or path of the
        model it was made for; its sha256 is recorded) or Piper voice (.onnx with .onnx.json beside it).

        The file is validated by reading its header/config only (nothing in it runs), hashed, and
        (with copy) copied into the store atomically; a user manifest records name, size, sha256.
        """
        validate_name(name)
        src = Path(path).expanduser()
        if not src.is_file():
            raise ModelNotFoundError(f"no such file: {src}")
        if kind is None:
            kind = "voice" if src.suffix == ".onnx" else "adapter" if _is_adapter(src) else "llm"
        base_facts: dict[str, str] = {}
        if kind == "adapter":
            from .adapter_facts import adapter_manifest_facts

            facts, base_facts = adapter_manifest_facts(self, src, base)
            sources = [src]
        elif kind == "llm":
            summary = read_gguf_summary(src)  # raises ModelFormatError on anything malformed
            facts = {"architecture": str(summary.metadata.get("general.architecture", "")), "format": "gguf",
                     "quantization": _gguf_quant_label(summary.tensor_types)}
            sources = [src]
        elif kind == "voice":
            check_onnx_file(src)
            config = Path(str(src) + ".json")
            read_voice_config(config)
            facts = {"architecture": "piper-vits", "format": "onnx", "quantization": ""}
            sources = [src, config]
        else:
            raise StoreError(f"kind must be llm, voice or adapter, got {kind!r}")
        existing = self.manifests().get(name)
        if existing is not None and not existing.user:
            raise StoreError(f"{name!r} is a built-in model name; choose another --name")
        files = []
        for i, p in enumerate(sources):
            file_name = validate_name(p.name, "file name")
            # The original path is the source either way: with copy the store copy wins, without
            # copy the store serves the file where it is.
            files.append(FileSpec(file_name, p.stat().st_size, fetch.sha256_file(p), "weights" if i == 0 else "config",
                                  path=str(p.resolve())))
        manifest = Manifest(name=name, kind=kind, files=tuple(files), license=license, notes=notes, user=True,
                            **facts, **base_facts)
        with self._lock(name):
            if copy:
                d = self.model_dir(name)
                for p, f in zip(sources, files):
                    fetch.copy_local(d / f.name, f, [p], self.progress)
                    self._remember_digest(d / f.name, f.sha256)
            self.user_manifest_dir.mkdir(parents=True, exist_ok=True)
            target = self.user_manifest_dir / f"{name}.toml"
            tmp = self.user_manifest_dir / f".{name}.toml.{uuid.uuid4().hex[:8]}"
            try:
                tmp.write_text(dump_manifest(manifest), "utf-8")
                os.replace(tmp, target)
            except OSError as exc:
                with contextlib.suppress(OSError):
                    tmp.unlink()
                raise StoreError(f"cannot write {target}: {exc}") from exc
        return load_manifest(target, user=True)

    # --- info ----------------------------------------------------------------------------

    def info(self, name_or_path: str, kind: Optional[str] = None) -> dict[str, Any]:
        """Manifest facts plus what the file itself says (when installed or given as a path)."""
        path = _as_existing_path(name_or_path)
        if path is not None:
            k = kind or ("voice" if path.suffix == ".onnx" else "adapter" if _is_adapter(path) else "llm")
            return {"name": path.name, "kind": k, "path": str(path), "size": path.stat().st_size,
                    "installed": True, "file": describe_file(path, k)}
        m = self.manifest(name_or_path)
        where, paths = self.locate(m)
        result: dict[str, Any] = {
            "name": m.name, "kind": m.kind, "architecture": m.architecture, "format": m.format,
            "quantization": m.quantization, "size": m.size, "license": m.license,
            "default_context": m.default_context, "source": _describe_source(m), "notes": m.notes,
            "installed": paths is not None, "location": where,
        }
        if m.kind == "adapter":
            result.update(base=m.base, base_sha256=m.base_sha256)
        if m.languages or m.attribution:
            result.update(languages=list(m.languages), attribution=m.attribution)
        if m.kind == "llm":
            result["base_model"] = m.base_model
            result["chat"] = _chat_description(m)
        if paths is not None:
            primary = paths[m.primary.name]
            result["path"] = str(primary)
            result["file"] = describe_file(primary, m.kind)
        return result


def _is_adapter(path: Path) -> bool:
    """A GGUF file whose general.type says adapter (LoRA), read from its header only."""
    if path.suffix != ".gguf":
        return False
    try:
        return read_gguf_summary(path).metadata.get("general.type") == "adapter"
    except EdgegenError:
        return False


def _gguf_quant_label(tensor_types: dict[str, int]) -> str:
    """The most common quantized tensor type (e.g. Q4_1), as a short label for `list`."""
    quant = {k: v for k, v in tensor_types.items() if k not in ("F32", "F16", "BF16")}
    pool = quant or tensor_types
    return max(pool, key=lambda k: pool[k]) if pool else ""


def _chat_description(m: Manifest) -> str:
    if m.chat_template:
        return f"the {m.chat_template} chat template"
    if m.base_model:
        return "plain completion (base model: no chat template)"
    return "the file's chat template"


def _describe_source(m: Manifest) -> str:
    f = m.primary
    if f.chunks:
        return f"PyPI chunks: {', '.join(c.package + '==' + c.version for c in f.chunks)}"
    if f.member and m.package:
        return f"PyPI {m.package}=={m.version}: {f.member}"
    if f.url:
        return f.url
    return f.path or "store"


def _as_existing_path(name_or_path: PathLike) -> Optional[Path]:
    """A path when the argument looks like one (separator or model suffix) and exists."""
    text = os.fspath(name_or_path)
    looks_like_path = os.sep in text or "/" in text or text.endswith((".gguf", ".onnx"))
    if not looks_like_path:
        return None
    path = Path(text).expanduser()
    if not path.is_file():
        raise ModelNotFoundError(f"no such model file: {path}")
    return path


def resolve_model(name_or_path: PathLike, kind: str = "llm", *, home: Optional[PathLike] = None,
                  verify: bool = True) -> Path:
    """The file to load for a name or a path: a GGUF for kind="llm", a voice's .onnx for kind="voice"
    (its .onnx.json sits beside it), a recogniser's model.bin for kind="asr" (its directory is the
    CTranslate2 model), an .onnx for kind="vad". Names resolve through the store (store copy, then an installed
    Python package); paths are returned as they are. Raises ModelNotFoundError, ChecksumError or
    StoreError (bad name). Never downloads."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    path = _as_existing_path(name_or_path)
    if path is not None:
        return path
    return ModelStore(home).resolve(os.fspath(name_or_path), kind=kind, verify=verify)
