"""Gate arithmetic shared by the built-in GRU/LSTM cells and the torch.nn adapters.

Only the parts of the step that involve no trained weight (``φ_step`` in paper 004 App. A.5.2)
live here; the weight products are formed by :meth:`sntkit.models.cell.Cell.preactivation`.
"""

from __future__ import annotations

import torch


def gru_update(
    pre_rz: torch.Tensor, pre_nh: torch.Tensor, pre_nx: torch.Tensor | None, h: torch.Tensor
) -> torch.Tensor:
    """``h' = (1 − z) ⊙ tanh(pre_nx + r ⊙ pre_nh) + z ⊙ h`` with ``[r, z] = σ(pre_rz)``."""
    r, z = torch.sigmoid(pre_rz).chunk(2, dim=-1)
    n_pre = r * pre_nh if pre_nx is None else pre_nx + r * pre_nh
    return (1.0 - z) * torch.tanh(n_pre) + z * h


def lstm_update(gates: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``c' = σ(f) c + σ(i) tanh(g)``, ``h' = σ(o) tanh(c')`` with ``[i, f, g, o] = gates``."""
    i, f, g, o = gates.chunk(4, dim=-1)
    c_new = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c_new), c_new
