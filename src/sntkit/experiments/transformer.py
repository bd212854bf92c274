"""Paper 004, Figures 6, 9 and 10: the input bottleneck of a self-attention block's NTK_S.

``transformer-point`` builds :class:`sntkit.models.AttentionMLP` (attention width ``n_attn``,
3-layer MLP of ``n_mlp`` units, ``n_out = 1``, ``heads`` heads) at initialization, feeds it
i.i.d. ``N(0, 1)`` inputs ``(n_x, nt, n_in)`` — or, with ``fourier > 0``, a scalar ``N(0, 1)``
signal through the deterministic Fourier-feature embedding with ``fourier`` frequencies — and
measures the participation ratio ``(tr M)²/‖M‖_F²`` of the temporal view (batch × time) and the
spatial view (units) of ``NTK_S`` with the matrix-free two-probe estimator
(:meth:`~sntkit.ntk.views.GlobalStateViews.view_participation`) and of ``NTK_S`` itself, each
with an error bar. With ``save_modes`` it also stores the dominant temporal modes
(eigenvectors of the temporal view, each an ``n_x × nt`` array, scaled by √eigenvalue).

``block="torch_encoder"`` runs the same measurements on ``torch.nn.TransformerEncoderLayer``
(through :mod:`sntkit.models.torch_transformer`) instead of ``AttentionMLP``.

``transformer`` runs the panels through the Dask sweep runner: temporal rank vs input dimension
for ``n_x ∈ {5, 10, 15}`` (Fig. 6B), dominant temporal modes for ``n_in = 1`` and the largest
``n_in`` (Fig. 6C), the Fourier-feature sweep (Fig. 6D), heads (Fig. 10) and input dimension ×
attention width (Fig. 9), all on one Dask client (a ``LocalCluster`` of ``workers``, or the
scheduler at ``scheduler``). With ``seeds = K > 1`` the seed is one more axis of every panel's
sweep and the summary holds every seed's (:func:`~sntkit.experiments.sweep.summarize_seeds`;
``sntkit reproduce transformer --seeds K``); the figures show the first seed.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import pandas as pd
import torch

from sntkit.experiments import plotting, style
from sntkit.experiments.io import load_checkpoint, save_checkpoint
from sntkit.experiments.registry import register
from sntkit.experiments.run import Run
from sntkit.experiments.stats import spearman
from sntkit.experiments.sweep import run_sweep, seed_axis, summarize_seeds
from sntkit.linalg import effective_rank
from sntkit.models.transformer import AttentionMLP
from sntkit.ntk import feedforward_ntk
from sntkit.tasks.inputs import fourier_features

if TYPE_CHECKING:
    from matplotlib.typing import LineStyleType

POINT_SCALES = {
    "quick": {
        "n_in": 5, "n_x": 10, "steps_T": 30, "n_attn": 32, "n_mlp": 64, "heads": 1,
        "fourier": 0, "save_modes": False, "overall_matvecs": 48, "view_samples": 48,
        "block": "attention_mlp", "bias_sites": True,
    },
    "paper": {
        "n_in": 5, "n_x": 10, "steps_T": 50, "n_attn": 64, "n_mlp": 128, "heads": 1,
        "fourier": 0, "save_modes": False, "overall_matvecs": 96, "view_samples": 96,
        "block": "attention_mlp", "bias_sites": True,
    },
}  # fmt: skip


@register(
    "transformer-point",
    description="one point of paper 004 Figs. 6/9/10: attention-block NTK ranks at init",
    scales=POINT_SCALES,
    signed=("fourier",),
)
def transformer_point(config: dict[str, Any], run: Run) -> dict[str, Any]:
    """Run one point of paper 004 Figs. 6/9/10: attention-block NTK ranks at init."""
    g = torch.Generator().manual_seed(config["seed"])
    B, T = config["n_x"], config["steps_T"]
    if config["fourier"] > 0:
        signal = torch.randn(B, T, 1, generator=g, dtype=torch.float64)
        x = fourier_features(signal, config["fourier"])
    else:
        x = torch.randn(B, T, config["n_in"], generator=g, dtype=torch.float64)
    model, block_inputs = _block(config, x, g)
    # bias_sites=false: biases frozen, so the constant state entries they multiply leave K
    # (the test of Fig. 6C's explanation of its near-constant temporal modes)
    trainable = None if config["bias_sites"] else _weights(model)
    ntk = feedforward_ntk(model, block_inputs, trainable)
    # forming the exact temporal view costs O((BT)² N P); the two-probe estimator is cheap
    samples, seed = config["view_samples"], config["seed"]
    temporal = ntk.view_participation(("batch", "time"), num_samples=samples, seed=seed)
    spatial = ntk.view_participation(("unit",), num_samples=samples, seed=seed)
    overall = effective_rank(ntk.fisher, "participation", config["overall_matvecs"], seed=seed)
    mode_stats: dict[str, list[float]] = {}
    if config["save_modes"]:
        evals, evecs = torch.linalg.eigh(ntk.view_matrix(("batch", "time")).double())
        top = evecs[:, -8:].flip(1).T * evals[-8:].flip(0).clamp_min(0).sqrt()[:, None]
        save_checkpoint(
            run.path("temporal_modes.pt"),
            {"modes": top.reshape(8, B, T), "eigenvalues": evals.flip(0)},
        )
        modes = top[:3].reshape(3, B, T)
        within = (modes - modes.mean(2, keepdim=True)).square().sum((1, 2))
        mode_stats = {
            "temporal_mode_fractions": (evals.flip(0)[:3] / evals.sum()).tolist(),
            # 1 for a mode constant in time within every sequence
            "temporal_mode_time_constancy": (1 - within / modes.square().sum((1, 2))).tolist(),
        }
    summary = {
        **mode_stats,
        "input_dim": x.shape[-1],
        "temporal_rank": temporal.value,
        "temporal_rank_err": temporal.stderr,
        "spatial_rank": spatial.value,
        "spatial_rank_err": spatial.stderr,
        "overall_rank": overall.value,
        "overall_rank_err": overall.stderr,
        "num_params": ntk.num_params,
        "state_units": ntk.state_shape[-1],
    }
    return run.finish(summary)


BLOCKS = ("attention_mlp", "torch_encoder")


def _weights(model: torch.nn.Module) -> list[str]:
    """Names of the model's parameters that are not biases (``b_*``, ``*bias``)."""
    return [
        n
        for n, _ in model.named_parameters()
        if not (n.rsplit(".", 1)[-1].startswith("b_") or n.endswith("bias"))
    ]


def _block(config: dict[str, Any], x: torch.Tensor, g: torch.Generator) -> tuple[Any, torch.Tensor]:
    """Return the analysed block and its inputs.

    ``block="attention_mlp"``: sntkit's :class:`AttentionMLP`. ``block="torch_encoder"``: a
    ``torch.nn.TransformerEncoderLayer`` (``d_model = n_attn``, ``nhead = heads``,
    ``dim_feedforward = n_mlp``, torch's initialization seeded from the run's seed, analysed
    without dropout), fed the inputs through a fixed random embedding ``N(0, 1/n_in)`` of shape
    ``(n_attn, n_in)`` — its rank ``n_in`` keeps the input bottleneck of Fig. 6.
    """
    if config["block"] not in BLOCKS:
        raise ValueError(f"block must be one of {BLOCKS}, got {config['block']!r}")
    if config["block"] == "attention_mlp":
        model = AttentionMLP(
            x.shape[-1],
            n_attn=config["n_attn"],
            n_mlp=config["n_mlp"],
            heads=config["heads"],
            generator=g,
            dtype=torch.float64,
        )
        return model, x
    embed = torch.randn(config["n_attn"], x.shape[-1], generator=g, dtype=torch.float64)
    with torch.random.fork_rng():
        torch.manual_seed(config["seed"])
        layer = torch.nn.TransformerEncoderLayer(
            config["n_attn"],
            config["heads"],
            dim_feedforward=config["n_mlp"],
            dropout=0.0,
            batch_first=True,
            dtype=torch.float64,
        )
    return layer, x @ embed.T / x.shape[-1] ** 0.5


SCALES = {
    "quick": {
        "input_dims": [1, 2, 5, 10, 20, 50],
        "batches": [5, 10, 15],
        "fourier_features": [1, 2, 4, 8, 16],
        "heads": [1, 2, 4],
        "widths": [16, 32, 64],
        "grid_input_dims": [1, 5, 20],
        "point_scale": "quick",
        "point_settings": {},
        "workers": 2,
        "scheduler": "",
        "seeds": 1,
    },
    "paper": {
        "input_dims": [1, 2, 5, 10, 20, 50, 100],
        "batches": [5, 10, 15],
        "fourier_features": [1, 2, 4, 8, 16, 32],
        "heads": [1, 2, 4, 8],
        "widths": [16, 32, 64, 128],
        "grid_input_dims": [1, 5, 20, 50],
        "point_scale": "paper",
        "point_settings": {},
        "workers": 2,
        "scheduler": "",
        "seeds": 1,
    },
}


@register(
    "transformer",
    description="paper 004 Figs. 6, 9, 10: input-dimension bottleneck of attention-block NTKs",
    scales=SCALES,
    seed_axis=True,
)
def transformer(config: dict[str, Any], run: Run) -> dict[str, Any]:
    """Run paper 004 Figs. 6, 9, 10: the input-dimension bottleneck over a grid."""
    panels = {
        "fig6b": {"n_in": config["input_dims"], "n_x": config["batches"]},
        "fig6c": {"n_in": [1, max(config["input_dims"])], "save_modes": [True]},
        "fig6d": {"fourier": config["fourier_features"]},
        "fig10": {"heads": config["heads"], "n_in": config["grid_input_dims"]},
        "fig9": {"n_attn": config["widths"], "n_in": config["grid_input_dims"]},
    }
    seeds, fixed = seed_axis(config)
    tables: dict[str, pd.DataFrame] = {}
    with _client(config) as client:
        for name, grid in panels.items():
            table = run_sweep(
                "transformer-point",
                grid | seeds,
                scale=config["point_scale"],
                base=fixed | config["point_settings"],
                out=run.path(f"sweep_{name}"),
                client=client,
            )
            tables[name] = table
            for row in table.to_dict("records"):
                run.log({"panel": name, **row})
    summary = summarize_seeds(run, config, tables, lambda t: _summary(t, config))
    if seeds:
        first = seeds["seed"][0]
        tables = {k: t[t.seed == first] for k, t in tables.items()}
    _figures(run, tables)
    return run.finish(summary)


@contextmanager
def _client(config: dict[str, Any]) -> Iterator[Any]:
    """Yield a Dask client on ``config["scheduler"]``, else on a ``LocalCluster`` closed after."""
    from distributed import Client, LocalCluster

    if config["scheduler"]:
        with Client(config["scheduler"], timeout="20s") as client:
            yield client
        return
    with (
        LocalCluster(
            n_workers=config["workers"], threads_per_worker=1, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client


def _summary(tables: dict[str, pd.DataFrame], config: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "failed_points": int(sum((t.status != "ok").sum() for t in tables.values()))
    }
    b = tables["fig6b"][tables["fig6b"].status == "ok"]
    out["fig6b_spearman_temporal_rank_vs_input_dim"] = spearman(
        b.n_in.tolist(), b.temporal_rank.tolist()
    )
    out["fig6b_temporal_rank"] = {
        f"n_x={nx}": dict(zip(g.n_in.tolist(), g.temporal_rank.round(2).tolist(), strict=True))
        for nx, g in b.groupby("n_x")
    }
    d = tables["fig6d"][tables["fig6d"].status == "ok"].sort_values("fourier")
    out["fig6d_spearman_temporal_rank_vs_fourier_features"] = spearman(
        d.fourier.tolist(), d.temporal_rank.tolist()
    )
    out["fig6d_temporal_rank"] = dict(
        zip(d.fourier.tolist(), d.temporal_rank.round(2).tolist(), strict=True)
    )
    h = tables["fig10"][tables["fig10"].status == "ok"]
    by_heads = h.groupby("heads").temporal_rank.mean()
    out["fig10_temporal_rank_mean_by_heads"] = {
        int(k): round(float(v), 2) for k, v in by_heads.items()
    }
    out["fig10_relative_spread_over_heads"] = float(
        (by_heads.max() - by_heads.min()) / by_heads.mean()
    )
    w = tables["fig9"][tables["fig9"].status == "ok"]
    for col in ("temporal_rank", "spatial_rank", "overall_rank"):
        out[f"fig9_spearman_{col}_vs_width"] = spearman(w.n_attn.tolist(), w[col].tolist())
        out[f"fig9_spearman_{col}_vs_input_dim"] = spearman(w.n_in.tolist(), w[col].tolist())
    return out


def _figures(run: Run, tables: dict[str, pd.DataFrame]) -> None:
    fig, ax = plotting.figure(1, 3, width=3.3)
    _rank_vs_input_dim(ax[0, 0], tables["fig6b"], "n_x", "$n_x$={}", "6B")
    c = tables["fig6c"][tables["fig6c"].status == "ok"]
    handles = [style.proxy(f"mode {k + 1}", color=style.COLORS[k]) for k in range(3)]
    line_styles: tuple[LineStyleType, ...] = ("-", "--")
    for (_, row), dash in zip(c.iterrows(), line_styles, strict=False):
        modes = load_checkpoint(run.path("sweep_fig6c") / row.folder / "temporal_modes.pt")["modes"]
        for k in range(3):
            ax[0, 1].plot(modes[k].reshape(-1), dash, color=style.COLORS[k], linewidth=0.6)
        handles.append(style.proxy(f"$n_{{in}}$={row.n_in}", linestyle=dash))
    ax[0, 1].set(xlabel="batch × time", ylabel="√λ · mode", title="6C dominant temporal modes")
    style.legend_outside(ax[0, 1], "below", handles=handles, ncols=3)
    d = tables["fig6d"][tables["fig6d"].status == "ok"].sort_values("fourier")
    ax[0, 2].plot(d.fourier, d.temporal_rank, "o-")
    ax[0, 2].set(
        xscale="log",
        xlabel="Fourier frequencies",
        ylabel="temporal rank",
        title="6D Fourier features ($n_{in}$=1)",
    )
    style.grid_ticks(ax[0, 2], d.fourier)
    plotting.save(fig, run.path("fig6_transformer"))
    fig, ax = plotting.figure(1, 4, width=3.0)
    _rank_vs_input_dim(ax[0, 0], tables["fig10"], "heads", "{} heads", "10: heads")
    w = tables["fig9"][tables["fig9"].status == "ok"]
    for a, col in zip(ax[0, 1:], ("temporal_rank", "spatial_rank", "overall_rank"), strict=True):
        for width, grp in w.groupby("n_attn"):
            grp = grp.sort_values("n_in")
            a.plot(grp.n_in, grp[col], "o-", label=f"$n_{{attn}}$={width}", markersize=3)
        a.set(
            xscale="log",
            xlabel="input dimension",
            ylabel=col.replace("_", " "),
            title=f"9: {col.split('_')[0]}",
        )
        style.grid_ticks(a, w.n_in.unique())
    style.legend_outside(ax[0, -1])
    plotting.save(fig, run.path("fig9_fig10_transformer"))


def _rank_vs_input_dim(ax, table: pd.DataFrame, by: str, label: str, title: str) -> None:
    """Temporal rank against input dimension, one curve per value of ``by`` (ok points)."""
    ok = table[table.status == "ok"]
    for value, grp in ok.groupby(by):
        grp = grp.sort_values("n_in")
        ax.plot(grp.n_in, grp.temporal_rank, "o-", label=label.format(value), markersize=3)
    ax.set(xscale="log", xlabel="input dimension", ylabel="temporal rank", title=title)
    style.grid_ticks(ax, ok.n_in.unique())
    style.legend_outside(ax, "below", ncols=2)
