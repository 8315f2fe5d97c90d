"""Builds bench/llama_cpp_bench.c against the llama.cpp that the llama-cpp-python wheel ships.

    python bench/llama_cpp_build.py          # prints the binary's path (building it if needed)

The headers (llama.h and the ggml headers it includes; the wheel installs them in
site-packages/include) and libllama.so (site-packages/llama_cpp/lib) come from the installed
llama-cpp-python wheel, so the benchmark runs the same library edgegen's llama.cpp backend loads.
The binary is cached under bench/.build/ (gitignored), named by a digest of the source, the headers,
the library (size and mtime) and the compile command: any change rebuilds it. $CC picks the
compiler (default cc); $LLAMA_CPP_INCLUDE adds include directories (os.pathsep-separated) for a
wheel that ships no headers.
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "llama_cpp_bench.c"
BUILD_DIR = HERE / ".build"


def llama_cpp_package_dir() -> Path:
    spec = importlib.util.find_spec("llama_cpp")  # found, not imported: importing loads the library
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("llama-cpp-python is not installed (pip install 'edgegen[llamacpp]')")
    return Path(list(spec.submodule_search_locations)[0])


def _find_header(root: Path, name: str) -> Path | None:
    hits = sorted(root.rglob(name), key=lambda p: len(p.parts))
    return hits[0].parent if hits else None


def locate() -> tuple[list[Path], Path]:
    """(include directories, directory holding libllama.so) of the installed wheel."""
    pkg = llama_cpp_package_dir()
    lib_dir = pkg / "lib"
    if not any(lib_dir.glob("libllama.so*")) and not any(lib_dir.glob("libllama.dylib")):
        raise SystemExit(f"no libllama.so under {lib_dir}")
    extra = [Path(p) for p in os.environ.get("LLAMA_CPP_INCLUDE", "").split(os.pathsep) if p]
    includes: list[Path] = []
    # scikit-build-core installs llama.cpp's public headers at the wheel's root: site-packages/include
    wheel_include = pkg.parent / "include"
    for name in ("llama.h", "ggml.h"):
        found = (next((d for d in extra if (d / name).is_file()), None)
                 or (wheel_include if (wheel_include / name).is_file() else None) or _find_header(pkg, name))
        if found is None:
            raise SystemExit(f"{name} is in neither {wheel_include} nor {pkg}; set LLAMA_CPP_INCLUDE")
        if found not in includes:
            includes.append(found)
    return includes + [d for d in extra if d not in includes], lib_dir


def _digest(paths: list[Path], cmd: list[str], lib: Path) -> str:
    h = hashlib.sha256()
    for p in paths:
        h.update(p.name.encode() + b"\0" + p.read_bytes())
    st = lib.stat()
    h.update(f"{lib.resolve()}:{st.st_size}:{st.st_mtime_ns}".encode())
    h.update("\0".join(cmd).encode())
    return h.hexdigest()[:16]


def ensure_built(verbose: bool = False) -> Path:
    """Path of the harness binary for the installed wheel, compiled now when missing or stale."""
    includes, lib_dir = locate()
    lib = next(iter(sorted(lib_dir.glob("libllama.so*"))), None) or lib_dir / "libllama.dylib"
    cc = shlex.split(os.environ.get("CC", "cc"))
    flags = ["-O2", "-std=c11", "-Wall", "-Wextra", *(f"-I{d}" for d in includes)]
    link = [f"-L{lib_dir}", "-lllama", f"-Wl,-rpath,{lib_dir}"]
    headers = sorted(p for d in includes for p in d.glob("*.h"))
    key = _digest([SOURCE, *headers], cc + flags + link, lib)
    out = BUILD_DIR / f"llama_cpp_bench-{key}"
    if out.is_file():
        return out
    BUILD_DIR.mkdir(exist_ok=True)
    # compile to a private name and rename: concurrent first uses never see a half-written binary
    fd, tmp = tempfile.mkstemp(prefix=".llama_cpp_bench-", dir=BUILD_DIR)
    os.close(fd)
    cmd = [*cc, *flags, str(SOURCE), "-o", tmp, *link]
    if verbose:
        print("# " + shlex.join(cmd), file=sys.stderr)
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        os.unlink(tmp)
        raise SystemExit(f"building the llama.cpp harness failed:\n{shlex.join(cmd)}\n{proc.stderr}")
    os.chmod(tmp, 0o755)
    os.replace(tmp, out)
    for old in BUILD_DIR.glob("llama_cpp_bench-*"):  # stale builds of older sources or wheels
        if old != out:
            old.unlink(missing_ok=True)
    return out


if __name__ == "__main__":
    print(ensure_built(verbose=True))
