"""Fixed-point weight construction (paper 004 App. A.2.1) and the planar teacher of paper 000
App. B: the points are placed exactly and found again with the intended stability."""

import math

import pytest
import torch

from sntkit.dynamics import find_fixed_points, fixed_point_weights, planar_teacher
from sntkit.models import RNN

DT = torch.float64


def test_fixed_point_weights_place_points_exactly():
    g = torch.Generator().manual_seed(0)
    pts = torch.zeros(3, 8, dtype=DT)
    pts[0, 0], pts[1, 3], pts[2, 5] = 1.2, -0.8, 2.0
    W = fixed_point_weights(pts, perp_gain=0.5, generator=g)
    torch.testing.assert_close(torch.tanh(pts) @ W.T, pts, rtol=0, atol=1e-12)
    # paper 004 eq. 17 (orthogonal φ(x̄_i)) is the pseudo-inverse solution for the same W_⊥
    M = torch.randn(8, 8, generator=g, dtype=DT)
    W17 = fixed_point_weights(pts, W_perp=M, method="orthogonal")
    torch.testing.assert_close(W17, fixed_point_weights(pts, W_perp=M), rtol=0, atol=1e-12)
    Phi = torch.tanh(pts).T
    eq17 = sum(torch.outer(pts[i], Phi[:, i]) / Phi[:, i].square().sum() for i in range(3))
    Wp = W17 - eq17
    torch.testing.assert_close(Wp @ Phi, torch.zeros(8, 3, dtype=DT), rtol=0, atol=1e-12)
    # non-orthogonal points: the pseudo-inverse construction is still exact
    pts2 = torch.randn(3, 8, generator=g, dtype=DT)
    W2 = fixed_point_weights(pts2, generator=g)
    torch.testing.assert_close(torch.tanh(pts2) @ W2.T, pts2, rtol=0, atol=1e-10)
    with pytest.raises(ValueError, match="orthogonal"):
        fixed_point_weights(pts2, method="orthogonal")
    # ±x̄ together are consistent for odd φ; a dependent but inconsistent set is impossible
    both = torch.cat([pts2[:2], -pts2[:1]])
    W3 = fixed_point_weights(both, generator=g)
    torch.testing.assert_close(torch.tanh(both) @ W3.T, both, rtol=0, atol=1e-10)
    # x̄ = e_0 and 2 e_0: φ(2 e_0) ∥ φ(e_0) but 2 e_0 is not tanh(2)/tanh(1) e_0
    with pytest.raises(ValueError, match="no W satisfies"):
        fixed_point_weights(torch.stack([pts[0] / 1.2, pts[0] / 0.6]))
    with pytest.raises(ValueError, match="no W satisfies"):
        fixed_point_weights(torch.randn(9, 8, generator=g, dtype=DT))
    # perp="both" keeps W_⊥'s output off span Φ as well
    Wb = fixed_point_weights(pts, W_perp=M, perp="both")
    Pi = Phi @ torch.linalg.pinv(Phi)
    torch.testing.assert_close(Pi @ (Wb - eq17), torch.zeros(8, 8, dtype=DT), rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="W_perp"):
        fixed_point_weights(pts, W_perp=torch.zeros(3, 3))
    with pytest.raises(ValueError, match="points"):
        fixed_point_weights(torch.zeros(8))


def test_constructed_rnn_points_are_found_with_the_right_stability():
    """Placed x̄ = 1.5 e_0, 2 e_1: nine points {−x̄, 0, x̄}^2 with analytic multipliers."""
    g = torch.Generator().manual_seed(1)
    pts = torch.zeros(2, 10, dtype=DT)
    pts[0, 0], pts[1, 1] = 1.5, 2.0
    cell = RNN.from_weights(fixed_point_weights(pts, perp="both", perp_gain=0.3, generator=g))
    fp = find_fixed_points(cell, inits=64, scale=2.0)
    assert len(fp) == 9 and float(fp.residuals.max()) < 1e-10
    for a in (-1.5, 0.0, 1.5):
        for b in (-2.0, 0.0, 2.0):
            target = torch.zeros(10, dtype=DT)
            target[0], target[1] = a, b
            d = (fp.locations - target).norm(dim=1)
            i = int(d.argmin())
            assert float(d[i]) < 1e-10
            # along a placed axis the multiplier is c·sech²(h) with c = x̄ / tanh(x̄)
            mults = [(x / math.tanh(x)) / math.cosh(h) ** 2 for x, h in ((1.5, a), (2.0, b))]
            for m in mults:
                assert float((fp.eigvals[i] - m).abs().min()) < 1e-9
            k = sum(m > 1 for m in mults)
            assert fp.labels[i] == ("stable node" if k == 0 else f"saddle ({k} unstable)")
            assert int(fp.unstable_dims[i]) == k


def test_teacher_has_4_stable_and_5_unstable_fixed_points_in_symmetric_pairs():
    teacher = planar_teacher(64, generator=torch.Generator().manual_seed(0), dtype=DT)
    fp = find_fixed_points(teacher, inits=128, scale=1.5)
    assert len(fp) == 9 and fp.num_stable == 4 and fp.num_unstable == 5
    assert float(fp.residuals.max()) < 1e-10
    got = {tuple(round(float(v), 6) for v in r) for r in fp.locations[:, :2]}
    assert got == {(a, b) for a in (-1.5, 0.0, 1.5) for b in (-1.5, 0.0, 1.5)}
    assert float(fp.locations[:, 2:].abs().max()) < 1e-10
    # every point's mirror image −x̄ is a fixed point too (tanh is odd)
    mirror = torch.cdist(-fp.locations, fp.locations).min(1).values
    assert float(mirror.max()) < 1e-10
    origin = int(fp.locations.norm(dim=1).argmin())
    assert float(fp.locations[origin].norm()) < 1e-12 and int(fp.unstable_dims[origin]) == 2
    assert bool(fp.unstable[origin]) and fp.labels[origin] == "saddle (2 unstable)"
    # the pilot's observation: a full-scale W_⊥ (gain 1) leaves no stable fixed point
    full = planar_teacher(64, perp_gain=1.0, generator=torch.Generator().manual_seed(0), dtype=DT)
    assert find_fixed_points(full, inits=128, scale=1.5).num_stable == 0
