"""Shared matplotlib set-up for the reproduction figures (Agg backend, no display needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from sntkit.experiments.io import save_figure

STYLE = {
    "figure.dpi": 110,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "font.size": 9,
    "legend.fontsize": 8,
    "legend.frameon": False,
}


def figure(nrows: int = 1, ncols: int = 1, *, width: float = 3.2, height: float = 2.6, **kw: Any):
    """A figure with ``nrows × ncols`` panels of the given size (inches) in the sntkit style."""
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(
            nrows, ncols, figsize=(width * ncols, height * nrows), squeeze=False, **kw
        )
    return fig, axes


def save(fig: Any, stem: str | Path) -> list[Path]:
    """Save as PNG and PDF (atomically) and close the figure."""
    fig.tight_layout()
    paths = save_figure(fig, stem)
    plt.close(fig)
    return paths


def mark_events(ax: Any, steps: list[float], **kw: Any) -> None:
    """Dashed vertical lines at event steps (the paper's bifurcation markers)."""
    for s in steps:
        ax.axvline(s, color=kw.get("color", "k"), linestyle="--", linewidth=0.8, alpha=0.7)
