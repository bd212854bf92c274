"""Paper 000, Figure 2: rank-one sNTK amplification of codimension-one normal forms.

``sntkit reproduce normal-forms`` evaluates ``‖sNTK_g‖_2 = ‖D_g h‖²`` over ``g`` for every form of
:mod:`sntkit.dynamics.normal_forms`, for initial conditions ``h_0 ~ U[−0.05, 0.05]`` and
``U[−0.1, 0.1]`` and ``T = 30``; writes the curves (``metrics.parquet``: one row per form, range
and ``g``), ``fig2_normal_forms`` and ``summary.json`` (per form and range: the ``g`` of the peak
over the finite part of the curve, peak / value at ``g*``, whether the curve is monotone past
``g*``, and the fraction of the grid where orbits escape to infinity).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch

from sntkit.dynamics.normal_forms import NORMAL_FORMS, NormalForm
from sntkit.experiments import plotting, style
from sntkit.experiments.registry import register
from sntkit.experiments.run import Run

SCALES = {
    "quick": {"g_min": 0.5, "g_max": 1.5, "num_g": 61, "T": 30, "batch": 128},
    "paper": {"g_min": 0.5, "g_max": 1.5, "num_g": 201, "T": 30, "batch": 256},
}


@register(
    "normal-forms",
    description="paper 000 Fig. 2: sNTK_g amplification at codimension-one normal forms",
    scales=SCALES,
)
def normal_forms(config: dict[str, Any], run: Run) -> dict[str, Any]:
    """Run paper 000 Fig. 2: ``‖sNTK_g‖`` of the codimension-one normal forms."""
    g = torch.linspace(config["g_min"], config["g_max"], config["num_g"], dtype=torch.float64)
    data = figure2_data(g_values=g, T=config["T"], batch=config["batch"], seed=config["seed"])
    summary: dict[str, Any] = {}
    for name, entry in data.items():
        for a, r in entry["ranges"].items():
            for gv, val in zip(entry["g"], r["norm"], strict=True):
                run.log({"form": name, "h0_range": float(a), "g": gv, "sntk_g_norm": val})
        summary[name] = {
            "description": entry["description"],
            **{
                f"range_{a}": {k: v for k, v in r.items() if k != "norm"}
                for a, r in entry["ranges"].items()
            },
        }
    _figure(run, data)
    return run.finish(summary)


def _figure(run: Run, data: dict) -> None:
    names = list(data)
    cols = 4
    rows = math.ceil(len(names) / cols)
    fig, axes = plotting.figure(rows, cols, width=2.8, height=2.3)
    for ax, name in zip(axes.flat, names, strict=False):
        entry = data[name]
        for a, r in entry["ranges"].items():
            vals = torch.tensor(r["norm"], dtype=torch.float64)
            finite = torch.isfinite(vals)
            g = torch.tensor(entry["g"])
            ax.semilogy(g[finite], vals[finite], label=f"$h_0 \\sim U[-{a}, {a}]$")
        ax.axvline(
            NORMAL_FORMS[name].g_star, color="k", linestyle="--", linewidth=0.8, label="$g^*$"
        )
        ax.set(title=NORMAL_FORMS[name].kind, xlabel="g", ylabel="‖sNTK$_g$‖")
    spare = list(axes.flat)[len(names) :]
    for ax in spare:
        ax.axis("off")
    handles, _ = axes.flat[0].get_legend_handles_labels()
    if spare:  # the legend takes the first empty panel
        spare[0].legend(handles=handles, loc="center")
    else:
        style.legend_outside(axes[0, -1], handles=handles)
    plotting.save(fig, run.path("fig2_normal_forms"))


def figure2_data(
    forms: Sequence[str] | None = None,
    *,
    g_values: torch.Tensor | None = None,
    ranges: Sequence[float] = (0.05, 0.1),
    T: int = 30,
    batch: int = 256,
    seed: int = 0,
) -> dict[str, dict]:
    """``‖sNTK_g‖_2`` over ``g`` for each form and initial-condition range (paper 000 Fig. 2).

    Every form is evaluated on the same grid, by default ``g ∈ [0.5, 1.5]`` (101 points,
    ``g* = 1`` in the middle). Initial conditions are ``h_0 ~ U[−a, a]^dim`` for each ``a`` in
    ``ranges`` (``batch`` of them, one draw per ``a`` from ``seed``).

    Returns ``{form: {"g", "g_star", "description", "ranges": {str(a): summary},
    "bounded": {str(a): {"norm", "escaped_fraction"}}}}`` where ``summary`` holds

    * ``norm``: the curve (``inf`` where some orbit escapes);
    * ``value_at_gstar``: ``‖sNTK_g‖`` at exactly ``g*``;
    * ``g_peak``, ``peak``: the maximum over the finite part of the curve and where it is;
    * ``peak_over_gstar``: ``peak / value_at_gstar`` (``nan`` if that is infinite);
    * ``monotone_past_gstar``: the finite curve never decreases for ``g > g*`` (the stability
      flip's signature); ``peaked``: the maximum is interior (not at either end of the finite
      part of the grid) and the curve falls below half of it by the end (self-regulation);
    * ``escaped_fraction_of_grid``: the fraction of grid points with an escaping orbit;
    * ``g_peak_bounded``, ``peak_over_gstar_bounded``, ``peaked_bounded``: the same from the
      sum over the bounded orbits only (``bounded``), informative for the forms whose quadratic
      normal form lets half of the orbits run off (saddle-node, transcritical).
    """
    names = list(NORMAL_FORMS) if forms is None else list(forms)
    unknown = [n for n in names if n not in NORMAL_FORMS]
    if unknown:
        raise ValueError(f"unknown normal forms {unknown}; choose from {list(NORMAL_FORMS)}")
    if g_values is None:
        g_values = torch.linspace(0.5, 1.5, 101, dtype=torch.float64)
    g_values = torch.as_tensor(g_values, dtype=torch.float64).reshape(-1)
    if T < 1 or batch < 1:
        raise ValueError(f"T and batch must be >= 1, got T={T}, batch={batch}")
    return {
        name: _form_entry(NORMAL_FORMS[name], g_values, ranges, T, batch, seed) for name in names
    }


def _form_entry(
    nf: NormalForm, g_values: torch.Tensor, ranges: Sequence[float], T: int, batch: int, seed: int
) -> dict:
    """One form's entry of :func:`figure2_data`: the curve and its summary per range."""
    grid = torch.cat([g_values, torch.tensor([nf.g_star], dtype=torch.float64)])
    entry: dict = {
        "g": g_values.tolist(),
        "g_star": nf.g_star,
        "description": nf.description,
        "ranges": {},
        "bounded": {},
    }
    for a in ranges:
        gen = torch.Generator().manual_seed(seed)
        h0 = (2 * torch.rand(batch, nf.dim, generator=gen, dtype=torch.float64) - 1) * a
        norm, bounded, escaped = nf.sntk_g_curve(grid, h0, T)
        summary = _curve_summary(g_values, norm[:-1], float(norm[-1]), nf.g_star)
        b_summary = _curve_summary(g_values, bounded[:-1], float(bounded[-1]), nf.g_star)
        summary["g_peak_bounded"] = b_summary["g_peak"]
        summary["peak_over_gstar_bounded"] = b_summary["peak_over_gstar"]
        summary["peaked_bounded"] = b_summary["peaked"]
        summary["escaped_fraction_of_grid"] = float(escaped[:-1].any(1).double().mean())
        entry["ranges"][str(a)] = {"norm": norm[:-1].tolist(), **summary}
        entry["bounded"][str(a)] = {
            "norm": bounded[:-1].tolist(),
            "escaped_fraction": escaped[:-1].double().mean(1).tolist(),
        }
    return entry


def _curve_summary(g: torch.Tensor, norm: torch.Tensor, at_star: float, g_star: float) -> dict:
    finite = torch.isfinite(norm)
    if not bool(finite.any()):
        nan = math.nan
        return {"value_at_gstar": at_star, "g_peak": nan, "peak": nan, "peak_over_gstar": nan,
                "monotone_past_gstar": None, "peaked": False}  # fmt: skip
    masked = torch.where(finite, norm, torch.full_like(norm, -math.inf))
    i = int(masked.argmax())
    first, last = int(finite.nonzero()[0, 0]), int(finite.nonzero()[-1, 0])
    past = norm[(g > g_star) & finite]
    return {
        "value_at_gstar": at_star,
        "g_peak": float(g[i]),
        "peak": float(norm[i]),
        "peak_over_gstar": float(norm[i]) / at_star if math.isfinite(at_star) else math.nan,
        "monotone_past_gstar": bool((past[1:] >= past[:-1]).all()) if past.numel() > 1 else None,
        "peaked": first < i < last and float(norm[last]) < 0.5 * float(norm[i]),
    }
