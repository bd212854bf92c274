"""Bifurcation-aware training: natural gradient only near a learned bifurcation (paper 000 §3).

SGD takes oversized steps where the sNTK collapses onto a few amplified modes — at a learned
bifurcation — and the low-rank state-space natural gradient tames exactly those modes. Away from
bifurcations it costs Fisher products for little gain. :class:`BifurcationAwarePolicy` reads the
tracker's rows (pass it as a sink: ``Tracker(..., sinks=[policy])``) and switches a
:class:`~sntkit.optim.StateSpaceNaturalGradient` on when a collapse is seen,

* the stable rank ``tr A / λ_max`` of the sNTK drops below ``stable_rank_below``, or
* a test function of the fixed point nearest the unit circle approaches 0:
  ``min(|det(J − I)|, |det(J + I)|, ||λ|² − 1|) < test_below`` (fold, flip, Neimark–Sacker),

and off again once a bifurcation event has been detected while on and the signal is gone (or
after ``max_on`` steps on without an event, so a false alarm does not keep it on). Switching on
invalidates the preconditioner's eigenpairs, so its next step refreshes them (warm-started from
the last basis when one exists).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, TypeGuard

from sntkit.optim.preconditioner import StateSpaceNaturalGradient

TESTS = ("fold_test", "flip_test", "neimark_sacker_test")


class BifurcationAwarePolicy:
    """Turns ``preconditioner`` on near a bifurcation and off after it (see module docstring).

    Parameters
    ----------
    preconditioner:
        The natural-gradient preconditioner it switches (starts switched off).
    stable_rank_below:
        Collapse threshold of the sNTK stable rank (``None``: not used).
    test_below:
        Threshold of the smallest ``|test function|`` (``None``: not used).
    max_on:
        Most training steps it stays on without an event.
    """

    def __init__(
        self,
        preconditioner: StateSpaceNaturalGradient,
        *,
        stable_rank_below: float | None = None,
        test_below: float | None = 0.05,
        max_on: int = 500,
    ) -> None:
        if not isinstance(preconditioner, StateSpaceNaturalGradient):
            raise TypeError(
                "preconditioner must be a StateSpaceNaturalGradient, got "
                f"{type(preconditioner).__name__}"
            )
        if stable_rank_below is None and test_below is None:
            raise ValueError("give stable_rank_below, test_below or both")
        for v, name in ((stable_rank_below, "stable_rank_below"), (test_below, "test_below")):
            if v is not None and not v > 0:
                raise ValueError(f"{name} must be positive or None, got {v}")
        self.preconditioner = preconditioner
        self.stable_rank_below = stable_rank_below
        self.test_below = test_below
        self.max_on = max_on
        self.on_since: int | None = None
        self.event_seen = False
        #: ``(step, "on" | "off", reason)`` of every switch
        self.switches: list[tuple[int, str, str]] = []
        preconditioner.enabled = False

    def signal(self, row: Mapping[str, Any]) -> str:
        """Why ``row`` looks like a collapse (``""`` if it does not)."""
        rank = row.get("stable_rank")
        if self.stable_rank_below is not None and _finite(rank) and rank < self.stable_rank_below:
            return f"stable rank {rank:.3g} < {self.stable_rank_below}"
        if self.test_below is not None:
            tests = [abs(row[k]) for k in TESTS if _finite(row.get(k))]
            if tests and min(tests) < self.test_below:
                return f"test function {min(tests):.3g} < {self.test_below}"
        return ""

    def log(self, row: Mapping[str, Any]) -> None:
        """Update from one tracker row (the sink interface)."""
        if row.get("warning"):
            return
        step = int(row["step"])
        why = self.signal(row)
        pre = self.preconditioner
        if self.on_since is None:
            if why:
                pre.enabled = True
                pre.invalidate()
                self.on_since, self.event_seen = step, bool(row.get("num_events"))
                self.switches.append((step, "on", why))
            return
        self.event_seen |= bool(row.get("num_events"))
        if (self.event_seen and not why) or step - self.on_since >= self.max_on:
            pre.enabled = False
            reason = "event passed" if self.event_seen else f"no event in {self.max_on} steps"
            self.switches.append((step, "off", reason))
            self.on_since, self.event_seen = None, False

    def state_dict(self) -> dict[str, Any]:
        """Return the switch state and history (for resuming)."""
        return {
            "on_since": self.on_since,
            "event_seen": self.event_seen,
            "switches": [list(s) for s in self.switches],
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict`."""
        self.on_since = state.get("on_since")
        self.event_seen = bool(state.get("event_seen", False))
        self.switches = [tuple(s) for s in state.get("switches", [])]
        self.preconditioner.enabled = self.on_since is not None


def _finite(v: Any) -> TypeGuard[float]:
    return isinstance(v, int | float) and math.isfinite(v)
