"""Fixed-point weight construction (paper 004 App. A.2.1) — for the post-form RNN, the GRU and
by the authors' sequential insertion — and the planar teacher of paper 000 App. B: the points are
placed exactly, checked with the model cells, and found again with the intended stability."""

import math

import pytest
import torch

from sntkit.dynamics import (
    find_fixed_points,
    fixed_point_weights,
    gru_fixed_point_weights,
    insert_fixed_points,
    planar_teacher,
)
from sntkit.models import GRU, RNN
from sntkit.models.cell import detached_params

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


def _gru_with(weights: dict[str, torch.Tensor], n: int, seed: int) -> GRU:
    """A float64 GRU with 3 inputs (random input weights) and the given hidden weights."""
    cell = GRU(n, 3, generator=torch.Generator().manual_seed(seed), dtype=DT)
    with torch.no_grad():
        for name, value in weights.items():
            getattr(cell, name).copy_(value)
    return cell


def _gru_zero_input_map(cell: GRU):
    params = detached_params(cell)
    return lambda h: cell.step(params, h, torch.zeros(*h.shape[:-1], 3, dtype=DT))


@pytest.mark.parametrize("kind", ["signs", "random", "n_plus_one"])
def test_gru_construction_places_fixed_points_of_the_gru_cell(kind):
    """x̄ = F(x̄) for the model's GRU step at zero input; gates at ½; Jacobian (jacrev)
    ½ I + ¼ diag(1 − x̄²) W_hn."""
    g = torch.Generator().manual_seed(3)
    n = 10
    if kind == "signs":  # Memory-Pro's Network 2: ±a sign vectors
        pts = 0.8 * (torch.randint(0, 2, (5, n), generator=g, dtype=DT) * 2 - 1)
    else:
        m = 4 if kind == "random" else n + 1  # N + 1 points: the augmented system is square
        pts = 0.95 * (2 * torch.rand(m, n, generator=g, dtype=DT) - 1)
    weights = gru_fixed_point_weights(pts, perp_gain=0.5, generator=g)
    W_hh, b_hh, b_ih = weights["weight_hh"], weights["bias_hh"], weights["bias_ih"]
    assert W_hh.shape == (3 * n, n) and b_hh.shape == b_ih.shape == (3 * n,)
    assert W_hh.dtype == DT
    W_hn, b_hn = W_hh[2 * n :], b_hh[2 * n :]
    torch.testing.assert_close(
        pts @ W_hn.T + b_hn,
        2 * torch.atanh(pts),
        rtol=0,
        atol=1e-10 if kind == "n_plus_one" else 1e-12,
    )
    cell = _gru_with(weights, n, seed=4)
    # gates: every reset/update pre-activation is 0 at zero input, so r = z = ½
    params = detached_params(cell)
    pre_rz = (
        pts @ params["weight_hh"][: 2 * n].T
        + params["bias_hh"][: 2 * n]
        + params["bias_ih"][: 2 * n]
    )
    assert float(pre_rz.abs().max()) == 0.0
    step = _gru_zero_input_map(cell)
    torch.testing.assert_close(
        step(pts), pts, rtol=0, atol=1e-10 if kind == "n_plus_one" else 1e-12
    )
    for x in pts:
        J = torch.func.jacrev(step)(x)
        expected = 0.5 * torch.eye(n, dtype=DT) + 0.25 * (1 - x.square())[:, None] * W_hn
        torch.testing.assert_close(J, expected, rtol=0, atol=1e-12)


def test_gru_construction_free_part_and_minimal_norm_solution():
    """[W_hn | b_hn] = 2 artanh(X̄) Φ⁺ + M (I − ΦΦ⁺): M = 0 gives the least-norm solution; M only
    acts off the augmented points [x̄_i; 1]."""
    g = torch.Generator().manual_seed(5)
    n, m = 7, 3
    pts = 0.9 * (2 * torch.rand(m, n, generator=g, dtype=DT) - 1)

    def wb(M):
        w = gru_fixed_point_weights(pts, M)
        return torch.cat([w["weight_hh"][2 * n :], w["bias_hh"][2 * n :, None]], dim=1)

    aug = torch.cat([pts, torch.ones(m, 1, dtype=DT)], dim=1)  # rows [x̄_i; 1]
    least = torch.linalg.lstsq(aug, 2 * torch.atanh(pts), driver="gelsd").solution.T
    torch.testing.assert_close(wb(torch.zeros(n, n + 1, dtype=DT)), least, rtol=0, atol=1e-12)
    M1, M2 = (torch.randn(n, n + 1, generator=g, dtype=DT) for _ in range(2))
    diff = wb(M1) - wb(M2)
    torch.testing.assert_close(diff @ aug.T, torch.zeros(n, m, dtype=DT), rtol=0, atol=1e-12)
    assert float(diff.norm()) > 1.0  # the free part is really there
    # the default M is perp_gain × N(0, 1/N) drawn from the generator: same seed, same weights
    a = gru_fixed_point_weights(pts, perp_gain=0.5, generator=torch.Generator().manual_seed(9))
    b = gru_fixed_point_weights(pts, perp_gain=0.5, generator=torch.Generator().manual_seed(9))
    torch.testing.assert_close(a["weight_hh"], b["weight_hh"], rtol=0, atol=0)
    # float32 points give float32 weights
    assert gru_fixed_point_weights(pts.float(), perp_gain=0.5)["weight_hh"].dtype == torch.float32


def test_gru_construction_memory_pro_points_are_found_stable():
    """Memory-Pro's Network 2 setting (5 points ±0.8, perp_gain 0.5, N = 64): the finder finds the
    placed points with ρ(½I + ¼diag(1−x̄²)W_hn) < 1, i.e. stable, as the experiment claims."""
    g = torch.Generator().manual_seed(0)
    n = 64
    pts = 0.8 * (torch.randint(0, 2, (5, n), generator=g, dtype=DT) * 2 - 1)
    weights = gru_fixed_point_weights(pts, perp_gain=0.5, generator=g)
    cell = _gru_with(weights, n, seed=1)
    W_hn = weights["weight_hh"][2 * n :]
    fps = find_fixed_points(cell, torch.zeros(3, dtype=DT), inits=pts)
    for x in pts:
        i = int((fps.locations - x).norm(dim=1).argmin())
        assert float((fps.locations[i] - x).norm()) < 1e-10
        J = 0.5 * torch.eye(n, dtype=DT) + 0.25 * (1 - x.square())[:, None] * W_hn
        rho = float(torch.linalg.eigvals(J).abs().max())
        assert rho < 1 and fps.labels[i].startswith("stable")
        assert abs(float(fps.eigvals[i].abs().max()) - rho) < 1e-9


def test_gru_construction_rejects_bad_points():
    g = torch.Generator().manual_seed(0)
    pts = 0.5 * torch.ones(2, 4, dtype=DT)
    pts[1, 0] = 0.1
    with pytest.raises(TypeError, match="points"):
        gru_fixed_point_weights([[0.5, 0.5]])
    with pytest.raises(ValueError, match="points"):
        gru_fixed_point_weights(torch.full((4,), 0.5))
    with pytest.raises(ValueError, match=r"points must have every entry in \(−1, 1\)"):
        gru_fixed_point_weights(torch.tensor([[0.5, 1.0]], dtype=DT))
    with pytest.raises(ValueError, match="points"):
        gru_fixed_point_weights(torch.tensor([[0.5, float("nan")]], dtype=DT))
    with pytest.raises(ValueError, match="points holds 6 points but a GRU with N = 4"):
        gru_fixed_point_weights(0.5 * (2 * torch.rand(6, 4, generator=g, dtype=DT) - 1))
    with pytest.raises(ValueError, match="W_perp must be"):
        gru_fixed_point_weights(pts, torch.zeros(4, 4, dtype=DT))
    # the midpoint makes the augmented points dependent, but artanh is not linear
    mid = torch.stack([pts[0], pts[1], (pts[0] + pts[1]) / 2])
    with pytest.raises(ValueError, match="no GRU weights place all points"):
        gru_fixed_point_weights(mid, perp_gain=0.5, generator=g)


def test_insertion_fixes_the_last_point_and_keeps_w_on_the_complement():
    """``W ← x sᵀ/‖s‖² + W (I − s sᵀ/‖s‖²)``: ``W s = x``, ``W`` unchanged on s⊥ (dense check)."""
    g = torch.Generator().manual_seed(0)
    W = torch.randn(6, 6, generator=g, dtype=DT)
    x = torch.randn(1, 6, generator=g, dtype=DT)
    W_before = W.clone()
    new = insert_fixed_points(W, x)
    torch.testing.assert_close(W, W_before, rtol=0, atol=0)  # the input is not modified
    s = torch.tanh(x[0])
    torch.testing.assert_close(new @ s, x[0])
    v = torch.randn(6, generator=g, dtype=DT)
    v = v - (v @ s) / (s @ s) * s
    torch.testing.assert_close(new @ v, W @ v)
    # several points: the last exact; an earlier one moved by (x̄_2 − W_1 s_2)(s_2ᵀ s_1)/‖s_2‖²
    pts = torch.randn(2, 6, generator=g, dtype=DT)
    s1, s2 = torch.tanh(pts)
    W1 = insert_fixed_points(W, pts[:1])
    W2 = insert_fixed_points(W, pts)
    torch.testing.assert_close(W2 @ s2, pts[1], rtol=0, atol=1e-12)
    moved = (pts[1] - W1 @ s2) * (s2 @ s1) / (s2 @ s2)
    torch.testing.assert_close(W2 @ s1 - pts[0], moved, rtol=0, atol=1e-12)
    assert float(moved.norm()) > 1e-3
    # points on distinct coordinate axes have orthogonal s: all of them stay exact
    axes = torch.zeros(3, 6, dtype=DT)
    axes[0, 0], axes[1, 2], axes[2, 5] = 1.5, -0.7, 2.0
    torch.testing.assert_close(
        torch.tanh(axes) @ insert_fixed_points(W, axes).T, axes, rtol=0, atol=1e-12
    )
    assert insert_fixed_points(W.float(), x).dtype == torch.float32


def test_insertion_point_is_a_fixed_point_of_the_leaky_rnn_cell():
    """The leaky post-form RNN of Memory-Pro: F(x̄) = x̄ at zero input, Jacobian
    (1 − α) I + α W diag(1 − tanh²x̄) (jacrev)."""
    g = torch.Generator().manual_seed(1)
    n, leak = 8, 0.7
    cell = RNN(n, 3, form="post", leak=leak, bias=False, generator=g, dtype=DT)
    pts = torch.randn(3, n, generator=g, dtype=DT)
    with torch.no_grad():
        cell.W.copy_(insert_fixed_points(cell.W, pts))
    params = detached_params(cell)

    def step(h):
        return cell.step(params, h, torch.zeros(3, dtype=DT))

    x = pts[-1]
    torch.testing.assert_close(step(x), x, rtol=0, atol=1e-12)
    J = torch.func.jacrev(step)(x)
    expected = (1 - leak) * torch.eye(n, dtype=DT) + leak * cell.W.detach() * (
        1 - torch.tanh(x).square()
    )
    torch.testing.assert_close(J, expected, rtol=0, atol=1e-12)


def test_insertion_rejects_bad_input():
    W = torch.eye(4, dtype=DT)
    with pytest.raises(ValueError, match="W must be a square matrix"):
        insert_fixed_points(torch.zeros(4, 3), torch.ones(1, 4))
    with pytest.raises(ValueError, match="points must have N = 4 columns"):
        insert_fixed_points(W, torch.ones(1, 3, dtype=DT))
    with pytest.raises(ValueError, match="points must be nonzero"):
        insert_fixed_points(W, torch.zeros(1, 4, dtype=DT))
    with pytest.raises(TypeError, match="points"):
        insert_fixed_points(W, [[1.0, 1.0, 1.0, 1.0]])
