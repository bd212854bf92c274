"""Find the recurrent cell (and readout) inside a model as users write it.

Users rarely hand sntkit a bare cell: a typical model is a wrapper ``nn.Module`` holding one
recurrent submodule (``nn.GRU``, an sntkit cell, ...) and a readout (``nn.Linear``) applied to
its outputs at every time step. :func:`resolve_model` is the one place that turns such a model
into what the analyses need:

* ``cell``: an sntkit :class:`~sntkit.models.cell.Cell` (torch modules adapted, never copied or
  modified), found as the unique recurrent submodule, or named with ``recurrent="rnn"``;
* ``prefix``: its qualified name inside the wrapper plus ``"."`` (``""`` for a bare cell), so
  parameter names of the wrapper map to names of the cell;
* ``readout``: the wrapper's own readout, the unique other direct child that has parameters
  (``None`` when there is none or it is ambiguous), with its qualified name.

It also converts initial states from torch's layouts (:func:`initial_state`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeGuard

import torch
from torch import nn

from sntkit.models.cell import Cell
from sntkit.models.torch_adapter import _SUPPORTED, TorchRecurrent, as_cell, unsupported_message


@dataclass(frozen=True)
class ResolvedModel:
    """A model split into its recurrent cell and (optionally) its readout."""

    cell: Cell
    #: qualified name of the recurrent submodule + "." ("" when the model is the cell itself)
    prefix: str
    #: the wrapper's readout module, or None
    readout: nn.Module | None
    #: qualified name of the readout + "." ("" when there is none)
    readout_prefix: str
    #: the recurrent module as the user holds it (an nn.GRU, an sntkit cell, ...)
    recurrent: nn.Module


def _is_recurrent(module: object) -> TypeGuard[nn.Module]:
    return isinstance(module, (Cell, *_SUPPORTED))


def resolve_model(model: object, recurrent: str | None = None) -> ResolvedModel:
    """Split ``model`` into its recurrent cell and readout (see the module docstring).

    Parameters
    ----------
    model:
        An sntkit cell, a ``torch.nn`` RNN/GRU/LSTM (or ``*Cell``), or an ``nn.Module`` that
        contains exactly one of those (at any depth, not nested in another one).
    recurrent:
        Qualified name of the recurrent submodule (as in ``model.named_modules()``), needed
        only when the wrapper holds several.

    Raises
    ------
    TypeError
        If ``model`` is not a module, or holds no recurrent submodule.
    ValueError
        If several recurrent submodules are found (the message lists them) or ``recurrent``
        names no recurrent submodule.
    """
    if recurrent is not None and not isinstance(recurrent, str):
        raise TypeError(f"recurrent must be a submodule name (str), got {type(recurrent).__name__}")
    if _is_recurrent(model) and recurrent is None:
        return ResolvedModel(as_cell(model), "", None, "", model)
    if not isinstance(model, nn.Module):
        raise TypeError(unsupported_message(model))
    found = _recurrent_submodules(model)
    if recurrent is not None:
        if recurrent not in found:
            raise ValueError(
                f"recurrent={recurrent!r} is not a recurrent submodule of {type(model).__name__}; "
                f"candidates: {sorted(found) or 'none'}"
            )
        name = recurrent
    elif len(found) == 1:
        (name,) = found
    elif not found:
        raise TypeError(
            f"{type(model).__name__} contains no recurrent submodule (torch.nn RNN/GRU/LSTM or an "
            "sntkit cell). " + unsupported_message(model).split(". ", 1)[1]
        )
    else:
        raise ValueError(
            f"{type(model).__name__} contains {len(found)} recurrent submodules {sorted(found)}; "
            f"name the one to analyse, e.g. recurrent={sorted(found)[0]!r}"
        )
    module = found[name]
    readout, readout_name = _own_readout(model, name)
    return ResolvedModel(
        as_cell(module),
        name + ".",
        readout,
        "" if readout is None else readout_name + ".",
        module,
    )


def _recurrent_submodules(model: nn.Module) -> dict[str, nn.Module]:
    """Recurrent submodules by qualified name, outermost only (an adapter's module is inside)."""
    found: dict[str, nn.Module] = {}
    for name, module in model.named_modules():
        if not name or not _is_recurrent(module):
            continue
        if any(name.startswith(outer + ".") for outer in found):
            continue
        found[name] = module
    return found


def _own_readout(model: nn.Module, recurrent: str) -> tuple[nn.Module | None, str]:
    """Return the unique direct child (other than the recurrent branch) that has parameters."""
    top = recurrent.split(".", 1)[0]
    others = [
        (name, child)
        for name, child in model.named_children()
        if name != top and any(True for _ in child.parameters())
    ]
    if len(others) == 1:
        return others[0][1], others[0][0]
    return None, ""


def initial_state(
    cell: Cell,
    h0: torch.Tensor | tuple[torch.Tensor, torch.Tensor] | None,
    batch: int | None,
    dtype: torch.dtype,
    device: torch.device,
) -> torch.Tensor:
    """``h0`` as sntkit's ``(B, n_state)`` from any layout users have it in.

    * ``None``: zeros, as torch's recurrent modules default to (needs ``batch``);
    * torch's ``(num_layers, B, H)`` (and ``(h0, c0)`` for an LSTM): layers stacked on the unit
      axis, ``cat(h^1..h^L[, c^1..c^L])`` (the adapter's state layout);
    * ``(B, n_state)``: unchanged.
    """
    if h0 is None:
        if batch is None:
            raise ValueError(
                "h0=None (zeros) needs the batch size from inputs; an autonomous model needs an "
                f"explicit h0 of shape (B, {cell.n_state})"
            )
        return torch.zeros(batch, cell.n_state, dtype=dtype, device=device)
    if isinstance(h0, tuple | list):
        if not (isinstance(cell, TorchRecurrent) and cell.kind == "LSTM" and len(h0) == 2):
            raise ValueError(
                "h0 as a tuple is only torch's (h0, c0) of an nn.LSTM; pass one tensor of shape "
                f"(B, {cell.n_state})"
            )
        return torch.cat([_stack_layers(cell, h) for h in h0], dim=-1)
    if isinstance(h0, torch.Tensor) and h0.ndim == 3 and isinstance(cell, TorchRecurrent):
        if cell.kind == "LSTM":
            raise ValueError(
                "an nn.LSTM's initial state in torch's layout is the pair (h0, c0), each "
                f"(num_layers={cell.num_layers}, B, {cell.n_hidden}); pass h0=(h0, c0) or "
                "h0=None for zeros"
            )
        return _stack_layers(cell, h0)
    return h0


def _stack_layers(cell: TorchRecurrent, h: torch.Tensor) -> torch.Tensor:
    """Stack torch's ``(num_layers, B, H)`` into ``(B, num_layers·H)`` (layers on the units)."""
    L, H = cell.num_layers, cell.n_hidden
    if not isinstance(h, torch.Tensor) or h.ndim != 3 or h.shape[0] != L or h.shape[2] != H:
        shape = tuple(h.shape) if isinstance(h, torch.Tensor) else type(h).__name__
        raise ValueError(
            f"h0 has shape {shape}; torch's layout for this {cell.module_name} is "
            f"(num_layers={L}, B, hidden_size={H})"
        )
    return h.permute(1, 0, 2).reshape(h.shape[1], L * H)
