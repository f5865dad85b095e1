"""Build the compiled backend. Metadata lives in pyproject.toml; this file is ext_modules only.

Set FASTMLP_CYTHON_DEBUG=1 to turn bounds, wraparound and initialization checks back on.
"""

import os

from Cython.Build import cythonize
from setuptools import Extension, setup

debug = os.environ.get("FASTMLP_CYTHON_DEBUG", "") not in ("", "0")

directives = {
    "language_level": 3,
    "boundscheck": debug,
    "wraparound": debug,
    "initializedcheck": debug,
    "cdivision": not debug,
    "embedsignature": True,
}

extensions = [
    Extension(
        "fastmlp._core",
        ["src/fastmlp/_core.pyx"],
        # -fno-trapping-math: the code never unmasks FP exceptions, and without it GCC
        # will not turn the activation selects (z >= 0 ? z : slope*z) into vector blends.
        extra_compile_args=["-O3", "-fno-trapping-math"] if os.name != "nt" else ["/O2"],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
    )
]

setup(ext_modules=cythonize(extensions, compiler_directives=directives))
