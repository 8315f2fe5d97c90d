"""Builds and runs the fuzz targets of tests/fuzz/targets.py (the smoke tests, the regression
replays and scripts/fuzz.sh all go through here).

    python -m tests.fuzz.fuzzlib TARGET SECONDS [--runs N] [--timeout S]   # a campaign; prints and logs its figures

Native targets are compiled with clang (-fsanitize=fuzzer,address,undefined), one object per
source, cached in build/fuzz by the hash of the sources, every native header and the flags, so a
second build costs nothing and two targets share the objects they have in common.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `tests.fuzz` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.fuzz import targets

ROOT = Path(__file__).resolve().parents[2]
FUZZ_DIR = ROOT / "tests" / "fuzz"
NATIVE_SRC = ROOT / "native"
BUILD = Path(os.environ.get("EDGEGEN_FUZZ_BUILD", ROOT / "build" / "fuzz"))
CXX = os.environ.get("EDGEGEN_FUZZ_CXX", "clang++")
CXXFLAGS = ["-std=c++17", "-O1", "-g", "-fno-omit-frame-pointer", "-fsanitize=fuzzer,address,undefined",
            "-fno-sanitize-recover=undefined", "-I" + str(NATIVE_SRC), "-I" + str(FUZZ_DIR / "native")]
# Sanitizer settings for every run: leaks are findings too; UB aborts (kept as a crash input).
SAN_ENV = {"ASAN_OPTIONS": "detect_leaks=1:abort_on_error=1:symbolize=1",
           "UBSAN_OPTIONS": "halt_on_error=1:print_stacktrace=1"}


class FuzzError(RuntimeError):
    """The toolchain is missing or a build failed (not a finding)."""


@dataclass
class Result:
    target: str
    seconds: float
    executions: int
    new_units: int
    returncode: int
    log: str
    artifacts: list[str]

    @property
    def finding(self) -> bool:
        return self.returncode != 0 or bool(self.artifacts)

    def summary(self) -> str:
        rate = self.executions / self.seconds if self.seconds else 0.0
        verdict = "no finding" if not self.finding else f"FINDING (exit {self.returncode}): {', '.join(self.artifacts) or 'see log'}"
        return (f"{self.target}: {self.executions:,} executions in {self.seconds:.0f} s ({rate:,.0f}/s), "
                f"{self.new_units} new corpus units, {verdict}")


# ---- building --------------------------------------------------------------------------------
def _headers_digest() -> str:
    h = hashlib.sha256()
    for p in sorted(list(NATIVE_SRC.glob("*.h")) + list((FUZZ_DIR / "native").glob("*.h"))):
        h.update(p.name.encode() + b"\0" + p.read_bytes())
    return h.hexdigest()


def _compile(src: Path, headers: str) -> Path:
    key = hashlib.sha256("\0".join([CXX, *CXXFLAGS, headers, src.name]).encode() + src.read_bytes()).hexdigest()[:20]
    obj = BUILD / "obj" / f"{src.stem}-{key}.o"
    if not obj.exists():
        obj.parent.mkdir(parents=True, exist_ok=True)
        tmp = obj.with_suffix(f".{os.getpid()}.tmp")
        proc = subprocess.run([CXX, *CXXFLAGS, "-c", str(src), "-o", str(tmp)], capture_output=True, text=True)
        if proc.returncode != 0:
            raise FuzzError(f"compiling {src.name} failed:\n{proc.stderr[-4000:]}")
        tmp.replace(obj)
    return obj


def build(name: str, jobs: int | None = None) -> Path:
    """The sanitizer build of a native target (cached); raises FuzzError without clang."""
    if shutil.which(CXX) is None:
        raise FuzzError(f"{CXX} not found: the native fuzz targets need clang (scripts/setup.sh --test installs it)")
    sources = [FUZZ_DIR / "native" / f"fuzz_{name}.cpp"] + [NATIVE_SRC / s for s in targets.NATIVE[name]]
    headers = _headers_digest()
    with ThreadPoolExecutor(max_workers=jobs or min(2, os.cpu_count() or 1)) as pool:
        objs = list(pool.map(lambda s: _compile(s, headers), sources))
    key = hashlib.sha256("\0".join(str(o) for o in objs).encode()).hexdigest()[:20]
    exe = BUILD / "bin" / f"fuzz_{name}-{key}"
    if not exe.exists():
        exe.parent.mkdir(parents=True, exist_ok=True)
        for old in exe.parent.glob(f"fuzz_{name}-*"):
            old.unlink()
        tmp = exe.with_suffix(f".{os.getpid()}.tmp")
        proc = subprocess.run([CXX, *CXXFLAGS, *map(str, objs), "-o", str(tmp)], capture_output=True, text=True)
        if proc.returncode != 0:
            raise FuzzError(f"linking fuzz_{name} failed:\n{proc.stderr[-4000:]}")
        tmp.replace(exe)
    return exe


def command(name: str) -> list[str]:
    """The program (and leading arguments) that runs one target; libFuzzer flags follow."""
    if targets.kind(name) == "native":
        return [str(build(name))]
    return [sys.executable, str(FUZZ_DIR / "atheris_main.py"), name]


def environment() -> dict[str, str]:
    env = dict(os.environ)
    env.update(SAN_ENV)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


# ---- running ---------------------------------------------------------------------------------
RSS_BUDGET_MB = 2560  # what one target may use; a single allocation above it is a finding too


def rss_limit_mb() -> int:
    """libFuzzer reads the target's peak RSS with getrusage, and Linux carries a process's peak
    across fork + exec: a target started from a large process (pytest after loading models: ~3 GB)
    would report an out-of-memory on its first input. The limit is therefore this process's own peak
    plus the budget (the malloc limit keeps catching single huge allocations)."""
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024  # kilobytes on Linux
    return RSS_BUDGET_MB + int(peak_mb)


def seed_dir(name: str) -> Path:
    return FUZZ_DIR / "corpus" / name


def regression_dir(name: str) -> Path:
    return FUZZ_DIR / "regressions" / name


def run(name: str, seconds: float, runs: int | None = None, timeout_s: float = 10.0) -> Result:
    """Fuzzes one target for `seconds` (after replaying its seeds and regressions)."""
    work = BUILD / "corpus" / name  # new inputs go here; the seed corpus in the repo stays as it is
    artifacts = BUILD / "artifacts" / name
    work.mkdir(parents=True, exist_ok=True)
    artifacts.mkdir(parents=True, exist_ok=True)
    before = set(artifacts.iterdir())
    dirs = [str(d) for d in (work, seed_dir(name), regression_dir(name)) if d.is_dir()]
    args = [*command(name), *dirs, f"-max_total_time={int(seconds)}", "-print_final_stats=1",
            f"-artifact_prefix={artifacts}/", f"-timeout={int(timeout_s)}", f"-rss_limit_mb={rss_limit_mb()}",
            f"-malloc_limit_mb={RSS_BUDGET_MB}",
            f"-max_len={targets.max_len(name)}"]
    if runs:
        args.append(f"-runs={runs}")
    t0 = time.monotonic()
    proc = subprocess.run(args, capture_output=True, text=True, errors="replace", env=environment(),
                          cwd=BUILD, timeout=seconds + 300)
    elapsed = time.monotonic() - t0
    log = proc.stdout + proc.stderr
    execs = re.search(r"stat::number_of_executed_units:\s*(\d+)", log)
    new = re.search(r"stat::new_units_added:\s*(\d+)", log)
    found = sorted(str(p) for p in set(artifacts.iterdir()) - before)
    return Result(name, elapsed, int(execs.group(1)) if execs else 0, int(new.group(1)) if new else 0,
                  proc.returncode, log, found)


def replay(name: str, inputs: list[Path]) -> subprocess.CompletedProcess:
    """Runs a target on exactly these inputs (no fuzzing): how reproducers are replayed."""
    return subprocess.run([*command(name), *map(str, inputs)], capture_output=True, text=True, errors="replace",
                          env=environment(), cwd=ROOT, timeout=300)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Run a fuzz campaign on one target.")
    ap.add_argument("target", choices=targets.all_targets())
    ap.add_argument("seconds", type=float)
    ap.add_argument("--runs", type=int, default=None, help="stop after this many executions")
    ap.add_argument("--timeout", type=float, default=10.0,
                    help="seconds one input may take before it is a finding (default 10; raise it on a machine "
                         "where the campaign's process can be starved or paused for that long)")
    a = ap.parse_args(argv)
    res = run(a.target, a.seconds, a.runs, timeout_s=a.timeout)
    print(res.summary())
    BUILD.mkdir(parents=True, exist_ok=True)
    with open(BUILD / "campaigns.jsonl", "a") as f:
        f.write(json.dumps({"target": a.target, "seconds": round(res.seconds, 1), "executions": res.executions,
                            "new_units": res.new_units, "finding": res.finding, "artifacts": res.artifacts,
                            "timeout_s": a.timeout,
                            "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}) + "\n")
    if res.finding:
        print(res.log[-6000:], file=sys.stderr)
    return 1 if res.finding else 0


if __name__ == "__main__":
    sys.exit(main())
