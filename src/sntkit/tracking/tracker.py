"""sNTK and bifurcation tracking for any training loop (paper 000 §2–3, paper 004 §5).

``tracker = Tracker(model, h0=h0, inputs=x, every=50)``; in the loop,
``tracker.step(step, loss=loss.item())``. At a check (every ``every`` steps, denser after an
event when ``fine_every`` is set) it builds the state-space NTK ``NTK_S = J J^*`` of ``model``
on the fixed probe batch ``(h0, inputs)`` at the current parameters (never modifying them) and
records, per ``metrics``:

* ``"ranks"``: stable rank ``tr A / λ_max`` and participation rank ``(tr A)² / ‖A‖_F²`` of
  ``A`` = the smaller of ``NTK_S`` and the Fisher ``F = J^* J`` (same nonzero spectrum), with
  jackknife error bars (``*_err``, :func:`sntkit.linalg.effective_rank`, ``rank_matvecs``);
  ``λ_max`` is the warm-started top eigenvalue below;
* ``"eigenvalues"``: the top ``top_k`` eigenvalues ``eig_0 ≥ … `` of ``A``, warm-started: a
  Rayleigh–Ritz step on ``span(X, A X)`` of the previous check's eigenvectors ``X`` (``2k``
  products) is accepted when every Ritz residual is ``≤ eig_tol · θ_1``, else the block Krylov
  :func:`sntkit.linalg.eigsh` runs from scratch;
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

import math
import time
import warnings
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from sntkit.dynamics.monitor import BifurcationMonitor, nonfinite
from sntkit.linalg import effective_rank, eigsh, trace
from sntkit.linalg.eigen import rayleigh_ritz
from sntkit.linalg.orthogonal import orth_against
from sntkit.models.resolve import resolve_model
from sntkit.ntk.state_ntk import StateNTK, state_ntk
from sntkit.operators import Operator

METRICS = ("ranks", "eigenvalues", "views", "spectral_radius", "fixed_points")


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
        A subset of :data:`METRICS` (default: all).
    top_k, eig_tol:
        Number of eigenvalues and the relative residual of their solve.
    rank_matvecs:
        Probe budget of each rank estimate.
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
    monitor_kwargs:
        Further arguments of :class:`~sntkit.dynamics.BifurcationMonitor` (``init_scale``,
        ``num_inits``, ``recurrent_weight``, ``finder_kwargs``, ...).
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
        metrics: Sequence[str] = METRICS,
        top_k: int = 5,
        eig_tol: float = 1e-3,
        rank_matvecs: int = 32,
        sinks: Iterable[Any] = (),
        fixed_point_input: torch.Tensor | None = None,
        dtype: torch.dtype | None = None,
        path: str = "auto",
        seed: int = 0,
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
            **dict(monitor_kwargs or {}),
        )
        self.rows: list[dict[str, Any]] = []
        self.events: list[dict[str, Any]] = []
        self._eigvecs: torch.Tensor | None = None
        self.warm_hits = 0

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
        ntk = self._ntk()
        row: dict[str, Any] = {"step": step, "loss": loss}
        op = ntk.spectral_operator
        if "eigenvalues" in self.metrics or "ranks" in self.metrics:
            values = self.top_eigenvalues(op)
            if "eigenvalues" in self.metrics:
                row |= {f"eig_{i}": float(v) for i, v in enumerate(values)}
            if "ranks" in self.metrics:
                row |= self._ranks(op, float(values[0]))
        if "views" in self.metrics:
            row |= self._views(ntk)
        events: list[dict[str, Any]] = []
        if "fixed_points" in self.metrics:
            fp_row, found = self.monitor.check(step, params, loss=loss, trajectory=ntk.states)
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

    def top_eigenvalues(self, op: Operator) -> torch.Tensor:
        """Top ``top_k`` eigenvalues of ``op``, warm-started from the previous eigenvectors."""
        k = min(self.top_k, op.size_in)
        X = self._eigvecs
        if X is not None and X.shape == (k, *op.shape_in):
            Q = orth_against(torch.cat([X.reshape(k, -1), _flat(op.matmat(X))]), None)
            AQ = _flat(op.matmat(Q.reshape(-1, *op.shape_in)))
            theta, _, V, residual = rayleigh_ritz(Q @ AQ.T, Q, AQ, k)
            if len(theta) >= k and bool((residual <= self.eig_tol * theta[0].abs()).all()):
                self._eigvecs = V.reshape(k, *op.shape_in)
                self.warm_hits += 1
                return theta[:k]
        values, vectors = eigsh(op, k, tol=self.eig_tol, seed=self.seed)
        self._eigvecs = vectors
        return values

    def _ranks(self, op: Operator, lam_max: float) -> dict[str, float]:
        tr = trace(op, num_matvecs=self.rank_matvecs, seed=self.seed)
        part = effective_rank(op, "participation", self.rank_matvecs, seed=self.seed)
        scale = max(lam_max, torch.finfo(torch.float64).tiny)
        return {
            "stable_rank": tr.value / scale,
            "stable_rank_err": tr.stderr / scale,
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


def _flat(X: torch.Tensor) -> torch.Tensor:
    return X.reshape(X.shape[0], -1)


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
