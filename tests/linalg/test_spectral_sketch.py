"""The one-block warm sketch against dense eigenvalues, traces and norms."""

import itertools
import math

import pytest
import torch
from spectra import DT, coverage, decaying, rotation, trials, with_spectrum

from sntkit.linalg import probes
from sntkit.linalg.spectral_sketch import warm_sketch
from sntkit.operators import Dense

N = 120
LAM = torch.cat([torch.tensor([10.0, 4.0], dtype=DT), decaying(N - 2, 0.08)])
OP = with_spectrum(LAM, seed=3, shape=(8, 15))
U = rotation(N, 3)  # the eigenvectors of OP, columns in the order of LAM


def perturbed_top(k: int, angle: float, seed: int = 0) -> torch.Tensor:
    """The top-``k`` eigenvectors tilted by ``angle`` (radians) towards random directions."""
    g = torch.Generator().manual_seed(seed)
    noise = torch.randn(k, N, generator=g, dtype=DT)
    top = U[:, :k].T
    noise -= (noise @ top.T) @ top
    noise /= noise.norm(dim=1, keepdim=True)
    return (math.cos(angle) * top + math.sin(angle) * noise).reshape(k, 8, 15)


def test_exact_when_the_basis_spans_a_low_rank_operator():
    lam = torch.cat([torch.tensor([3.0, 2.0, 0.5], dtype=DT), torch.zeros(N - 3, dtype=DT)])
    op = with_spectrum(lam, seed=1)
    basis = rotation(N, 1)[:, :3].T
    s = warm_sketch(op, 3, 6, basis, seed=0)
    assert s.trace.value == pytest.approx(5.5, rel=1e-12) and s.trace.stderr < 1e-12
    assert s.frobenius_sq.value == pytest.approx(9 + 4 + 0.25, rel=1e-12)
    assert s.participation.value == pytest.approx(5.5**2 / 13.25, rel=1e-12)
    assert s.stable_rank.value == pytest.approx(5.5 / 3, rel=1e-12)
    torch.testing.assert_close(s.eigenvalues, lam[:3])
    assert float(s.residuals.max()) < 1e-10
    assert s.num_matvecs == 9


def test_ritz_values_are_those_of_the_spanned_subspace_even_with_dependent_probes():
    """These 10 sign probes of R^12 have rank 9: with the 2 basis rows they span 11 dimensions,
    and the operator's top eigenvector is the missing 12th. A numerically dependent probe
    direction that were kept (amplified rounding) would reach it; dropped, the Ritz values are
    those of the span, computed densely."""
    basis = torch.randn(2, 12, generator=torch.Generator().manual_seed(1), dtype=DT)
    Q = torch.linalg.qr(basis.T).Q.T
    Z = probes.rademacher(10, (12,), OP, probes.make_generator(0, None))
    _, sv, Vh = torch.linalg.svd(torch.cat([Q, Z - (Z @ Q.T) @ Q]))
    assert int((sv > 1e-10 * sv[0]).sum()) == 11
    V, missing = Vh[:11], Vh[11]
    inside = V.T @ torch.diag(torch.linspace(3.0, 0.1, 11, dtype=DT)) @ V
    op = Dense(inside + 10.0 * torch.outer(missing, missing), shape_in=(3, 4))
    s = warm_sketch(op, 2, 10, basis.reshape(2, 3, 4), seed=0)
    theta = torch.linalg.eigvalsh(V @ op.matrix @ V.T).flip(0)
    torch.testing.assert_close(s.eigenvalues, theta[:2], rtol=1e-10, atol=1e-10)


def test_estimates_are_unbiased_and_their_error_bars_cover_the_truth():
    basis = perturbed_top(2, 0.3)
    truths = {
        "trace": float(LAM.sum()),
        "frobenius_sq": float(LAM.square().sum()),
        "participation": float(LAM.sum() ** 2 / LAM.square().sum()),
    }
    count = 200
    sketches = [warm_sketch(OP, 2, 12, basis, seed=s) for s in range(count)]
    for name, truth in truths.items():
        v, se, mv = trials(lambda s, name=name: getattr(sketches[s], name), count)
        assert mv == 14
        spread = float(v.std())
        # the trace and ‖A‖_F² are unbiased for every basis; the ratio has an O(1/m) bias
        slack = 0.0 if name != "participation" else 0.15 * spread
        assert abs(float(v.mean()) - truth) <= 4 * spread / math.sqrt(count) + slack, name
        assert 0.85 <= coverage(v, se, truth) <= 1.0, (name, coverage(v, se, truth))


def test_deflation_by_a_good_basis_shrinks_the_trace_error():
    good = trials(lambda s: warm_sketch(OP, 2, 12, perturbed_top(2, 0.05), seed=s).trace, 100)
    random_basis = torch.randn(2, 8, 15, generator=torch.Generator().manual_seed(9), dtype=DT)
    bad = trials(lambda s: warm_sketch(OP, 2, 12, random_basis, seed=s).trace, 100)
    assert float(good[0].std()) < 0.5 * float(bad[0].std())


def test_ritz_values_interlace_and_their_bounds_hold():
    for angle in (0.02, 0.2, 0.6):
        s = warm_sketch(OP, 2, 10, perturbed_top(2, angle), seed=1)
        assert bool((s.eigenvalues <= LAM[:2] + 1e-10).all())  # Cauchy interlacing
        # some eigenvalue within r_i of θ_i (symmetric A); here the i-th one
        assert bool(((LAM[:2] - s.eigenvalues).abs() <= s.residuals + 1e-10).all())
        assert bool((s.errors <= s.residuals + 1e-15).all())
    near = warm_sketch(OP, 2, 10, perturbed_top(2, 0.02), seed=1)
    assert float(((LAM[:2] - near.eigenvalues) / LAM[:2]).abs().max()) < 1e-3
    assert float(near.stable_rank.value) == pytest.approx(float(LAM.sum() / 10), rel=0.05)


def test_the_next_basis_is_a_power_step_closer_to_the_top_eigenvectors():
    basis = perturbed_top(1, 0.5)
    angles = []
    for _ in range(6):
        x = basis.reshape(-1)
        angles.append(math.acos(min(1.0, abs(float(x @ U[:, 0])) / float(x.norm()))))
        basis = warm_sketch(OP, 1, 8, basis, seed=0).basis
    # λ_2/λ_1 = 0.4 per step at least (the Ritz step on the probes helps further)
    for a, b in itertools.pairwise(angles):
        assert b <= 0.45 * a + 1e-12
    assert angles[-1] < 1e-3


def test_cold_start_costs_k_more_products_and_gives_a_basis():
    s = warm_sketch(OP, 2, 8, None, seed=0)
    assert s.num_matvecs == 2 + 2 + 8
    assert s.basis.shape == (2, 8, 15)
    torch.testing.assert_close(
        s.basis.reshape(2, -1) @ s.basis.reshape(2, -1).T, torch.eye(2, dtype=DT)
    )


def test_float32_operator_gives_float32_basis():
    op = Dense(OP.matrix.float(), shape_in=(8, 15))
    s = warm_sketch(op, 2, 8, perturbed_top(2, 0.1).float(), seed=0)
    assert s.basis.dtype == torch.float32
    assert float(s.trace.value) == pytest.approx(float(LAM.sum()), rel=0.1)


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"k": 0, "num_probes": 4}, ValueError, "k must be >= 1"),
        ({"k": 1.5, "num_probes": 4}, TypeError, "k must be an int"),
        ({"k": 2, "num_probes": 1}, ValueError, "num_probes must be >= 2"),
        ({"k": 2, "num_probes": 119}, ValueError, "exceeds the operator size"),
        ({"k": 2, "num_probes": 4, "basis": torch.zeros(3, 8, 15)}, ValueError, "basis must be"),
    ],
)
def test_bad_input_names_the_argument(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        warm_sketch(OP, **kwargs)
