"""Shape rules of the source that review enforces: every function fits on a screen, and every
module has its mirroring test file.

A function of ``src/sntkit`` spans at most :data:`MAX_LINES` lines from its ``def`` to its last
line (docstring included); a longer one is split into setup / loop / summary / figure parts.
``src/sntkit/PKG/MOD.py`` is tested in ``tests/PKG/test_MOD.py`` unless :data:`UNMIRRORED` says
where (modules without a formula of their own).
"""

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "sntkit"
MAX_LINES = 60


# module (or package/) -> where it is tested instead (modules without a formula of their own)
UNMIRRORED = {
    "operators/": "one dense table for every operator: tests/operators/test_operators_dense.py "
    "over tests/operators/operator_cases.py (plus the property and error tests there)",
    "cli/main.py": "tests/cli/test_cli.py",
    "dynamics/tolerances.py": "constants only",
    "experiments/plotting.py": "tests/experiments/test_progress_plotting.py",
    "experiments/progress.py": "tests/experiments/test_progress_plotting.py",
    "experiments/space_time.py": "a reproduction: tests/cli/test_builtin_reproductions.py",
    "experiments/student_teacher.py": "a reproduction: tests/cli/test_builtin_reproductions.py",
    "linalg/probes.py": "probe generators of the estimators, tested through them",
    "models/gates.py": "gate arithmetic: tests/models/test_gru.py, tests/models/test_lstm.py",
    "models/init.py": "initializers, no formula",
    "models/sites.py": "weight-site bookkeeping: tests/ntk/test_core.py (Theorem 1)",
    "models/transformer.py": "its state and NTK against dense: tests/ntk/test_feedforward.py",
    "ntk/parameters.py": "the flat parameter space, used by every NTK test",
    "ntk/trajectory.py": "the unrolled trajectory, used by every NTK test",
    "tracking/sinks.py": "tests/tracking/test_tracker.py",
}


def long_functions(source: str, limit: int = MAX_LINES) -> list[tuple[str, int]]:
    """``(qualified name, lines)`` of every function in ``source`` longer than ``limit``."""
    found: list[tuple[str, int]] = []

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                name = f"{prefix}{child.name}"
                length = child.end_lineno - child.lineno + 1
                if length > limit:
                    found.append((name, length))
                visit(child, f"{name}.")
            elif isinstance(child, ast.ClassDef):
                visit(child, f"{prefix}{child.name}.")
            else:
                visit(child, prefix)

    visit(ast.parse(source), "")
    return found


def _function(name: str, lines: int, indent: str = "") -> str:
    body = "".join(f"{indent}    x = {i}\n" for i in range(lines - 1))
    return f"{indent}def {name}():\n{body}"


def test_long_functions_are_found_with_their_names_and_lengths():
    source = (
        _function("fits", MAX_LINES)
        + "class A:\n"
        + _function("method", MAX_LINES + 1, "    ")
        + "def outer():\n"
        + _function("inner", MAX_LINES + 1, "    ")
        + "    return inner\n"
    )
    assert long_functions(source) == [("A.method", 61), ("outer", 63), ("outer.inner", 61)]
    assert long_functions(_function("f", 10), limit=9) == [("f", 10)]


def test_every_function_fits_in_60_lines():
    assert SRC.is_dir()
    too_long = [
        f"{path.relative_to(SRC)}: {name} has {length} lines"
        for path in sorted(SRC.rglob("*.py"))
        for name, length in long_functions(path.read_text(encoding="utf-8"))
    ]
    assert not too_long, (
        f"functions over {MAX_LINES} lines (split them: setup / loop / summary / figures):\n"
        + "\n".join(too_long)
    )


def test_every_module_has_its_mirroring_test_file():
    tests = SRC.parents[1] / "tests"
    missing = []
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC)
        if path.name == "__init__.py" or len(rel.parts) != 2:
            continue
        name = rel.as_posix()
        if name in UNMIRRORED or f"{rel.parts[0]}/" in UNMIRRORED:
            continue
        if not (tests / rel.parts[0] / f"test_{path.name}").exists():
            missing.append(f"tests/{rel.parts[0]}/test_{path.name} (for {name})")
    stale = [m for m in UNMIRRORED if not (SRC / m).exists()]
    assert not missing, "modules without their test file:\n" + "\n".join(missing)
    assert not stale, f"UNMIRRORED names modules that do not exist: {stale}"
