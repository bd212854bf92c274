"""Frobenius norm, cosine similarity and relative distance against dense float64."""

import math

import pytest
import torch
from spectra import DT, coverage, decaying, low_rank_plus_noise, trials, with_spectrum

import sntkit.linalg as sla
from sntkit.operators import Dense, Identity


def pair():
    op = with_spectrum(decaying(80, 0.3), shape=(8, 10))
    noise = torch.randn(80, 80, dtype=DT, generator=torch.Generator().manual_seed(2))
    return op, Dense(op.matrix + 0.05 * noise, shape_in=(8, 10))


def test_exact_methods_equal_dense():
    A, B = pair()
    MA, MB = A.matrix, B.matrix
    fro = sla.frobenius_norm(A, "exact", chunk_size=7)
    assert fro.stderr == 0 and fro.num_matvecs == 80
    assert math.isclose(fro.value, float(MA.norm()), rel_tol=1e-12)
    cos = sla.cosine_similarity(A, B, "exact")
    assert cos.num_matvecs == 160
    assert math.isclose(cos.value, float((MA * MB).sum() / (MA.norm() * MB.norm())), rel_tol=1e-12)
    cmp = sla.compare(A, B, "exact")
    assert math.isclose(cmp.value, float((MA - MB).norm() / MB.norm()), rel_tol=1e-12)
    rect = Dense(torch.randn(12, 30, dtype=DT), shape_in=(5, 6), shape_out=(3, 4))
    assert math.isclose(
        sla.frobenius_norm(rect, "exact").value, float(rect.matrix.norm()), rel_tol=1e-12
    )


@pytest.mark.parametrize("method", ["hutchinson", "hutch++"])
def test_randomized_estimates_vs_dense(method):
    A, B = pair()
    MA, MB = A.matrix, B.matrix
    truth = {
        "fro": float(MA.norm()),
        "cos": float((MA * MB).sum() / (MA.norm() * MB.norm())),
        "cmp": float((MA - MB).norm() / MB.norm()),
    }
    fns = {
        "fro": lambda s: sla.frobenius_norm(A, method, 60, seed=s),
        "cos": lambda s: sla.cosine_similarity(A, B, method, 120, seed=s),
        "cmp": lambda s: sla.compare(A, B, method, 120, seed=s),
    }
    count = 200
    for name, fn in fns.items():
        v, se, mv = trials(fn, count)
        assert mv <= (60 if name == "fro" else 120) + 4, (name, mv)
        # ratios and square roots of unbiased moments have an O(1/m) bias, far below the
        # spread of one estimate: the mean is within 4 standard errors plus 10 % of the spread
        spread = float(v.std())
        assert abs(float(v.mean()) - truth[name]) <= 4 * spread / math.sqrt(count) + 0.1 * spread
        assert 0.85 <= coverage(v, se, truth[name]) <= 1.0, (name, coverage(v, se, truth[name]))


def test_frobenius_sketch_is_exact_for_low_rank_and_beats_hutchinson():
    lam = low_rank_plus_noise(200, 8, 0.0)
    op, truth = with_spectrum(lam, shape=(10, 20)), float(lam.norm())
    est = sla.frobenius_norm(op, "hutch++", 60, seed=0)
    assert abs(est.value - truth) <= 1e-10 * truth and est.stderr <= 1e-10 * truth
    noisy = with_spectrum(low_rank_plus_noise(200, 8, 0.02))
    truth = float(noisy.matrix.norm())
    rmse = {}
    for method in ("hutchinson", "hutch++"):
        v, _, _ = trials(lambda s, m=method: sla.frobenius_norm(noisy, m, 60, seed=s), 100)
        rmse[method] = float((v - truth).square().mean().sqrt())
    assert rmse["hutch++"] < 0.1 * rmse["hutchinson"], rmse


def test_exact_identities_from_shared_probes():
    A, _ = pair()
    assert math.isclose(sla.cosine_similarity(A, 2.0 * A, seed=1).value, 1.0, rel_tol=1e-12)
    assert math.isclose(sla.cosine_similarity(A, -A, seed=1).value, -1.0, rel_tol=1e-12)
    assert math.isclose(sla.compare(A, 2.0 * A, seed=1).value, 0.5, rel_tol=1e-12)
    assert sla.compare(A, A, seed=1).value == 0.0
    assert math.isclose(sla.compare(0.0 * A, A, seed=1).value, 1.0, rel_tol=1e-12)
    # op2 is the reference: the distance is not symmetric in its arguments
    assert math.isclose(sla.compare(2.0 * A, A, seed=1).value, 1.0, rel_tol=1e-12)


def test_norm_errors_name_the_argument():
    A, _ = pair()
    with pytest.raises(ValueError, match=r"compare: op1 and op2 must have the same shapes"):
        sla.compare(A, Identity(80, dtype=DT))
    with pytest.raises(
        ValueError, match=r"cosine_similarity\(op1, op2\): operators have different dtypes"
    ):
        sla.cosine_similarity(A, Identity((8, 10), dtype=torch.float32))
    with pytest.raises(ValueError, match="compare: op2 has zero Frobenius norm"):
        sla.compare(A, 0.0 * A)
    with pytest.raises(ValueError, match="cosine_similarity: op1 has zero Frobenius norm"):
        sla.cosine_similarity(0.0 * A, A, "exact")
    assert sla.frobenius_norm(0.0 * A).value == 0.0
    with pytest.raises(ValueError, match="frobenius_norm: method must be one of"):
        sla.frobenius_norm(A, "xtrace")
    with pytest.raises(ValueError, match="cosine_similarity: num_matvecs must be >= 4, got 3"):
        sla.cosine_similarity(A, A, num_matvecs=3)
    with pytest.raises(TypeError, match="compare: op2 must be an sntkit Operator"):
        sla.compare(A, A.matrix)
