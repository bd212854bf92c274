"""The Fisher of a whole data set, streamed over a ``DataLoader`` (paper 004 §3).

For batches ``D_1, …, D_m`` the global state of the data set is the concatenation of the
batches' global states, so its parameter Jacobian stacks the batches' Jacobians and ::

    F = J^* J = Σ_b J_b^* J_b                                  (on trained parameters, (P,))

with the same nonzero spectrum as the data set's ``NTK_S = J J^*`` (on all ``Σ B_b · T · N``
states). :func:`ntk_over` gives ``F`` as an operator whose application streams: for each probe
block it iterates over the loader, builds the batch's :class:`~sntkit.ntk.state_ntk.StateNTK`
(matrix-free path: a rollout, no stored Jacobians), applies ``J_b^* J_b`` and drops the batch, so
one batch is in memory at a time. Every estimator (``eigsh``, ``trace``, ``effective_rank``,
``frobenius_norm``, ...) runs on it unchanged; each application costs one pass over the data.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from sntkit.ntk.state_ntk import StateNTK, state_ntk
from sntkit.operators import FunctionOperator, Operator


class DatasetFisher:
    """``F = Σ_b J_b^* J_b`` over the batches of a loader (see module docstring).

    Attributes: ``fisher`` (the operator on ``(P,)``), ``num_params``, ``trainable`` and, after
    the first pass, ``num_batches`` and ``num_sequences``.
    """

    def __init__(
        self,
        loader: Iterable[Any],
        model: torch.nn.Module,
        output: bool,
        reduction: str,
        kwargs: dict[str, Any],
    ) -> None:
        self.loader, self.model, self.output = loader, model, output
        self.reduction = reduction
        self.kwargs = kwargs
        first = self._batch_ntk(next(iter(_batches(loader))))
        part = first.output if output else first
        self.num_params = part.num_params
        self.trainable = part.trainable
        self.dtype, self.device = first.states.dtype, first.states.device
        self.num_batches: int | None = None
        self.num_sequences: int | None = None

    def _batch_ntk(self, inputs: torch.Tensor) -> StateNTK:
        return state_ntk(self.model, inputs=inputs, **self.kwargs)

    def _apply(self, V: torch.Tensor) -> torch.Tensor:
        out = torch.zeros_like(V)
        batches = sequences = 0
        for inputs in _batches(self.loader):
            ntk = self._batch_ntk(inputs)
            part = ntk.output if self.output else ntk
            if part.num_params != self.num_params:
                raise ValueError(
                    "every batch must give the same trained parameters; got "
                    f"{part.num_params} instead of {self.num_params}"
                )
            out += part.fisher.matmat(V)
            batches += 1
            sequences += ntk.state_shape[0]
        self.num_batches, self.num_sequences = batches, sequences
        return out / sequences if self.reduction == "mean" else out

    @property
    def fisher(self) -> Operator:
        """``F`` on ``(P,)``: ``Σ_b J_b^* J_b`` (``reduction="sum"``) or that over the sequences."""
        return FunctionOperator(
            self._apply,
            None,
            (self.num_params,),
            (self.num_params,),
            dtype=self.dtype,
            device=self.device,
            batched=True,
            name="DatasetFisher",
        )


def ntk_over(
    loader: Iterable[Any],
    model: torch.nn.Module,
    *,
    output: bool = False,
    reduction: str = "sum",
    **kwargs: Any,
) -> DatasetFisher:
    """Return the Fisher (and so the NTK spectrum) of ``model`` over every batch of ``loader``.

    Parameters
    ----------
    loader:
        An iterable of batches (a ``torch.utils.data.DataLoader``), re-iterated at every
        application: each batch is an inputs tensor ``(B, T, n_in)`` or a tuple/list whose first
        item is (e.g. ``(x, y)``).
    model:
        Anything :func:`~sntkit.ntk.state_ntk.state_ntk` accepts (a wrapper, a torch RNN, a cell).
    output:
        Use the output NTK's Fisher (through the readout, readout parameters included) instead
        of the state NTK's.
    reduction:
        ``"sum"`` over sequences, or ``"mean"`` (divided by the number of sequences).
    kwargs:
        Passed to ``state_ntk`` for every batch (``trainable``, ``recurrent``, ``readout``,
        ``dtype``, ...; ``h0`` is zeros). ``path`` defaults to ``"matrix_free"`` (a batch is
        rebuilt at every application, so no set-up is worth storing).
    """
    if reduction not in ("sum", "mean"):
        raise ValueError(f"reduction must be 'sum' or 'mean', got {reduction!r}")
    if "h0" in kwargs or "inputs" in kwargs:
        raise TypeError("ntk_over takes inputs from the loader and starts from h0 = zeros")
    kwargs.setdefault("path", "matrix_free")
    return DatasetFisher(loader, model, output, reduction, kwargs)


def _batches(loader: Iterable[Any]) -> Iterable[torch.Tensor]:
    empty = True
    for batch in loader:
        empty = False
        inputs = batch[0] if isinstance(batch, tuple | list) else batch
        if not isinstance(inputs, torch.Tensor):
            raise TypeError(
                "each batch must be an inputs tensor (B, T, n_in) or a tuple whose first item "
                f"is one, got {type(inputs).__name__}"
            )
        yield inputs
    if empty:
        raise ValueError("the loader yielded no batches")
