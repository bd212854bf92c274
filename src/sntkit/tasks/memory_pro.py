"""The Memory-Pro task (paper 004 §5.1, App. A.2.1; Driscoll et al. 2024).

A trial has three fixed-length periods — stimulus, memory, response (30 steps each by default,
``nt = 90``). Channel layout, for inputs and targets alike: ``[fixation, cos θ, sin θ]``.

* inputs: the fixation channel is 1 during stimulus and memory and 0 in the response period
  (the go cue); ``(cos θ, sin θ)`` with ``θ ~ U[0, 2π)`` is shown only during the stimulus;
* targets: the fixation output follows the fixation input; ``(cos θ, sin θ)`` must be reproduced
  during the response period and is 0 before (sntkit's choice where the paper is silent);
* every step and channel is scored (the mask is all ones; a mask is returned for custom losses);
* training inputs get Gaussian noise of variance ``noise_var = 3.2`` on every input channel
  (std ≈ 1.79; the paper's text — the authors' code uses std 0.1·√2, variance 0.02, drawn once
  for a fixed training set); evaluation inputs are noise-free.

``MemoryPro.fixed_angles(n, seed)`` draws the paper's fixed set of 5,000 task inputs;
:meth:`MemoryPro.batch` builds a batch from given angles (fresh noise each call).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch


@dataclass(frozen=True)
class TaskBatch:
    """Inputs ``(B, T, 3)``, targets ``(B, T, 3)``, mask ``(B, T, 3)`` and the angles ``(B,)``."""

    inputs: torch.Tensor
    targets: torch.Tensor
    mask: torch.Tensor
    theta: torch.Tensor


@dataclass(frozen=True)
class MemoryPro:
    """Memory-Pro with fixed period lengths (see module docstring)."""

    stimulus: int = 30
    memory: int = 30
    response: int = 30
    noise_var: float = 3.2

    def __post_init__(self) -> None:
        for name in ("stimulus", "memory", "response"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1 step, got {getattr(self, name)}")
        if self.noise_var < 0:
            raise ValueError(f"noise_var must be >= 0, got {self.noise_var}")

    @property
    def steps(self) -> int:
        """Return ``T``, the trial length (stimulus + memory + response)."""
        return self.stimulus + self.memory + self.response

    @property
    def response_start(self) -> int:
        """Return the first step of the response period."""
        return self.stimulus + self.memory

    def fixed_angles(self, n: int = 5000, seed: int = 0) -> torch.Tensor:
        """``n`` angles ``θ ~ U[0, 2π)`` (the paper's fixed set of task inputs)."""
        g = torch.Generator().manual_seed(seed)
        return 2 * math.pi * torch.rand(n, generator=g, dtype=torch.float64)

    def batch(
        self,
        theta: torch.Tensor,
        *,
        train: bool,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str = "cpu",
    ) -> TaskBatch:
        """Inputs/targets for angles ``theta`` (noise only when ``train``)."""
        B, T, go = theta.shape[0], self.steps, self.response_start
        x = torch.zeros(B, T, 3, dtype=torch.float64)
        y = torch.zeros(B, T, 3, dtype=torch.float64)
        cs = torch.stack([torch.cos(theta), torch.sin(theta)], -1).double()
        x[:, :go, 0] = 1.0
        x[:, : self.stimulus, 1:] = cs[:, None]
        y[:, :go, 0] = 1.0
        y[:, go:, 1:] = cs[:, None]
        if train and self.noise_var > 0:
            x = x + math.sqrt(self.noise_var) * torch.randn(
                x.shape, generator=generator, dtype=torch.float64
            )
        kw: dict[str, Any] = {"dtype": dtype, "device": device}
        return TaskBatch(x.to(**kw), y.to(**kw), torch.ones(B, T, 3, **kw), theta.to(**kw))

    def sample(
        self,
        batch: int,
        *,
        generator: torch.Generator | None = None,
        train: bool = True,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str = "cpu",
    ) -> TaskBatch:
        """Return a batch of fresh random angles."""
        theta = 2 * math.pi * torch.rand(batch, generator=generator, dtype=torch.float64)
        return self.batch(theta, train=train, generator=generator, dtype=dtype, device=device)
