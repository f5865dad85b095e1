"""The package's shape, checked from its sources: both backends implement exactly what
``fastmlp._registry`` lists; the private steps they mirror (``_forward``, ``_epoch``, ...)
take the same arguments in the same order (``_core``'s C extents aside); no class is
over 250 lines, no function over 80; imports point down the layers of DESIGN.md only (the
backends import nothing above ``_spec``); and no module assigns into another at import.

The compiled module's cdef functions are invisible from Python, so ``_core.pyx`` and the
files it includes are read as text by a small tokenizer (below). Each checker is also run on a made-up bad source, so
that a checker that finds nothing cannot pass for a tree that has nothing to find.
"""

import ast
import dataclasses
import difflib
import re
from pathlib import Path

import pytest

import fastmlp
from fastmlp import _registry, _spec
from fastmlp._registry import ACTIVATIONS, FULL_BATCH, LOSSES, OPTIMIZERS, OUTPUTS

from _support import backend_module

PYX = Path(__file__).resolve().parents[1] / "src" / "fastmlp" / "_core.pyx"
MAX_CYTHON_FILE_LINES = 900
PACKAGE_DIR = Path(fastmlp.__file__).resolve().parent

# Extents a NumPy array carries itself, which _core's cdef steps take as extra arguments.
C_EXTENTS = frozenset({"m", "n", "k", "size", "n_params"})
MIRRORED_STEPS = frozenset({
    "_forward", "_backward", "_output_loss", "_output_activation", "_activation",
    "_activation_backward", "_update", "_epoch", "_sum_squared_weights", "_add_l2",
    # the layer ops (each one's forward and backward) and dropout's mask generator
    "_dense_op", "_dense_op_backward", "_activation_op", "_activation_op_backward", "_dropout_op",
    "_dropout_op_backward", "_dropout", "_dropout_backward", "_dropout_stream", "_mix64",
})
MAX_CLASS_LINES = 250
MAX_FUNCTION_LINES = 80


@pytest.fixture(scope="module")
def pyx_files():
    """{file name: text} of _core.pyx and the files it includes (``include "..."``)."""
    if not PYX.is_file():
        pytest.skip(f"no Cython source at {PYX} (tests running outside a source checkout)")
    main = PYX.read_text(encoding="utf-8")
    files = {PYX.name: main}
    for name in re.findall(r'^include "([^"]+)"', main, re.MULTILINE):
        files[name] = (PYX.parent / name).read_text(encoding="utf-8")
    return files


@pytest.fixture(scope="module")
def pyx_source(pyx_files):
    """The compiled module's whole Cython source, its files one after the other."""
    return "\n".join(pyx_files.values())


@pytest.fixture(scope="module")
def reference_source():
    return Path(backend_module("numpy").__file__).read_text(encoding="utf-8")


# =====================================================================================
# 1. every backend implements exactly the registry
# =====================================================================================

# kind -> (the registry's names, _reference's table, _core's table of C enum codes)
TABLES = {
    "activation": (ACTIVATIONS, "_ACTIVATIONS", "_ACTIVATION_CODES"),
    "output": (OUTPUTS, "_OUTPUTS", "_OUTPUT_CODES"),
    "loss": (LOSSES, "_LOSSES", "_LOSS_CODES"),
    "optimizer": (OPTIMIZERS, "_UPDATES", "_OPTIMIZER_CODES"),
}


@pytest.mark.parametrize("backend", ["numpy", "cython"])
@pytest.mark.parametrize("kind", TABLES)
def test_backend_tables_name_exactly_the_registry(kind, backend):
    registered, reference_table, core_table = TABLES[kind]
    table_name = reference_table if backend == "numpy" else core_table
    table = getattr(backend_module(backend), table_name)
    missing = sorted(set(registered) - set(table))
    extra = sorted(set(table) - set(registered))
    assert set(table) == set(registered), (
        f"{backend} backend's {table_name} vs fastmlp._registry's {kind}s: "
        f"missing {missing}, not registered {extra} (symmetric difference {sorted(missing + extra)})"
    )


@pytest.mark.parametrize("kind", TABLES)
def test_core_codes_are_distinct_integers(kind):
    codes = getattr(backend_module("cython"), TABLES[kind][2])
    not_int = {name: code for name, code in codes.items() if type(code) is not int}
    assert not not_int, f"_core's {kind} codes that are not ints: {not_int}"
    shared = {code: sorted(n for n, c in codes.items() if c == code) for code in codes.values()}
    shared = {code: names for code, names in shared.items() if len(names) > 1}
    assert not shared, f"_core's {kind} names sharing one code: {shared}"


@pytest.mark.parametrize("kind", TABLES)
def test_implemented_raises_naming_the_missing_and_the_extra(kind):
    names = tuple(TABLES[kind][0])
    complete = {name: object() for name in names}
    assert _registry.implemented("test", kind, names, complete) is complete
    dropped = names[-1]
    with pytest.raises(ImportError) as missing:
        _registry.implemented("test", kind, names, {n: v for n, v in complete.items() if n != dropped})
    assert f"missing [{dropped!r}]" in str(missing.value), str(missing.value)
    with pytest.raises(ImportError) as extra:
        _registry.implemented("test", kind, names, {**complete, "no_such_name": None})
    assert "'no_such_name'" in str(extra.value) and "missing []" in str(extra.value), str(extra.value)


# =====================================================================================
# 2. the registry's own cross-references
# =====================================================================================


def test_optimizer_hyperparameters_are_fields_of_the_optimizer_spec():
    fields = set(_spec.FIELDS)
    unknown = {name: [h for h in kind.hyperparameters if h not in fields] for name, kind in OPTIMIZERS.items()}
    unknown = {name: hyper for name, hyper in unknown.items() if hyper}
    assert not unknown, f"hyperparameters in OPTIMIZERS that fastmlp._spec.Optimizer lacks: {unknown}"
    unregistered = sorted(set(FULL_BATCH) - set(OPTIMIZERS))
    assert not unregistered, f"FULL_BATCH names unknown optimizers: {unregistered}"


def test_each_loss_goes_through_a_registered_output():
    unknown = {loss: output for loss, output in LOSSES.items() if output not in OUTPUTS}
    assert not unknown, f"losses whose output is not in OUTPUTS {OUTPUTS}: {unknown}"


def test_each_activation_names_an_initialisation():
    unknown = {act: init for act, init in ACTIVATIONS.items() if init not in ("he", "glorot")}
    assert not unknown, f"activations whose init is neither 'he' nor 'glorot': {unknown}"


# =====================================================================================
# reading Cython source: statements, definitions, their parameters and extents
# =====================================================================================

_TOKEN = re.compile(r"""
    (?P<string>[rRbBuUfF]{0,2}(?:'''(?:\\[\s\S]|[\s\S])*?'''|\"\"\"(?:\\[\s\S]|[\s\S])*?\"\"\"
                              |'(?:\\.|[^'\\\n])*'|"(?:\\.|[^"\\\n])*"))
  | (?P<comment>\#[^\n]*)
  | (?P<continuation>\\\r?\n)
  | (?P<newline>\n)
  | (?P<space>[ \t\f\r]+)
  | (?P<name>[^\W\d]\w*)
  | (?P<number>\d[\w.]*)
  | (?P<op>.)
""", re.VERBOSE)
_OPEN, _CLOSE = "([{", ")]}"
# words that may precede a cdef function's name but are not it
_C_WORDS = frozenset({"cdef", "cpdef", "inline", "public", "api", "const", "unsigned", "signed", "long", "short"})
_NOT_FUNCTIONS = frozenset({"struct", "union", "enum", "extern", "ctypedef", "fused", "packed", "class"})


@dataclasses.dataclass
class Definition:
    name: str
    kind: str          # "function" or "class"
    c_level: bool      # a cdef/cpdef function: also takes the C extents
    params: list       # parameter names in order (a class: its __init__'s/__cinit__'s, less self)
    first: int         # line of the signature (1-based)
    last: int          # last line of its body
    indent: int


def logical_lines(source):
    """[(first line, last line, indent, tokens)] of the statements of Python or Cython
    `source`; tokens are (kind, text) without spaces and comments. A statement ends at a
    newline outside brackets (so multi-line signatures and strings are one statement)."""
    statements, tokens, depth, row, line_start = [], [], 0, 1, 0
    first = last = indent = None
    for match in _TOKEN.finditer(source):
        kind, text = match.lastgroup, match.group()
        if kind in ("string", "name", "number", "op"):
            if not tokens:
                first, indent = row, match.start() - line_start
            tokens.append((kind, text))
            depth = max(0, depth + (text in _OPEN) - (text in _CLOSE)) if kind == "op" else depth
            last = row + text.count("\n")
        elif kind == "newline" and depth == 0 and tokens:
            statements.append((first, last, indent, tokens))
            tokens = []
        if "\n" in text:
            row += text.count("\n")
            line_start = match.start() + text.rindex("\n") + 1
    if tokens:
        statements.append((first, last, indent, tokens))
    return statements


def _split(tokens, separator):
    """`tokens` split at the op `separator` where it is outside brackets."""
    parts, part, depth = [], [], 0
    for kind, text in tokens:
        if kind == "op" and text in _CLOSE:
            depth -= 1
        if depth == 0 and (kind, text) == ("op", separator):
            parts.append(part)
            part = []
        else:
            part.append((kind, text))
        if kind == "op" and text in _OPEN:
            depth += 1
    return parts + [part]


def _closing(tokens, start):
    """Index of the bracket closing the one at `start` (None if unclosed)."""
    depth = 0
    for i in range(start, len(tokens)):
        kind, text = tokens[i]
        depth += kind == "op" and text in _OPEN
        depth -= kind == "op" and text in _CLOSE
        if depth == 0:
            return i
    return None


def _param_name(item):
    """The name in one comma-separated item of a parameter list: the last identifier before
    a default or a Python annotation (None for a bare * or /)."""
    names = [text for kind, text in _split(_split(item, "=")[0], ":")[0] if kind == "name"]
    while names[-2:] in (["not", "None"], ["or", "None"]):
        names = names[:-2]
    return names[-1] if names else None


def _signature(tokens):
    """(name, kind, c_level, parameter names) if the statement `tokens` opens a function or
    a class (Python or Cython), else None."""
    texts = [text for _, text in tokens]
    if texts[:2] == ["async", "def"]:
        tokens, texts = tokens[1:], texts[1:]
    head = texts[0] if tokens[0][0] == "name" else None
    if head == "class" or (head in ("cdef", "cpdef") and "class" in texts[1:4]):
        return texts[texts.index("class") + 1], "class", False, []
    if head not in ("def", "cdef", "cpdef") or texts[1] in _NOT_FUNCTIONS:
        return None
    depth = 0
    for i, (kind, text) in enumerate(tokens):
        if depth == 0 and (kind, text) == ("op", "="):
            return None                 # a declaration with an initial value: cdef int x = f(y)
        if depth == 0 and text == "(" and tokens[i - 1][0] == "name" and tokens[i - 1][1] not in _C_WORDS:
            end = _closing(tokens, i)
            if end is None or ("op", ":") not in tokens[end + 1:]:
                return None             # not followed by a body: a declaration, not a definition
            params = [_param_name(item) for item in _split(tokens[i + 1:end], ",") if item]
            return texts[i - 1], "function", head != "def", [p for p in params if p]
        depth += kind == "op" and text in _OPEN
        depth -= kind == "op" and text in _CLOSE
    return None


def cython_definitions(source):
    """Every function and class defined in Cython `source`, at any depth. A definition
    lasts until the next statement at its indentation or less."""
    statements = logical_lines(source)
    found = []
    for i, (first, last, indent, tokens) in enumerate(statements):
        signature = _signature(tokens)
        if signature is None:
            continue
        for _, later_last, later_indent, _ in statements[i + 1:]:
            if later_indent <= indent:
                break
            last = later_last
        found.append(Definition(*signature, first=first, last=last, indent=indent))
    for cls in found:
        if cls.kind == "class":
            methods = [d for d in found if cls.first < d.first <= cls.last and d.indent > cls.indent
                       and d.name in ("__cinit__", "__init__")]
            if methods:
                cls.params = min(methods, key=lambda d: (d.indent, d.first)).params[1:]
    return found


def _python_params(function):
    args = function.args
    names = [a.arg for a in args.posonlyargs + args.args]
    names += [args.vararg.arg] if args.vararg else []
    names += [a.arg for a in args.kwonlyargs]
    return names + ([args.kwarg.arg] if args.kwarg else [])


def _is_private(name):
    return name.startswith("_") and not name.startswith("__")


# =====================================================================================
# 3. the private steps mirrored by both backends
# =====================================================================================


def core_mirrors(pyx_source):
    """{private top-level name: (kind, parameter names without the C extents, dropped)} of
    the functions (cdef, cpdef, def) and classes of Cython `pyx_source`."""
    mirrors = {}
    for d in cython_definitions(pyx_source):
        if d.indent == 0 and _is_private(d.name):
            kept = [p for p in d.params if not (d.c_level and p in C_EXTENTS)]
            mirrors[d.name] = (d.kind, kept, [p for p in d.params if p not in kept])
    return mirrors


def reference_mirrors(py_source):
    """{private top-level name: (kind, parameter names, [])} of Python `py_source`'s
    functions and classes (a class's parameters: its __init__'s, less self)."""
    mirrors = {}
    for node in ast.parse(py_source).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and _is_private(node.name):
            mirrors[node.name] = ("function", _python_params(node), [])
        elif isinstance(node, ast.ClassDef) and _is_private(node.name):
            inits = [f for f in node.body if isinstance(f, ast.FunctionDef) and f.name == "__init__"]
            mirrors[node.name] = ("class", _python_params(inits[0])[1:] if inits else [], [])
    return mirrors


def mirror_mismatches(core, reference):
    """A readable account of every name in both whose kind or parameters differ."""
    report = []
    for name in sorted(set(core) & set(reference)):
        (core_kind, core_params, dropped), (ref_kind, ref_params, _) = core[name], reference[name]
        if (core_kind, core_params) == (ref_kind, ref_params):
            continue
        diff = " ".join(t[2:] if t[0] == " " else t[0] + t[2:]
                        for t in difflib.ndiff(core_params, ref_params) if t[0] != "?")
        report.append(
            f"{name}:\n"
            f"    _core      {core_kind}({', '.join(core_params)})  [C extents dropped: {', '.join(dropped) or '-'}]\n"
            f"    _reference {ref_kind}({', '.join(ref_params)})\n"
            f"    diff (-_core +_reference): {diff}"
        )
    return report


def test_mirrored_steps_take_the_same_arguments(pyx_source, reference_source):
    core, reference = core_mirrors(pyx_source), reference_mirrors(reference_source)
    shared = set(core) & set(reference)
    assert shared, "no private name is defined in both backends"
    absent = {name: [side for side, defs in (("_core", core), ("_reference", reference)) if name not in defs]
              for name in sorted(MIRRORED_STEPS - shared)}
    assert not absent, f"mirrored steps missing from a backend: {absent}"
    mismatches = mirror_mismatches(core, reference)
    assert not mismatches, "mirrored private steps whose arguments differ:\n" + "\n".join(mismatches)


def test_parsed_core_names_include_the_compiled_private_objects(pyx_source):
    """The parser sees every private def function and class the compiled module exports."""
    core = backend_module("cython")
    compiled = {name for name, value in vars(core).items()
                if _is_private(name) and (callable(value) or isinstance(value, type))}
    unseen = sorted(compiled - set(core_mirrors(pyx_source)))
    assert compiled and not unseen, (
        f"fastmlp._core exports {unseen}, which the parser did not find in {PYX} "
        "(or the build is stale: python setup.py build_ext --inplace)"
    )


FAKE_PYX = '''
cdef extern from "<math.h>" nogil:
    float erff(float x)

cdef struct Net:
    Py_ssize_t n_layers     # a field, not a function

cdef (int, int) _pair(int a, int b):
    return a, b

cdef inline double _scale(const floating* x,   # a comment, (with a comma
                          Py_ssize_t size, double[:, ::1] M,
                          floating alpha=<floating>1) noexcept nogil:
    cdef double total = _helper(x, size), y
    return total

def _typed(const floating[:, ::1] A not None, floating[::1] b, *, bint flag=False, label="a, b",
           **kw):
    """A docstring with a paren ( and a comma,"""
    pass

cdef class _Holder:
    cdef object _x
    def __cinit__(self, net, Py_ssize_t capacity):
        self._x = net
'''

FAKE_REFERENCE = '''
def _pair(a, b):
    return a, b

def _scale(x, M, beta):
    return x

def _typed(b, A, *, flag=False, label="a, b", **kw):
    pass

class _Holder:
    def __init__(self, net, capacity):
        self.net = net
'''


def test_parser_reads_multiline_fused_pointer_and_default_signatures():
    mirrors = core_mirrors(FAKE_PYX)
    assert mirrors == {
        "_pair": ("function", ["a", "b"], []),
        "_scale": ("function", ["x", "M", "alpha"], ["size"]),
        "_typed": ("function", ["A", "b", "flag", "label", "kw"], []),
        "_Holder": ("class", ["net", "capacity"], []),
    }


def test_mirror_check_flags_mismatched_signatures():
    mismatches = mirror_mismatches(core_mirrors(FAKE_PYX), reference_mirrors(FAKE_REFERENCE))
    assert [m.split(":")[0] for m in mismatches] == ["_scale", "_typed"], mismatches
    assert "x M -alpha +beta" in mismatches[0], mismatches[0]
    as_function = FAKE_REFERENCE.replace("class _Holder:\n    def __init__(self, ", "def _Holder(")
    flagged = mirror_mismatches(core_mirrors(FAKE_PYX), reference_mirrors(as_function))
    assert any(m.startswith("_Holder:") for m in flagged), flagged


# =====================================================================================
# 4. size limits: no class over 250 lines, no function over 80
# =====================================================================================


def oversized_python(source, filename):
    """'file:line name (n lines)' for each class over MAX_CLASS_LINES and each function
    (nested ones included) over MAX_FUNCTION_LINES in Python `source`."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.ClassDef):
            limit = MAX_CLASS_LINES
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            limit = MAX_FUNCTION_LINES
        else:
            continue
        lines = node.end_lineno - node.lineno + 1
        if lines > limit:
            found.append(f"{filename}:{node.lineno} {node.name} ({lines} lines > {limit})")
    return found


def oversized_cython(source, filename):
    """The same for the functions (cdef, cpdef, def, methods included) of Cython `source`."""
    return [f"{filename}:{d.first} {d.name} ({d.last - d.first + 1} lines > {MAX_FUNCTION_LINES})"
            for d in cython_definitions(source)
            if d.kind == "function" and d.last - d.first + 1 > MAX_FUNCTION_LINES]


def test_no_python_class_over_250_lines_or_function_over_80():
    files = sorted(PACKAGE_DIR.glob("*.py"))
    assert PACKAGE_DIR / "_reference.py" in files, f"no package sources found in {PACKAGE_DIR}"
    offenders = [o for f in files for o in oversized_python(f.read_text(encoding="utf-8"), f.name)]
    assert not offenders, "over the size limits:\n" + "\n".join(offenders)


def test_no_cython_function_over_80_lines(pyx_files, pyx_source):
    functions = {d.name for d in cython_definitions(pyx_source) if d.kind == "function"}
    assert MIRRORED_STEPS <= functions, f"parser missed {sorted(MIRRORED_STEPS - functions)} in {PYX}"
    offenders = [o for name, text in pyx_files.items() for o in oversized_cython(text, name)]
    assert not offenders, "over the size limits:\n" + "\n".join(offenders)


def test_the_compiled_module_is_split_into_files_of_at_most_900_lines(pyx_files):
    assert len(pyx_files) > 1, f"{PYX.name} includes no files"
    long = {name: text.count("\n") for name, text in pyx_files.items() if text.count("\n") > MAX_CYTHON_FILE_LINES}
    assert not long, f"Cython files over {MAX_CYTHON_FILE_LINES} lines: {long}"


def _function(header, body_lines, indent=""):
    return header + "\n" + f"{indent}    x = 1\n" * (body_lines - 1) + f"{indent}    return x\n"


def test_python_size_check_flags_an_81_line_function_and_a_251_line_class():
    fine = _function("def fine():", 79)                                       # 80 lines
    long = _function("def long():", 80)                                       # 81 lines
    method = _function("    def method(self):", 80, indent="    ")
    big_class = "class Big:\n" + "    x = 1\n" * 170 + method                # 1 + 170 + 81 = 252
    assert oversized_python(fine, "f.py") == []
    assert oversized_python(long, "f.py") == ["f.py:1 long (81 lines > 80)"]
    assert oversized_python(big_class, "f.py") == [
        "f.py:1 Big (252 lines > 250)", "f.py:172 method (81 lines > 80)"]


def test_cython_size_check_flags_an_81_line_function():
    fine = _function("cdef void _fine(Py_ssize_t n) noexcept nogil:", 79)
    long = _function("cdef double _long(const floating* X,\n                  Py_ssize_t n) noexcept nogil:", 79)
    tail = "\n\n# a comment before the next definition\n\ndef after():\n    pass\n"
    assert oversized_cython(fine + tail, "f.pyx") == []
    assert oversized_cython(long + tail, "f.pyx") == ["f.pyx:1 _long (81 lines > 80)"]
    method = _function("    def method(self, n):", 80, indent="    ")
    assert oversized_cython("cdef class _C:\n    cdef int n\n" + method + tail, "f.pyx") == [
        "f.pyx:3 method (81 lines > 80)"]


# =====================================================================================
# 5. layering: arrows point down only, nothing writes into another module at import
# =====================================================================================

# The package's layers, top to bottom (DESIGN.md: user-facing layers -> model -> training
# -> backends -> spec and validation -> registry). A module may import modules of its own
# layer and of the layers below it, never one above; a new module must be placed here.
LAYERS = (
    ("package", {"__init__", "__main__"}),
    ("user-facing", {"_cli", "_cli_io", "_cli_models", "_preprocess", "_estimator_io", "_onnx", "_onnx_pipeline",
                     "_onnx_model_file", "plot"}),
    ("estimators", {"_sklearn", "_sklearn_train"}),
    ("model", {"_model", "_persistence", "_progress", "_initializers"}),
    ("training", {"_training"}),
    ("backend choice and BLAS", {"_backend", "_blas"}),
    ("backends", {"_core", "_reference"}),
    ("spec and validation", {"_spec", "_validation"}),
    ("registry and leaves", {"_registry", "_errors", "_fork", "_typing"}),
)
LAYER_OF = {module: depth for depth, (_, modules) in enumerate(LAYERS) for module in modules}
BACKENDS = ("_core", "_reference")
# what a backend may import: nothing above _spec (and not the other backend)
BACKEND_IMPORTS = LAYERS[-2][1] | LAYERS[-1][1]
# names taken from the package itself below its top (the version string, read lazily)
ROOT_NAMES = {"__version__"}


def _package_module(name):
    """The package module a relative or absolute import names ('_spec' for '._spec',
    'fastmlp._spec.x'), '__init__' for the package itself, None outside the package."""
    parts = name.split(".")
    if parts[0] == "fastmlp":
        parts = parts[1:]
    elif parts[0] != "":
        return None
    parts = [p for p in parts if p]
    return parts[0] if parts else "__init__"


def python_imports(source):
    """{(line, imported package module)} of Python `source` (at any depth: function-level
    imports count as well); ``from . import x`` names module x where x is one, else the
    package (``__init__``), recorded as ('__init__', name) for the package's own names."""
    found = set()
    modules = {p.stem for p in PACKAGE_DIR.glob("*.py")} | {p.name.split(".")[0] for p in PACKAGE_DIR.glob("*.pyx")}
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {(node.lineno, m) for m in map(_package_module, (a.name for a in node.names)) if m}
        elif isinstance(node, ast.ImportFrom):
            module = _package_module("." * node.level + (node.module or ""))
            if module == "__init__":
                for alias in node.names:
                    found.add((node.lineno, alias.name if alias.name in modules or alias.name in LAYER_OF
                               else ("__init__", alias.name)))
            elif module:
                found.add((node.lineno, module))
    return found


def cython_imports(source):
    """The same for Cython `source` (its Python-level ``import``/``from ... import``)."""
    found = set()
    for first, _, _, tokens in logical_lines(source):
        texts = [text for _, text in tokens]
        if texts[:1] == ["from"] and "import" in texts:
            at = texts.index("import")
            module = _package_module("".join(texts[1:at]))
            if module == "__init__":      # from . import a as b, c: a and c
                found |= {(first, [t for k, t in part if k == "name"][0])
                          for part in _split([t for t in tokens[at + 1:] if t[1] not in "()"], ",") if part}
            elif module:
                found.add((first, module))
        elif texts[:1] == ["import"]:
            for part in _split(tokens[1:], ","):
                module = _package_module("".join(text for _, text in part).split("as")[0])
                if module:
                    found.add((first, module))
    return found


def _module_sources():
    """{module name: [(file name, source, "py" or "pyx")]}: every module of the package; the
    compiled one with its include files."""
    sources = {p.stem: [(p.name, p.read_text(encoding="utf-8"), "py")] for p in sorted(PACKAGE_DIR.glob("*.py"))}
    if PYX.is_file():
        sources["_core"] = [(p.name, p.read_text(encoding="utf-8"), "pyx")
                            for p in [PYX, *sorted(PYX.parent.glob("*.pxi"))]]
    return sources


def layering_violations(sources):
    """'file:line: a imports b (...)' for each import pointing up, from a backend to anything
    above _spec, or naming a module placed in no layer."""
    found = []
    for module, files in sources.items():
        for filename, source, kind in files:
            imports = python_imports(source) if kind == "py" else cython_imports(source)
            for line, target in sorted(imports, key=str):
                where = f"{filename}:{line}: {module} imports {target}"
                if isinstance(target, tuple):
                    if target[1] not in ROOT_NAMES and LAYER_OF.get(module) != 0:
                        found.append(f"{where} from the package's top (above every layer)")
                elif module not in LAYER_OF or target not in LAYER_OF:
                    found.append(f"{where}: place {module if module not in LAYER_OF else target} in LAYERS")
                elif module in BACKENDS and target not in BACKEND_IMPORTS:
                    found.append(f"{where}: a backend imports nothing above _spec")
                elif LAYER_OF[target] < LAYER_OF[module]:
                    found.append(f"{where}: {LAYERS[LAYER_OF[module]][0]} below {LAYERS[LAYER_OF[target]][0]}")
    return found


def test_imports_point_down_only():
    sources = _module_sources()
    assert {"_core", "_reference", "_training", "_model"} <= set(sources), sorted(sources)
    violations = layering_violations(sources)
    assert not violations, "imports against the layering (DESIGN.md):\n" + "\n".join(violations)


def test_layering_check_flags_upward_and_backend_imports():
    bad = {
        "_reference": [("_reference.py", "from ._training import CHECKED\nfrom . import _spec\n", "py")],
        "_core": [("_core.pyx", "cimport numpy as cnp\nfrom ._blas import x\nfrom . import (_fork as f,\n    _registry)\n"
                             "from . import _spec as _blas\n", "pyx")],
        "_validation": [("_validation.py", "def f():\n    from . import _blas\n", "py")],
        "_training": [("_training.py", "import fastmlp._model\nfrom . import __version__, _spec\n", "py")],
        "_new": [("_new.py", "from . import _spec\n", "py")],
    }
    violations = layering_violations(bad)
    assert [v.split(": ", 1)[0] for v in violations] == [
        "_reference.py:1", "_core.pyx:2", "_validation.py:2", "_training.py:1", "_new.py:1"], violations
    assert "a backend imports nothing above _spec" in violations[0] and "place _new in LAYERS" in violations[-1]


def _roots(target):
    """The name an assignment target's attribute or item chain starts from (None: a plain name)."""
    if not isinstance(target, (ast.Attribute, ast.Subscript)):
        return []
    while isinstance(target, (ast.Attribute, ast.Subscript)):
        target = target.value
    return [target.id] if isinstance(target, ast.Name) else []


def _import_time_nodes(body):
    """The statements of a module body that run at import: everything but function bodies
    (class bodies run, and so do if/try/with/for blocks)."""
    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            continue
        yield node
        for field in ("body", "orelse", "finalbody", "handlers"):
            inner = getattr(node, field, None)
            if isinstance(inner, list):
                yield from _import_time_nodes(inner)


def python_import_time_writes(source, filename):
    """'file:line: ...' for each statement run at import that assigns an attribute or an
    item of an imported name (a module, or an object of another module), or calls setattr."""
    tree = ast.parse(source)
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            imported |= {(a.asname or a.name).split(".")[0] for a in node.names}
    found = []
    for node in _import_time_nodes(tree.body):
        if isinstance(node, (ast.ClassDef, ast.If, ast.Try, ast.With, ast.For, ast.While, ast.ExceptHandler)):
            continue        # (their bodies come on their own)
        targets = []
        if isinstance(node, ast.Assign):
            targets = [t for target in node.targets for t in (target.elts if isinstance(target, ast.Tuple) else [target])]
        elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
            targets = [node.target]
        found += [f"{filename}:{node.lineno}: assigns into {root}"
                  for t in targets for root in _roots(t) if root in imported]
        found += [f"{filename}:{n.lineno}: setattr on {n.args[0].id}" for n in ast.walk(node)
                  if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == "setattr"
                  and n.args and isinstance(n.args[0], ast.Name) and n.args[0].id in imported]
    return sorted(set(found))


def cython_import_time_writes(source, filename):
    """The same for Cython `source`'s module-level statements (indent 0)."""
    imported, found = set(), []
    statements = logical_lines(source)
    for _, _, _, tokens in statements:
        texts = [text for _, text in tokens]
        if "import" in texts or "cimport" in texts:
            at = texts.index("import") if "import" in texts else texts.index("cimport")
            names = [part for part in _split(tokens[at + 1:], ",") if part]
            imported |= {[t for k, t in part if k == "name"][-1] for part in names}
    for first, _, indent, tokens in statements:
        texts = [text for _, text in tokens]
        if indent or not texts or texts[0] in ("def", "cdef", "cpdef", "class", "ctypedef", "from", "import"):
            continue
        for i, text in enumerate(texts):
            if text == "=" and texts[i - 1] not in "=<>!+-*/%&|^" and (i + 1 == len(texts) or texts[i + 1] != "="):
                for part in _split(tokens[:i], ","):
                    if len(part) > 2 and part[0][1] in imported and part[1][1] in (".", "["):
                        found.append(f"{filename}:{first}: assigns into {part[0][1]}")
                break
        if texts[:2] == ["setattr", "("] and len(texts) > 2 and texts[2] in imported:
            found.append(f"{filename}:{first}: setattr on {texts[2]}")
    return found


def test_no_module_writes_into_another_at_import():
    found = []
    for module, files in _module_sources().items():
        for filename, source, kind in files:
            check = python_import_time_writes if kind == "py" else cython_import_time_writes
            found += check(source, filename)
    assert not found, "import-time writes into other modules (DESIGN.md):\n" + "\n".join(found)


def test_import_time_write_checks_flag_assignments_into_imported_names():
    py = ("import os\nfrom . import _validation as v\nfrom ._spec import Optimizer\nlocal = 1\n"
          "v.small_scan = None\nif True:\n    os.environ['X'] = '1'\nclass C:\n    Optimizer.lr = 2\n"
          "def later():\n    v.dense_xy = None\nsetattr(v, 'a', 1)\nlocal += 1\nx, v.b = 1, 2\n")
    assert python_import_time_writes(py, "m.py") == [
        "m.py:12: setattr on v", "m.py:14: assigns into v", "m.py:5: assigns into v", "m.py:7: assigns into os",
        "m.py:9: assigns into Optimizer"]
    pyx = ("cimport numpy as cnp\nfrom . import _blas as _blas_choice\nfrom . import _validation as _vm\n"
           "cdef int n = 1\nX = 2\ncnp.import_array()\n_blas_choice.choose(_use_gemm)\n"
           "_vm.small_scan, _vm.dense_xy = a, b\nif X == 2:\n    pass\ndef f():\n    _vm.x = 1\n")
    assert cython_import_time_writes(pyx, "m.pyx") == ["m.pyx:8: assigns into _vm", "m.pyx:8: assigns into _vm"]
