"""Paper 004, Figure 5: space and time bottlenecks of the RNN's NTK_S (§5.3, App. A.2.2).

Student-teacher vanilla RNNs ``h' = tanh(W h + W_in x)`` (pre form, no bias), ``n_in = 16``,
``n = 64``, ``nt = 40``, batch 128, i.i.d. Gaussian inputs of controlled rank. Task ``W``: the
student equals the teacher except for ``W``, re-sampled (Xavier) with gain ``g`` and the only
trained parameter; task ``W_in``: likewise for the input weights. At initialization
``space-time-point`` measures the effective rank — the participation ratio
``(tr M)² / ‖M‖_F²`` — of the temporal view ``tr_N(NTK_S)/N`` (on batch × time), of the spatial
view ``tr_{B,T}(NTK_S)/(BT)`` (on units) and of ``NTK_S`` itself. The views are formed exactly
from the columns of ``J`` (``StateNTK.view_matrix``).

``space-time`` runs the grid task × gain × input rank through the Dask sweep runner and reports
the trends the paper describes: temporal rank rising with ``g`` then collapsing (task W), spatial
rank falling with ``g`` (task W), temporal rank growing with input rank (task W_in). With
``seeds = K > 1`` the seed is one more axis of that sweep and the summary holds every seed's
(:func:`~sntkit.experiments.sweep.summarize_seeds`; ``sntkit reproduce space-time --seeds K``).
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd
import torch

from sntkit.experiments import plotting, style
from sntkit.experiments.registry import register
from sntkit.experiments.run import Run
from sntkit.experiments.stats import spearman
from sntkit.experiments.sweep import run_sweep, seed_axis, summarize_seeds
from sntkit.linalg import effective_rank, participation_ratio
from sntkit.models.rnn import RNN
from sntkit.ntk import state_ntk
from sntkit.tasks.inputs import gaussian_inputs

POINT_SCALES = {
    "quick": {
        "n": 32,
        "n_in": 16,
        "steps_T": 20,
        "batch": 24,
        "gain": 1.0,
        "input_rank": 16,
        "task": "W",
        "overall_matvecs": 60,
    },
    "paper": {
        "n": 64,
        "n_in": 16,
        "steps_T": 40,
        "batch": 128,
        "gain": 1.0,
        "input_rank": 16,
        "task": "W",
        "overall_matvecs": 120,
    },
}


@register(
    "space-time-point",
    description="one point of paper 004 Fig. 5: temporal/spatial NTK ranks at init",
    scales=POINT_SCALES,
)
def space_time_point(config: dict[str, Any], run: Run) -> dict[str, Any]:
    """Run one point of paper 004 Fig. 5: temporal and spatial NTK ranks at init."""
    task = config["task"]
    if task not in ("W", "W_in"):
        from sntkit.experiments.errors import ConfigError

        raise ConfigError(f"task must be 'W' or 'W_in', got {task!r}")
    n, n_in, T, B = config["n"], config["n_in"], config["steps_T"], config["batch"]
    g = torch.Generator().manual_seed(config["seed"])
    teacher = RNN(n, n_in, form="pre", bias=False, generator=g, dtype=torch.float64)
    student = RNN(n, n_in, form="pre", bias=False, dtype=torch.float64)
    student.load_state_dict(teacher.state_dict())
    with torch.no_grad():
        p = getattr(student, task)
        std = config["gain"] * math.sqrt(2.0 / (p.shape[0] + p.shape[1]))
        p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64) * std)
    x = gaussian_inputs(B, T, n_in, config["input_rank"], generator=g, dtype=torch.float64)
    ntk = state_ntk(student, torch.zeros(B, n, dtype=torch.float64), x, trainable=[task])
    temporal = ntk.view_matrix(("batch", "time"))
    spatial = ntk.view_matrix(("unit",))
    overall = effective_rank(
        ntk.spectral_operator, "participation", config["overall_matvecs"], seed=config["seed"]
    )
    summary = {
        "task": task,
        "gain": config["gain"],
        "input_rank": config["input_rank"],
        "temporal_rank": participation_ratio(temporal),
        "spatial_rank": participation_ratio(spatial),
        "overall_rank": overall.value,
        "overall_rank_err": overall.stderr,
        "hidden_spectral_radius": float(torch.linalg.eigvals(student.W.detach()).abs().max()),
    }
    return run.finish(summary)


SCALES = {
    "quick": {
        "gains": [0.5, 1.0, 1.5, 2.5, 4.0],
        "input_ranks": [1, 4, 16],
        "point_scale": "quick",
        "point_settings": {},
        "workers": 2,
        "scheduler": "",
        "seeds": 1,
    },
    "paper": {
        "gains": [0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 3.0, 4.0],
        "input_ranks": [1, 2, 4, 8, 16],
        "point_scale": "paper",
        "point_settings": {},
        "workers": 2,
        "scheduler": "",
        "seeds": 1,
    },
}


@register(
    "space-time",
    description="paper 004 Fig. 5: NTK temporal/spatial ranks vs gain and input rank (Dask sweep)",
    scales=SCALES,
    seed_axis=True,
)
def space_time(config: dict[str, Any], run: Run) -> dict[str, Any]:
    """Run paper 004 Fig. 5: the ranks over gains and input ranks (a Dask sweep)."""
    seeds, fixed = seed_axis(config)
    grid = {"task": ["W", "W_in"], "gain": config["gains"], "input_rank": config["input_ranks"]}
    table = run_sweep(
        "space-time-point",
        grid | seeds,
        scale=config["point_scale"],
        base=config["point_settings"] | fixed,
        out=run.path("sweep"),
        scheduler=config["scheduler"] or None,
        workers=config["workers"],
    )
    for row in table.to_dict("records"):
        run.log(row)
    summary = summarize_seeds(run, config, {"sweep": table}, lambda t: _summary(t["sweep"], config))
    ok = table[table.status == "ok"]
    if seeds:  # the figure shows the median over the seeds
        ok = ok.groupby(["task", "gain", "input_rank"], as_index=False)[
            ["temporal_rank", "spatial_rank"]
        ].median()
    _figure(run, ok)
    return run.finish(summary)


def _summary(table: pd.DataFrame, config: dict[str, Any]) -> dict[str, Any]:
    """Compute Fig. 5's trends in one seed's table (``task``, ``gain``, ``input_rank``, ranks)."""
    ok = table[table.status == "ok"]
    summary: dict[str, Any] = {"points": len(table), "failed": int((table.status != "ok").sum())}
    full = max(config["input_ranks"])
    w = ok[(ok.task == "W") & (ok.input_rank == full)].sort_values("gain")
    if len(w):
        summary["task_W_gain_of_temporal_rank_peak"] = float(
            w.gain.iloc[int(w.temporal_rank.argmax())]
        )
        summary["task_W_temporal_rank_by_gain"] = dict(
            zip(w.gain.tolist(), w.temporal_rank.tolist(), strict=True)
        )
        summary["task_W_spatial_rank_by_gain"] = dict(
            zip(w.gain.tolist(), w.spatial_rank.tolist(), strict=True)
        )
        summary["task_W_spearman_spatial_rank_vs_gain"] = spearman(
            w.gain.tolist(), w.spatial_rank.tolist()
        )
    win = ok[ok.task == "W_in"]
    if len(win):
        summary["task_W_in_spearman_temporal_rank_vs_input_rank"] = spearman(
            win.input_rank.tolist(), win.temporal_rank.tolist()
        )
        summary["task_W_in_spearman_spatial_rank_vs_input_rank"] = spearman(
            win.input_rank.tolist(), win.spatial_rank.tolist()
        )
        by_rank = win.groupby("input_rank")
        summary["task_W_in_spatial_rank_relative_spread"] = float(
            (by_rank.spatial_rank.mean().max() - by_rank.spatial_rank.mean().min())
            / by_rank.spatial_rank.mean().mean()
        )
    return summary


def _figure(run: Run, ok: pd.DataFrame) -> None:
    fig, ax = plotting.figure(2, 2, width=3.2, height=2.6)
    for (task, col), a in zip(
        [
            ("W", "temporal_rank"),
            ("W", "spatial_rank"),
            ("W_in", "temporal_rank"),
            ("W_in", "spatial_rank"),
        ],
        ax.flat,
        strict=True,
    ):
        sub = ok[ok.task == task]
        for r, grp in sub.groupby("input_rank"):
            grp = grp.sort_values("gain")
            a.plot(grp.gain, grp[col], "o-", label=f"input rank {r}", markersize=3)
        a.set(
            xlabel="gain g",
            ylabel=col.replace("_", " "),
            title=f"train {task}: {col.split('_')[0]}",
        )
        a.set_xscale("log")
        style.grid_ticks(a, ok.gain.unique())
    style.legend_outside(ax[0, 1], title="inputs")
    plotting.save(fig, run.path("fig5_space_time"))
