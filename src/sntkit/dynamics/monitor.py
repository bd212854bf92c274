"""Tracking fixed points and bifurcations during training (paper 000 §2, Fig. 1).

A :class:`BifurcationMonitor` is called by a training loop at checks. At each check it finds the
model's fixed points (warm-started from the previous check's points and from states of the
current trajectory), records a metrics row — loss, number of stable/unstable fixed points,
spectral radius of the recurrent weight, the Jacobian eigenvalue closest to the unit circle
and whatever ``extra_metrics(params)`` returns (e.g. sNTK ranks with error bars) — and, when the
fixed-point signature changed since the previous check (a sign change of ``det(J − I)``,
``det(J + I)`` or ``|λ|² − 1`` of a complex pair, or a pair of points born or lost), locates the
event on the straight parameter path between the two checks by bisection and classifies it
(:mod:`sntkit.dynamics.bifurcations`). After an event the check interval can shrink to
``fine_every`` for ``fine_window`` steps.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch

from sntkit.dynamics.bifurcations import Bifurcation, Signature, locate
from sntkit.dynamics.fixed_points import FixedPoints, find_fixed_points, linearize
from sntkit.models.cell import Cell
from sntkit.models.torch_adapter import as_cell

ExtraMetrics = Callable[[dict[str, torch.Tensor]], Mapping[str, float]]


class BifurcationMonitor:
    """Fixed points, stability counts and bifurcation events along training (see module)."""

    def __init__(
        self,
        model: Cell | torch.nn.Module,
        *,
        x: torch.Tensor | None = None,
        every: int = 50,
        fine_every: int | None = None,
        fine_window: int = 0,
        tol: float = 1e-3,
        recurrent_weight: str | None = "W",
        extra_metrics: ExtraMetrics | None = None,
        num_inits: int = 64,
        init_scale: float = 1.0,
        seed: int = 0,
    ) -> None:
        if every < 1:
            raise ValueError(f"every must be >= 1, got {every}")
        self.cell = as_cell(model)
        self.x = x
        self.every = every
        self.fine_every = fine_every or every
        self.fine_window = fine_window
        self.tol = tol
        self.recurrent_weight = recurrent_weight
        self.extra_metrics = extra_metrics
        self.num_inits = num_inits
        self.init_scale = init_scale
        self.seed = seed
        self.prev: tuple[int, dict[str, torch.Tensor], Signature] | None = None
        self.last_event_step: int | None = None
        self.events: list[Bifurcation] = []

    # ------------------------------------------------------------------ scheduling
    def due(self, step: int) -> bool:
        """Whether ``step`` is a check (every ``every`` steps, denser after an event)."""
        fine = self.last_event_step is not None and step - self.last_event_step <= self.fine_window
        return step % (self.fine_every if fine else self.every) == 0

    # ------------------------------------------------------------------ checks
    def fixed_points(
        self,
        params: Mapping[str, torch.Tensor],
        trajectory: torch.Tensor | None = None,
        extra: torch.Tensor | None = None,
    ) -> FixedPoints:
        """Fixed points at ``params``, warm-started from the previous check (and ``extra``)."""
        g = torch.Generator().manual_seed(self.seed)
        N = self.cell.n_state
        inits = [self.init_scale * torch.randn(self.num_inits, N, generator=g, dtype=torch.float64)]
        if self.prev is not None and len(self.prev[2].points):
            warm = self.prev[2].points.locations
            inits.append(warm + 1e-3 * torch.randn(warm.shape, generator=g, dtype=torch.float64))
        if trajectory is not None:
            flat = trajectory.detach().reshape(-1, N).to(torch.float64).cpu()
            idx = torch.randint(0, flat.shape[0], (self.num_inits,), generator=g)
            inits.append(flat[idx])
        if extra is not None:
            inits.append(extra)
        return find_fixed_points(self.cell, self.x, torch.cat(inits), params=params)

    def check(
        self,
        step: int,
        params: Mapping[str, torch.Tensor],
        *,
        loss: float | None = None,
        trajectory: torch.Tensor | None = None,
    ) -> tuple[dict[str, Any], list[Bifurcation]]:
        """Record one check; returns the metrics row and the events since the previous check."""
        p = {k: v.detach().to(torch.float64).cpu() for k, v in params.items()}
        fps = self.fixed_points(p, trajectory)
        sig = Signature.of(fps)
        events: list[Bifurcation] = []
        if self.prev is not None and self.prev[2].differs(sig):
            prev_step, prev_params, prev_sig = self.prev
            warm = torch.cat([prev_sig.points.locations, fps.locations])
            found = locate(self.cell, prev_params, p, x=self.x, tol=self.tol, warm=warm)
            for ev in found:
                ev.step = round(prev_step + ev.s * (step - prev_step))
                ev.extra = {"check_before": prev_step, "check_after": step}
                events.append(ev)
            # the end points were re-solved from both sides' points: keep the better set
            fps = _richer(fps, self.fixed_points(p, trajectory, extra=warm))
            sig = Signature.of(fps)
        if events:
            self.last_event_step = step
            self.events.extend(events)
        row = {"step": step, "loss": loss, **self.fixed_point_metrics(fps, p)}
        if self.extra_metrics is not None:
            row.update(self.extra_metrics(p))
        self.prev = (step, p, sig)
        return row, events

    def fixed_point_metrics(
        self, fps: FixedPoints, params: Mapping[str, torch.Tensor]
    ) -> dict[str, Any]:
        """Counts, spectral radius of the recurrent weight and the eigenvalue nearest |λ| = 1."""
        row: dict[str, Any] = {
            "num_fixed_points": len(fps),
            "num_stable": fps.num_stable,
            "num_unstable": fps.num_unstable,
        }
        if self.recurrent_weight and self.recurrent_weight in params:
            W = params[self.recurrent_weight]
            if W.ndim == 2 and W.shape[0] == W.shape[1]:
                row["spectral_radius"] = float(torch.linalg.eigvals(W).abs().max())
        if len(fps):
            dist = (fps.eigvals.abs() - 1).abs()
            i, j = divmod(int(dist.argmin()), dist.shape[1])
            lam = fps.eigvals[i, j]
            row |= {
                "critical_eig_real": float(lam.real),
                "critical_eig_imag": float(lam.imag),
                "critical_eig_abs": float(lam.abs()),
                "max_fp_eig_abs": float(fps.eigvals.abs().max()),
            }
        return row

    # ------------------------------------------------------------------ resume
    def state_dict(self) -> dict[str, Any]:
        if self.prev is None:
            return {"prev": None, "last_event_step": self.last_event_step}
        step, params, sig = self.prev
        return {
            "prev": {"step": step, "params": params, "locations": sig.points.locations},
            "last_event_step": self.last_event_step,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.last_event_step = state.get("last_event_step")
        prev = state.get("prev")
        if prev is None:
            self.prev = None
            return
        params = {k: v.to(torch.float64) for k, v in prev["params"].items()}
        fps = linearize(self.cell, params, prev["locations"].to(torch.float64), self._x64())
        self.prev = (int(prev["step"]), params, Signature.of(fps))

    def _x64(self) -> torch.Tensor | None:
        if self.x is not None:
            return self.x.detach().to(torch.float64)
        if self.cell.n_input:
            return torch.zeros(self.cell.n_input, dtype=torch.float64)
        return None


def _richer(a: FixedPoints, b: FixedPoints) -> FixedPoints:
    """The result with more fixed points (a second solve may find one the first missed)."""
    return b if len(b) > len(a) else a
