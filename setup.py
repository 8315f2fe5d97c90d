"""Builds edgegen._native: the C++17 kernels, one translation unit per ISA.

Every .cpp under native/ (and native/bindings/) is compiled into one extension. SIMD files enable
their instruction sets per file with target pragmas, so one build runs on any x86-64 or aarch64
CPU and the dispatch table picks the path at run time.
"""
import glob
import os

from pybind11.setup_helpers import ParallelCompile, Pybind11Extension, build_ext
from setuptools import setup

ParallelCompile("EDGEGEN_BUILD_JOBS", default=0).install()

sources = sorted(glob.glob("native/*.cpp")) + sorted(glob.glob("native/bindings/*.cpp"))
extra = ["-O3", "-fno-math-errno", "-fvisibility=hidden"]
if os.environ.get("EDGEGEN_SANITIZE"):
    extra += ["-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-O1", "-g"]

ext = Pybind11Extension(
    "edgegen._native",
    sources,
    include_dirs=["native"],
    cxx_std=17,
    extra_compile_args=extra,
    extra_link_args=["-pthread"] + (["-fsanitize=address,undefined"] if os.environ.get("EDGEGEN_SANITIZE") else []),
)

setup(ext_modules=[ext], cmdclass={"build_ext": build_ext})
