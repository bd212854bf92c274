"""The student-teacher task of paper 000 (§2, App. B).

Teacher and student are 64-unit post-form tanh RNNs ``h_{t+1} = W tanh(h_t) + b`` (the form in
which fixed points are placed exactly, ``W tanh(x̄) = x̄``). Units 0 and 1 are the read-in and the
readout: each batch entry starts from a distinct initial condition in the ``(h_0, h_1)`` plane
(all other units 0) and the loss is the mean squared difference between the student's and the
teacher's readout trajectories over ``T`` steps. There are no inputs.

Choices where the paper is silent (documented in REPRODUCTION.md):

* initial conditions: a fixed batch drawn uniformly from ``[−ic_range, ic_range]²``
  (``ic_range = 2``, beyond the teacher's attractors at ±1.5), so training is full-batch GD;
* teacher: :func:`sntkit.dynamics.planar_teacher` (fixed points ``{−1.5, 0, 1.5}²`` on the
  readout plane: 4 stable, 5 unstable; ``W_⊥ = 0.5 ×`` Xavier restricted off the plane);
* student: Xavier-normal ``W`` times ``student_gain`` (0.85 by default, so that its spectral
  radius starts below 1 and the student has a single stable fixed point, as in the paper —
  with gain 1 the radius exceeds 1 for most seeds) and bias ``b ~ N(0, 1/n)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from sntkit.dynamics.construction import planar_teacher
from sntkit.models.rnn import RNN

READOUT = (0, 1)

#: Sizes and optimizer of App. B (64 units, batch 256, T = 25, full-batch SGD lr 5e-3), shared
#: by the reproductions built on this task
APP_B = {"n": 64, "batch": 256, "steps_T": 25, "lr": 5e-3}


@dataclass
class StudentTeacherTask:
    """Teacher, initial conditions and target readout trajectories (see module docstring)."""

    teacher: RNN
    h0: torch.Tensor  # (B, n)
    targets: torch.Tensor  # (B, T, 2)
    steps: int

    @classmethod
    def build(
        cls,
        n: int = 64,
        batch: int = 256,
        steps: int = 25,
        *,
        ic_range: float = 2.0,
        teacher_scale: float = 1.5,
        perp_gain: float = 0.5,
        seed: int = 0,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str = "cpu",
    ) -> StudentTeacherTask:
        """Return the task of the module docstring for ``seed`` (teacher, batch, targets)."""
        g = torch.Generator().manual_seed(10_000 + seed)
        teacher = planar_teacher(
            n, scale=teacher_scale, perp_gain=perp_gain, generator=g, dtype=dtype
        )
        teacher = teacher.to(device)
        h0 = torch.zeros(batch, n, dtype=dtype)
        h0[:, list(READOUT)] = (2 * torch.rand(batch, 2, generator=g) - 1).to(dtype) * ic_range
        h0 = h0.to(device)
        with torch.no_grad():
            targets = teacher(h0, steps=steps)[..., list(READOUT)]
        return cls(teacher, h0, targets, steps)

    def loss(self, model: RNN) -> torch.Tensor:
        """MSE between the model's and the teacher's readout trajectories."""
        out = model(self.h0, steps=self.steps)[..., list(READOUT)]
        return (out - self.targets).square().mean()


def make_student(
    n: int = 64,
    *,
    gain: float = 0.85,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
) -> RNN:
    """Return a post-form tanh RNN with Xavier-normal ``W`` times ``gain`` and ``b ~ N(0, 1/n)``."""
    g = torch.Generator().manual_seed(seed)
    student = RNN(n, 0, form="post", gain=gain, generator=g, dtype=dtype)
    with torch.no_grad():
        student.b.copy_((torch.randn(n, generator=g) / math.sqrt(n)).to(dtype))
    return student.to(device)
