"""FunctionalCell: validation and its step."""

import pytest
import torch

from sntkit.models import FunctionalCell

DT = torch.float64


def test_functional_cell_validates_and_steps():
    W = torch.randn(3, 3, dtype=DT)
    cell = FunctionalCell(lambda p, h, x: torch.tanh(h @ p["W"].T), {"W": W}, n_state=3)
    h = torch.randn(2, 3, dtype=DT)
    torch.testing.assert_close(cell.step(cell.params(), h, None), torch.tanh(h @ W.T))
    with pytest.raises(TypeError):
        FunctionalCell("not callable", {"W": W}, n_state=3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="n_state"):
        FunctionalCell(lambda p, h, x: h, {"W": W}, n_state=0)
