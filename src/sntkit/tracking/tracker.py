"""sNTK and bifurcation tracking for any training loop (paper 000 §2–3, paper 004 §5).

``tracker = Tracker(model, h0=h0, inputs=x, every=50)``; in the loop,
``tracker.step(step, loss=loss.item())``. At a check (every ``every`` steps, denser after an
event when ``fine_every`` is set) it builds the state-space NTK ``NTK_S = J J^*`` of ``model``
on the fixed probe batch ``(h0, inputs)`` at the current parameters (never modifying them) and
records, per ``metrics``:

* ``"ranks"``: stable rank ``tr A / λ_max`` and participation rank ``(tr A)² / ‖A‖_F²`` of
  ``A`` = the smaller of ``NTK_S`` and the Fisher ``F = J^* J`` (same nonzero spectrum), with
  jackknife error bars (``*_err``); ``λ_max`` is the top eigenvalue below;
* ``"eigenvalues"``: the top ``top_k`` eigenvalues ``eig_0 ≥ …`` of ``A`` with error estimates
  ``eig_i_err``.

  Both come from **one** block product per check (:func:`sntkit.linalg.warm_sketch`): ``A``
  applied to the previous check's ``top_k`` eigenvector estimates and to
  ``rank_matvecs`` sign probes deflated off them gives the trace and ``‖A‖_F²`` (deflated
  Hutchinson), the Ritz values with their error estimates, and the next check's eigenvector
  estimates (one power step). When an error estimate exceeds ``eig_tol · eig_0`` (the top
  eigenspace moved too far since the last check) the block Krylov :func:`sntkit.linalg.eigsh`
  solves afresh; the first check always does;
* ``"views"``: participation ranks of the temporal ``tr_N(NTK_S)/N`` and spatial
  ``tr_{B,T}(NTK_S)/(BT)`` views with error bars (:meth:`~sntkit.ntk.StateNTK.
  view_participation`);
* ``"spectral_radius"`` and ``"fixed_points"``: the :class:`~sntkit.dynamics.
  BifurcationMonitor` (fixed points warm-started from the previous check, stability counts,
  test functions ``det(J − I)``, ``det(J + I)``, ``|λ|² − 1`` of the point nearest the unit
  circle, bifurcation events located between checks).

Each row also has ``seconds`` (the check's wall time) and ``num_events``. NaN/inf parameters or
loss give a row with ``warning`` (and a ``RuntimeWarning``) and nothing else: no events are
invented from a diverged model. Rows go to the sinks (:mod:`sntkit.tracking.sinks`).
"""

from __future__ import annotations

import functools
import math
import time
import warnings
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from sntkit.dynamics.monitor import BifurcationMonitor, nonfinite
from sntkit.linalg import eigsh, warm_sketch
from sntkit.models.resolve import resolve_model
from sntkit.ntk.state_ntk import StateNTK, state_ntk
from sntkit.operators import Operator

METRICS = ("ranks", "eigenvalues", "views", "spectral_radius", "fixed_points")
#: what a check computes unless ``metrics`` says otherwise: all but the views, whose separate
#: probes would double a check's cost (benchmarks/tracker_bench.py)
DEFAULT_METRICS = ("ranks", "eigenvalues", "spectral_radius", "fixed_points")


class Tracker:
    """Checks of the sNTK, fixed points and bifurcations inside a training loop (see module).

    Parameters
    ----------
    model:
        The model, as :func:`sntkit.ntk.state_ntk` accepts it: an sntkit cell, a
        ``torch.nn.RNN``/``GRU``/``LSTM``, or a wrapper module holding one of them (found by
        :func:`~sntkit.models.resolve_model`; fixed points are those of that recurrent module).
        Read, never modified.
    h0, inputs, steps:
        The fixed probe batch: ``h0`` ``(B, N)`` (or torch's ``(num_layers, B, N)``; ``None``:
        zeros, as torch does); ``inputs`` ``(B, T, n_in)`` or ``steps=T``.
    recurrent:
        Name of the recurrent submodule when a wrapper holds several.
    every, fine_every, fine_window:
        Check interval; denser interval for ``fine_window`` steps after an event.
    metrics:
        A subset of :data:`METRICS` (default :data:`DEFAULT_METRICS`: all but ``"views"``).
    top_k, eig_tol:
        Number of eigenvalues and their accepted relative error.
    rank_matvecs:
        Sign probes per check of the trace and ``‖A‖_F²`` (the ranks' error bars shrink as
        ``1/sqrt(rank_matvecs)``).
    sinks:
        Sinks (``CSVSink``, ``ParquetSink``, a ``SummaryWriter``, an sntkit ``Run``, a callable).
    fixed_point_input:
        Constant input ``x`` ``(n_in,)`` under which fixed points are taken (default zero).
    dtype:
        Compute dtype of the sNTK (default: that of ``h0``, else of the model).
    path:
        :func:`~sntkit.ntk.state_ntk` path (``"unrolled"`` is cheapest for a few probes).
    seed:
        Seed of every randomized estimate (the same probes at every check).
    explore_every:
        Full fixed-point search at every ``explore_every``-th check, following the known points
        between them (:class:`~sntkit.dynamics.BifurcationMonitor`; ``1``: every check). A
        check costs a few SGD steps that way instead of tens.
    monitor_kwargs:
        Further arguments of :class:`~sntkit.dynamics.BifurcationMonitor` (``init_scale``,
        ``num_inits``, ``tol``, ``recurrent_weight``, ``finder_kwargs``, ...), over
        :meth:`monitor_defaults`.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        h0: torch.Tensor | None = None,
        inputs: torch.Tensor | None = None,
        steps: int | None = None,
        recurrent: str | None = None,
        every: int = 50,
        fine_every: int | None = None,
        fine_window: int = 0,
        metrics: Sequence[str] = DEFAULT_METRICS,
        top_k: int = 3,
        eig_tol: float = 1e-3,
        rank_matvecs: int = 16,
        sinks: Iterable[Any] = (),
        fixed_point_input: torch.Tensor | None = None,
        dtype: torch.dtype | None = None,
        path: str = "auto",
        seed: int = 0,
        explore_every: int = 5,
        monitor_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        from sntkit.tracking.sinks import as_sink

        if not isinstance(model, nn.Module):
            raise TypeError(
                "model must be a torch module (an sntkit cell, torch.nn.RNN/GRU/LSTM, or a "
                f"wrapper holding one), got {type(model).__name__}"
            )
        if h0 is not None and not isinstance(h0, torch.Tensor):
            raise TypeError(
                f"h0 must be a tensor of initial states or None, got {type(h0).__name__}"
            )
        self.recurrent = resolve_model(model, recurrent).recurrent
        _check_settings(inputs is None and steps is None, metrics, top_k, rank_matvecs)
        self.model, self.recurrent_name = model, recurrent
        self.h0 = None if h0 is None else h0.detach()
        self.inputs, self.steps = inputs, steps
        self.metrics = tuple(metrics)
        self.top_k, self.eig_tol, self.rank_matvecs = top_k, eig_tol, rank_matvecs
        self.dtype, self.path = dtype, path
        self._ntk()  # shape errors of h0/inputs now, not at the first check
        self.seed = seed
        self.sinks = [as_sink(s) for s in sinks]
        # the monitor is built even without "fixed_points": it owns the schedule and the
        # recurrent-weight detection; only "fixed_points" calls its (expensive) check
        self.monitor = BifurcationMonitor(
            self.recurrent,
            x=fixed_point_input,
            every=every,
            fine_every=fine_every,
            fine_window=fine_window,
            seed=seed,
            **(self.monitor_defaults(every, explore_every) | dict(monitor_kwargs or {})),
        )
        self.rows: list[dict[str, Any]] = []
        self.events: list[dict[str, Any]] = []
        self._eigvecs: torch.Tensor | None = None
        self.warm_hits = 0

    @staticmethod
    def monitor_defaults(every: int, explore_every: int) -> dict[str, Any]:
        """Return the monitor settings a tracker uses unless ``monitor_kwargs`` overrides them.

        Cheaper than :class:`~sntkit.dynamics.BifurcationMonitor`'s own defaults, which serve
        one-off analyses: 16 random states per full search (the trajectory's states and the
        known points do most of the finding) and events located to 0.2 training steps
        (``tol = 0.2 / every`` on the path between two checks) instead of ``1e-3`` of it.
        """
        return {"explore_every": explore_every, "num_inits": 16, "tol": min(1e-2, 0.2 / every)}

    # ------------------------------------------------------------------ loop API
    def due(self, step: int) -> bool:
        """Whether ``step`` is a check."""
        return self.monitor.due(step)

    def step(self, step: int, loss: float | torch.Tensor | None = None) -> dict[str, Any] | None:
        """Check at ``step`` if due; returns the row (``None`` if no check was due)."""
        if not isinstance(step, int):
            raise TypeError(f"step must be an int (the training step), got {type(step).__name__}")
        if step < 0:
            raise ValueError(f"step must be >= 0, got {step}")
        if not self.due(step):
            return None
        return self.check(step, loss)

    def check(self, step: int, loss: float | torch.Tensor | None = None) -> dict[str, Any]:
        """One check now (whatever the schedule); the row is also sent to every sink."""
        t0 = time.perf_counter()
        if isinstance(loss, torch.Tensor):
            loss = float(loss.detach())
        params = {k: v.detach() for k, v in self.recurrent.named_parameters()}
        everything = {k: v.detach() for k, v in self.model.named_parameters()}
        problem = nonfinite(everything, loss)
        if problem:
            msg = f"step {step}: {problem}; sNTK and fixed points skipped (diverged training?)"
            warnings.warn(msg, RuntimeWarning, stacklevel=3)
            return self._emit({"step": step, "loss": loss, "warning": msg}, [])
        # the sNTK (and its trajectory) is built only when a metric or a full fixed-point
        # search needs it: at the probe batch's size the build costs about an SGD step
        ntk = functools.cache(self._ntk)
        row: dict[str, Any] = {"step": step, "loss": loss}
        if "eigenvalues" in self.metrics or "ranks" in self.metrics:
            spectrum = self.spectrum(ntk().spectral_operator)
            row |= {k: v for k, v in spectrum.items() if _wanted(k, self.metrics)}
        if "views" in self.metrics:
            row |= self._views(ntk())
        events: list[dict[str, Any]] = []
        if "fixed_points" in self.metrics:
            fp_row, found = self.monitor.check(
                step, params, loss=loss, trajectory=lambda: ntk().states
            )
            row |= {k: v for k, v in fp_row.items() if k not in ("step", "loss")}
            events = [e.to_dict() for e in found]
        elif "spectral_radius" in self.metrics:
            p64 = {k: v.to(torch.float64) for k, v in params.items()}
            row |= self.monitor.spectral_radii(p64)
        row["num_events"] = len(events)
        row["seconds"] = time.perf_counter() - t0
        return self._emit(row, events)

    # ------------------------------------------------------------------ estimates
    def _ntk(self) -> StateNTK:
        return state_ntk(
            self.model,
            self.h0,
            self.inputs,
            self.steps,
            recurrent=self.recurrent_name,
            dtype=self.dtype,
            path=self.path,
        )

    def spectrum(self, op: Operator) -> dict[str, float]:
        """Top eigenvalues and ranks of ``op`` from one warm-started block (module docstring)."""
        k = max(1, min(self.top_k, op.size_in - 2))
        p = min(self.rank_matvecs, op.size_in - k)
        warm = self._eigvecs is not None and self._eigvecs.shape == (k, *op.shape_in)
        if not warm:
            self._eigvecs = eigsh(op, k, tol=self.eig_tol, seed=self.seed)[1]
        sketch = warm_sketch(op, k, p, self._eigvecs, seed=self.seed)
        values, errors = sketch.eigenvalues, sketch.errors
        if bool((errors <= self.eig_tol * values[0].abs()).all()):
            self._eigvecs = sketch.basis
            self.warm_hits += warm
        else:  # the top eigenspace moved too far for one power step: solve afresh
            values, self._eigvecs = eigsh(op, k, tol=self.eig_tol, seed=self.seed)
            errors = torch.full_like(values, self.eig_tol * float(values[0].abs()))
        top = max(float(values[0]), torch.finfo(torch.float64).tiny)
        tr, part = sketch.trace, sketch.participation
        row = {f"eig_{i}": float(v) for i, v in enumerate(values)}
        row |= {f"eig_{i}_err": float(e) for i, e in enumerate(errors)}
        return row | {
            "stable_rank": tr.value / top,
            "stable_rank_err": tr.stderr / top,
            "participation_rank": part.value,
            "participation_rank_err": part.stderr,
        }

    def _views(self, ntk: StateNTK) -> dict[str, float]:
        out = {}
        samples = max(2, self.rank_matvecs // 2)
        for name, keep in (("temporal", ("batch", "time")), ("spatial", ("unit",))):
            est = ntk.view_participation(keep, num_samples=samples, seed=self.seed)
            out[f"{name}_rank"], out[f"{name}_rank_err"] = est.value, est.stderr
        return out

    # ------------------------------------------------------------------ output
    def _emit(self, row: dict[str, Any], events: list[dict[str, Any]]) -> dict[str, Any]:
        self.rows.append(row)
        self.events += events
        for sink in self.sinks:
            sink.log(row)
            if hasattr(sink, "event"):
                for e in events:
                    sink.event(e)
        return row

    def close(self) -> None:
        """Flush and close sinks that can be closed."""
        for sink in self.sinks:
            if hasattr(sink, "close"):
                sink.close()

    # ------------------------------------------------------------------ resume
    def state_dict(self) -> dict[str, Any]:
        """Monitor state, warm-start vectors and rows (tensors, numbers, strings)."""
        return {
            "monitor": self.monitor.state_dict(),
            "eigvecs": self._eigvecs,
            "rows": [dict(r) for r in self.rows],
            "events": [dict(e) for e in self.events],
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict` (monitor, rows, events, warm start)."""
        self.monitor.load_state_dict(state["monitor"])
        self._eigvecs = state.get("eigvecs")
        self.rows = [dict(r) for r in state.get("rows", [])]
        self.events = [dict(e) for e in state.get("events", [])]


def _wanted(key: str, metrics: Sequence[str]) -> bool:
    return ("eigenvalues" if key.startswith("eig_") else "ranks") in metrics


def last_finite(rows: Sequence[Mapping[str, Any]], key: str) -> float:
    """Return the latest finite value of ``key`` among ``rows`` (NaN if none)."""
    for r in reversed(rows):
        v = r.get(key)
        if isinstance(v, int | float) and math.isfinite(v):
            return float(v)
    return math.nan


def _check_settings(no_batch: bool, metrics: Sequence[str], top_k: int, rank_matvecs: int) -> None:
    """``ValueError``/``TypeError`` naming the :class:`Tracker` argument to fix."""
    if no_batch:
        raise ValueError("give inputs (B, T, n_in) or steps=T for an autonomous model")
    if isinstance(metrics, str):
        raise TypeError(f"metrics must be a sequence of names from {METRICS}, not a string")
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise ValueError(f"unknown metrics {unknown}; choose from {METRICS}")
    if not isinstance(top_k, int) or top_k < 1:
        raise ValueError(f"top_k must be a positive int, got {top_k!r}")
    if not isinstance(rank_matvecs, int) or rank_matvecs < 4:
        raise ValueError(f"rank_matvecs must be an int >= 4, got {rank_matvecs!r}")
