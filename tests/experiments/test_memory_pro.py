"""Memory-Pro: the Network-2 construction and a tiny end-to-end run writing every output."""

import json

import pandas as pd
import pytest
from resume_checks import assert_same_results

from sntkit.cli.main import main
from sntkit.experiments.memory_pro import SCALES, build_network, zero_input_fixed_points

TINY = {
    "n": 12,
    "period": 4,
    "batch": 8,
    "num_inputs": 32,
    "iterations": 6,
    "check_every": 3,
    "analysis_every": 6,
    "analysis_batch": 3,
    "spectrum_modes": 4,
    "estimator_samples": 6,
}


def test_network2_places_five_stable_fixed_points_under_zero_input():
    """The 5 placed points are stable fixed points found by the finder; Network 1 has only 0.

    (Like a Hopfield network, the construction also creates mixture attractors; the run's
    summary reports the total number found.)
    """
    cfg = dict(SCALES["quick"], seed=0)
    model = build_network("network2", cfg)
    fps = zero_input_fixed_points(model, seed=0)
    for x in model.placed.double():
        d = (fps.locations - x).norm(dim=1)
        i = int(d.argmin())
        assert float(d[i]) < 1e-6 and fps.labels[i].startswith("stable")
    assert float(fps.residuals.max()) < 1e-10
    baseline = zero_input_fixed_points(build_network("network1", cfg), seed=0)
    assert len(baseline) == 1 and baseline.num_stable == 1
    assert float(baseline.locations.norm()) < 1e-8


def test_tiny_memory_pro_run_writes_every_output(tmp_path):
    out = tmp_path / "mp"
    args = ["reproduce", "memory-pro", "--out", str(out)]
    args += [f"--set={k}={v}" for k, v in TINY.items()]
    assert main(args) == 0
    for name in (
        "config.json",
        "metrics.parquet",
        "summary.json",
        "outputs.pt",
        "fig3_fig4_memory_pro.png",
        "fig3_spectra_modes_outputs.png",
    ):
        assert (out / name).exists(), name
    summary = json.loads((out / "summary.json").read_text())
    for run in ("network1_sgd", "network1_shampoo", "network2_sgd"):
        assert {"final_loss", "plateau_detected", "core_ntk_cosine_mean"} <= set(summary[run])
    assert "modes_95_core" in summary["network1_init"] and "shampoo_escape_step" in summary
    assert set(summary["ntk_target_alignment_mode3_init"]) == {"network1", "network2"}
    metrics = pd.read_parquet(out / "metrics.parquet")
    assert {"eval_loss", "hidden_alignment_mode3", "core_ntk_cosine"} <= set(metrics.columns)


@pytest.mark.slow
@pytest.mark.parametrize("stop_at", [2, 4])  # inside the first run / inside the Shampoo run
def test_interrupted_and_resumed_run_matches_an_uninterrupted_one(
    tmp_path, monkeypatch, interrupted, stop_at
):
    settings = [f"--set={k}={v}" for k, v in (TINY | {"checkpoint_every": 2}).items()]
    full, part = tmp_path / "full", tmp_path / "part"
    assert main(["reproduce", "memory-pro", "--out", str(full), *settings]) == 0
    interrupted(["reproduce", "memory-pro", "--out", str(part), *settings], stop_at)
    import sntkit.experiments.memory_pro as mp

    inits = []
    analyse_init = mp.analyse_init
    monkeypatch.setattr(mp, "analyse_init", lambda *a: inits.append(1) or analyse_init(*a))
    assert main(["reproduce", "memory-pro", "--out", str(part), "--resume", *settings]) == 0
    assert len(inits) == 1  # network 1 continued from its checkpoint; only network 2 is new
    assert_same_results(full, part)
