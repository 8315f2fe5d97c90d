"""Builds edgegen._native: the C++17 kernels, one translation unit per ISA.

Every .cpp under native/ (and native/bindings/) is compiled into one extension. SIMD files enable
their instruction sets per file with target pragmas, so one build runs on any x86-64 or aarch64
CPU and the dispatch table picks the path at run time.
"""
import glob
import os

from pybind11.setup_helpers import ParallelCompile, Pybind11Extension, build_ext
from setuptools import setup
from setuptools.command.build_py import build_py as _build_py

ParallelCompile("EDGEGEN_BUILD_JOBS", default=0).install()

sources = sorted(glob.glob("native/*.cpp")) + sorted(glob.glob("native/bindings/*.cpp"))
extra = ["-O3", "-fno-math-errno", "-ffp-contract=off", "-fvisibility=hidden"]
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


class build_py(_build_py):
    """Also ships the model manifests: models/*.toml -> edgegen/_manifests/ in the built package
    (a checkout or editable install reads models/ directly; see edgegen/store/manifest.py)."""

    def run(self):
        super().run()
        target = os.path.join(self.build_lib, "edgegen", "_manifests")
        self.mkpath(target)
        for path in sorted(glob.glob("models/*.toml")):
            self.copy_file(path, target)


setup(ext_modules=[ext], cmdclass={"build_ext": build_ext, "build_py": build_py})
