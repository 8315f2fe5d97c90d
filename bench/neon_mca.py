"""Static throughput estimate of the aarch64 dot-product loops, ours next to ggml's, with llvm-mca.

No ARM board is at hand, so this is the yardstick for the NEON kernels: both hot loops are compiled
for aarch64 with the same compiler and flags, cut out of the assembly, and given to `llvm-mca` for a
Cortex-A76 (Raspberry Pi 5, RK3588's big cores) and a Cortex-A55 (RK3588's little cores, QCS6490's
silver cores). The figure is cycles per 32 weights (one Q4_0/Q8_0 block; a k-quant super-block is
eight of them) in steady state, from llvm-mca's scheduling model: an estimate of issue and port
limits only (no cache misses, no memory bandwidth), good for comparing two loops, not for absolute
speed.

ggml's loops come from llama.cpp's own source as the pinned llama-cpp-python sdist ships it (fetched
from PyPI into build/mca/ once; pip's cache serves it afterwards); nothing of it is copied here.

    python bench/neon_mca.py            # prints the markdown table for docs/benchmarks.md
Needs: aarch64-linux-gnu-g++ / -gcc (Debian g++-aarch64-linux-gnu), llvm-mca.
"""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "build" / "mca"
LLAMA_CPP_PYTHON = "llama-cpp-python==0.3.36"  # the version pyproject.toml pins
CPUS = ("cortex-a76", "cortex-a55")

# (our kernel, ggml's function, weights per loop-body sdot): one SDOT multiplies 16 int8 pairs, so
# 32 weights of any of these formats take two.
KERNELS = [
    ("q4_0", "vec_dot_q4_0_q8_0", "ggml_vec_dot_q4_0_q8_0"),
    ("q4_1", "vec_dot_q4_1_q8_1", "ggml_vec_dot_q4_1_q8_1"),
    ("q5_0", "vec_dot_q5_0_q8_0", "ggml_vec_dot_q5_0_q8_0"),
    ("q8_0", "vec_dot_q8_0_q8_0", "ggml_vec_dot_q8_0_q8_0"),
    ("q4_K", "vec_dot_q4_K_q8_K", "ggml_vec_dot_q4_K_q8_K"),
    ("q5_K", "vec_dot_q5_K_q8_K", "ggml_vec_dot_q5_K_q8_K"),
    ("q6_K", "vec_dot_q6_K_q8_K", "ggml_vec_dot_q6_K_q8_K"),
]
WEIGHTS_PER_SDOT = 16

_BRANCH = re.compile(r"^\s+(b(?:\.?(?:eq|ne|cs|hs|cc|lo|mi|pl|vs|vc|hi|ls|ge|lt|gt|le))?|cbn?z|tbn?z)\s+(?:.*,\s*)?(\.L\w+)\s*$")


def run(cmd: list, **kw) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if proc.returncode != 0:
        sys.exit(f"failed: {' '.join(map(str, cmd))}\n{proc.stderr[-3000:]}")
    return proc.stdout


def ggml_source() -> Path:
    """llama.cpp's ggml tree from the pinned sdist (headers + the ARM quants)."""
    root = WORK / "ggml-src"
    quants = next(root.glob("*/vendor/llama.cpp/ggml/src/ggml-cpu/arch/arm/quants.c"), None)
    if quants:
        return quants.parents[4]
    WORK.mkdir(parents=True, exist_ok=True)
    run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:", LLAMA_CPP_PYTHON,
         "-d", str(WORK)])
    sdist = next(WORK.glob("llama_cpp_python-*.tar.gz"))
    with tarfile.open(sdist) as tar:
        wanted = [m for m in tar.getmembers() if "/vendor/llama.cpp/ggml/" in m.name and (
            m.name.endswith(".h") or m.name.endswith("ggml-cpu/arch/arm/quants.c"))]
        tar.extractall(root, members=wanted)
    return next(root.glob("*/vendor/llama.cpp/ggml/src/ggml-cpu/arch/arm/quants.c")).parents[4]


def functions(asm: str) -> dict:
    out: dict = {}
    current = None
    for line in asm.splitlines():
        m = re.match(r"^([A-Za-z_][\w.$]*):", line)
        if m and not m.group(1).startswith(".L"):
            current = m.group(1)
            out[current] = []
            continue
        if current:
            out[current].append(line)
            if line.strip().startswith(".size"):
                current = None
    return out


def hot_loop(lines: list) -> list:
    """The innermost backward-branch loop with the most SDOTs: the kernel's steady state."""
    labels: dict = {}
    best: list = []
    for i, line in enumerate(lines):
        m = re.match(r"^(\.L\w+):", line)
        if m:
            labels[m.group(1)] = i
        m = _BRANCH.match(line)
        if m and m.group(2) in labels and labels[m.group(2)] < i:
            body = [x.strip() for x in lines[labels[m.group(2)] + 1: i + 1]]
            if any(_BRANCH.match("\t" + x) and _BRANCH.match("\t" + x).group(2) in labels
                   and labels[_BRANCH.match("\t" + x).group(2)] > labels[m.group(2)] for x in body[:-1]):
                continue  # contains an inner loop: not the innermost
            body = [x for x in body if x and not x.startswith(".") and not re.match(r"^\.L\w+:", x)]
            if sum(x.startswith("sdot") for x in body) > sum(x.startswith("sdot") for x in best):
                best = body
    return best


def mca_cycles_per_iteration(body: list, cpu: str) -> float:
    out = run(["llvm-mca", f"-mtriple=aarch64-linux-gnu", f"-mcpu={cpu}", "-iterations=200"],
              input="\n".join(body) + "\n")
    total = int(re.search(r"Total Cycles:\s+(\d+)", out).group(1))
    iters = int(re.search(r"Iterations:\s+(\d+)", out).group(1))
    return total / iters


def compile_asm(cmd: list) -> str:
    return run(cmd + ["-S", "-o", "-"])


def main() -> None:
    for tool in ("aarch64-linux-gnu-g++", "aarch64-linux-gnu-gcc", "llvm-mca"):
        if shutil.which(tool) is None:
            sys.exit(f"missing {tool}: install g++-aarch64-linux-gnu and llvm (scripts/setup.sh --test)")
    ggml = ggml_source()
    # Same compiler family, -O3 both; armv8.2-a+dotprod is what both select on an A76/A55.
    ours = functions(compile_asm(["aarch64-linux-gnu-g++", "-O3", "-std=c++17", "-ffp-contract=off", "-fno-math-errno",
                                  f"-I{ROOT / 'native'}", str(ROOT / "native" / "quant_neon_dotprod.cpp")]))
    theirs = functions(compile_asm(["aarch64-linux-gnu-gcc", "-O3", "-std=gnu11", "-march=armv8.2-a+dotprod",
                                    "-D_GNU_SOURCE", f"-I{ggml / 'include'}", f"-I{ggml / 'src'}",
                                    f"-I{ggml / 'src' / 'ggml-cpu'}",
                                    str(ggml / "src" / "ggml-cpu" / "arch" / "arm" / "quants.c")]))
    ours_by_name = {}
    for mangled, lines in ours.items():
        demangled = run(["c++filt", mangled]).strip()
        m = re.search(r"::(vec_dot_\w+)\(", demangled)
        if m:
            ours_by_name[m.group(1)] = lines
    print("| format | CPU | ours: cycles / 32 weights | ggml: cycles / 32 weights | ours / ggml |")
    print("|---|---|---:|---:|---:|")
    for fmt, our_name, ggml_name in KERNELS:
        a, b = hot_loop(ours_by_name[our_name]), hot_loop(theirs[ggml_name])
        wa = sum(x.startswith("sdot") for x in a) * WEIGHTS_PER_SDOT
        wb = sum(x.startswith("sdot") for x in b) * WEIGHTS_PER_SDOT
        for cpu in CPUS:
            ca = mca_cycles_per_iteration(a, cpu) * 32 / wa
            cb = mca_cycles_per_iteration(b, cpu) * 32 / wb
            print(f"| {fmt} | {cpu} | {ca:.2f} | {cb:.2f} | {ca / cb:.2f} |")


if __name__ == "__main__":
    main()
