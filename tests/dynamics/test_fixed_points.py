"""Fixed points: the finder (residuals, stability for maps, dedup), never mutating the model,
torch adapters, bad input."""

import math

import pytest
import scipy.sparse
import scipy.sparse.csgraph
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sntkit.dynamics import (
    classify,
    find_fixed_points,
    interpolate,
    solve_fixed_points,
)
from sntkit.dynamics.fixed_points import POLISH, _components, _newton
from sntkit.models import RNN, FunctionalCell

DT = torch.float64


def _linear(A):
    """h' = A h (the origin is the only fixed point when 1 is not an eigenvalue of A)."""
    return FunctionalCell(lambda p, h, x: h @ p["A"].T, {"A": A.to(DT)}, n_state=A.shape[0])


def _rot(theta):
    c, s = math.cos(theta), math.sin(theta)
    return torch.tensor([[c, -s], [s, c]], dtype=DT)


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
        traj = RNN.from_weights(p1["W"]).forward(h0, steps=10)
    fp2 = solve_fixed_points(cell, p1, inits=traj, num_samples=32, noise=0.05)
    assert len(fp2) == 3 and fp2.num_stable == 2


def test_newton_stops_at_the_first_iterate_below_done_at():
    """cos(h) = h from h = 1: Newton's residuals 1.9e-2, 4.6e-5, 2.8e-10, then 0 (rounding)."""
    h = torch.tensor([[1.0]], dtype=DT)

    def residual_after(done_at):
        out = _newton(torch.cos, lambda x: -torch.sin(x)[:, :, None], h, 50, done_at)
        return float((torch.cos(out) - out).abs())

    assert residual_after(1e-3) == pytest.approx(4.6456e-5, rel=1e-4)
    assert residual_after(1e-6) == pytest.approx(2.8472e-10, rel=1e-4)
    assert residual_after(0.0) == 0.0  # the default: on to rounding


@pytest.mark.parametrize("residual_tol", [1e-6, 1e-10])
def test_newton_polishes_to_a_hundredth_of_residual_tol(residual_tol):
    """The stopping convention: a kept point's residual is ≤ ``POLISH · residual_tol`` (or at
    rounding), never merely ≤ ``residual_tol``; Newton's quadratic phase makes it far below."""
    cell = RNN(2, 0, form="post", dtype=DT)
    p = {"W": torch.tensor([[1.4, 0.3], [-0.2, 0.9]], dtype=DT), "b": torch.zeros(2, dtype=DT)}
    fp = solve_fixed_points(cell, p, inits=16, residual_tol=residual_tol)
    assert len(fp) == 5  # the origin (a source), two saddles, two attractors
    rounding = 2 * torch.finfo(DT).eps * (1 + fp.locations.norm(dim=1))
    assert bool((fp.residuals <= torch.clamp(rounding, min=POLISH * residual_tol)).all())


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


def test_midpoints_find_the_middle_branch_of_a_shifted_pitchfork_unless_pairs_are_known():
    """Just past a pitchfork centred away from 0 (so the ``h = 0`` seed does not help), random
    starts find the two outer branches only; the closest pair's midpoint finds the middle one."""
    c = torch.tensor([0.5, -0.3], dtype=DT)
    g = torch.tensor([1 + 1e-4, 0.5], dtype=DT)
    cell = FunctionalCell(
        lambda p, h, x: p["c"] + p["g"] * torch.tanh(h - p["c"]), {"c": c, "g": g}, n_state=2
    )
    found = {m: solve_fixed_points(cell, {"c": c, "g": g}, inits=64, midpoints=m) for m in (0, 1)}
    assert len(found[0]) == 2 and found[0].num_stable == 2
    assert found[1].labels == ("stable node", "saddle (1 unstable)", "stable node")
    torch.testing.assert_close(found[1].locations[1], c, rtol=0, atol=1e-9)
    for bad in (-1, 2.0, True):
        with pytest.raises(ValueError, match="midpoints"):
            solve_fixed_points(cell, {"c": c, "g": g}, inits=4, midpoints=bad)
    # known points: a pair of two continued known points gets no midpoint (it was tried when
    # they were found), a pair with a freshly found point does
    outer = found[0].locations
    p = {"c": c, "g": g}
    both_known = solve_fixed_points(cell, p, inits=outer, known=outer)
    assert len(both_known) == 2
    one_known = solve_fixed_points(cell, p, inits=outer, known=outer[:1])
    assert len(one_known) == 3
    with pytest.raises(ValueError, match=r"known must be points \(k, 2\)"):
        solve_fixed_points(cell, p, inits=4, known=outer[0])


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 12), density=st.floats(0.0, 0.5), seed=st.integers(0, 10**6))
def test_components_match_scipy_connected_components(n, density, seed):
    g = torch.Generator().manual_seed(seed)
    same = (torch.rand(n, n, generator=g) < density).triu(1)
    labels = _components(same)
    _, ref = scipy.sparse.csgraph.connected_components(
        scipy.sparse.coo_matrix(same.numpy()), directed=False
    )
    # the same partition, each part labelled by its smallest node
    for i in range(n):
        members = [j for j in range(n) if ref[j] == ref[i]]
        assert int(labels[i]) == min(members)


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


def test_find_fixed_points_on_nan_weights_raises():
    model = RNN(3, 0, form="post", dtype=torch.float64)
    with torch.no_grad():
        model.W[1, 2] = math.nan
    with pytest.raises(ValueError, match=r"params\['W'\] has NaN"):
        find_fixed_points(model, inits=8)


@pytest.mark.parametrize(
    "make",
    [
        lambda g: RNN(5, 0, form="post", dtype=DT, generator=g, gain=1.4),
        lambda g: RNN(5, 2, form="pre", dtype=DT, generator=g, gain=1.4),
        lambda g: RNN(5, 2, form="post", leak=0.3, dtype=DT, generator=g, gain=1.4),
        lambda g: torch.nn.RNN(2, 5, batch_first=True, dtype=DT),
        lambda g: torch.nn.GRU(2, 5, batch_first=True, dtype=DT),  # no closed form: autograd
    ],
)
def test_state_jacobians_match_jacrev(make):
    from torch.func import jacrev, vmap

    from sntkit.dynamics.fixed_points import state_jacobians, step_map
    from sntkit.models import as_cell
    from sntkit.models.cell import detached_params

    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    cell = as_cell(make(g))
    p = detached_params(cell, DT)
    h = torch.randn(7, cell.n_state, generator=g, dtype=DT)
    x = torch.randn(cell.n_input, generator=g, dtype=DT) if cell.n_input else None
    dense = vmap(jacrev(step_map(cell, p, x)))(h)
    torch.testing.assert_close(state_jacobians(cell, p, h, x), dense)


def test_eigenvectors_computed_on_first_use_match_the_eigenvalues_order():
    from sntkit.dynamics.fixed_points import linearize
    from sntkit.models.cell import detached_params

    g = torch.Generator().manual_seed(4)
    cell = RNN(6, 0, form="post", dtype=DT, generator=g, gain=1.8)  # complex pairs, ties in |λ|
    p = detached_params(cell, DT)
    points = find_fixed_points(cell, inits=64, scale=2.0).locations
    assert len(points) >= 3
    eager = linearize(cell, p, points)
    lazy = linearize(cell, p, points, vectors=False)
    assert "_eigenvectors" not in lazy.__dict__
    torch.testing.assert_close(lazy.eigvals, eager.eigvals)
    J = lazy.jacobians.to(torch.complex128)
    torch.testing.assert_close(J @ lazy.right, lazy.right * lazy.eigvals[:, None, :])
    eye = torch.eye(6, dtype=torch.complex128).expand(len(points), -1, -1)
    torch.testing.assert_close(lazy.left @ lazy.right, eye)
    sub = lazy.select(torch.tensor([0, 2]))
    torch.testing.assert_close(sub.right, lazy.right[[0, 2]])
    # the search passes it on (a monitor asks for eigenvectors only at events)
    searched = find_fixed_points(cell, inits=64, scale=2.0, vectors=False)
    assert "_eigenvectors" not in searched.__dict__
    torch.testing.assert_close(searched.locations, points)
    torch.testing.assert_close(searched.right, eager.right)
