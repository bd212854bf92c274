"""Recurrent cells written from torch primitives (vmappable), and adapters for torch.nn modules.

Every cell is a ``torch.nn.Module`` that can be trained as usual and exposes the pure one-step
map ``cell.step(params, h, x)`` that sntkit's analyses differentiate.
"""

from sntkit.models.cell import Cell, detached_params, rollout
from sntkit.models.functional import FunctionalCell
from sntkit.models.gru import GRU
from sntkit.models.lstm import LSTM
from sntkit.models.resolve import ResolvedModel, resolve_model
from sntkit.models.rnn import RNN
from sntkit.models.sites import SiteUse
from sntkit.models.torch_adapter import TorchRecurrent, as_cell
from sntkit.models.transformer import AttentionMLP

__all__ = [
    "GRU",
    "LSTM",
    "RNN",
    "AttentionMLP",
    "Cell",
    "FunctionalCell",
    "ResolvedModel",
    "SiteUse",
    "TorchRecurrent",
    "as_cell",
    "detached_params",
    "resolve_model",
    "rollout",
]
