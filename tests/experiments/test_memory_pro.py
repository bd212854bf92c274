"""Memory-Pro: both models, the Network-2 constructions, the Fig. 4E output alignment, the
escape step, and tiny end-to-end runs writing every output (resumable)."""

import json
import math

import pandas as pd
import pytest
import torch
from resume_checks import assert_same_results

from sntkit.cli.main import main
from sntkit.experiments.memory_pro import (
    SCALES,
    MemoryProNet,
    build_network,
    escape_step,
    output_alignment,
    resolve,
    target_modes,
    zero_input_fixed_points,
)
from sntkit.models import GRU
from sntkit.tasks.memory_pro import MemoryPro

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


def test_leaky_network2_inserts_points_as_in_the_authors_construction():
    """Network 2 of the leaky RNN: the authors' sequential insertion (its dense test:
    tests/dynamics/test_construction.py) makes the last point exact, the first nearly."""
    cfg = resolve(dict(SCALES["quick"], seed=0, model="leaky_rnn", scale="quick"))
    model = build_network("network2", cfg)
    last = model.placed[-1].double()
    W = model.rnn.W.detach().double()
    assert float((W @ torch.tanh(last) - last).norm() / last.norm()) < 1e-5
    # the first point is moved by the later insertions, but stays close to a fixed point
    first = model.placed[0].double()
    assert float((W @ torch.tanh(first) - first).norm() / first.norm()) < 0.5


@pytest.mark.parametrize("model", ["gru", "leaky_rnn"])
def test_network_matches_the_sntkit_cell_it_is_analysed_as(model):
    """Training forward (fused nn.GRU / RNN cell) = the cell the NTK analyses differentiate."""
    cfg = resolve(dict(SCALES["quick"], seed=1, model=model, scale="quick", n=7))
    net = build_network("network2", cfg).double()
    x = torch.randn(3, 5, 3, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    out, h = net(x)
    if model == "gru":
        cell = GRU(7, 3, dtype=torch.float64)
        with torch.no_grad():
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                getattr(cell, name).copy_(getattr(net.rnn, f"{name}_l0"))
        ref = cell(torch.zeros(3, 7, dtype=torch.float64), x)
    else:  # h' = 0.3 h + 0.7 (W tanh(h) + W_in x), written out
        W, W_in, hs, ht = net.rnn.W, net.rnn.W_in, [], torch.zeros(3, 7, dtype=torch.float64)
        for t in range(5):
            ht = 0.3 * ht + 0.7 * (torch.tanh(ht) @ W.T + x[:, t] @ W_in.T)
            hs.append(ht)
        ref = torch.stack(hs, 1)
    torch.testing.assert_close(h, ref)
    torch.testing.assert_close(out, net.readout(ref))


def test_leaky_rnn_initialization_is_nn_linear_default():
    net = MemoryProNet("leaky_rnn", 400, torch.Generator().manual_seed(0))
    for p, fan_in in ((net.rnn.W, 400), (net.rnn.W_in, 3), (net.readout.weight, 400)):
        p = p.detach()
        bound = fan_in**-0.5
        assert float(p.abs().max()) <= bound
        assert float(p.abs().max()) > 0.98 * bound  # uniform on the whole interval
        assert abs(float(p.std()) - bound / math.sqrt(3)) < 0.05 * bound


def test_output_alignment_is_one_for_produced_modes_and_zero_for_absent_ones():
    task = MemoryPro(4, 4, 4, 0.0)
    Y = task.batch(torch.linspace(0, 6, 9, dtype=torch.float64), train=False).targets.double()
    U, S = target_modes(Y)

    def align(out):
        return torch.tensor(output_alignment(U, S, out), dtype=torch.float64)

    torch.testing.assert_close(align(Y), torch.ones(3, dtype=torch.float64))
    Yf = Y.reshape(-1, 3)
    u3 = U[2].reshape(-1)
    without3 = (Yf - torch.outer(u3, u3 @ Yf)).reshape(Y.shape)
    expected = torch.tensor([1.0, 1.0, 0.0], dtype=torch.float64)
    torch.testing.assert_close(align(without3), expected, atol=1e-12, rtol=0)
    torch.testing.assert_close(align(0.5 * Y), torch.full((3,), 0.5, dtype=torch.float64))


def test_escape_step_is_where_the_loss_stays_below_half_the_plateau():
    rows = [{"step": s, "eval_loss": v} for s, v in enumerate([0.3, 0.04, 0.09, 0.04, 0.03])]
    assert escape_step(rows, 0.1) == 3  # the dip at step 1 does not last
    assert escape_step(rows[:3], 0.1) is None


def test_model_defaults_and_bad_numbers():
    cfg = dict(SCALES["quick"], scale="quick")
    assert resolve(cfg | {"model": "leaky_rnn"})["noise_var"] == pytest.approx(0.02)
    assert resolve(cfg | {"model": "gru", "lr": "0.2"})["lr"] == 0.2
    with pytest.raises(ValueError, match="lr must be 'auto' or a number"):
        resolve(cfg | {"lr": "fast"})
    with pytest.raises(ValueError, match="shampoo_lr must be positive"):
        resolve(cfg | {"shampoo_lr": "-1"})


@pytest.mark.parametrize(("model", "spectra"), [("gru", True), ("leaky_rnn", False)])
def test_tiny_memory_pro_run_writes_every_output(tmp_path, model, spectra):
    out = tmp_path / "mp"
    args = ["reproduce", "memory-pro", "--out", str(out), f"--set=model={model}"]
    args += [f"--set=init_spectra={spectra}"]
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
    keys = {"final_loss", "plateau_detected", "core_ntk_cosine_mean"}
    keys |= {"output_mode_alignment_final", "ntk_mode3_alignment_rise_step"}
    for run in ("network1_sgd", "network1_shampoo", "network2_sgd"):
        assert keys <= set(summary[run])
        assert len(summary[run]["output_mode_alignment_final"]) == 3
    assert "escape_step" in summary["network1_shampoo"]
    assert ("modes_95_core" in summary["network1_init"]) == spectra
    assert "zero_input_stable_nontrivial_fixed_points" in summary["network2_init"]
    assert "shampoo_escape_step" in summary
    assert set(summary["ntk_target_alignment_mode3_init"]) == {"network1", "network2"}
    assert summary["settings"]["model"] == model
    assert summary["settings"]["shampoo"] == "torch_optimizer"
    metrics = pd.read_parquet(out / "metrics.parquet")
    columns = {"eval_loss", "hidden_alignment_mode3", "output_alignment_mode3", "core_ntk_cosine"}
    assert columns <= set(metrics.columns)
    # the last step is always analysed (the rise of Fig. 4F needs the end point)
    last = metrics[metrics.step == TINY["iterations"]]
    assert last.core_ntk_cosine.notna().all()


@pytest.mark.slow
# checkpoints: steps 2 and 4 of each run, then one at the end of each run (a stage), so 2 stops
# inside the first run, 3 just after it and 4 inside the Shampoo run
@pytest.mark.parametrize("stop_at", [2, 3, 4])
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


def test_resuming_a_checkpoint_without_stage_state_fails_clearly(tmp_path, capsys):
    """A folder whose newest checkpoint holds rows of a run but no state to continue it (as the
    hand-written loop before the stages wrote them) is refused, not silently restarted."""
    from sntkit.experiments.run import Run

    out = tmp_path / "old"
    settings = [f"--set={k}={v}" for k, v in (TINY | {"checkpoint_every": 2}).items()]
    config = {**SCALES["quick"], **TINY, "checkpoint_every": 2}
    config |= {"experiment": "memory-pro", "scale": "quick", "seed": 0, "device": "cpu"}
    run = Run(out, config)
    run.log(run="network1_sgd", step=0, eval_loss=1.0)
    run.checkpoint(2, {"run_index": 0, "step": 2})
    capsys.readouterr()
    assert main(["reproduce", "memory-pro", "--out", str(out), "--resume", *settings]) == 2
    assert "holds rows of network1_sgd but not its training state" in capsys.readouterr().err
