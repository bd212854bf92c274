"""The documentation site: `mkdocs build --strict` succeeds, the API reference shows every public
name, the formulas table links resolve and cover the papers, and included files are pulled in.

The site is built once per session into a temporary folder (a few seconds); a broken cross
reference, a missing page or a bad docstring fails the strict build and this test.
"""

import ast
import importlib
import os
import pkgutil
import re
import subprocess
import sys
import types
from pathlib import Path

import pytest

import sntkit

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
LINK = re.compile(r"\[`[^`]+`\]\[(sntkit(?:\.\w+)+)\]")
TEST_REF = re.compile(r"`(tests/[\w/]+\.py)::(test_\w+)`")
DIRECTIVE = re.compile(r"^::: (sntkit(?:\.\w+)*)\s*$", re.M)


@pytest.fixture(scope="session")
def site(tmp_path_factory):
    pytest.importorskip("mkdocs", reason="needs the docs extra: pip install -e '.[docs]'")
    out = tmp_path_factory.mktemp("site")
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=os.environ | {"NO_MKDOCS_2_WARNING": "1"},
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return out


def _page(site: Path, md: str) -> str:
    stem = md.removesuffix(".md")
    html = (
        f"{stem.removesuffix('index')}index.html"
        if stem.endswith("index")
        else f"{stem}/index.html"
    )
    return (site / html).read_text(encoding="utf-8")


def _resolve(path: str):
    """The object named by a dotted path (module prefix imported, the rest by attribute)."""
    parts = path.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for name in parts[cut:]:
            obj = getattr(obj, name)
        return obj
    raise ImportError(path)


def _api_directives() -> dict[str, str]:
    """``::: module`` directive → the API page (Markdown file) that holds it."""
    found = {}
    for md in sorted((DOCS / "api").glob("*.md")):
        for module in DIRECTIVE.findall(md.read_text(encoding="utf-8")):
            found[module] = f"api/{md.name}"
    return found


def test_every_package_has_an_api_page():
    directives = _api_directives()
    packages = {f"sntkit.{m.name}" for m in pkgutil.iter_modules(sntkit.__path__) if m.ispkg}
    assert packages - {"sntkit.cli"} <= set(directives), packages - set(directives)
    assert "sntkit.cli.main" in directives


def test_api_reference_shows_every_name_of_every_all(site):
    """Each name of each rendered module's ``__all__`` has an anchor on its page, under the
    package's path or (for a function that shares its module's name) its defining path."""
    missing = []
    for module, md in _api_directives().items():
        mod = _resolve(module)
        if not isinstance(mod, types.ModuleType) or not hasattr(mod, "__all__"):
            continue  # a single object rendered on its own
        html = _page(site, md)
        for name in mod.__all__:
            obj = getattr(mod, name)
            ids = {f"{module}.{name}"}
            if getattr(obj, "__module__", None) and getattr(obj, "__qualname__", None):
                ids.add(f"{obj.__module__}.{obj.__qualname__}")
            if not any(f'id="{i}"' in html for i in ids):
                missing.append(f"{module}.{name} ({md})")
    assert not missing, missing


def test_formula_table_links_resolve_and_tests_exist(site):
    text = (DOCS / "formulas.md").read_text(encoding="utf-8")
    rows = [ln for ln in text.splitlines() if ln.startswith("| 00")]
    assert len(rows) >= 40
    html = "".join(_page(site, f"api/{p.name}") for p in (DOCS / "api").glob("*.md"))
    formulas = _page(site, "formulas.md")
    for row in rows:
        links, tests = LINK.findall(row), TEST_REF.findall(row)
        assert links and tests, row
        for target in links:
            _resolve(target)  # a real object ...
            assert f'id="{target}"' in html, target  # ... documented in the API reference
            assert f"#{target}" in formulas, target  # ... and linked from the rendered table
        for file, test in tests:
            tree = ast.parse((ROOT / file).read_text(encoding="utf-8"))
            names = {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}
            assert test in names, f"{file}::{test}"


def test_formula_table_lists_every_numbered_item_of_paper_004():
    text = (DOCS / "formulas.md").read_text(encoding="utf-8")
    items = set(re.findall(r"^\| (004 [^|]+?) \|", text, re.M))
    expected = {f"004 eq. ({i})" for i in range(1, 25)}
    expected |= {"004 Theorem 1", "004 Proposition 1", "004 Proposition 2"}
    expected |= {"004 Corollary 1", "004 Corollary 2"}
    assert expected <= items, sorted(expected - items)
    papers = ROOT / "shared" / "papers"
    for paper in papers.glob("004_*.txt"):  # the papers, where the checkout has them
        numbers = {int(n) for n in re.findall(r"\((\d{1,2})\)\s*$", paper.read_text(), re.M)}
        assert {f"004 eq. ({n})" for n in numbers} <= items


def test_included_files_are_pulled_in_at_build_time(site):
    reproduction = (ROOT / "REPRODUCTION.md").read_text(encoding="utf-8")
    first_heading = next(ln for ln in reproduction.splitlines() if ln.startswith("## "))
    assert first_heading[3:].split("—")[0].strip() in _page(site, "reproductions.md")
    results = (ROOT / "benchmarks" / "RESULTS.md").read_text(encoding="utf-8")
    assert results.splitlines()[0].lstrip("# ").strip() in _page(site, "benchmarks.md")
    tutorials = _page(site, "tutorials.md")
    for example in (ROOT / "examples").glob("*.py"):
        assert f"examples/{example.name}" in tutorials
    cli = _page(site, "cli.md")
    assert "--show-config" in cli and "--scheduler" in cli and "usage: sntkit" in cli
    home = _page(site, "index.md")
    assert 'src="figures/fig1_training.png"' in home  # README image paths rewritten


def test_readme_library_table_names_exist():
    """The README's library table lists only names the packages export."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for package in ("models", "dynamics", "optim", "tasks"):
        row = next(ln for ln in readme.splitlines() if ln.startswith(f"| `sntkit.{package}` |"))
        names = re.findall(r"`([A-Za-z_]\w*)(?:\([^`]*\))?`", row.split("|")[2])
        exported = importlib.import_module(f"sntkit.{package}").__all__
        assert names and set(names) <= set(exported), (package, set(names) - set(exported))
