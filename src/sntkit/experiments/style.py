"""The one figure style of sntkit's reproductions: palette, rc settings, legends and ticks.

Every figure is made by :func:`sntkit.experiments.plotting.figure` in this style; the helpers
here keep the gallery readable beside the papers' figures:

* :func:`legend_outside` puts a panel's legend beside or below it, never on the data;
* :func:`grid_ticks` labels a (log) axis with plain numbers at the swept grid values, so that a
  log axis spanning less than a decade does not print overlapping ``2×10⁰ 3×10⁰ …`` labels;
* :func:`proxy` makes legend entries for encodings shared by several lines (a colour meaning
  "mode 1", a line style meaning "SGD"), so that every colour and style is explained.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import matplotlib as mpl
from cycler import cycler
from matplotlib.lines import Line2D
from matplotlib.ticker import (
    FixedFormatter,
    FixedLocator,
    FuncFormatter,
    NullFormatter,
    NullLocator,
)
from matplotlib.transforms import ScaledTranslation

if TYPE_CHECKING:
    from matplotlib.typing import LineStyleType, RcKeyType

__all__ = ["COLORS", "STYLE", "grid_ticks", "legend_outside", "proxy", "style", "tidy_log_ticks"]

#: Okabe–Ito colour-blind-safe palette
COLORS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000")

STYLE: dict[RcKeyType, Any] = {
    "figure.dpi": 110,
    "savefig.dpi": 150,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "axes.prop_cycle": cycler(color=COLORS),
    "grid.alpha": 0.3,
    "grid.linewidth": 0.6,
    "font.size": 9,
    "axes.titlesize": 9,
    "axes.labelsize": 9,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "legend.fontsize": 8,
    "legend.frameon": False,
    "lines.linewidth": 1.4,
    "pdf.fonttype": 42,  # editable text in the PDFs
}


#: distance from the bottom of a panel to a legend placed below it: tick labels and x label
_BELOW_GAP_INCHES = 0.5


@contextmanager
def style() -> Iterator[None]:
    """Return the sntkit style as a ``matplotlib.rc_context`` (for figures made some other way)."""
    with mpl.rc_context(STYLE):
        yield


def legend_outside(
    ax: Any, where: str = "right", *, handles: Sequence[Any] | None = None, **kw: Any
) -> Any:
    """Return a legend for ``ax`` placed outside its data area: ``where="right"`` or ``"below"``.

    ``handles`` (e.g. from :func:`proxy`) replace the panel's labelled artists; ``kw`` go to
    ``Axes.legend`` (``ncols``, ``title``, ...). ``plotting.save``'s tight layout makes room.
    """
    if where == "right":
        place = {"loc": "upper left", "bbox_to_anchor": (1.02, 1.0)}
    elif where == "below":  # a fixed physical gap clears the tick labels and the x label
        gap = ScaledTranslation(0.0, -_BELOW_GAP_INCHES, ax.figure.dpi_scale_trans)
        place = {
            "loc": "upper center",
            "bbox_to_anchor": (0.5, 0.0),
            "bbox_transform": ax.transAxes + gap,
        }
    else:
        raise ValueError(f"legend_outside: where must be 'right' or 'below', got {where!r}")
    extra = {} if handles is None else {"handles": list(handles)}
    return ax.legend(**extra, **(place | {"borderaxespad": 0.0} | kw))


def grid_ticks(ax: Any, values: Sequence[float], axis: str = "x") -> None:
    """Major ticks at ``values`` labelled as plain numbers (``0.25``, ``2``), no minor ticks.

    For log axes over swept grids: the default log locator labels minor ticks with
    ``2×10⁰ 3×10⁰ …`` when the range is under a decade, and the labels overlap.
    """
    if axis not in ("x", "y"):
        raise ValueError(f"grid_ticks: axis must be 'x' or 'y', got {axis!r}")
    ticks = sorted({float(v) for v in values})
    target = ax.xaxis if axis == "x" else ax.yaxis
    target.set_major_locator(FixedLocator(ticks))
    target.set_major_formatter(FixedFormatter([f"{v:g}" for v in ticks]))
    target.set_minor_locator(NullLocator())


def tidy_log_ticks(ax: Any) -> None:
    """Log axes of ``ax`` without crowded minor labels (``plotting.save`` calls it).

    Matplotlib labels every minor tick (``2×10³ 3×10³ … 9×10³``) of a log axis spanning about
    a decade or less; the labels then touch. Minor ticks keep no label when two powers of ten
    are in view, only those at 2 and 5 with one, and plain numbers (``4``, ``4.5``) with none.
    Axes set by :func:`grid_ticks` are left alone.
    """
    for axis, (lo, hi) in ((ax.xaxis, ax.get_xlim()), (ax.yaxis, ax.get_ylim())):
        if axis.get_scale() != "log" or isinstance(axis.get_major_locator(), FixedLocator):
            continue
        lo, hi = sorted((lo, hi))
        if lo <= 0:
            continue
        decades = math.floor(math.log10(hi)) - math.ceil(math.log10(lo)) + 1
        if decades >= 2:
            axis.set_minor_formatter(NullFormatter())
        elif decades == 1:
            axis.set_minor_formatter(FuncFormatter(_two_five))
        else:  # no power of ten in view: plain numbers at the minor ticks
            axis.set_minor_formatter(FuncFormatter(lambda x, pos=None: f"{x:g}"))


def _two_five(x: float, pos: int | None = None) -> str:
    """``2×10ⁿ`` and ``5×10ⁿ`` in mathtext; other values unlabelled."""
    if x <= 0:
        return ""
    exponent = math.floor(math.log10(x) + 1e-9)
    mantissa = round(x / 10**exponent, 6)
    return f"${mantissa:g}\\times10^{{{exponent}}}$" if mantissa in (2.0, 5.0) else ""


def proxy(
    label: str, *, color: str = "k", linestyle: LineStyleType = "-", marker: str = ""
) -> Line2D:
    """Return a legend entry (not drawn) for a colour, line style or marker shared by lines."""
    return Line2D([], [], color=color, linestyle=linestyle, marker=marker, label=label)
