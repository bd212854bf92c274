"""Weight sites: how trained weights enter a model (paper 004 §4, App. A.3.1).

A weight-based model uses every trained weight block ``W[rows]`` only in products
``site @ W[rows]^T`` with a *weight-site* variable, summed into a *pre-activation group*.
Describing those uses (:class:`SiteUse`) is what makes the Kronecker core computable.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import torch

Params = Mapping[str, torch.Tensor]
_ALL_ROWS = slice(None)


@dataclass(frozen=True)
class SiteUse:
    """Rows ``rows`` of parameter ``param`` multiply weight site ``site`` into group ``group``.

    ``pre[group] += site @ param[rows]^T`` (a bias is a weight on the constant site ``"one"``).
    Within a group, every use must cover all of the group's rows, which is what makes the
    group's parameter kernel exactly ``V_g V_g^T ⊗ I_{n_g}``.
    """

    param: str
    site: str
    group: str
    rows: slice = field(default_factory=lambda: slice(None))


def preactivation(
    uses: Iterable[SiteUse],
    params: Params,
    sites: Mapping[str, torch.Tensor],
    group: str,
    offsets: Mapping[str, torch.Tensor] | None,
) -> torch.Tensor:
    """``pre_g = Σ_{uses in g} site @ param[rows]^T``, plus ``offsets[g]`` when given."""
    out = None
    for use in uses:
        if use.group != group:
            continue
        w = params[use.param]
        if use.rows != _ALL_ROWS:  # a view of the whole weight is one more autograd node
            w = w[use.rows]
        if w.ndim == 1 and use.site == "one" and out is not None:
            out = out + w  # a bias: ``1 · b`` is ``b``, added without the ones
            continue
        site = sites[use.site]
        # linear(site, w) is the GEMM of site @ w.T without a Python-level transpose
        term = site * w if w.ndim == 1 else torch.nn.functional.linear(site, w)
        out = term if out is None else out + term
    if out is None:
        raise KeyError(f"no site use feeds group {group!r}")
    if offsets is not None and group in offsets:
        out = out + offsets[group]
    return out
