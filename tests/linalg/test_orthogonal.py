"""Block orthonormalization (``orth_against``) against dense projectors: span, rank, dtype."""

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sntkit.linalg.orthogonal import _row_svd, orth_against


def _projector(rows: torch.Tensor) -> torch.Tensor:
    """Orthogonal projector onto the row span of ``rows`` (pseudo-inverse, dense)."""
    return torch.linalg.pinv(rows) @ rows


@settings(max_examples=40, deadline=None)
@given(
    j=st.integers(1, 6),
    p=st.integers(0, 4),
    rank_drop=st.integers(0, 2),
    n=st.integers(8, 40),
    seed=st.integers(0, 10**6),
)
def test_orth_against_spans_the_new_directions_and_drops_spanned_ones(j, p, rank_drop, n, seed):
    g = torch.Generator().manual_seed(seed)
    basis = torch.linalg.qr(torch.randn(n, p, generator=g, dtype=torch.float64)).Q.T
    new = torch.randn(max(j - rank_drop, 1), n, generator=g, dtype=torch.float64)
    # j rows of rank j − rank_drop, plus components along the basis that must be removed
    X = torch.randn(j, new.shape[0], generator=g, dtype=torch.float64) @ new
    X = X + torch.randn(j, p, generator=g, dtype=torch.float64) @ basis
    Q = orth_against(X, basis if p else None)
    rest = X - (X @ basis.T) @ basis if p else X
    want = int(torch.linalg.matrix_rank(rest))
    assert Q.shape == (want, n)
    torch.testing.assert_close(Q @ Q.T, torch.eye(want, dtype=torch.float64), atol=1e-12, rtol=0)
    if p:
        assert float((Q @ basis.T).abs().max()) < 1e-12
    torch.testing.assert_close(_projector(Q), _projector(rest), atol=1e-9, rtol=0)


def test_row_svd_of_a_wide_block_matches_the_dense_svd_in_both_dtypes():
    g = torch.Generator().manual_seed(0)
    for dtype, tol in ((torch.float64, 1e-12), (torch.float32, 1e-4)):
        X = torch.randn(4, 300, generator=g, dtype=torch.float64)
        X[3] = X[0] - 2 * X[1]  # rank 3: one singular value at rounding
        sv, Vh = _row_svd(X.to(dtype))
        ref_sv, ref_Vh = torch.linalg.svd(X, full_matrices=False)[1:]
        assert sv.dtype == Vh.dtype == dtype and Vh.shape == (4, 300)
        torch.testing.assert_close(sv[:3].double(), ref_sv[:3], rtol=tol, atol=0)
        assert float(sv[3]) < tol * float(sv[0])
        # singular vectors up to sign: the projectors on the leading three agree
        torch.testing.assert_close(
            _projector(Vh[:3].double()), _projector(ref_Vh[:3]), atol=tol, rtol=0
        )
    tall = torch.randn(5, 3, generator=g, dtype=torch.float64)  # j >= n: the plain SVD
    torch.testing.assert_close(_row_svd(tall)[0], torch.linalg.svdvals(tall))
