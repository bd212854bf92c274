"""Parameter initializations shared by the built-in cells."""

from __future__ import annotations

import torch
from torch import nn


@torch.no_grad()
def init_parameters_(
    module: nn.Module | nn.Parameter,
    block_rows: int,
    *,
    init: str = "xavier",
    gain: float = 1.0,
    generator: torch.Generator | None = None,
) -> None:
    """Initialize every parameter of ``module`` (or one parameter) in place.

    ``init="xavier"``: each block of ``block_rows`` rows of a weight matrix (one gate of a
    GRU/LSTM, the whole matrix of an RNN) is Xavier-normal, std ``gain·√(2/(rows+cols))``;
    biases (1-D parameters) are zero. ``init="torch"``: PyTorch's recurrent default,
    U(−1/√block_rows, 1/√block_rows) for every parameter. Draws are made on the CPU with
    ``generator`` so the same seed gives the same weights on every device.
    """
    if init not in ("xavier", "torch"):
        raise ValueError(f"init must be 'xavier' or 'torch', got {init!r}")
    for p in [module] if isinstance(module, nn.Parameter) else module.parameters():
        if init == "torch":
            u = torch.rand(p.shape, generator=generator, dtype=p.dtype)
            p.copy_(((2 * u - 1) * block_rows**-0.5).to(p.device))
        elif p.ndim == 1:
            p.zero_()
        else:
            std = gain * (2.0 / (block_rows + p.shape[1])) ** 0.5
            p.copy_((torch.randn(p.shape, generator=generator, dtype=p.dtype) * std).to(p.device))
