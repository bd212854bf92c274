"""Dask sweeps: grids, point folders, the tidy table, retries, killed workers and resumption.

Marker files written by the dummy experiment at every start count how often each point ran.
"""

import json

import pandas as pd
import pytest
import sntkit_test_dummies as dummies

from sntkit.experiments import progress
from sntkit.experiments.errors import ConfigError
from sntkit.experiments.registry import get_experiment
from sntkit.experiments.sweep import (
    grid_points,
    parse_grid,
    point_name,
    run_seeds,
    run_sweep,
    seed_axis,
    seed_statistics,
    split_sweep_spec,
)

TINY = {"steps": 10, "checkpoint_every": 2, "rng": "tracked"}
COLUMNS = ["lr", "final_loss", "w", "b", "loss_sum", "steps", "status", "error", "attempts"]


@pytest.fixture
def marks(tmp_path):
    folder = tmp_path / "marks"
    folder.mkdir()
    return folder


def _reference(tmp_path, **settings):
    """The summary of an uninterrupted in-process run of the counter."""
    exp = get_experiment("counter")
    return exp.execute(
        exp.config("quick", settings), tmp_path / f"ref-{len(settings)}-{id(settings)}"
    )


def _starts(marks, *lrs):
    return [dummies.starts(marks, f"lr={lr}") for lr in lrs]


def test_grid_helpers():
    grid = parse_grid(["gain=0.5,1.0", "task=W,W_in", "on=true"])
    assert grid == {"gain": [0.5, 1.0], "task": ["W", "W_in"], "on": [True]}
    points = grid_points(grid)
    assert len(points) == 4 and points[1] == {"gain": 0.5, "task": "W_in", "on": True}
    assert grid_points({"a": 1, "b": (2, 3)}) == [{"a": 1, "b": 2}, {"a": 1, "b": 3}]
    assert point_name({"task": "W", "gain": 0.5}) == "gain=0.5_task=W"  # keys sorted
    assert point_name({"r": [1, 2], "on": False}) == "on=false_r=1,2"
    odd = [point_name({"name": v}) for v in ("a b", "a/b", "a-b")]
    assert odd[2] == "name=a-b" and len(set(odd)) == 3 and odd[0].startswith("name=a-b-")
    assert len(point_name({"k": "x" * 500})) < 140
    for bad in (["gain"], ["gain="], ["=1"], ["gain=1,,2"]):
        with pytest.raises(ConfigError, match="KEY=V1"):
            parse_grid(bad)
    with pytest.raises(ConfigError, match="no values"):
        grid_points({"a": []})
    spec = {"experiment": "counter", "scale": "paper", "grid": {"lr": [0.1]}, "steps": 4}
    assert split_sweep_spec(spec) == ("counter", "paper", {"lr": [0.1]}, {"steps": 4})
    with pytest.raises(ConfigError, match="'grid' must map"):
        split_sweep_spec({"grid": [1, 2]})


def test_two_point_sweep_tidy_table_and_resume(tmp_path, marks):
    base = TINY | {"marks": str(marks)}
    out = tmp_path / "s"
    table = run_sweep("counter", {"lr": [0.05, 0.1]}, base=base, out=out, workers=2,
                      processes=False)  # fmt: skip
    assert list(table.columns) == [*COLUMNS, "folder"]
    assert table.status.tolist() == ["ok", "ok"] and table.error.isna().all()
    assert table.attempts.tolist() == [1, 1] and table.lr.tolist() == [0.05, 0.1]
    assert table.folder.tolist() == ["points/lr=0.05", "points/lr=0.1"]
    pd.testing.assert_frame_equal(pd.read_parquet(out / "results.parquet"), table)
    for lr, row in zip((0.05, 0.1), table.itertuples(), strict=True):
        summary = json.loads((out / row.folder / "summary.json").read_text())
        assert (
            summary == _reference(tmp_path, **TINY, lr=lr)
            and row.final_loss == summary["final_loss"]
        )
    assert json.loads((out / "sweep.json").read_text())["settings"] == base
    assert _starts(marks, 0.05, 0.1) == [1, 1]

    again = run_sweep("counter", {"lr": [0.05, 0.1]}, base=base, out=out)  # no cluster needed
    assert _starts(marks, 0.05, 0.1) == [1, 1] and again.attempts.tolist() == [0, 0]
    pd.testing.assert_frame_equal(again.drop(columns="attempts"), table.drop(columns="attempts"))

    wider = run_sweep("counter", {"lr": [0.05, 0.1, 0.2]}, base=base, out=out, workers=1,
                      processes=False)  # fmt: skip
    assert _starts(marks, 0.05, 0.1, 0.2) == [1, 1, 1] and wider.attempts.tolist() == [0, 0, 1]
    assert set(json.loads((out / "sweep.json").read_text())["grid"]["lr"]) == {0.05, 0.1, 0.2}


def test_point_failing_once_is_retried_and_resumes(tmp_path, marks):
    base = TINY | {"marks": str(marks), "fail_point": "lr=0.1"}
    table = run_sweep("counter", {"lr": [0.05, 0.1]}, base=base, out=tmp_path / "s", workers=2,
                      processes=False, retries=1)  # fmt: skip
    assert table.status.tolist() == ["ok", "ok"] and table.attempts.tolist() == [1, 2]
    assert _starts(marks, 0.05, 0.1) == [1, 2]
    summary = json.loads((tmp_path / "s" / "points" / "lr=0.1" / "summary.json").read_text())
    assert summary == _reference(tmp_path, **base, lr=0.1)  # resumed from its checkpoint
    assert not (tmp_path / "s" / "points" / "lr=0.1" / "error.txt").exists()


def test_failed_point_is_reported_and_only_it_reruns(tmp_path, marks):
    base = TINY | {"marks": str(marks), "fail_point": "lr=0.1"}
    (marks / "BLOCK-lr=0.1").touch()
    kw = {"base": base, "out": tmp_path / "s", "workers": 2, "processes": False}
    table = run_sweep("counter", {"lr": [0.05, 0.1]}, retries=2, **kw)
    assert table.status.tolist() == ["ok", "failed"] and table.attempts.tolist() == [1, 3]
    assert table.error[1] == "RuntimeError: injected failure at step 4"
    assert pd.isna(table.final_loss[1]) and _starts(marks, 0.05, 0.1) == [1, 3]
    error = (tmp_path / "s" / "points" / "lr=0.1" / "error.txt").read_text()
    assert "Traceback" in error and "injected failure" in error
    assert pd.read_parquet(tmp_path / "s" / "results.parquet").status.tolist() == ["ok", "failed"]

    (marks / "BLOCK-lr=0.1").unlink()  # "fixed": the rerun completes only the missing point
    table = run_sweep("counter", {"lr": [0.05, 0.1]}, retries=0, **kw)
    assert table.status.tolist() == ["ok", "ok"] and table.attempts.tolist() == [0, 1]
    assert _starts(marks, 0.05, 0.1) == [1, 4]
    assert not (tmp_path / "s" / "points" / "lr=0.1" / "error.txt").exists()
    summary = json.loads((tmp_path / "s" / "points" / "lr=0.1" / "summary.json").read_text())
    assert summary == _reference(tmp_path, **base, lr=0.1)


def test_interrupted_sweep_keeps_its_table_and_finishes_later(tmp_path, marks, monkeypatch):
    base = TINY | {"marks": str(marks)}
    kw = {"base": base, "out": tmp_path / "s", "workers": 1, "processes": False}
    real = progress.Progress.update

    def interrupt(self, n=1):
        real(self, n)
        raise KeyboardInterrupt

    monkeypatch.setattr(progress.Progress, "update", interrupt)
    with pytest.raises(KeyboardInterrupt):
        run_sweep("counter", {"lr": [0.05, 0.1, 0.2]}, **kw)
    partial = pd.read_parquet(tmp_path / "s" / "results.parquet")
    assert partial.status.tolist()[0] == "ok" and "pending" in partial.status.tolist()
    monkeypatch.setattr(progress.Progress, "update", real)
    table = run_sweep("counter", {"lr": [0.05, 0.1, 0.2]}, **kw)
    assert table.status.tolist() == ["ok"] * 3 and table.attempts[0] == 0
    assert _starts(marks, 0.05, 0.1, 0.2) == [1, 1, 1]  # nothing ran twice


@pytest.mark.slow
def test_killed_worker_process_is_replaced_and_its_point_resumes(tmp_path, marks):
    base = TINY | {"marks": str(marks), "fail_point": "lr=0.1", "fail_mode": "exit",
                   "rng": "global"}  # fmt: skip
    table = run_sweep("counter", {"lr": [0.05, 0.1]}, base=base, out=tmp_path / "s", workers=2,
                      processes=True, retries=0)  # fmt: skip
    assert table.status.tolist() == ["ok", "ok"], table.error.tolist()
    assert _starts(marks, 0.05, 0.1) == [1, 2]  # Dask reran the point of the dead worker
    for lr in (0.05, 0.1):
        summary = json.loads((tmp_path / "s" / "points" / f"lr={lr}" / "summary.json").read_text())
        assert summary == _reference(tmp_path, **base, lr=lr)


def test_point_function_sweep_flattens_the_summary(tmp_path):
    table = run_sweep("quadratic-point", {"x": [-1, 2], "a": [3.0]}, out=tmp_path / "q",
                      workers=1, processes=False)  # fmt: skip
    assert list(table.columns) == ["x", "a", "value", "summary.a", "summary.status", "undefined",
                                   "nested.half", "nested.tag", "status", "error", "attempts",
                                   "folder"]  # fmt: skip
    assert table.value.tolist() == [3.0, 12.0] and table["summary.a"].tolist() == [6.0, 6.0]
    assert table.undefined.isna().all() and table["nested.tag"].tolist() == ["q", "q"]
    assert table.status.tolist() == ["ok", "ok"] and table["summary.status"][0] == "mine"


def test_bad_sweeps_are_refused_before_anything_runs(tmp_path):
    with pytest.raises(ConfigError, match="'lr' must be positive"):
        run_sweep("counter", {"lr": [0.1, -1.0]}, out=tmp_path / "a")
    assert not (tmp_path / "a").exists()
    with pytest.raises(ConfigError, match="unknown setting 'bogus'"):
        run_sweep("counter", {"bogus": [1]}, out=tmp_path / "a")
    with pytest.raises(ConfigError, match="share a folder name"):
        run_sweep("counter", {"lr": [0.1, 0.1]}, out=tmp_path / "a")
    with pytest.raises(ConfigError, match="workers must be >= 1"):
        run_sweep("counter", {"lr": [0.1]}, out=tmp_path / "a", workers=0)
    with pytest.raises(ConfigError, match=r"no CUDA device|only \d+ CUDA"):
        run_sweep("counter", {"lr": [0.1]}, base={"device": "cuda:99"}, out=tmp_path / "a")
    assert not (tmp_path / "a").exists()
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ConfigError, match="not writable"):
        run_sweep("counter", {"lr": [0.1]}, out=blocker / "s")


def test_sweep_folder_remembers_its_settings(tmp_path):
    run_sweep("quadratic-point", {"x": [1]}, base={"c": 1.0}, out=tmp_path / "q", workers=1,
              processes=False)  # fmt: skip
    with pytest.raises(ConfigError, match="different settings"):
        run_sweep("quadratic-point", {"x": [1]}, base={"c": 2.0}, out=tmp_path / "q")
    with pytest.raises(ConfigError, match="different experiment"):
        run_sweep("counter", {"lr": [0.1]}, out=tmp_path / "q")


def test_sweep_on_an_existing_scheduler_and_client(tmp_path):
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=1, processes=False, dashboard_address=None) as cluster:
        by_address = run_sweep("quadratic-point", {"x": [1, 2]}, out=tmp_path / "a",
                               scheduler=cluster.scheduler_address)  # fmt: skip
        with Client(cluster) as client:
            by_client = run_sweep("quadratic-point", {"x": [1, 2]}, out=tmp_path / "b",
                                  client=client)  # fmt: skip
            assert client.status == "running"  # a client given to the sweep stays open
    assert by_address.value.tolist() == by_client.value.tolist() == [1.0, 4.0]


def test_seed_sweep_writes_per_seed_folders_claims_and_statistics(tmp_path, marks):
    base = TINY | {"marks": str(marks)}
    out = tmp_path / "s"
    table, stats = run_seeds("counter", 3, first_seed=1, out=out, base=base | {"seed": 7},
                             workers=2, processes=False)  # fmt: skip
    assert table.seed.tolist() == [1, 2, 3] and (table.status == "ok").all()
    refs = [_reference(tmp_path, **TINY, seed=s) for s in (1, 2, 3)]
    assert table.final_loss.tolist() == [r["final_loss"] for r in refs]
    for s, ref in zip((1, 2, 3), refs, strict=True):
        assert json.loads((out / "points" / f"seed={s}" / "summary.json").read_text()) == ref
    losses = sorted(r["final_loss"] for r in refs)
    assert stats["final_loss"] == {"median": losses[1], "min": losses[0], "max": losses[2], "n": 3}
    assert stats["steps"] == {"median": 10.0, "min": 10.0, "max": 10.0, "n": 3}
    assert "seed" not in stats and "attempts" not in stats
    claims = json.loads((out / "claims.json").read_text())
    assert claims["seeds"] == [1, 2, 3] and claims["statistics"] == stats
    pd.testing.assert_frame_equal(pd.read_parquet(out / "claims.parquet"), table)
    again, _ = run_seeds("counter", 3, first_seed=1, out=out, base=base, processes=False)
    assert again.attempts.tolist() == [0, 0, 0]  # resumed: nothing reran
    assert sum(dummies.starts(marks, f"seed={s}") for s in (1, 2, 3)) == 3
    with pytest.raises(ConfigError, match="seeds must be a positive integer"):
        run_seeds("counter", 0, out=out)


def test_seed_statistics_skip_failed_rows_text_and_missing_values():
    table = pd.DataFrame(
        {
            "seed": [0, 1, 2, 3],
            "x": [1.0, float("nan"), 3.0, 100.0],
            "flag": [True, False, True, True],
            "kind": ["a", "b", "c", "d"],
            "empty": [None, None, None, None],
            "status": ["ok", "ok", "ok", "failed"],
            "attempts": [1, 1, 1, 2],
        }
    )
    assert seed_statistics(table) == {"x": {"median": 2.0, "min": 1.0, "max": 3.0, "n": 2}}


def test_reproduce_seeds_on_the_command_line(tmp_path, capsys):
    from sntkit.cli.main import main

    settings = [f"--set={k}={v}" for k, v in TINY.items()]
    out = tmp_path / "cli"
    assert main(["reproduce", "counter", "--seeds", "2", "--out", str(out), "--workers", "1",
                 "--no-progress", *settings]) == 0  # fmt: skip
    text = capsys.readouterr().out
    stats = json.loads((out / "claims.json").read_text())["statistics"]
    s = stats["final_loss"]
    assert f"final_loss: {s['median']:.6g} [{s['min']:.6g}, {s['max']:.6g}] (n=2)" in text
    assert main(["reproduce", "counter", "--scheduler", "tcp://127.0.0.1:1"]) == 2
    assert "--scheduler and --workers need --seeds" in capsys.readouterr().err


def test_seed_axis_puts_several_seeds_into_the_grid():
    assert seed_axis({"seed": 3, "seeds": 1}) == ({}, {"seed": 3})  # a single run's layout
    assert seed_axis({"seed": 3, "seeds": 3}) == ({"seed": [3, 4, 5]}, {})
    for bad in (0, True, 1.5):
        with pytest.raises(ConfigError, match="seeds must be a positive integer"):
            seed_axis({"seed": 0, "seeds": bad})


def _single(tmp_path, seed, **settings):
    """The summary.json of a single run of the seed-axis dummy with ``seed``."""
    exp = get_experiment("seeded-sweep")
    exp.execute(exp.config("quick", {"seed": seed} | settings), tmp_path / f"one-{seed}")
    return json.loads((tmp_path / f"one-{seed}" / "summary.json").read_text())


def test_seed_axis_experiment_runs_its_seeds_as_an_axis_of_its_own_sweep(tmp_path):
    out = tmp_path / "k"
    table, stats = run_seeds("seeded-sweep", 3, first_seed=2, out=out)
    assert table.seed.tolist() == [2, 3, 4] and (table.status == "ok").all()
    assert table.folder.tolist() == [f"seeds/seed={s}" for s in (2, 3, 4)]
    inner = pd.read_parquet(out / "sweep" / "results.parquet")  # one sweep, not one per seed
    assert len(inner) == 6 and sorted(set(inner.seed)) == [2, 3, 4]
    assert (inner.attempts == 1).all()
    singles = {s: _single(tmp_path, s) for s in (2, 3, 4)}
    for s, single in singles.items():  # seed s of the K-seed run is the single run --seed s
        assert json.loads((out / "seeds" / f"seed={s}" / "summary.json").read_text()) == single
    assert table["by_x.1.0"].tolist() == [singles[s]["by_x"]["1.0"] for s in (2, 3, 4)]
    totals = sorted(v["total"] for v in singles.values())
    assert stats["total"] == {"median": totals[1], "min": totals[0], "max": totals[2], "n": 3}
    assert json.loads((out / "claims.json").read_text())["statistics"] == stats
    pd.testing.assert_frame_equal(pd.read_parquet(out / "claims.parquet"), table)

    # resumable: an interrupted run recomputes only the points without a summary
    (out / "summary.json").unlink()
    (out / "sweep" / "points" / "seed=3_x=2.0" / "summary.json").unlink()
    _, again_stats = run_seeds("seeded-sweep", 3, first_seed=2, out=out)
    inner = pd.read_parquet(out / "sweep" / "results.parquet")
    assert inner.attempts.tolist() == [0, 0, 0, 0, 1, 0] and again_stats == stats
    finished, _ = run_seeds("seeded-sweep", 3, first_seed=2, out=out)
    assert finished.attempts.tolist() == [0, 0, 0]
    pd.testing.assert_frame_equal(finished.drop(columns="attempts"), table.drop(columns="attempts"))


def test_seed_axis_experiment_reports_failed_seeds_and_refuses_sweep_only_options(tmp_path):
    table, stats = run_seeds("seeded-sweep", 3, out=tmp_path / "f", base={"fail_seed": 1})
    assert table.status.tolist() == ["ok", "failed", "ok"]
    assert table.error.tolist()[1] == "some of its points failed"
    assert stats["total"]["n"] == 2
    one, _ = run_seeds("seeded-sweep", 1, first_seed=4, out=tmp_path / "one")
    assert one.folder.tolist() == ["seeds/seed=4"]
    assert json.loads((tmp_path / "one" / "seeds" / "seed=4" / "summary.json").read_text()) == (
        _single(tmp_path, 4)
    )
    with pytest.raises(ConfigError, match="processes cannot be given with seeds"):
        run_seeds("seeded-sweep", 2, out=tmp_path / "p", processes=False)
