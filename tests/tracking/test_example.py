"""CI smoke run of examples/track_your_training.py (a few checks; figure, CSV, TensorBoard)."""

import csv
import runpy
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).parents[2] / "examples" / "track_your_training.py"


def test_example_writes_tensorboard_csv_and_figure(tmp_path, monkeypatch):
    pytest.importorskip("tensorboard")
    argv = [str(EXAMPLE), "--steps", "30", "--every", "10", "--out", str(tmp_path)]
    monkeypatch.setattr(sys, "argv", argv)
    runpy.run_path(str(EXAMPLE), run_name="__main__")
    with open(tmp_path / "sntk.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["step"]) for r in rows] == [0, 10, 20]
    assert all(float(r["stable_rank"]) >= 1 for r in rows)
    assert (tmp_path / "training.png").stat().st_size > 10_000
    assert any(p.name.startswith("events.out.tfevents") for p in (tmp_path / "tb").iterdir())
