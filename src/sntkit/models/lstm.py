"""LSTM cell from torch primitives; the state is ``(h, c)`` concatenated on the unit axis.

Equations (PyTorch's)::

    [i, f, g, o] = W_ih x + b_ih + W_hh h + b_hh
    c' = σ(f) ⊙ c + σ(i) ⊙ tanh(g)
    h' = σ(o) ⊙ tanh(c')

State ``s = cat(h, c)`` of size N = 2H. All four gates sum their hidden and input terms, so one
pre-activation group ``"gates"`` (4H) fed by sites ``h``, ``x`` and ``1`` (twice: both biases)
gives the exact Kronecker core ``V V^T ⊗ I_{4H}``, ``V = cat(H_-, X, 1, 1)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from sntkit.models.cell import Cell
from sntkit.models.gates import lstm_update
from sntkit.models.init import init_parameters_
from sntkit.models.sites import Params, SiteUse


class LSTM(Cell):
    """LSTM cell with ``n_hidden`` units H; state ``cat(h, c)`` of size ``n_state = 2H``."""

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
        H = n_hidden
        self.n_hidden = H
        self.n_state = 2 * H
        self.n_input = n_input
        kw: dict[str, Any] = {"dtype": dtype, "device": device}
        self.weight_hh = nn.Parameter(torch.empty(4 * H, H, **kw))
        uses = [SiteUse("weight_hh", "h", "gates")]
        if n_input:
            self.weight_ih = nn.Parameter(torch.empty(4 * H, n_input, **kw))
            uses.append(SiteUse("weight_ih", "x", "gates"))
        if bias:
            self.bias_ih = nn.Parameter(torch.empty(4 * H, **kw))
            self.bias_hh = nn.Parameter(torch.empty(4 * H, **kw))
            uses += [SiteUse("bias_ih", "one", "gates"), SiteUse("bias_hh", "one", "gates")]
        self.site_uses = tuple(uses)
        self.reset_parameters(init=init, gain=gain, generator=generator)

    def reset_parameters(
        self, init: str = "xavier", gain: float = 1.0, generator: torch.Generator | None = None
    ) -> None:
        """Per-gate Xavier-normal weights times ``gain`` and zero biases (or ``init="torch"``)."""
        init_parameters_(self, self.n_hidden, init=init, gain=gain, generator=generator)

    def group_sizes(self) -> dict[str, int]:
        """Return the one pre-activation group ``gates`` (4H)."""
        return {"gates": 4 * self.n_hidden}

    def step_lifted(
        self,
        params: Params,
        s: torch.Tensor,
        x: torch.Tensor | None,
        offsets: Mapping[str, torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Return the step with ``pre[g] += offsets[g]`` and the weight sites."""
        h, c = s.chunk(2, dim=-1)
        sites = self.base_sites(h, x) | {"h": h}
        h_new, c_new = lstm_update(self.preactivation(params, sites, "gates", offsets), c)
        return torch.cat([h_new, c_new], dim=-1), sites

    def extra_repr(self) -> str:
        """Return the sizes and options shown by ``repr``."""
        return f"n_hidden={self.n_hidden}, n_input={self.n_input}"
