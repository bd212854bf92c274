"""GRU cell from torch primitives (vmappable; ``torch.nn.GRUCell`` has no vmap rule).

Equations (paper 004 eq. 23, with PyTorch's bias placement; ``bias=False`` gives eq. 23 exactly)::

    r = σ(W_ir x + b_ir + W_hr h + b_hr)
    z = σ(W_iz x + b_iz + W_hz h + b_hz)
    n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn))
    h' = (1 − z) ⊙ n + z ⊙ h

Parameters use PyTorch's names and stacking: ``weight_ih`` (3N, n_in) = [W_ir; W_iz; W_in],
``weight_hh`` (3N, N), ``bias_ih`` (3N), ``bias_hh`` (3N), so a ``torch.nn.GRU`` maps onto it
one-to-one.

Weight sites (paper 004 App. A.5.2). The paper writes ``K = (H_- H_-^T + X X^T) ⊗ I_{3N}``.
That is exact for the reset and update gates, whose hidden and input terms are summed, but not
for the candidate ``n``, where ``W_hn h`` is multiplied by ``r`` before it meets ``W_in x``.
sntkit therefore uses three pre-activation groups: ``"rz"`` (2N; sites h, x, 1, 1), ``"nx"``
(N; sites x, 1) and ``"nh"`` (N; sites h, 1), for which
``NTK_S = P_core (⊕_g V_g V_g^T ⊗ I_{n_g}) P_core^*`` holds exactly. The paper's single
``V V^T ⊗ I`` with ``V = cat(H_-, X)`` is available as ``StateNTK.core_gram`` for comparison.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from sntkit.models.cell import Cell
from sntkit.models.gates import gru_update
from sntkit.models.init import init_parameters_
from sntkit.models.sites import Params, SiteUse


class GRU(Cell):
    """GRU cell with ``n_hidden`` units (state size N = n_hidden).

    Initialization (``init="xavier"``, the papers' default): each gate's N×N and N×n_in block is
    Xavier-normal times ``gain``, biases zero. ``init="torch"`` reproduces ``torch.nn.GRU``'s
    U(−1/√N, 1/√N).
    """

    def __init__(
        self,
        n_hidden: int,
        n_input: int = 0,
        *,
        bias: bool = True,
        init: str = "xavier",
        gain: float = 1.0,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str = "cpu",
    ) -> None:
        super().__init__()
        if n_hidden < 1 or n_input < 0:
            raise ValueError(f"need n_hidden >= 1 and n_input >= 0, got {n_hidden}, {n_input}")
        if init not in ("xavier", "torch"):
            raise ValueError(f"init must be 'xavier' or 'torch', got {init!r}")
        N = n_hidden
        self.n_state = N
        self.n_input = n_input
        kw: dict[str, Any] = {"dtype": dtype, "device": device}
        self.weight_hh = nn.Parameter(torch.empty(3 * N, N, **kw))
        if n_input:
            self.weight_ih = nn.Parameter(torch.empty(3 * N, n_input, **kw))
        if bias:
            self.bias_ih = nn.Parameter(torch.empty(3 * N, **kw))
            self.bias_hh = nn.Parameter(torch.empty(3 * N, **kw))
        rz, n = slice(0, 2 * N), slice(2 * N, 3 * N)
        uses = [SiteUse("weight_hh", "h", "rz", rz), SiteUse("weight_hh", "h", "nh", n)]
        if n_input:
            uses += [SiteUse("weight_ih", "x", "rz", rz), SiteUse("weight_ih", "x", "nx", n)]
        if bias:
            uses += [
                SiteUse("bias_ih", "one", "rz", rz),
                SiteUse("bias_hh", "one", "rz", rz),
                SiteUse("bias_ih", "one", "nx", n),
                SiteUse("bias_hh", "one", "nh", n),
            ]
        self.site_uses = tuple(uses)
        self.reset_parameters(init=init, gain=gain, generator=generator)

    def reset_parameters(
        self, init: str = "xavier", gain: float = 1.0, generator: torch.Generator | None = None
    ) -> None:
        """Per-gate Xavier-normal weights times ``gain`` and zero biases (or ``init="torch"``)."""
        init_parameters_(self, self.n_state, init=init, gain=gain, generator=generator)

    def group_sizes(self) -> dict[str, int]:
        """Return the groups ``rz``, ``nh`` and (with input weights) ``nx``, and their sizes."""
        sizes = {"rz": 2 * self.n_state, "nh": self.n_state}
        if any(u.group == "nx" for u in self.site_uses or ()):
            sizes["nx"] = self.n_state
        return sizes

    def step_lifted(
        self,
        params: Params,
        h: torch.Tensor,
        x: torch.Tensor | None,
        offsets: Mapping[str, torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Return the step with ``pre[g] += offsets[g]`` and the weight sites."""
        sites = self.base_sites(h, x) | {"h": h}
        pre_nx = None
        if "nx" in self.group_sizes():
            pre_nx = self.preactivation(params, sites, "nx", offsets)
        pre_rz = self.preactivation(params, sites, "rz", offsets)
        pre_nh = self.preactivation(params, sites, "nh", offsets)
        return gru_update(pre_rz, pre_nh, pre_nx, h), sites

    def extra_repr(self) -> str:
        """Return the sizes and options shown by ``repr``."""
        return f"n_hidden={self.n_state}, n_input={self.n_input}"
