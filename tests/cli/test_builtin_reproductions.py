"""End-to-end runs of real reproductions through the command line, at tiny sizes."""

import json

import pandas as pd
import pytest

from sntkit.cli.main import main

TINY = [
    "--set", "n=8", "--set", "batch=16", "--set", "iterations=40", "--set", "check_every=10",
    "--set", "fine_every=5", "--set", "fine_window=10", "--set", "rank_matvecs=12",
    "--set", "checkpoint_every=10", "--set", "lr=0.05",
]  # fmt: skip


@pytest.mark.slow
def test_student_teacher_interrupted_and_resumed_matches_an_uninterrupted_run(
    tmp_path, interrupted
):
    full = tmp_path / "full"
    assert main(["reproduce", "student-teacher", "--out", str(full), *TINY]) == 0
    for name in ("config.json", "metrics.parquet", "events.json", "summary.json", "teacher.pt",
                 "fig1_training.png", "fig1_training.pdf", "fig1_phase_portraits.png",
                 "fig1_phase_portraits.pdf"):  # fmt: skip
        assert (full / name).exists(), name
    metrics = pd.read_parquet(full / "metrics.parquet")
    assert {"step", "loss", "stable_rank", "stable_rank_err", "num_stable"} <= set(metrics.columns)

    part = tmp_path / "part"
    interrupted(["reproduce", "student-teacher", "--out", str(part), *TINY], stop_at=2)
    assert not (part / "summary.json").exists()
    assert main(["reproduce", "student-teacher", "--out", str(part), "--resume", *TINY]) == 0
    pd.testing.assert_frame_equal(metrics, pd.read_parquet(part / "metrics.parquet"))
    sa = json.loads((full / "summary.json").read_text())
    sb = json.loads((part / "summary.json").read_text())
    sa.pop("wall_time_s"), sb.pop("wall_time_s")
    assert sa == sb
    assert (full / "events.json").read_text() == (part / "events.json").read_text()


def test_space_time_point_sweep(tmp_path):
    tiny = {"n": 4, "n_in": 3, "input_rank": 3, "steps_T": 3, "batch": 2, "overall_matvecs": 6}
    args = ["sweep", "space-time-point", "--grid", "gain=0.5,1.5", "--out", str(tmp_path),
            "--threads", "--workers", "1"]  # fmt: skip
    args += [f"--set={k}={v}" for k, v in tiny.items()]
    assert main(args) == 0
    table = pd.read_parquet(tmp_path / "results.parquet")
    assert table.status.tolist() == ["ok", "ok"] and table.temporal_rank.gt(0).all()
    assert table.folder.tolist() == ["points/gain=0.5", "points/gain=1.5"]


@pytest.mark.slow
def test_transformer_reproduction_writes_every_panel(tmp_path):
    point = "{n_attn: 4, n_mlp: 4, steps_T: 3, overall_matvecs: 6, view_samples: 4}"
    args = ["reproduce", "transformer", "--out", str(tmp_path), "--set", "workers=1",
            "--set", "input_dims=[1, 2]", "--set", "batches=[2]", "--set", "fourier_features=[1]",
            "--set", "heads=[1, 2]", "--set", "widths=[4, 8]", "--set", "grid_input_dims=[1, 2]",
            "--set", f"point_settings={point}"]  # fmt: skip
    assert main(args) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["failed_points"] == 0
    metrics = pd.read_parquet(tmp_path / "metrics.parquet")
    assert set(metrics.panel) == {"fig6b", "fig6c", "fig6d", "fig10", "fig9"}
    assert metrics.temporal_rank.gt(0).all() and len(metrics) == 2 + 2 + 1 + 4 + 4
    point = next((tmp_path / "sweep_fig6b" / "points").iterdir()) / "config.json"
    assert json.loads(point.read_text())["n_attn"] == 4  # point_settings reach the points
    for panel in ("fig6c", "fig9"):
        assert (tmp_path / f"sweep_{panel}" / "results.parquet").exists()
    for fig in ("fig6_transformer", "fig9_fig10_transformer"):
        assert (tmp_path / f"{fig}.png").exists() and (tmp_path / f"{fig}.pdf").exists()


def _seed_k_of_a_seeds_run_equals_a_single_run(tmp_path, name, settings):
    """``NAME --seeds 2 --seed 1`` vs ``NAME --seed 2``: seed 2's summary, claims, one sweep."""
    many, one = tmp_path / "many", tmp_path / "one"
    assert main(["reproduce", name, "--seeds", "2", "--seed", "1", "--out", str(many),
                 "--no-progress", *settings]) == 0  # fmt: skip
    assert main(["reproduce", name, "--seed", "2", "--out", str(one), "--no-progress",
                 *settings]) == 0  # fmt: skip
    single = json.loads((one / "summary.json").read_text())
    assert json.loads((many / "seeds" / "seed=2" / "summary.json").read_text()) == single
    claims = json.loads((many / "claims.json").read_text())
    table = pd.read_parquet(many / "claims.parquet")
    assert claims["seeds"] == [1, 2] and table.seed.tolist() == [1, 2]
    assert (table.status == "ok").all()
    assert table.folder.tolist() == ["seeds/seed=1", "seeds/seed=2"]
    return many, one, single, claims["statistics"], table


def test_space_time_seeds_are_one_more_axis_of_its_sweep(tmp_path):
    point = "{n: 4, n_in: 3, steps_T: 3, batch: 2, overall_matvecs: 6}"
    settings = ["--set", "gains=[0.5, 1.5]", "--set", "input_ranks=[1, 3]", "--set", "workers=1",
                "--set", f"point_settings={point}"]  # fmt: skip
    many, one, single, stats, table = _seed_k_of_a_seeds_run_equals_a_single_run(
        tmp_path, "space-time", settings
    )
    inner = pd.read_parquet(many / "sweep" / "results.parquet")
    assert len(inner) == 2 * 2 * 2 * 2 and sorted(set(inner.seed)) == [1, 2]
    assert "seed" not in pd.read_parquet(one / "sweep" / "results.parquet")  # layout unchanged
    key = "task_W_temporal_rank_by_gain.1.5"
    assert table[key].tolist()[1] == single["task_W_temporal_rank_by_gain"]["1.5"]
    assert stats[key]["min"] == table[key].min() and stats[key]["n"] == 2
    assert (many / "fig5_space_time.png").exists()


@pytest.mark.slow
def test_transformer_seeds_are_one_more_axis_of_its_sweeps(tmp_path):
    point = "{n_attn: 4, n_mlp: 4, steps_T: 3, overall_matvecs: 6, view_samples: 4}"
    settings = ["--set", "workers=1", "--set", "input_dims=[1, 2]", "--set", "batches=[2]",
                "--set", "fourier_features=[1, 2]", "--set", "heads=[1]", "--set", "widths=[4]",
                "--set", "grid_input_dims=[1, 2]", "--set", f"point_settings={point}"]  # fmt: skip
    many, _, single, stats, table = _seed_k_of_a_seeds_run_equals_a_single_run(
        tmp_path, "transformer", settings
    )
    for panel in ("fig6b", "fig6c", "fig6d", "fig10", "fig9"):
        inner = pd.read_parquet(many / f"sweep_{panel}" / "results.parquet")
        assert sorted(set(inner.seed)) == [1, 2] and (inner.status == "ok").all()
    key = "fig6d_spearman_temporal_rank_vs_fourier_features"
    assert table[key].tolist()[1] == single[key] and stats[key]["n"] == 2
    assert (many / "fig6_transformer.png").exists()


@pytest.mark.slow
def test_student_teacher_splits_the_weights_only_sntk_at_the_first_event(tmp_path):
    """The dominance ratio of the sNTK of W alone beside the full one (issue 16, note 2)."""
    settings = {"batch": 32, "iterations": 40, "check_every": 10, "fine_every": 5,
                "fine_window": 20, "rank_matvecs": 12, "checkpoint_every": 20,
                "locate_tol": 1e-4}  # fmt: skip
    args = ["reproduce", "student-teacher", "--out", str(tmp_path), "--no-progress"]
    assert main(args + [f"--set={k}={v}" for k, v in settings.items()]) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["first_bifurcation_kind"] is not None
    for key in ("dominance_ratio", "dominance_ratio_weights_only", "fisher_cosine_weights_only"):
        assert 0 < summary[key] <= 1 + 1e-6, key  # ‖J e_g‖² / λ_max is a Rayleigh quotient
    assert summary["dominance_ratio_weights_only"] != summary["dominance_ratio"]
    lo, hi = json.loads((tmp_path / "events.json").read_text())[0]["s_bracket"]
    assert 0 < hi - lo <= 1e-4  # locate_tol reaches the monitor (default 1e-3)
