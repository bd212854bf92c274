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
from typing import Any

import torch

from sntkit.dynamics.normal_forms import NORMAL_FORMS, figure2_data
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
