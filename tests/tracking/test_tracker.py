"""Tracker rows against dense float64 constructions; sinks, NaN handling, resume."""

import csv
import math

import pytest
import torch
from torch import nn

from sntkit.models import RNN
from sntkit.ntk import state_ntk
from sntkit.tracking import CSVSink, ParquetSink, Tracker

DT = torch.float64


def _rnn(seed=0, n=6, B=4, T=6, gain=1.3):
    g = torch.Generator().manual_seed(seed)
    model = RNN(n, 0, form="post", dtype=DT, generator=g, gain=gain)
    h0 = torch.rand(B, n, generator=g, dtype=DT) - 0.5
    return model, h0, T


def test_row_matches_dense_spectrum_and_views():
    model, h0, T = _rnn()
    tracker = Tracker(
        model,
        h0=h0,
        steps=T,
        every=10,
        top_k=3,
        rank_matvecs=200,
        metrics=("ranks", "eigenvalues", "views", "spectral_radius"),
    )
    assert tracker.step(3) is None
    row = tracker.step(0, loss=torch.tensor(0.5))
    ntk = state_ntk(model, h0, steps=T)
    K = ntk.operator.to_dense().reshape(ntk.num_params * 0 + h0.shape[0] * T * 6, -1)
    lam = torch.linalg.eigvalsh(K).flip(0)
    for i in range(3):
        assert row[f"eig_{i}"] == pytest.approx(float(lam[i]), rel=1e-4)
    assert row["stable_rank"] == pytest.approx(
        float(lam.sum() / lam[0]), abs=3 * row["stable_rank_err"] + 1e-9
    )
    part = float(lam.sum() ** 2 / (lam**2).sum())
    assert row["participation_rank"] == pytest.approx(
        part, abs=3 * row["participation_rank_err"] + 1e-9
    )
    Kt = K.reshape(h0.shape[0] * T, 6, h0.shape[0] * T, 6).diagonal(dim1=1, dim2=3).sum(-1) / 6
    lt = torch.linalg.eigvalsh(Kt)
    temporal = float(lt.sum() ** 2 / (lt**2).sum())
    assert abs(row["temporal_rank"] - temporal) < 4 * row["temporal_rank_err"] + 0.05 * temporal
    assert row["spectral_radius"] == pytest.approx(
        float(torch.linalg.eigvals(model.W.detach()).abs().max())
    )
    assert row["loss"] == 0.5 and row["num_events"] == 0


def test_warm_start_reuses_eigenvectors_between_checks():
    model, h0, T = _rnn(seed=1)
    tracker = Tracker(model, h0=h0, steps=T, every=1, top_k=2, metrics=("eigenvalues",))
    first = tracker.step(0)
    with torch.no_grad():
        model.W.mul_(1.001)
    second = tracker.step(1)
    assert tracker.warm_hits == 1
    ntk = state_ntk(model, h0, steps=T)
    lam = torch.linalg.eigvalsh(ntk.fisher.to_dense()).flip(0)
    assert second["eig_0"] == pytest.approx(float(lam[0]), rel=1e-5)
    assert second["eig_0"] != first["eig_0"]


def test_fixed_points_and_events_through_the_monitor():
    """A stable 2-unit RNN pushed through a pitchfork: one event between checks."""
    model = RNN(2, 0, form="post", dtype=DT, gain=0.0)
    with torch.no_grad():
        model.W.copy_(torch.diag(torch.tensor([0.5, 0.3], dtype=DT)))
        model.b.zero_()
    h0 = 0.1 * torch.ones(3, 2, dtype=DT)
    seen = []
    tracker = Tracker(
        model,
        h0=h0,
        steps=4,
        every=1,
        metrics=("fixed_points",),
        sinks=[seen.append],
        monitor_kwargs={"num_inits": 32, "init_scale": 1.5},
    )
    tracker.step(0)
    with torch.no_grad():
        model.W[0, 0] = 1.6
    row = tracker.step(1)
    assert row["num_fixed_points"] == 3 and row["num_events"] == 1
    assert "pitchfork" in tracker.events[0]["kind"]
    assert [r.get("event", False) for r in seen] == [False, False, True]


def test_nan_parameters_and_loss_give_a_warning_row_and_no_events():
    model, h0, T = _rnn(seed=2)
    seen = []
    tracker = Tracker(
        model, h0=h0, steps=T, every=1, sinks=[seen.append], metrics=("ranks", "fixed_points")
    )
    tracker.step(0, loss=1.0)
    with pytest.warns(RuntimeWarning, match="non-finite loss"):
        row = tracker.step(1, loss=math.nan)
    assert "warning" in row and "stable_rank" not in row
    with torch.no_grad():
        model.W[0, 0] = math.inf
    with pytest.warns(RuntimeWarning, match=r"non-finite parameters \['W'\]"):
        row = tracker.step(2, loss=1.0)
    assert "warning" in row and tracker.events == [] and len(seen) == 3


def test_torch_gru_gets_per_gate_spectral_radius():
    torch.manual_seed(0)
    gru = nn.GRU(2, 3, batch_first=True)
    tracker = Tracker(
        gru,
        h0=torch.zeros(2, 3),
        inputs=torch.randn(2, 4, 2),
        every=1,
        metrics=("spectral_radius",),
    )
    row = tracker.step(0)
    W = gru.weight_hh_l0.detach().double().reshape(3, 3, 3)
    radii = torch.linalg.eigvals(W).abs().amax(-1)
    for g in range(3):
        assert row[f"spectral_radius[weight_hh_l0:{g}]"] == pytest.approx(float(radii[g]))
    assert row["spectral_radius"] == pytest.approx(float(radii.max()))


def test_wrapper_module_with_default_h0_equals_its_recurrent_module_from_zeros():
    torch.manual_seed(0)
    net = nn.Module()
    net.rnn, net.out = nn.GRU(2, 3, batch_first=True), nn.Linear(3, 1)
    x = torch.randn(2, 4, 2)
    metrics = ("eigenvalues", "spectral_radius", "fixed_points")
    wrapped = Tracker(net, inputs=x, every=1, metrics=metrics, top_k=3).step(0, loss=1.0)
    bare = Tracker(net.rnn, h0=torch.zeros(2, 3), inputs=x, every=1, metrics=metrics, top_k=3)
    row = bare.step(0, loss=1.0)
    for key in ("eig_0", "eig_1", "eig_2", "spectral_radius", "num_fixed_points"):
        assert wrapped[key] == pytest.approx(row[key], rel=1e-6), key
    with pytest.raises(ValueError, match="candidates"):
        Tracker(net, inputs=x, recurrent="out")


def test_sinks_csv_parquet_tensorboard_and_callable(tmp_path):
    pd = pytest.importorskip("pandas")
    model, h0, T = _rnn(seed=3)
    got = []
    sinks = [CSVSink(tmp_path / "m.csv"), ParquetSink(tmp_path / "m.parquet"), got.append]
    tb = pytest.importorskip("torch.utils.tensorboard")
    writer = tb.SummaryWriter(str(tmp_path / "tb"))
    sinks.append(writer)
    tracker = Tracker(
        model, h0=h0, steps=T, every=2, sinks=sinks, metrics=("ranks", "spectral_radius")
    )
    for s in range(5):
        tracker.step(s, loss=1.0 / (s + 1))
    tracker.close()
    with open(tmp_path / "m.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["step"]) for r in rows] == [0, 2, 4]
    frame = pd.read_parquet(tmp_path / "m.parquet")
    assert list(frame["step"]) == [0, 2, 4]
    assert float(rows[1]["stable_rank"]) == pytest.approx(frame["stable_rank"][1])
    assert [r["step"] for r in got] == [0, 2, 4]
    assert any(p.name.startswith("events.out.tfevents") for p in (tmp_path / "tb").iterdir())


def test_state_dict_resume_matches_uninterrupted():
    def run(steps, state=None):
        model, h0, T = _rnn(seed=4)
        tr = Tracker(model, h0=h0, steps=T, every=1, metrics=("eigenvalues", "fixed_points"))
        if state is not None:
            tr.load_state_dict(state)
            with torch.no_grad():
                for s in range(steps[0]):  # the weights the first part left behind
                    model.W.mul_(1.0 + 0.01 * s)
        for s in steps:
            with torch.no_grad():
                model.W.mul_(1.0 + 0.01 * s)
            tr.step(s)
        return tr

    full = run(range(4))
    first = run(range(2))
    resumed = run(range(2, 4), first.state_dict())
    for a, b in zip(full.rows[2:], resumed.rows[2:], strict=True):
        assert a["eig_0"] == pytest.approx(b["eig_0"], rel=1e-9)
        assert a["num_fixed_points"] == b["num_fixed_points"]


def test_bad_input_names_the_argument():
    model, h0, T = _rnn()
    with pytest.raises(TypeError, match="model"):
        Tracker("rnn", h0=h0, steps=T)
    with pytest.raises(ValueError, match="h0"):
        Tracker(model, h0=h0[0], steps=T)
    with pytest.raises(ValueError, match="inputs"):
        Tracker(model, h0=h0)
    with pytest.raises(ValueError, match="unknown metrics"):
        Tracker(model, h0=h0, steps=T, metrics=("rank",))
    with pytest.raises(TypeError, match="metrics"):
        Tracker(model, h0=h0, steps=T, metrics="ranks")
    with pytest.raises(TypeError, match="sink"):
        Tracker(model, h0=h0, steps=T, sinks=[3])
    with pytest.raises(ValueError, match="step"):
        Tracker(model, h0=h0, steps=T).step(-1)
    with pytest.raises(TypeError, match="step"):
        Tracker(model, h0=h0, steps=T).step(1.0)
    with pytest.raises(ValueError, match="h0 has shape"):
        Tracker(model, h0=h0[:, :3], steps=T)
    gru = nn.GRU(2, 4, batch_first=True)
    with pytest.raises(ValueError, match="inputs have shape"):
        Tracker(gru, h0=torch.zeros(3, 4), inputs=torch.randn(3, 6, 3))


def test_an_sntkit_run_folder_is_a_sink(tmp_path):
    pd = pytest.importorskip("pandas")
    from sntkit.experiments.run import Run

    model, h0, T = _rnn(seed=5)
    run = Run(tmp_path / "run", {"seed": 0})
    tracker = Tracker(model, h0=h0, steps=T, every=1, sinks=[run], metrics=("spectral_radius",))
    tracker.step(0, loss=1.0)
    tracker.step(1, loss=0.5)
    run.flush()
    frame = pd.read_parquet(tmp_path / "run" / "metrics.parquet")
    assert list(frame["loss"]) == [1.0, 0.5] and "spectral_radius" in frame
