"""The trained parameters as one flat vector space ``R^P``."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping

import torch

Trainable = Iterable[str] | Callable[[str], bool] | None


class ParameterSpace:
    """Flatten/unflatten the trained subset of a parameter dict.

    ``trainable`` selects which parameters are trained (paper 004 §4.1: the core, and hence the
    NTK, depends on it): ``None`` for all, an iterable of names, or a predicate on names. The
    other parameters stay frozen at their values in ``params``.
    """

    def __init__(self, params: Mapping[str, torch.Tensor], trainable: Trainable = None) -> None:
        available = list(params)
        if trainable is None:
            names = available
        elif callable(trainable):
            names = [n for n in available if trainable(n)]
        else:
            if isinstance(trainable, str):
                raise TypeError(f"trainable must be a list of names, e.g. [{trainable!r}]")
            names = list(trainable)
            unknown = [n for n in names if n not in params]
            if unknown:
                raise ValueError(
                    f"trainable names {unknown} are not parameters of the model; available: "
                    f"{available}"
                )
            names = [n for n in available if n in set(names)]  # model order
        if not names:
            raise ValueError(f"no parameter is trainable; choose some of {available}")
        self.params = dict(params)
        self.names: tuple[str, ...] = tuple(names)
        self.shapes = {n: tuple(params[n].shape) for n in names}
        self.numels = {n: math.prod(self.shapes[n]) for n in names}
        self.size = sum(self.numels.values())
        first = params[names[0]]
        self.dtype, self.device = first.dtype, first.device

    def flatten(self, tensors: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Concatenate ``tensors[name]`` over the trained names into a ``(P,)`` vector."""
        missing = [n for n in self.names if n not in tensors]
        if missing:
            raise ValueError(f"flatten: missing entries {missing}")
        return torch.cat([tensors[n].reshape(-1) for n in self.names])

    def flatten_batch(self, tensors: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """``{name: (k, *shape)}`` -> ``(k, P)``."""
        k = tensors[self.names[0]].shape[0]
        return torch.cat([tensors[n].reshape(k, -1) for n in self.names], dim=1)

    def unflatten(self, vector: torch.Tensor) -> dict[str, torch.Tensor]:
        """Split ``(..., P)`` into tensors of shape ``(..., *param.shape)`` per trained name."""
        if vector.shape[-1] != self.size:
            raise ValueError(
                f"unflatten: expected a vector of size {self.size}, got {vector.shape}"
            )
        parts = vector.split([self.numels[n] for n in self.names], dim=-1)
        return {
            n: p.reshape(vector.shape[:-1] + self.shapes[n])
            for n, p in zip(self.names, parts, strict=True)
        }

    def merged(self, vector: torch.Tensor) -> dict[str, torch.Tensor]:
        """Return the full parameter dict with the trained entries replaced from ``vector``."""
        return self.params | self.unflatten(vector)

    def vector(self) -> torch.Tensor:
        """Return the current trained parameters as a ``(P,)`` vector."""
        return self.flatten(self.params)
