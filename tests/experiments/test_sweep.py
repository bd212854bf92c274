"""Dask sweeps: a two-point LocalCluster run, resume, retried and failed points, the CLI."""

import pandas as pd
import pytest

import sntkit.experiments.sweep as sweep_mod
from sntkit.cli.main import main
from sntkit.experiments.sweep import grid_points, parse_grid, run_sweep

TINY = {"n": 4, "n_in": 3, "input_rank": 3, "steps_T": 3, "batch": 2, "overall_matvecs": 6}


def test_grid_parsing():
    grid = parse_grid(["gain=0.5,1.0", "task=W,W_in"])
    assert grid == {"gain": [0.5, 1.0], "task": ["W", "W_in"]}
    assert len(grid_points(grid)) == 4 and grid_points(grid)[1] == {"gain": 0.5, "task": "W_in"}


def test_two_point_sweep_and_resume(tmp_path):
    grid = {"gain": [0.5, 1.5]}
    table = run_sweep("space-time-point", grid, base=TINY, out=tmp_path, workers=1, processes=False)
    assert list(table.status) == ["ok", "ok"] and table.temporal_rank.gt(0).all()
    on_disk = pd.read_parquet(tmp_path / "results.parquet")
    assert list(on_disk.gain) == [0.5, 1.5] and "spatial_rank" in on_disk
    done = tmp_path / "points" / "gain-0.5" / "summary.json"
    redo = tmp_path / "points" / "gain-1.5" / "summary.json"
    assert done.exists() and redo.exists()
    stamp = done.stat().st_mtime_ns
    redo.unlink()  # as if that point had been interrupted
    table2 = run_sweep(
        "space-time-point", grid, base=TINY, out=tmp_path, workers=1, processes=False
    )
    assert done.stat().st_mtime_ns == stamp and redo.exists()
    pd.testing.assert_frame_equal(table.drop(columns="folder"), table2.drop(columns="folder"))


def test_failed_points_are_retried_then_reported(tmp_path, monkeypatch):
    real = sweep_mod.run_point
    marks = tmp_path / "marks"
    marks.mkdir()

    def flaky(name, scale, settings, out_dir):
        # one marker file per attempt (Dask may pickle this function, so no shared dict)
        n = len(list(marks.glob(f"{settings['gain']}-*")))
        (marks / f"{settings['gain']}-{n}").touch()
        if settings["gain"] == 1.5 and n == 0:
            raise RuntimeError("worker lost")
        return real(name, scale, settings, out_dir)

    monkeypatch.setattr(sweep_mod, "run_point", flaky)
    table = run_sweep(
        "space-time-point",
        {"gain": [0.5, 1.5]},
        base=TINY,
        out=tmp_path / "a",
        workers=2,
        processes=False,
        retries=1,
    )
    assert list(table.status) == ["ok", "ok"]
    assert len(list(marks.glob("0.5-*"))) == 1 and len(list(marks.glob("1.5-*"))) == 2
    monkeypatch.setattr(sweep_mod, "run_point", real)
    bad = run_sweep(
        "space-time-point",
        {"task": ["W", "nope"]},
        base=TINY,
        out=tmp_path / "b",
        workers=2,
        processes=False,
        retries=0,
    )
    assert list(bad.status) == ["ok", "failed"] and "task must be" in bad.error.iloc[1]


def test_sweep_cli_on_local_processes(tmp_path):
    args = [
        "sweep",
        "space-time-point",
        "--grid",
        "gain=0.5,1.0",
        "--out",
        str(tmp_path),
        "--workers",
        "2",
    ]
    args += [f"--set={k}={v}" for k, v in TINY.items()]
    assert main(args) == 0
    assert len(pd.read_parquet(tmp_path / "results.parquet")) == 2


def test_sweep_rejects_bad_settings_before_starting(tmp_path, capsys):
    assert (
        main(
            [
                "sweep",
                "space-time-point",
                "--grid",
                "gain=0.5",
                "--set",
                "n=-1",
                "--out",
                str(tmp_path),
            ]
        )
        == 2
    )
    assert "must be positive" in capsys.readouterr().err
    with pytest.raises(Exception, match="KEY=V1"):
        parse_grid(["gain"])
