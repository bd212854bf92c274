"""Fixed points: exact construction, the finder (residuals, stability for maps, dedup), the
student-teacher teacher, never mutating the model, torch adapters, bad input."""

import math

import pytest
import torch

from sntkit.dynamics import (
    classify,
    find_fixed_points,
    fixed_point_weights,
    interpolate,
    planar_teacher,
    solve_fixed_points,
)
from sntkit.models import RNN, FunctionalCell

DT = torch.float64


def _post_rnn(W, b=None):
    cell = RNN(W.shape[0], 0, form="post", dtype=DT)
    with torch.no_grad():
        cell.W.copy_(W)
        cell.b.copy_(torch.zeros(W.shape[0], dtype=DT) if b is None else b)
    return cell


def _linear(A):
    """h' = A h (the origin is the only fixed point when 1 is not an eigenvalue of A)."""
    return FunctionalCell(lambda p, h, x: h @ p["A"].T, {"A": A.to(DT)}, n_state=A.shape[0])


def _rot(theta):
    c, s = math.cos(theta), math.sin(theta)
    return torch.tensor([[c, -s], [s, c]], dtype=DT)


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
    cell = _post_rnn(fixed_point_weights(pts, perp="both", perp_gain=0.3, generator=g))
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


@pytest.mark.parametrize(
    ("A", "label", "k"),
    [
        (torch.diag(torch.tensor([0.5, 0.2])), "stable node", 0),
        (torch.diag(torch.tensor([-0.5, 0.3])), "stable node", 0),  # Re λ < 0 is irrelevant
        (torch.diag(torch.tensor([1.5, 0.5])), "saddle (1 unstable)", 1),
        (torch.diag(torch.tensor([-1.2, 0.5])), "saddle (1 unstable)", 1),  # |λ| > 1
        (torch.diag(torch.tensor([1.5, -1.2])), "unstable node", 2),
        (0.7 * _rot(0.9), "stable focus", 0),
        (1.3 * _rot(0.9), "unstable focus", 2),
    ],
)
def test_classification_conventions_for_maps(A, label, k):
    fp = find_fixed_points(_linear(A), inits=8)
    assert len(fp) == 1 and float(fp.locations.norm()) < 1e-12
    assert fp.labels == (label,) and int(fp.unstable_dims[0]) == k
    ev = torch.linalg.eigvals(A.to(DT))
    assert torch.allclose(fp.eigvals[0].abs(), ev.abs().sort(descending=True).values)
    # left/right eigenvectors: u_j^T J v_j = λ_j, u^T v = I
    J = fp.jacobians[0].to(torch.complex128)
    torch.testing.assert_close(fp.left[0] @ J @ fp.right[0], torch.diag(fp.eigvals[0]))


def test_classify_edge_cases():
    evs = torch.tensor(
        [
            [1.0, 0.5, 0.1],  # on the circle: marginal
            [complex(0.6, 0.8), complex(0.6, -0.8), 0.2],  # |λ| = 1 pair: marginal
            [1.5, 1.0, 0.1],  # unstable and marginal: a saddle
            [complex(0.9, 0.9), complex(0.9, -0.9), 0.2],  # pair outside
            [1.5, 1.2, -1.1],
        ],
        dtype=torch.complex128,
    )
    evs = evs.gather(1, evs.abs().argsort(1, descending=True))
    labels, unstable = classify(evs)
    assert labels == [
        "marginal",
        "marginal",
        "saddle (1 unstable)",
        "saddle (2 unstable)",
        "unstable node",
    ]
    assert unstable.tolist() == [0, 0, 1, 2, 3]


def test_test_functions_match_determinants():
    g = torch.Generator().manual_seed(2)
    cell = RNN(5, 0, form="post", dtype=DT, generator=g, gain=1.6)
    with torch.no_grad():
        cell.b.normal_(0, 0.3, generator=g)
    fp = find_fixed_points(cell, inits=64, scale=2.0)
    assert len(fp) >= 1
    tests = fp.test_functions()
    eye = torch.eye(5, dtype=DT)
    torch.testing.assert_close(tests["fold"], torch.linalg.det(fp.jacobians - eye))
    torch.testing.assert_close(tests["flip"], torch.linalg.det(fp.jacobians + eye))
    for i in range(len(fp)):
        ev = fp.eigvals[i]
        cplx = ev[ev.imag.abs() > 0]
        if cplx.numel():
            best = cplx[(cplx.abs() ** 2 - 1).abs().argmin()]
            assert float(tests["neimark_sacker"][i]) == pytest.approx(float(best.abs() ** 2 - 1))
        else:
            assert math.isnan(float(tests["neimark_sacker"][i]))


def test_model_is_never_mutated_and_keeps_requires_grad():
    cell = RNN(5, 2, form="post", gain=1.5, generator=torch.Generator().manual_seed(0))
    before = {k: v.detach().clone() for k, v in cell.named_parameters()}
    ptrs = {k: v.data_ptr() for k, v in cell.named_parameters()}
    fp = find_fixed_points(cell, x=torch.tensor([0.3, -0.1]), inits=16)
    assert len(fp) >= 1 and fp.locations.dtype == DT
    for k, v in cell.named_parameters():
        assert v.dtype == torch.float32 and v.requires_grad and v.grad is None
        assert torch.equal(v.detach(), before[k]) and v.data_ptr() == ptrs[k]


def test_torch_gru_and_lstm_adapters_find_the_origin_under_zero_input():
    for module in (torch.nn.GRU(3, 4, bias=False), torch.nn.LSTM(3, 4, bias=False)):
        before = [p.detach().clone() for p in module.parameters()]
        fp = find_fixed_points(module, inits=16)
        assert float(fp.locations.norm(dim=1).min()) < 1e-12
        assert float(fp.residuals.max()) < 1e-10
        for p, q in zip(module.parameters(), before, strict=True):
            assert p.requires_grad and torch.equal(p.detach(), q)


def test_params_dict_api_trajectory_inits_and_interpolated_params():
    """solve_fixed_points works on a parameter dict (θ(s) without building a module)."""
    cell = RNN(2, 0, form="post", dtype=DT)
    p0 = {"W": torch.diag(torch.tensor([0.8, 0.5], dtype=DT)), "b": torch.zeros(2, dtype=DT)}
    p1 = {"W": torch.diag(torch.tensor([1.6, 0.5], dtype=DT)), "b": torch.zeros(2, dtype=DT)}
    fp = solve_fixed_points(cell, interpolate(p0, p1, 0.75), inits=16)  # gain 1.4
    h = torch.tensor(1.0, dtype=DT)
    for _ in range(50):  # the positive root of 1.4 tanh(h) = h
        h = h - (1.4 * torch.tanh(h) - h) / (1.4 / torch.cosh(h) ** 2 - 1)
    assert len(fp) == 3
    torch.testing.assert_close(fp.locations[:, 0].abs().max(), h, rtol=0, atol=1e-12)
    # a trajectory (B, T, N) as inits: states are sampled from it, plus noise (the orbits visit
    # both attractors; the saddle between them is found from their midpoint)
    h0 = torch.tensor([[1.0, 0.1], [-1.0, 0.2], [0.5, -0.3], [-0.2, 0.4]], dtype=DT)
    with torch.no_grad():
        traj = _post_rnn(p1["W"]).forward(h0, steps=10)
    fp2 = solve_fixed_points(cell, p1, inits=traj, num_samples=32, noise=0.05)
    assert len(fp2) == 3 and fp2.num_stable == 2


def test_dedup_merges_a_flat_point_but_keeps_close_distinct_points_apart():
    cell = RNN(2, 0, form="post", dtype=DT)
    at = {"W": torch.diag(torch.tensor([1.0, 0.5], dtype=DT)), "b": torch.zeros(2, dtype=DT)}
    fp = solve_fixed_points(cell, at, inits=64)
    assert len(fp) == 1 and fp.labels == ("marginal",)  # exactly at the pitchfork
    eps = 1e-6
    past = {"W": torch.diag(torch.tensor([1 + eps, 0.5], dtype=DT)), "b": torch.zeros(2, dtype=DT)}
    fp = solve_fixed_points(cell, past, inits=64)
    assert len(fp) == 3  # 0 and ±h*, h* ≈ √(3ε) ≈ 1.7e-3 apart
    assert float(fp.locations[:, 0].abs().max()) == pytest.approx(math.sqrt(3 * eps), rel=1e-3)


def test_bad_arguments_name_the_argument():
    cell = RNN(3, 2)
    with pytest.raises(ValueError, match="constant input"):
        find_fixed_points(cell, x=torch.zeros(3))
    with pytest.raises(ValueError, match="inits"):
        find_fixed_points(cell, inits=torch.zeros(4, 5))
    with pytest.raises(ValueError, match="inits"):
        find_fixed_points(cell, inits=0)
    with pytest.raises(ValueError, match="x must be None"):
        find_fixed_points(RNN(3), x=torch.zeros(1))
    with pytest.raises(ValueError, match="missing"):
        solve_fixed_points(cell, {"W": torch.zeros(3, 3)})
    with pytest.raises(ValueError, match="residual_tol"):
        find_fixed_points(cell, residual_tol=0.0)
    with pytest.raises(TypeError, match="not a supported"):
        find_fixed_points(torch.nn.Linear(3, 3))
