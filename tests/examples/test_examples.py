"""Smoke tests: the examples run end to end (each well under a minute on a CI core)."""

import importlib.util
import pathlib
import runpy

import pytest

EXAMPLES = pathlib.Path(__file__).resolve().parents[2] / "examples"


def _load(name):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_your_own_gru(tmp_path):
    figure = tmp_path / "gru.png"
    res = _load("your_own_gru").main(["--out", str(figure)])
    assert figure.stat().st_size > 10_000
    losses = res["losses"]
    assert losses[-1] < 0.05 * losses[0]  # the task is learned
    before, after = res["before"], res["after"]
    # training aligns the output NTK with the target (paper 004 §5, kernel-target alignment)
    assert after["target alignment"].value > 2 * before["target alignment"].value
    for r in (before, after):
        spectrum = r["spectrum"]
        assert (spectrum[:-1] >= spectrum[1:]).all() and spectrum[-1] > 0
        assert 1 <= r["temporal rank"].value <= 16 * 30
        assert 1 <= r["spatial rank"].value <= 32 + 3 * r["spatial rank"].stderr


@pytest.mark.slow
def test_quickstart(capsys):
    runpy.run_path(str(EXAMPLES / "quickstart.py"), run_name="__main__")
    assert "top eigenvalues" in capsys.readouterr().out
