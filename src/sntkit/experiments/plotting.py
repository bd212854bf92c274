"""Figures for the reproductions: the :mod:`~sntkit.experiments.style`, Agg, PNG + PDF.

Figures are ``matplotlib.figure.Figure`` objects on an Agg canvas, made without ``pyplot``:
importing this module does not switch the backend of an interactive session, no display is
needed, and figures made in different threads (in-process sweeps) do not share pyplot state.

    fig, ax = figure(1, 2)                      # ax is a 2-D array of axes
    line(ax[0, 0], steps, rank, err=rank_err, label="stable rank")
    mark_events(ax[0, 0], [e["step"] for e in run.events])
    ax[0, 0].set(xlabel="step", ylabel="stable rank")
    save(fig, run.path("fig1_training"))        # fig1_training.png and .pdf, atomically

:data:`STYLE` is applied when the figure is created and again when it is saved (tick labels,
gridlines), and :func:`save` gives texts left at matplotlib's default sizes (labels, titles,
legends created after :func:`figure`) the style's sizes; sizes set explicitly are kept.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib as mpl
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties

from sntkit.experiments.io import save_figure
from sntkit.experiments.style import COLORS, STYLE, style, tidy_log_ticks

__all__ = [
    "COLORS",
    "STYLE",
    "figure",
    "line",
    "mark_events",
    "save",
    "style",
]


def figure(
    nrows: int = 1, ncols: int = 1, *, width: float = 3.2, height: float = 2.6, **kw: Any
) -> tuple[Figure, np.ndarray]:
    """Return a figure of ``nrows × ncols`` panels of ``width × height`` inches, sntkit style.

    Returns ``(fig, axes)`` with ``axes`` always a 2-D array; ``kw`` go to ``Figure.subplots``
    (``sharex``, ``gridspec_kw``, ...).
    """
    with style():
        fig = Figure(figsize=(width * ncols, height * nrows))
        FigureCanvasAgg(fig)
        axes = fig.subplots(nrows, ncols, squeeze=False, **kw)
        for ax in axes.flat:
            ax.grid(True, alpha=STYLE["grid.alpha"], linewidth=STYLE["grid.linewidth"])
    return fig, axes


def _sizes() -> dict[str, float]:
    rc = mpl.rcParams

    def pt(size: Any) -> float:
        return FontProperties(size=size).get_size_in_points()

    return {
        "label": pt(rc["axes.labelsize"]),
        "title": pt(rc["axes.titlesize"]),
        "legend": pt(rc["legend.fontsize"]),
    }


def _restyle_texts(fig: Figure) -> None:
    default = _sizes()
    with style():
        target = _sizes()
    for ax in fig.axes:
        texts = {
            "label": [ax.xaxis.label, ax.yaxis.label],
            "title": [ax.title],
        }
        legend = ax.get_legend()
        if legend is not None:
            texts["legend"] = list(legend.get_texts())
            if legend.get_title().get_text():
                texts["legend"].append(legend.get_title())
            if legend.get_frame_on() == mpl.rcParams["legend.frameon"]:
                legend.set_frame_on(STYLE["legend.frameon"])
        for kind, items in texts.items():
            for text in items:
                if abs(text.get_fontproperties().get_size_in_points() - default[kind]) < 1e-9:
                    text.set_fontsize(target[kind])


def save(fig: Figure, stem: str | Path, *, dpi: int | None = None) -> list[Path]:
    """Style, lay out and save ``fig`` as ``STEM.png`` and ``STEM.pdf`` (each atomically).

    Returns the two paths. The figure is released afterwards (``pyplot`` figures are closed).
    """
    _restyle_texts(fig)
    for ax in fig.axes:
        tidy_log_ticks(ax)
    with style():
        fig.tight_layout()
        paths = save_figure(fig, stem, dpi=dpi or STYLE["savefig.dpi"])
    if getattr(fig.canvas, "manager", None) is not None:  # made with pyplot
        import matplotlib.pyplot as plt

        plt.close(fig)
    return paths


def mark_events(
    ax: Any, steps: Sequence[float], *, color: str = "k", label: str | None = None, **kw: Any
) -> None:
    """Dashed vertical lines at event steps (the papers' bifurcation markers).

    ``label`` labels the first line only (one legend entry); ``kw`` go to ``axvline``.
    """
    opts = {"linestyle": "--", "linewidth": 0.8, "alpha": 0.7} | kw
    for i, s in enumerate(steps):
        ax.axvline(s, color=color, label=label if i == 0 else None, **opts)


def line(
    ax: Any,
    x: Any,
    y: Any,
    err: Any = None,
    *,
    label: str | None = None,
    color: str | None = None,
    **kw: Any,
) -> Any:
    """Plot ``y`` against ``x`` with a shaded ``y ± err`` band (when ``err`` is given).

    Non-finite values leave gaps. Returns the line.
    """
    (ln,) = ax.plot(x, y, label=label, color=color, **kw)
    if err is not None:
        y_, e_ = np.asarray(y, dtype=float), np.asarray(err, dtype=float)
        ax.fill_between(x, y_ - e_, y_ + e_, color=ln.get_color(), alpha=0.2, linewidth=0)
    return ln
