"""Fixed points of constructed RNNs, stability conventions for maps, never mutating the model."""

import math

import pytest
import torch

from sntkit.dynamics import classify, find_fixed_points, fixed_point_weights, planar_teacher
from sntkit.models import RNN

DT = torch.float64


def _post_rnn(W, b=None):
    cell = RNN(W.shape[0], 0, form="post", dtype=DT)
    with torch.no_grad():
        cell.W.copy_(W)
        cell.b.copy_(torch.zeros(W.shape[0], dtype=DT) if b is None else b)
    return cell


def test_fixed_point_weights_place_points_exactly():
    g = torch.Generator().manual_seed(0)
    pts = torch.zeros(3, 8, dtype=DT)
    pts[0, 0], pts[1, 3], pts[2, 5] = 1.2, -0.8, 2.0
    W = fixed_point_weights(pts, perp_gain=0.5, generator=g)
    torch.testing.assert_close(torch.tanh(pts) @ W.T, pts, rtol=0, atol=1e-12)
    # non-orthogonal points: the pseudo-inverse construction is still exact
    pts2 = torch.randn(3, 8, generator=g, dtype=DT)
    W2 = fixed_point_weights(pts2, generator=g)
    torch.testing.assert_close(torch.tanh(pts2) @ W2.T, pts2, rtol=0, atol=1e-10)
    with pytest.raises(ValueError, match="linearly dependent"):
        fixed_point_weights(torch.stack([pts2[0], pts2[0]]))


def test_teacher_has_4_stable_and_5_unstable_fixed_points():
    teacher = planar_teacher(64, generator=torch.Generator().manual_seed(0), dtype=DT)
    fp = find_fixed_points(teacher, inits=256, scale=1.5)
    assert len(fp) == 9 and fp.num_stable == 4 and fp.num_unstable == 5
    assert float(fp.residuals.max()) < 1e-10
    readout = fp.locations[:, :2]
    expected = {(a, b) for a in (-1.5, 0.0, 1.5) for b in (-1.5, 0.0, 1.5)}
    got = {(round(float(r[0]), 6), round(float(r[1]), 6)) for r in readout}
    assert got == {(round(a, 6), round(b, 6)) for a, b in expected}
    assert fp.locations[:, 2:].abs().max() < 1e-10
    # symmetric pairs ±x̄ and the origin's two unstable directions
    origin = int(readout.norm(dim=1).argmin())
    assert fp.unstable_dims[origin] == 2


def test_stability_from_constructed_points_and_residuals():
    g = torch.Generator().manual_seed(1)
    pts = torch.zeros(2, 10, dtype=DT)
    pts[0, 0], pts[1, 1] = 1.5, 2.0
    W = fixed_point_weights(pts, perp="both", perp_gain=0.3, generator=g)
    cell = _post_rnn(W)
    fp = find_fixed_points(cell, inits=128, scale=2.0)
    for target in (pts[0], -pts[0], pts[1], -pts[1]):
        d = (fp.locations - target).norm(dim=1)
        i = int(d.argmin())
        assert float(d[i]) < 1e-10 and float(fp.residuals[i]) < 1e-10
        # along the placed axis the multiplier is c·sech²(x̄) with c = x̄ / tanh(x̄)
        xbar = float(target.abs().max())
        mult = xbar / math.tanh(xbar) / math.cosh(xbar) ** 2
        assert any(abs(float(ev.real) - mult) < 1e-9 for ev in fp.eigvals[i])
        # the other placed axis sits at its unstable origin there: c·sech²(0) = c > 1
        assert fp.labels[i] == "saddle (1 unstable)"
    corner = (pts[0] + pts[1])[None]
    i = int((fp.locations - corner).norm(dim=1).argmin())
    assert float((fp.locations[i] - corner[0]).norm()) < 1e-10 and fp.labels[i].startswith("stable")


def test_classification_conventions_for_maps():
    evs = torch.tensor(
        [
            [0.5, 0.2, 0.1],
            [1.5, 0.5, 0.2],
            [1.5, 1.2, -1.1],
            [complex(0.3, 0.4), complex(0.3, -0.4), 0.1],
            [complex(0.9, 0.9), complex(0.9, -0.9), 0.2],
            [-1.2, 0.5, 0.1],
            [1.0, 0.5, 0.1],
        ],
        dtype=torch.complex128,
    )
    evs = evs.gather(1, evs.abs().argsort(1, descending=True))
    labels, unstable = classify(evs)
    assert labels == [
        "stable node",
        "saddle (1 unstable)",
        "unstable node",
        "stable focus",
        "saddle (2 unstable)",
        "saddle (1 unstable)",
        "marginal",
    ]
    assert unstable.tolist() == [0, 1, 3, 0, 2, 1, 0]
    # |λ| < 1 is the criterion, not Re λ < 0: λ = -0.5 is stable, λ = 1.2 is not
    labels, _ = classify(torch.tensor([[-0.5 + 0j]]))
    assert labels == ["stable node"]


def test_model_not_mutated_and_torch_gru_origin():
    cell = RNN(5, 0, form="post")
    before = {k: v.clone() for k, v in cell.state_dict().items()}
    find_fixed_points(cell, inits=16)
    for k, v in cell.state_dict().items():
        assert torch.equal(v, before[k])
    assert all(p.requires_grad and p.grad is None for p in cell.parameters())
    gru = torch.nn.GRU(3, 4, bias=False)
    fp = find_fixed_points(gru, inits=32)
    assert float(fp.locations.norm(dim=1).min()) < 1e-10  # h = 0 is fixed under zero input
    assert all(p.requires_grad for p in gru.parameters())


def test_bad_arguments():
    cell = RNN(3, 2)
    with pytest.raises(ValueError, match="constant input"):
        find_fixed_points(cell, x=torch.zeros(3))
    with pytest.raises(ValueError, match="inits"):
        find_fixed_points(cell, inits=torch.zeros(4, 5))
