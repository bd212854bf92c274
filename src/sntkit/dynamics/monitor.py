"""Tracking fixed points and bifurcations during training (paper 000 §2, Fig. 1).

A :class:`BifurcationMonitor` is called by a training loop at *checks* (every ``every`` steps;
every ``fine_every`` steps for ``fine_window`` steps after an event). At each check it

1. finds the fixed points at the current parameters, warm-started from the previous check's
   points (plus random states and, if given, states of the current trajectory; midpoints only
   of pairs with a newly found point, see ``known`` of :func:`solve_fixed_points`), and matches
   them to the previous ones (location, then leading eigenvalues; greedy nearest pairs), so every
   point keeps a *track id* while it exists;
2. records a flat metrics row: ``loss`` (passed in), the number of fixed points and of stable /
   unstable / marginal ones, the spectral radius of the recurrent weight (parameter name
   ``recurrent_weight``; ``"auto"`` finds ``W`` of the sntkit RNN or the ``weight_hh*`` of gated
   cells and ``torch.nn`` modules, whose ``(G·N, N)`` stack gives one radius per gate block
   ``spectral_radius[name:g]``, and ``spectral_radius`` is the largest of them), the Jacobian
   eigenvalue closest to the unit circle
   over all points and the test functions ``det(J − I)``, ``det(J + I)`` and ``|λ|² − 1`` of its
   point (:meth:`FixedPoints.test_functions`), and whatever ``extra_metrics(params)`` returns
   (e.g. sNTK stable/participation ranks with error bars);
3. when the signature (number of points, signs of the test functions, number of ``|λ| > 1``)
   differs from the last *non-degenerate* check's (one with no eigenvalue within ``margin`` of
   the unit circle — a check landing exactly on a bifurcation is skipped as a bracket end, so one
   event is not split in two), locates the event on the straight path between the two checks'
   parameters by bisection to ``tol`` in ``s`` and classifies it
   (:mod:`sntkit.dynamics.bifurcations`). Events get the training step
   ``round(step_before + s (step − step_before))`` and record both checks' steps
   (``check_before``, ``check_after``); ``s`` refers to the path between them.

A check at NaN/inf parameters or loss (a diverged run) returns a row with a ``warning`` and no
events, warns, and leaves the previous check as the reference for the next one.

Per-point records (track id, location, label, critical eigenvalue, test functions) are kept in
:attr:`BifurcationMonitor.history`. The monitor works on parameter dicts only (no module is
built), so it can be fed interpolated or checkpointed parameters.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import torch

from sntkit.dynamics.bifurcations import (
    Bifurcation,
    Signature,
    default_finder,
    match_points,
    scan,
)
from sntkit.dynamics.fixed_points import (
    FixedPoints,
    constant_input,
    linearize,
    solve_fixed_points,
)
from sntkit.models.cell import Cell
from sntkit.models.torch_adapter import as_cell
from sntkit.operators.validation import positive_int

ExtraMetrics = Callable[[dict[str, torch.Tensor]], Mapping[str, Any]]
#: states ``(B, T, N)`` seeding a full search, or a function computing them only then
Trajectory = torch.Tensor | Callable[[], torch.Tensor] | None


class BifurcationMonitor:
    """Fixed points, stability counts and bifurcation events along training (see module).

    Parameters
    ----------
    model:
        The trained cell or torch.nn recurrent module (only its ``step`` is used).
    x:
        Constant input under which fixed points are taken (default: none / zero input).
    every, fine_every, fine_window:
        Check interval, and the denser interval used for ``fine_window`` steps after an event.
    tol:
        Bisection tolerance in the path coordinate ``s`` (``<= 1e-3`` recommended).
    recurrent_weight:
        Name of the recurrent weight whose spectral radius is recorded, ``"auto"`` (see the
        module docstring) or ``None`` (skip).
    extra_metrics:
        ``extra_metrics(params) -> dict`` merged into every row.
    num_inits, init_scale, seed:
        Random initial states ``N(0, init_scale²)`` added at every full search and their seed.
    explore_every:
        A full search (random and trajectory states, midpoints) at every ``explore_every``-th
        check; the checks between only follow the previous points by Newton (and ``h = 0``).
        A followed set whose signature differs from the previous check's triggers a full search
        at once, so events at known points (a point changing stability, a pitchfork from it)
        are bracketed by consecutive checks as with full searches. A point born far from the
        known ones is found only at the next full search, up to ``explore_every · every``
        steps late, and its event is then looked for between the last two checks only (the
        straight path between farther checks is not the training path). ``1`` (default):
        search fully every check.
    finder_kwargs:
        Extra arguments of :func:`~sntkit.dynamics.fixed_points.solve_fixed_points`.
    """

    def __init__(
        self,
        model: Cell | torch.nn.Module,
        *,
        x: torch.Tensor | None = None,
        every: int = 50,
        fine_every: int | None = None,
        fine_window: int = 0,
        tol: float = 1e-3,
        recurrent_weight: str | None = "auto",
        extra_metrics: ExtraMetrics | None = None,
        num_inits: int = 64,
        init_scale: float = 1.0,
        seed: int = 0,
        explore_every: int = 1,
        finder_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        if not isinstance(every, int) or every < 1:
            raise ValueError(f"every must be a positive int, got {every!r}")
        if fine_every is not None and (not isinstance(fine_every, int) or fine_every < 1):
            raise ValueError(f"fine_every must be a positive int or None, got {fine_every!r}")
        if fine_window < 0:
            raise ValueError(f"fine_window must be >= 0, got {fine_window}")
        if not 0 < tol < 1:
            raise ValueError(f"tol must be in (0, 1), got {tol}")
        positive_int(explore_every, "explore_every", "BifurcationMonitor")
        self.cell = as_cell(model)
        self.x = None if x is None else x.detach().to(torch.float64)
        self.every = every
        self.fine_every = fine_every or every
        self.fine_window = fine_window
        self.tol = tol
        self.recurrent_weight = recurrent_weight
        self.extra_metrics = extra_metrics
        self.num_inits = num_inits
        self.init_scale = init_scale
        self.seed = seed
        self.explore_every = explore_every
        self._checks = 0
        self._warned_radius = False
        # eigenvectors only where an event's normal form needs them (on first access)
        self.finder_kwargs = {"vectors": False} | dict(finder_kwargs or {})
        #: ``(step, params, signature)`` of the previous check
        self.prev: tuple[int, dict[str, torch.Tensor], Signature] | None = None
        #: the last check whose signature was not degenerate: events are located between it
        #: and the current check, so a check landing exactly on a bifurcation (``λ = 1``) does
        #: not split one event into two half-events
        self.anchor: tuple[int, dict[str, torch.Tensor], Signature] | None = None
        self.last_event_step: int | None = None
        self.events: list[Bifurcation] = []
        self.history: list[dict[str, Any]] = []
        self._ids: list[int] = []
        self._next_id = 0

    # ------------------------------------------------------------------ scheduling
    def due(self, step: int) -> bool:
        """Whether ``step`` is a check (every ``every`` steps, denser after an event)."""
        fine = self.last_event_step is not None and step - self.last_event_step <= self.fine_window
        return step % (self.fine_every if fine else self.every) == 0

    # ------------------------------------------------------------------ checks
    def fixed_points(
        self,
        params: Mapping[str, torch.Tensor],
        trajectory: Trajectory = None,
        extra: torch.Tensor | None = None,
    ) -> FixedPoints:
        """Return fixed points at ``params``, warm-started from the previous check and ``extra``."""
        g = torch.Generator().manual_seed(self.seed)
        N = self.cell.n_state
        inits = [self.init_scale * torch.randn(self.num_inits, N, generator=g, dtype=torch.float64)]
        known = None if self.prev is None else self.prev[2].points.locations
        if callable(trajectory):
            trajectory = trajectory()
        if trajectory is not None:
            flat = trajectory.detach().reshape(-1, N).to(torch.float64).cpu()
            idx = torch.randint(0, flat.shape[0], (self.num_inits,), generator=g)
            inits.append(flat[idx])
        if extra is not None:
            inits.append(extra.cpu())
        return solve_fixed_points(
            self.cell, params, self.x, torch.cat(inits), known=known, **self.finder_kwargs
        )

    def check(
        self,
        step: int,
        params: Mapping[str, torch.Tensor],
        *,
        loss: float | None = None,
        trajectory: Trajectory = None,
    ) -> tuple[dict[str, Any], list[Bifurcation]]:
        """Record one check; returns the metrics row and the events since the previous check.

        ``params`` are the model's parameters by name (copied; the model is not touched),
        ``trajectory`` optional states ``(B, T, N)`` to seed the search, or a function
        returning them (called only when the check searches fully, see ``explore_every``).
        """
        p = {
            k: v.detach().to(device="cpu", dtype=torch.float64, copy=True)
            for k, v in params.items()
        }
        problem = nonfinite(p, loss)
        if problem:
            msg = f"step {step}: {problem}; no fixed points or events recorded for this check"
            warnings.warn(msg, RuntimeWarning, stacklevel=2)
            return {"step": step, "loss": loss, "warning": msg}, []
        sig, full = self._search(p, trajectory)
        events: list[Bifurcation] = []
        anchor, prev = self.anchor, self.prev  # the anchor is an earlier check, so prev is set
        if (
            anchor is not None
            and prev is not None
            and not sig.degenerate
            and anchor[2].differs(sig)
        ):
            events, sig = self._scan_since(anchor, prev[2], step, p, sig)
        if events:
            self.last_event_step = step
            self.events.extend(events)
        self._record(step, sig)
        row = {"step": step, "loss": loss, "full_search": full}
        row |= self.fixed_point_metrics(sig.points, p)
        if self.extra_metrics is not None:
            row.update(self.extra_metrics(p))
        self.prev = (step, p, sig)
        if not sig.degenerate:
            self.anchor = self.prev
        return row, events

    def _scan_since(
        self,
        anchor: tuple[int, dict[str, torch.Tensor], Signature],
        last: Signature,
        step: int,
        p: dict[str, torch.Tensor],
        sig: Signature,
    ) -> tuple[list[Bifurcation], Signature]:
        """Return the events on the straight path from the anchor check to ``p``, the end's points.

        ``last`` is the previous check's signature (its points seed the search too).
        """
        prev_step, prev_params, prev_sig = anchor
        finder = default_finder(
            self.num_inits // 4, self.init_scale, self.seed, **self.finder_kwargs
        )
        path = scan(
            self.cell,
            prev_params,
            p,
            x=self.x,
            tol=self.tol,
            finder=finder,
            warm=torch.cat([s.points.locations for s in (prev_sig, last, sig)]),
        )
        events: list[Bifurcation] = []
        for ev in path.events:
            ev.step = round(prev_step + ev.s * (step - prev_step))
            ev.extra |= {"check_before": prev_step, "check_after": step}
            events.append(ev)
        # both ends were re-solved with each other's points: keep the richer sets
        return events, path.end if len(path.end) > len(sig) else sig

    def _search(self, p: dict[str, torch.Tensor], trajectory: Trajectory) -> tuple[Signature, bool]:
        """Return the check's signature and whether a full search made it (``explore_every``)."""
        count, self._checks = self._checks, self._checks + 1
        if self.prev is not None and self.anchor is not None and count % self.explore_every:
            kwargs = self.finder_kwargs | {"midpoints": 0, "vectors": False}
            known = self.prev[2].points.locations.cpu()
            followed = Signature.of(solve_fixed_points(self.cell, p, self.x, known, **kwargs))
            if not followed.degenerate and not self.anchor[2].differs(followed):
                return followed, False
        return Signature.of(self.fixed_points(p, trajectory)), True

    def fixed_point_metrics(
        self, fps: FixedPoints, params: Mapping[str, torch.Tensor]
    ) -> dict[str, Any]:
        """Return counts, recurrent-weight spectral radius, the eigenvalue nearest ``|λ| = 1``."""
        row: dict[str, Any] = {
            "num_fixed_points": len(fps),
            "num_stable": fps.num_stable,
            "num_unstable": fps.num_unstable,
            "num_marginal": fps.num_marginal,
        }
        row |= self.spectral_radii(params)
        if len(fps):
            near = fps.nearest_to_circle()
            i = int((near.abs() - 1).abs().argmin())
            lam = near[i]
            tests = fps.test_functions()
            row |= {
                "critical_eig_real": float(lam.real),
                "critical_eig_imag": float(lam.imag),
                "critical_eig_abs": float(lam.abs()),
                "max_fp_eig_abs": float(fps.spectral_radius().max()),
                "fold_test": float(tests["fold"][i]),
                "flip_test": float(tests["flip"][i]),
            }
            row["neimark_sacker_test"] = _finite_or_none(float(tests["neimark_sacker"][i]))
        return row

    def spectral_radii(self, params: Mapping[str, torch.Tensor]) -> dict[str, float]:
        """Spectral radius of the recurrent weight (per gate block for ``(G·N, N)`` stacks)."""
        want = self.recurrent_weight
        if want is None:
            return {}
        if want == "auto":
            names = ["W"] if "W" in params else [k for k in params if _RECURRENT.fullmatch(k)]
        else:
            names = [want] if want in params else []
        out: dict[str, float] = {}
        for name in names:
            W = params[name]
            if W.ndim != 2 or W.shape[0] % W.shape[1]:
                continue
            blocks = W.reshape(-1, W.shape[1], W.shape[1])
            radii = torch.linalg.eigvals(blocks).abs().amax(-1)
            if len(blocks) == 1 and len(names) == 1:
                out["spectral_radius"] = float(radii[0])
            else:
                out |= {f"spectral_radius[{name}:{g}]": float(r) for g, r in enumerate(radii)}
        if not out:
            if not self._warned_radius:
                warnings.warn(
                    f"no recurrent weight {want!r} of shape (N, N) or (G·N, N) among "
                    f"{sorted(params)}; pass recurrent_weight=<name> (or None to skip)",
                    RuntimeWarning,
                    stacklevel=3,
                )
                self._warned_radius = True
            return {}
        if "spectral_radius" not in out:
            out["spectral_radius"] = max(out.values())
        return out

    def _record(self, step: int, sig: Signature) -> None:
        """Assign track ids (matched to the previous check's points) and append to history."""
        fps = sig.points
        ids = [-1] * len(fps)
        if self.prev is not None:
            for i, j in match_points(self.prev[2].points, fps):
                if i < len(self._ids):
                    ids[j] = self._ids[i]
        for j in range(len(fps)):
            if ids[j] < 0:
                ids[j] = self._next_id
                self._next_id += 1
        self._ids = ids
        # whole tensors to Python at once: per-element reads cost a dispatch each
        tests = {k: v.tolist() for k, v in fps.test_functions().items()}
        near = fps.nearest_to_circle()
        near_re, near_im, locations = near.real.tolist(), near.imag.tolist(), fps.locations.tolist()
        self.history.append(
            {
                "step": step,
                "points": [
                    {
                        "id": ids[j],
                        "location": locations[j],
                        "label": fps.labels[j],
                        "critical_eigenvalue": [near_re[j], near_im[j]],
                        **{k: _finite_or_none(v[j]) for k, v in tests.items()},
                    }
                    for j in range(len(fps))
                ],
            }
        )

    # ------------------------------------------------------------------ resume
    def state_dict(self) -> dict[str, Any]:
        """Return what :meth:`load_state_dict` needs to continue identically (tensors, numbers)."""

        def pack(entry: tuple[int, dict[str, torch.Tensor], Signature] | None) -> dict | None:
            if entry is None:
                return None
            step, params, sig = entry
            return {"step": step, "params": params, "locations": sig.points.locations}

        return {
            "prev": pack(self.prev),
            "anchor": pack(self.anchor),
            "last_event_step": self.last_event_step,
            "track_ids": list(self._ids),
            "next_id": self._next_id,
            "checks": self._checks,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore a :meth:`state_dict` (fixed points are re-linearized, not searched again)."""
        self.last_event_step = state.get("last_event_step")
        self.prev = self._unpack(state.get("prev"))
        self.anchor = self._unpack(state.get("anchor", state.get("prev")))
        n = 0 if self.prev is None else len(self.prev[2])
        self._ids = list(state.get("track_ids", range(n)))
        self._next_id = int(state.get("next_id", n))
        self._checks = int(state.get("checks", 0))

    def _unpack(
        self, entry: Mapping[str, Any] | None
    ) -> tuple[int, dict[str, torch.Tensor], Signature] | None:
        if entry is None:
            return None
        params = {k: v.to(torch.float64) for k, v in entry["params"].items()}
        x = constant_input(self.cell, self.x)
        margin = self.finder_kwargs.get("margin", 1e-6)
        fps = linearize(self.cell, params, entry["locations"].to(torch.float64), x, margin)
        return int(entry["step"]), params, Signature.of(fps)


_RECURRENT = re.compile(r"weight_hh(_l\d+)?")


def nonfinite(params: Mapping[str, torch.Tensor], loss: float | None = None) -> str:
    """Return a description of NaN/inf parameters or loss (``""`` when everything is finite)."""
    bad = [k for k, v in params.items() if not bool(torch.isfinite(v).all())]
    parts = [f"non-finite parameters {bad}"] if bad else []
    if loss is not None and not math.isfinite(loss):
        parts.append(f"non-finite loss {loss}")
    return " and ".join(parts)


def _finite_or_none(v: float) -> float | None:
    """``None`` for NaN (the Neimark–Sacker test of a point without complex eigenvalues)."""
    return v if math.isfinite(v) else None
