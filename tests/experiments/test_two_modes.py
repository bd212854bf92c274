"""Two-modes reproduction (paper 000 Fig. 3): teacher, eigenvector tracking, milestones, sweep."""

import math

import pandas as pd
import pytest
import torch

from sntkit.experiments import two_modes
from sntkit.experiments.registry import get_experiment


@pytest.mark.parametrize(("angle", "between"), [(0.0, 90.0), (30.0, 90.0), (45.0, 90.0), (0, 45)])
def test_teacher_has_exactly_the_two_unstable_modes_on_its_eigenvectors(angle, between):
    teacher, V = two_modes.two_mode_teacher(16, 1.3, 1.1, angle, seed=3, between=between)
    W = teacher.W.detach().double()
    ev = torch.linalg.eigvals(W)
    unstable = sorted(float(e.real) for e in ev if abs(e) > 1.0)
    assert unstable == pytest.approx([1.1, 1.3], abs=1e-6)
    assert all(abs(float(e.imag)) < 1e-9 for e in ev if abs(e) > 1.0)
    Vd = V.double()
    assert torch.allclose(W @ Vd, Vd * torch.tensor([1.3, 1.1], dtype=torch.float64), atol=1e-6)
    assert torch.allclose(teacher.b, torch.zeros(16))
    if angle == 45.0:  # both readout channels see both modes
        assert V[:2].abs().min() > 0.7
    cosine = float(V[:, 0] @ V[:, 1])
    assert cosine == pytest.approx(math.cos(math.radians(between)), abs=1e-6)
    with pytest.raises(ValueError, match="lambda1 > lambda2 > 1"):
        two_modes.two_mode_teacher(8, 1.1, 1.2)
    with pytest.raises(ValueError, match="between"):
        two_modes.two_mode_teacher(8, 1.3, 1.2, between=180.0)


def test_tracking_follows_the_eigenvectors_not_the_eigenvalue_order():
    n = 6
    g = torch.Generator().manual_seed(0)
    S = torch.eye(n, dtype=torch.float64)
    S += 0.4 * torch.randn(n, n, generator=g, dtype=torch.float64)
    # non-normal W; the teacher's modes (0.3 and 1.05) are not the largest eigenvalues (1.4, 1.2)
    lam = torch.tensor([0.3, 1.05, 1.4, 1.2, 0.1, -0.5], dtype=torch.float64)
    W = S @ torch.diag(lam) @ torch.linalg.inv(S)
    V = 3.0 * S[:, :2]  # any scale
    (e1, i1, o1), (e2, i2, o2) = two_modes.track_modes(W, V)
    assert (e1, e2) == pytest.approx((0.3, 1.05), abs=1e-9) and (i1, i2) == (0.0, 0.0)
    left = torch.linalg.inv(S)  # rows: left eigenvectors

    def overlap(v, j):  # |cos(v, u_j)| |cos(v, w_j)|, densely
        cos = torch.nn.functional.cosine_similarity
        return float(cos(v, S[:, j], dim=0).abs() * cos(v, left[j], dim=0).abs())

    assert (o1, o2) == pytest.approx((overlap(V[:, 0], 0), overlap(V[:, 1], 1)))
    v = torch.randn(n, generator=g, dtype=torch.float64)  # no eigenvector: its best match
    (e, _, o), _ = two_modes.track_modes(W, torch.stack([v, S[:, 1]], dim=1))
    j = max((i for i in range(n) if i != 1), key=lambda i: overlap(v, i))
    assert e == pytest.approx(float(lam[j])) and o == pytest.approx(overlap(v, j))


def test_two_modes_served_by_one_student_mode_get_distinct_eigenvalues():
    W = torch.diag(torch.tensor([2.0, 0.5, 0.1]))
    V = torch.tensor([[1.0, 2.0], [0.0, 1.0], [0.0, 0.0]])  # both overlap most with e0
    (e1, _, o1), (e2, _, o2) = two_modes.track_modes(W, V)
    assert (e1, e2) == pytest.approx((2.0, 0.5))  # e0 to mode 1: total 1 + 1/5 beats 0 + 4/5
    assert (o1, o2) == pytest.approx((1.0, 0.2))


def test_milestones_count_a_mode_learned_only_once_it_stays():
    eig1 = [0.5, 1.05, 1.31, 1.2, 1.30, 1.29, 1.30, 1.30]  # leaves tolerance at step 30
    eig2 = [0.4, 0.6, 0.9, 1.01, 0.99, 1.02, 1.095, 1.10]  # crosses for good at 50
    pairs = enumerate(zip(eig1, eig2, strict=True))
    rows = [{"step": 10 * i, "eig1": a, "eig2": b} for i, (a, b) in pairs]
    out = two_modes.milestones(rows, (1.3, 1.1), rel_tol=0.1)
    assert out["mode1_crossing"] == 10 and out["mode1_learned"] == 40
    assert out["mode2_crossing"] == 50 and out["mode2_learned"] == 60
    assert out["ratio"] == pytest.approx((60 - 10) / 40)
    assert out["crossing_ratio"] == pytest.approx((50 - 10) / 10)
    rows[-1]["eig2"] = 1.0  # mode 2 never settles: no ratio
    out = two_modes.milestones(rows, (1.3, 1.1), rel_tol=0.1)
    assert out["mode2_learned"] is None and out["ratio"] is None


def test_a_tolerance_floor_counts_a_weak_mode_learned_where_it_settles_but_not_while_stable():
    # λ_2 = 1.02: the relative tolerance 0.5 · 0.02 = 0.01 misses a mode settled at 1.05
    eig2 = [0.9, 0.99, 1.01, 1.06, 1.05, 1.05, 0.99, 1.05, 1.049, 1.05]
    rows = [{"step": 10 * i, "eig1": 1.3 if i else 0.9, "eig2": e} for i, e in enumerate(eig2)]
    assert two_modes.milestones(rows, (1.3, 1.02), rel_tol=0.5)["mode2_learned"] is None
    out = two_modes.milestones(rows, (1.3, 1.02), rel_tol=0.5, abs_tol=0.05)
    # 0.99 at step 60 is within 0.05 of 1.02 but stable: learned only from step 70 on
    assert out["mode2_learned"] == 70 and out["mode2_crossing"] == 70
    assert out["mode1_learned"] == 10 and out["ratio"] == pytest.approx((70 - 10) / 10)


def test_ratio_summary_over_a_table():
    table = pd.DataFrame(
        {
            "lambda2": [1.05, 1.05, 1.2, 1.2, 1.2],
            "seed": [0, 1, 0, 1, 2],
            "ratio": [2.0, 8.0, 1.0, None, 3.0],
            "stable_rank_plateau": [1.5, 1.0, 2.0, None, 1.2],
            "status": ["ok"] * 5,
        }
    )
    out = two_modes.ratio_summary(table, ["lambda2"], seeds=3)
    assert (out["ratio_median"], out["ratio_min"], out["ratio_max"]) == (2.5, 1.0, 8.0)
    assert out["ratio_max_setting"] == {"lambda2": 1.05, "seed": 1}
    assert out["num_seeds"] == 3 and out["num_mode2_not_learned"] == 1
    assert out["spearman_ratio_vs_plateau_rank"] == pytest.approx(-1.0)
    assert out["per_setting"][1] == {"lambda2": 1.2, "n": 2, "median": 2.0, "min": 1.0, "max": 3.0}


TINY = {"n": 8, "batch": 16, "steps_T": 5, "iterations": 40, "track_every": 5, "rank_every": 20,
        "rank_matvecs": 4, "lr": 0.2, "rel_tol": 0.5}  # fmt: skip


def test_tiny_run_tracks_both_modes_and_ranks(tmp_path):
    exp = get_experiment("two-modes")
    summary = exp.execute(exp.config("quick", TINY | {"natural_gradient": False}), tmp_path)
    rows = pd.read_parquet(tmp_path / "metrics.parquet")
    assert list(rows.step) == list(range(0, 41, 5)) and set(rows.optimizer) == {"sgd"}
    assert rows.stable_rank.notna().sum() == 3  # steps 0, 20, 40
    assert rows.stable_rank.dropna().between(1.0, 8 * 5).all()
    assert rows.loss.iloc[-1] < rows.loss.iloc[0]
    assert set(summary) >= {"sgd", "ratio", "crossing_ratio", "stable_rank_plateau"}
    assert "natural_gradient_rank2" not in summary
    assert (tmp_path / "fig3_two_modes.png").exists()


def test_lower_bounds_where_mode_2_has_not_got_there_by_the_end():
    nan = float("nan")
    table = pd.DataFrame({
        "status": ["ok", "ok", "ok", "failed"],
        "sgd.mode1_crossing": [100, 100, None, 100], "sgd.mode1_learned": [200, 200, None, 200],
        "ratio": [3.0, nan, nan, nan], "crossing_ratio": [1.0, 2.0, nan, nan],
    })  # fmt: skip
    out = two_modes.lower_bounds(table, 1000)
    assert len(out) == 3  # the failed point has no bound
    assert out["learned"].iloc[0] != out["learned"].iloc[0]  # learned: no bound (NaN)
    assert out["learned"].iloc[1] == pytest.approx((1000 - 100) / 200)
    assert out["crossing"].iloc[:2].isna().all()  # both crossed
    assert out[["learned", "crossing"]].iloc[2].isna().all()  # no mode-1 milestone: no bound


def test_sweep_reports_the_ratio_distribution(tmp_path):
    exp = get_experiment("two-modes-sweep")
    point = {k: v for k, v in TINY.items() if k in two_modes._POINT}
    sweep = {"lambda2_minus_1": [0.1, 0.2], "seeds": 2, "lr": [0.2], "steps_T": [5],
             "iterations": 10, "workers": 1}  # fmt: skip
    config = exp.config("quick", point | sweep)
    summary = exp.execute(config, tmp_path)
    table = pd.read_parquet(tmp_path / "sweep" / "results.parquet")
    assert len(table) == 4 and set(table.lambda2) == {1.1, 1.2} and set(table.seed) == {0, 1}
    assert summary["num_seeds"] == 2 and summary["num_points"] == 4
    assert (tmp_path / "fig3_ratio_distribution.png").exists()
