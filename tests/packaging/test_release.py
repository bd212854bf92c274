"""Release readiness: ``python -m build`` makes a wheel and an sdist that ``twine check``
accepts, and the wheel installs into a clean virtual environment where ``import sntkit`` and
``sntkit --version`` work from the installed files (py.typed included).

The clean environment gets no network: the wheel is installed with ``--no-deps`` and the
dependencies are borrowed from this interpreter's site-packages through a ``.pth`` file, so the
check is about the package's own contents (modules, data, entry point, metadata).
"""

import os
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import venv
import zipfile
from pathlib import Path

import pytest

import sntkit

ROOT = Path(__file__).resolve().parents[2]


def _run(args, **kw) -> subprocess.CompletedProcess:
    done = subprocess.run(args, capture_output=True, text=True, **kw)
    assert done.returncode == 0, f"{args}\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    return done


@pytest.fixture(scope="module")
def dist(tmp_path_factory):
    pytest.importorskip("build", reason="needs the test extra (build, twine)")
    # a copy of what the package is built from, so the build writes nothing into the checkout
    tree = tmp_path_factory.mktemp("tree")
    for name in ("pyproject.toml", "README.md", "CHANGELOG.md"):
        shutil.copy2(ROOT / name, tree / name)
    junk = shutil.ignore_patterns("__pycache__", "*.egg-info", "*.pyc")
    shutil.copytree(ROOT / "src", tree / "src", ignore=junk)
    out = tmp_path_factory.mktemp("dist")
    # --no-isolation: the build backend installed here (the test extra), no download
    _run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(tree)])
    return out


def test_wheel_and_sdist_pass_twine_check(dist):
    pytest.importorskip("twine")
    wheels, sdists = list(dist.glob("*.whl")), list(dist.glob("*.tar.gz"))
    assert len(wheels) == 1 and len(sdists) == 1
    assert f"sntkit-{sntkit.__version__}" in wheels[0].name
    done = _run([sys.executable, "-m", "twine", "check", "--strict", *map(str, wheels + sdists)])
    assert done.stdout.count("PASSED") == 2
    names = zipfile.ZipFile(wheels[0]).namelist()
    assert "sntkit/py.typed" in names
    assert not any(n.startswith(("tests/", "docs/", "benchmarks/")) for n in names)
    metadata = (
        zipfile.ZipFile(wheels[0]).read(f"sntkit-{sntkit.__version__}.dist-info/METADATA").decode()
    )
    requires = [ln for ln in metadata.splitlines() if ln.startswith("Requires-Dist:")]
    core = [ln for ln in requires if "extra ==" not in ln]
    assert sorted(ln.split()[1].split(">")[0].split("<")[0] for ln in core) == [
        "numpy",
        "scipy",
        "torch",
    ]
    for extra in ("experiments", "docs", "hpc", "all", "test"):
        assert f"Provides-Extra: {extra}" in metadata
    with tarfile.open(sdists[0]) as sdist:
        members = sdist.getnames()
    assert any(m.endswith("src/sntkit/py.typed") for m in members)
    assert any(m.endswith("/pyproject.toml") for m in members)


def test_wheel_installs_and_imports_in_a_clean_venv(dist, tmp_path):
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    bin_dir = env_dir / ("Scripts" if os.name == "nt" else "bin")
    python = bin_dir / "python"
    wheel = next(dist.glob("*.whl"))
    # without PYTHONPATH: a source tree on it would make pip think sntkit is installed already
    clean = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    pip = [python, "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)]
    _run(pip, cwd=tmp_path, env=clean)
    site = _run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], env=clean
    ).stdout.strip()
    deps = sysconfig.get_paths()["purelib"]  # torch, numpy, scipy, ... of this interpreter
    Path(site, "_borrowed_deps.pth").write_text(deps + "\n")
    code = (
        "import sntkit, sntkit.ntk, sntkit.optim, sntkit.tasks, pathlib;"
        "p = pathlib.Path(sntkit.__file__).parent;"
        "print(p); print((p / 'py.typed').is_file()); print(sntkit.__version__)"
    )
    out = _run([python, "-c", code], cwd=tmp_path, env=clean).stdout.split()
    assert Path(out[0]).is_relative_to(env_dir)  # the installed copy, not the source tree
    assert out[1:] == ["True", sntkit.__version__]
    done = _run([bin_dir / "sntkit", "--version"], cwd=tmp_path, env=clean)
    assert done.stdout.strip() == f"sntkit {sntkit.__version__}"
