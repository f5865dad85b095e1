"""The README's and the documentation site's Python examples run as written.

Each page's ```python blocks run in order in one namespace, in a scratch directory (the
examples write files). Blocks fenced as ```py are shown, not run (a real cluster's
address, for instance). Pages whose examples need an optional package skip without it.
"""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
PAGES = sorted(DOCS.rglob("*.md")) if DOCS.is_dir() else []


def python_blocks(path):
    return re.findall(r"^```python\n(.*?)^```", path.read_text(), re.S | re.M)


def run_blocks(path, namespace=None):
    namespace = {} if namespace is None else namespace
    for block in python_blocks(path):
        exec(compile(block, str(path), "exec"), namespace)
    return namespace


def imported_packages(path):
    names = set()
    for block in python_blocks(path):
        names |= set(re.findall(r"^\s*(?:import|from)\s+([A-Za-z_]\w*)", block, re.M))
    return names - {"fastmlp", "numpy", "scipy"}


@pytest.mark.skipif(not README.exists(), reason="README.md is not beside the tests")
def test_readme_examples_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the examples save a model file
    assert len(python_blocks(README)) >= 1
    namespace = run_blocks(README)
    assert list(namespace["net"].predict(namespace["X"]).ravel()) == [0, 1, 1, 0]


@pytest.mark.skipif(not PAGES, reason="docs/ is not beside the tests")
def test_the_docs_have_the_pages_the_site_lists():
    listed = set(re.findall(r":\s*([\w/-]+\.md)\s*$", (ROOT / "mkdocs.yml").read_text(), re.M))
    present = {p.relative_to(DOCS).as_posix() for p in PAGES}
    assert listed <= present, f"mkdocs.yml lists pages docs/ lacks: {sorted(listed - present)}"
    assert {"guide/cli.md", "api.md", "performance.md", "architecture.md", "changelog.md"} <= listed


@pytest.mark.parametrize("page", [p for p in PAGES if python_blocks(p)],
                         ids=lambda p: p.relative_to(DOCS).as_posix())
def test_docs_examples_run(page, tmp_path, monkeypatch):
    for package in sorted(imported_packages(page)):
        pytest.importorskip(package)
    monkeypatch.chdir(tmp_path)
    run_blocks(page)
