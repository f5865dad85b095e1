"""Build the compiled backend. Metadata lives in pyproject.toml; this file is ext_modules only.

Without a working C compiler (none installed, or CC pointing at one that cannot compile a
trivial file) the package installs without the compiled backend, as a pure-Python
py3-none-any wheel whose NumPy backend runs everything, and the build prints one warning
saying so. FASTMLP_PURE_PYTHON=1 forces that build. With a working compiler, a compile
error in the extension fails the build as usual: a broken build never passes for a pure one.

Set FASTMLP_CYTHON_DEBUG=1 to turn bounds, wraparound and initialization checks back on.

The module is built without debug information and, on Linux, linked stripped, so a wheel
carries ~0.5 MB instead of ~2.9 MB (GCC and Clang emit the same code with or without -g).
Set FASTMLP_DEBUG_SYMBOLS=1 to keep Python's default -g and the symbol table, for gdb, perf
or callgrind's per-function counts (bench/callgrind_fit.py).
"""

import os
import sys
import tempfile

from setuptools import Extension, setup


def flag(name):
    return os.environ.get(name, "") not in ("", "0")


def compiler_problem():
    """Why the C compiler setuptools would use cannot compile a trivial file, or None if it can.

    Only the compiler's presence is tested here: the extension's own compile errors are
    not caught anywhere, so they fail the build.
    """
    from distutils.ccompiler import new_compiler  # setuptools' bundled distutils
    from distutils.errors import CCompilerError, DistutilsError
    from distutils.sysconfig import customize_compiler

    with tempfile.TemporaryDirectory() as tmp:
        source = os.path.join(tmp, "probe.c")
        with open(source, "w") as f:
            f.write("int fastmlp_probe(void) { return 0; }\n")
        try:
            compiler = new_compiler()
            customize_compiler(compiler)  # CC, CFLAGS and Python's own settings, as the build uses
            compiler.compile([source], output_dir=tmp)
        except (CCompilerError, DistutilsError, OSError) as exc:
            return f"{type(exc).__name__}: {exc}"
    return None


def pure_python_reason():
    if flag("FASTMLP_PURE_PYTHON"):
        return "FASTMLP_PURE_PYTHON is set"
    problem = compiler_problem()
    return None if problem is None else f"no working C compiler ({problem})"


def warn_pure_python(reason):
    bar = "*" * 78
    print(f"\n{bar}\nWARNING: fastmlp is being built WITHOUT its compiled backend: {reason}.\n"
          "It installs as pure Python and runs on the NumPy backend (the same results, slower).\n"
          "For the compiled backend install a binary wheel (`pip install fastmlp`) or build with a\n"
          "working C compiler (gcc/clang, or MSVC on Windows) and FASTMLP_PURE_PYTHON unset.\n"
          f"{bar}\n", file=sys.stderr, flush=True)


def extensions():
    import numpy
    from Cython.Build import cythonize

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

    modules = [
        Extension(
            "fastmlp._core",
            ["src/fastmlp/_core.pyx"],
            extra_compile_args=compile_args,
            extra_link_args=link_args,
            include_dirs=[numpy.get_include()],
            define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        )
    ]
    return cythonize(modules, compiler_directives=directives)


# Only the commands that compile decide (pip also runs this file for metadata and the sdist,
# which need no compiler), so the build log carries the warning once.
BUILDS = {"build", "build_ext", "bdist_wheel", "editable_wheel", "develop", "install"}
reason = pure_python_reason() if BUILDS.intersection(sys.argv[1:]) else None
if reason is not None:
    warn_pure_python(reason)
setup(ext_modules=[] if reason is not None else extensions())
