"""The Kronecker core of weight-based cells (paper 004, Theorem 1 and App. A.5).

For a cell whose trained weights enter only through products ``W[rows] · site`` summed into
pre-activation groups ``g`` (see :mod:`sntkit.models.cell`), the one-step parameter Jacobian
factors as ``D_θ f = D_δ f · (⊕_g V_g ⊗ I_{n_g})^*``-style products, which gives exactly

    K_core = ⊕_g (V_g V_g^T ⊗ I_{n_g})        on the lifted space ⊕_g R^{B×T×n_g},
    P_core = P · D_δ f,                        D_δ f = ∂f/∂(pre-activation offsets),
    NTK_S  = P_core K_core P_core^*.

``V_g`` (``B·T × m_g``) concatenates the sites of the *trained* uses feeding group ``g``, each
evaluated at the pairs ``(h_{t-1}, x_t)``. For an RNN or LSTM there is one group and this is
literally ``P_core (V V^T ⊗ I_n) P_core^*``; for the GRU the candidate gate needs its own groups
(see :mod:`sntkit.models.gru`). ``D_δ f`` is the identity (post-form RNN), ``diag(φ'(z))``
(pre-form RNN) or the gate Jacobian (GRU/LSTM).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

from sntkit.models.cell import Cell
from sntkit.models.sites import Params, SiteUse
from sntkit.ntk.trajectory import Trajectory
from sntkit.operators import Dense, DirectSum, Identity, Operator


@dataclass(frozen=True)
class WeightSites:
    """Weight-site matrices per pre-activation group (only groups with trained uses)."""

    #: ``V_g`` of shape ``(B, T, m_g)`` per group, in the lifted space's group order
    groups: dict[str, torch.Tensor]
    #: the trained uses feeding each group, one column block of ``V_g`` each
    uses: dict[str, tuple[SiteUse, ...]]
    #: the width of each use's column block
    widths: dict[str, tuple[int, ...]]
    #: group sizes ``n_g`` (all groups of the cell, trained or not)
    sizes: dict[str, int]
    #: the blocks of :attr:`joint`, one per distinct trained (param, site)
    joint_blocks: tuple[torch.Tensor, ...]

    @functools.cached_property
    def joint(self) -> torch.Tensor:
        """The joint site matrix ``V`` of paper 004 ``(B, T, m)``.

        Assembled on first use: only the Kronecker core reads it, while every NTK product
        works on the per-group matrices (a copy of all sites saved at each build).
        """
        return torch.cat(self.joint_blocks, dim=-1)


def weight_sites(
    cell: Cell, params: Params, trainable: tuple[str, ...], traj: Trajectory
) -> WeightSites:
    """Evaluate the weight sites of the trained parameters at every pair of ``traj``."""
    if cell.site_uses is None:
        raise ValueError(
            f"{type(cell).__name__} does not describe its weight sites, so the Kronecker core "
            "(Theorem 1) is unavailable; P, K, the Jacobian and the NTK itself still are"
        )
    with torch.no_grad():
        _, sites = cell.step_lifted(params, traj.prev, traj.inputs)
    return collect_weight_sites(
        cell.site_uses, cell.group_sizes(), sites, params, trainable, type(cell).__name__
    )


def collect_weight_sites(
    uses: Sequence[SiteUse],
    sizes: dict[str, int],
    sites: Mapping[str, torch.Tensor],
    params: Params,
    trainable: Sequence[str],
    owner: str,
) -> WeightSites:
    """Group the evaluated sites ``(B, T, m)`` of the trained uses by pre-activation group."""
    covered = {u.param for u in uses}
    uncovered = [n for n in trainable if n not in covered]
    if uncovered:
        raise ValueError(
            f"trained parameters {uncovered} do not enter {owner} as weights, so "
            "the Kronecker core does not apply; exclude them via trainable=..."
        )
    blocks: dict[str, list[torch.Tensor]] = {}
    by_group: dict[str, list[SiteUse]] = {}
    joint: dict[tuple[str, str], torch.Tensor] = {}
    for use in uses:
        if use.param not in trainable:
            continue
        rows = len(range(*use.rows.indices(params[use.param].shape[0])))
        if rows != sizes[use.group]:
            raise ValueError(
                f"{use} covers {rows} rows but group {use.group!r} has {sizes[use.group]}"
            )
        site = sites[use.site].expand(*sites["one"].shape[:-1], sites[use.site].shape[-1])
        blocks.setdefault(use.group, []).append(site)
        by_group.setdefault(use.group, []).append(use)
        joint.setdefault((use.param, use.site), site)
    order = [g for g in sizes if g in blocks]  # the lifted space's group order
    return WeightSites(
        groups={g: torch.cat(blocks[g], dim=-1) for g in order},
        uses={g: tuple(by_group[g]) for g in order},
        widths={g: tuple(b.shape[-1] for b in blocks[g]) for g in order},
        sizes=sizes,
        joint_blocks=tuple(joint.values()),
    )


def gram_operator(V: torch.Tensor) -> Operator:
    """``V V^T`` on ``(B, T)`` as the factored product of ``V`` (B·T × m) and ``V^T``."""
    B, T, m = V.shape
    Vop = Dense(V.reshape(B * T, m), shape_in=(m,), shape_out=(B, T), names_out=("batch", "time"))
    return Vop @ Vop.T


def kronecker_core(sites: WeightSites) -> Operator:
    """``K_core = ⊕_g (V_g V_g^T ⊗ I_{n_g})`` on ``(B, T, Σ_g n_g)`` (trained groups only)."""
    blocks = []
    for g, V in sites.groups.items():
        eye = Identity(sites.sizes[g], dtype=V.dtype, device=V.device)
        blocks.append(gram_operator(V).kron(eye))
    return blocks[0] if len(blocks) == 1 else DirectSum(blocks)
