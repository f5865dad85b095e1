"""Build the compiled backend. Metadata lives in pyproject.toml; this file is ext_modules only.

Set FASTMLP_CYTHON_DEBUG=1 to turn bounds, wraparound and initialization checks back on.

The module is built without debug information and, on Linux, linked stripped, so a wheel
carries ~0.5 MB instead of ~2.9 MB (GCC and Clang emit the same code with or without -g).
Set FASTMLP_DEBUG_SYMBOLS=1 to keep Python's default -g and the symbol table, for gdb, perf
or callgrind's per-function counts (bench/callgrind_fit.py).
"""

import os
import sys

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup


def flag(name):
    return os.environ.get(name, "") not in ("", "0")


debug = flag("FASTMLP_CYTHON_DEBUG")

directives = {
    "language_level": 3,
    "boundscheck": debug,
    "wraparound": debug,
    "initializedcheck": debug,
    "cdivision": not debug,
    "embedsignature": True,
}

if os.name == "nt":  # MSVC: /O2; its debug info goes to a separate .pdb, not the .pyd
    compile_args, link_args = ["/O2"], []
else:
    # -fno-trapping-math: the code never unmasks FP exceptions, and without it GCC
    # will not turn the activation selects (z >= 0 ? z : slope*z) into vector blends.
    # -fno-math-errno: nothing reads errno, and without it sqrt stays a library call that
    # keeps the Adam update loop scalar.
    compile_args, link_args = ["-O3", "-fno-trapping-math", "-fno-math-errno"], []
    if not flag("FASTMLP_DEBUG_SYMBOLS"):
        compile_args.append("-g0")  # after Python's own CFLAGS, so it overrides their -g
        if sys.platform.startswith("linux"):
            link_args.append("-Wl,--strip-all")  # .dynsym (PyInit__core) stays

extensions = [
    Extension(
        "fastmlp._core",
        ["src/fastmlp/_core.pyx"],
        extra_compile_args=compile_args,
        extra_link_args=link_args,
        include_dirs=[numpy.get_include()],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
    )
]

setup(ext_modules=cythonize(extensions, compiler_directives=directives))
