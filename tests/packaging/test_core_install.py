"""The light core install: the core packages and ``sntkit --version`` work without the
``experiments`` extra, and the command names the extra to install.

Each check runs in a fresh interpreter whose heavy modules are blocked (``sys.modules[m] = None``
makes ``import m`` raise ImportError, as on a machine without them).
"""

import subprocess
import sys
import tomllib
from pathlib import Path

import sntkit
from sntkit.cli.main import EXPERIMENTS_EXTRA

ROOT = Path(__file__).resolve().parents[2]
CORE = ["operators", "linalg", "models", "ntk", "dynamics", "optim", "tasks"]
HEAVY = ["pandas", "pyarrow", "matplotlib", "dask", "distributed", "yaml", "tqdm"]


def _python(code: str) -> subprocess.CompletedProcess:
    block = f"import sys\nfor m in {HEAVY!r}: sys.modules[m] = None\n"
    return subprocess.run([sys.executable, "-c", block + code], capture_output=True, text=True)


def test_core_packages_import_without_the_experiments_extra():
    imports = "; ".join(f"import sntkit.{p}" for p in CORE)
    done = _python(f"{imports}\nprint('ok')")
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


def test_core_packages_leave_heavy_modules_unimported():
    imports = "; ".join(f"import sntkit.{p}" for p in CORE)
    # tqdm is left out: torch.hub imports it by itself when it is installed
    code = f"import sys; {imports}; print(sorted(set({HEAVY[:-1]!r}) & set(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_experiments_import_fails_without_the_extra():
    """The blocking works: the experiments layer really needs the extra (else the tests above
    could pass vacuously)."""
    done = _python("import sntkit.experiments.plotting")
    assert done.returncode != 0 and "halted; None in sys.modules" in done.stderr


def test_cli_without_the_extra_names_it():
    code = (
        "from sntkit.cli.main import main\n"
        "assert main(['--version']) == 0\n"
        "raise SystemExit(main(['reproduce', '--list']))"
    )
    done = _python(code)
    assert done.returncode == 2, done.stderr
    assert done.stdout.strip() == f"sntkit {sntkit.__version__}"
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr
    assert "pip install 'sntkit[experiments]'" in lines[0] and "pandas" in lines[0]


def test_dependencies_match_the_layers():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    core = {dep.split(">")[0].split("=")[0].split("<")[0] for dep in project["dependencies"]}
    assert core == {"torch", "numpy", "scipy"}
    extras = project["optional-dependencies"]
    names = " ".join(extras["experiments"])
    for dist in EXPERIMENTS_EXTRA.values():
        assert dist.split("[")[0] in names, dist
    own = [d for d in extras["test"] if d.startswith("sntkit[")]
    assert len(own) == 1 and {"experiments", "docs"} <= set(own[0][7:-1].split(","))
    assert project["dynamic"] == ["version"]  # the version lives in sntkit.__version__ only
