"""Paper 004, Figures 3 and 4: self-referential bias of a GRU on Memory-Pro (§5.1–5.2).

Two GRUs with a linear readout (3 outputs) learn Memory-Pro (:mod:`sntkit.tasks.memory_pro`):

* **Network 1** — default Xavier initialization (zero biases);
* **Network 2** — the same input weights, recurrent weights from the fixed-point construction
  (App. A.2.1) adapted to the GRU: with ``W_hr = W_hz = 0`` the gates sit at ``r = z = 1/2``
  under zero input, and ``[W_hn | b_hn]`` solves ``W_hn x̄_i + b_hn = 2 artanh(x̄_i)`` for
  ``num_fixed_points`` points ``x̄_i = ±a`` sign vectors (minimal-norm solution plus a random part
  annihilating the augmented points, scaled by ``perp_gain``), so each ``x̄_i`` is a fixed point
  ``x̄ = tanh(½(W_hn x̄ + b_hn))``; the bias breaks the odd symmetry, so ``−x̄_i`` is not.

Runs: Network 1 with SGD and with Shampoo, Network 2 with SGD. Recorded over training
(``metrics.parquet``): evaluation loss; the alignment of the target's three temporal SVD modes
``U`` (of the ``B·T × 3`` target) with the hidden state, ``‖U_iᵀ H‖² / ‖H‖_F²``; and at analysis
checks, ``cos(NTK_S, V Vᵀ ⊗ I_N)`` (Fig. 3B) and the NTK–target alignment of mode 3 (Fig. 4F),
both on a small analysis batch. At initialization: the cumulative variance explained by the
temporal spectra of ``NTK_S``, ``V Vᵀ`` and ``P Pᵀ`` (Fig. 3C; temporal views by Hutchinson
partial traces, eigenvalues by block Krylov) and the dominant temporal modes of ``NTK_S``
(Fig. 3D). Outputs before/after training for a few angles (Fig. 4A–B).
"""

from __future__ import annotations

import copy
import math
from typing import Any

import torch
from torch import nn

from sntkit.dynamics import find_fixed_points
from sntkit.experiments import plotting
from sntkit.experiments.io import save_checkpoint
from sntkit.experiments.progress import Progress
from sntkit.experiments.registry import register
from sntkit.experiments.run import Run
from sntkit.linalg import cosine_similarity, eigsh, trace
from sntkit.models.gru import GRU
from sntkit.ntk import state_ntk
from sntkit.operators import Identity
from sntkit.optim import Shampoo
from sntkit.tasks.memory_pro import MemoryPro

SCALES = {
    "quick": {
        "n": 64, "period": 15, "batch": 64, "num_inputs": 1000, "lr": 0.05, "shampoo_lr": 0.01,
        "iterations": 1500, "check_every": 50, "analysis_every": 500, "analysis_batch": 8,
        "num_fixed_points": 5, "fp_amplitude": 0.8, "perp_gain": 0.5, "noise_var": 3.2,
        "spectrum_modes": 24, "estimator_samples": 32, "checkpoint_every": 500,
    },
    "paper": {
        "n": 256, "period": 30, "batch": 500, "num_inputs": 5000, "lr": 1e-3, "shampoo_lr": 1e-3,
        "iterations": 3000, "check_every": 50, "analysis_every": 250, "analysis_batch": 20,
        "num_fixed_points": 5, "fp_amplitude": 0.8, "perp_gain": 0.5, "noise_var": 3.2,
        "spectrum_modes": 48, "estimator_samples": 48, "checkpoint_every": 500,
    },
}  # fmt: skip

RUNS = (("network1", "sgd"), ("network1", "shampoo"), ("network2", "sgd"))


class GRUReadout(nn.Module):
    """A GRU cell with a linear readout of its hidden state (3 outputs)."""

    def __init__(self, n: int, generator: torch.Generator) -> None:
        super().__init__()
        self.cell = GRU(n, 3, generator=generator)
        self.readout = nn.Linear(n, 3)
        with torch.no_grad():
            std = math.sqrt(2.0 / (n + 3))
            self.readout.weight.copy_(torch.randn(3, n, generator=generator) * std)
            self.readout.bias.zero_()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.cell(x.new_zeros(x.shape[0], self.cell.n_state), x)
        return self.readout(h), h


def place_fixed_points(
    gru: GRU, points: torch.Tensor, perp_gain: float, generator: torch.Generator
) -> None:
    """Network 2's recurrent weights (module docstring): each row of ``points`` becomes fixed."""
    N = gru.n_state
    X = points.T.double()  # (N, m)
    aug = torch.cat([X, torch.ones(1, X.shape[1], dtype=torch.float64)])  # (N+1, m)
    rhs = 2 * torch.atanh(X)
    pinv = torch.linalg.pinv(aug)
    M = perp_gain * torch.randn(N, N + 1, generator=generator, dtype=torch.float64) / math.sqrt(N)
    Wb = rhs @ pinv + M @ (torch.eye(N + 1, dtype=torch.float64) - aug @ pinv)
    with torch.no_grad():
        gru.weight_hh.zero_()
        gru.bias_hh.zero_()
        gru.bias_ih.zero_()
        gru.weight_hh[2 * N :] = Wb[:, :N].float()
        gru.bias_hh[2 * N :] = Wb[:, N].float()


def build_network(kind: str, config: dict[str, Any]) -> GRUReadout:
    """Network 1 or 2 (module docstring); Network 2's placed points are ``model.placed``."""
    g = torch.Generator().manual_seed(config["seed"])
    model = GRUReadout(config["n"], g)
    model.placed = torch.zeros(0, config["n"])
    if kind == "network2":
        shape = (config["num_fixed_points"], config["n"])
        signs = torch.randint(0, 2, shape, generator=g) * 2.0 - 1.0
        model.placed = config["fp_amplitude"] * signs
        place_fixed_points(model.cell, model.placed, config["perp_gain"], g)
    return model


def zero_input_fixed_points(model: GRUReadout, seed: int) -> Any:
    """Fixed points under zero input, started from where zero-input trajectories end."""
    n = model.cell.n_state
    g = torch.Generator().manual_seed(seed)
    cell = copy.deepcopy(model.cell).double()
    h = 2 * torch.rand(256, n, generator=g, dtype=torch.float64) - 1
    with torch.no_grad():
        traj = cell(h, torch.zeros(256, 60, 3, dtype=torch.float64))
    return find_fixed_points(cell, inits=torch.cat([traj[:, -1], model.placed.double()]))


def target_modes(targets: torch.Tensor) -> torch.Tensor:
    """Left singular vectors of the ``(B·T) × 3`` target: 3 temporal modes ``(3, B, T)``."""
    B, T, C = targets.shape
    U, _, _ = torch.linalg.svd(targets.reshape(B * T, C).double(), full_matrices=False)
    return U.T.reshape(C, B, T)


def hidden_alignment(modes: torch.Tensor, hidden: torch.Tensor) -> list[float]:
    """``‖U_iᵀ H‖² / ‖H‖_F²`` for each temporal mode (Fig. 4E)."""
    H = hidden.reshape(-1, hidden.shape[-1]).double()
    U = modes.reshape(modes.shape[0], -1)
    return ((U @ H).square().sum(1) / H.square().sum()).tolist()


def temporal_spectrum(op_view, k: int, seed: int) -> tuple[torch.Tensor, float]:
    """Top-``k`` eigenvalues of a temporal view operator and its trace (Hutch++)."""
    vals, vecs = eigsh(op_view, min(k, op_view.size_in), seed=seed, tol=1e-4, max_iters=30)
    tr = trace(op_view, "hutch++", 60, seed=seed).value
    return vals.double().clamp_min(0).cpu(), tr, vecs


def modes_for(vals: torch.Tensor, tr: float, fraction: float = 0.95) -> int | None:
    cum = torch.cumsum(vals, 0) / tr
    hit = (cum >= fraction).nonzero()
    return int(hit[0]) + 1 if hit.numel() else None


def analyse_init(model: GRUReadout, x: torch.Tensor, config: dict[str, Any]) -> dict[str, Any]:
    """Fig. 3C–D at initialization: temporal spectra of NTK_S, V Vᵀ and P Pᵀ, NTK modes."""
    ntk = state_ntk(
        model.cell,
        x.new_zeros(x.shape[0], config["n"]),
        x,
        trainable=["weight_hh", "weight_ih", "bias_hh", "bias_ih"],
    )
    s, k, seed = config["estimator_samples"], config["spectrum_modes"], config["seed"]
    out: dict[str, Any] = {}
    ntk_vals, ntk_tr, ntk_vecs = temporal_spectrum(
        ntk.temporal(method="hutchinson", num_samples=s), k, seed
    )
    V = ntk.weight_sites.double()
    core_vals = torch.linalg.eigvalsh(V @ V.T).flip(0).clamp_min(0)
    PP = ntk.P @ ntk.P.T
    pp_view = PP.partial_mean("unit", method="hutchinson", num_samples=s, seed=seed)
    p_vals, p_tr, _ = temporal_spectrum(pp_view, k, seed)
    out["modes_95_ntk"] = modes_for(ntk_vals, ntk_tr)
    out["modes_95_core"] = modes_for(core_vals, float(core_vals.sum()))
    out["modes_95_P"] = modes_for(p_vals, p_tr)
    for name in ("ntk", "P"):  # not reached within the computed modes: a lower bound
        if out[f"modes_95_{name}"] is None:
            out[f"modes_95_{name}_more_than"] = k
    out["cumvar_ntk"] = (torch.cumsum(ntk_vals, 0) / ntk_tr).tolist()
    out["cumvar_core"] = (torch.cumsum(core_vals[:k], 0) / core_vals.sum()).tolist()
    out["cumvar_P"] = (torch.cumsum(p_vals, 0) / p_tr).tolist()
    out["ntk_modes"] = (
        ntk_vecs[:4] * ntk_vals[:4].sqrt()[:, None, None].to(ntk_vecs.dtype)
    ).tolist()
    return out


def analyse(
    model: GRUReadout, x: torch.Tensor, modes: torch.Tensor, config: dict[str, Any]
) -> dict[str, float]:
    """Fig. 3B and 4F on the analysis batch: cos(NTK_S, V Vᵀ ⊗ I) and NTK–target alignment."""
    ntk = state_ntk(model.cell, x.new_zeros(x.shape[0], config["n"]), x, path="matrix_free")
    N = config["n"]
    core = ntk.core.kron(Identity(N, dtype=ntk.states.dtype))
    cos = cosine_similarity(
        ntk.operator, core, num_matvecs=4 * config["estimator_samples"], seed=config["seed"]
    )
    align = ntk.target_alignment(
        modes[2].to(ntk.states.dtype),
        method="estimate",
        num_samples=config["estimator_samples"],
        seed=config["seed"],
    )
    return {
        "core_ntk_cosine": cos.value,
        "core_ntk_cosine_err": cos.stderr,
        "ntk_target_alignment_mode3": float(align[0]),
    }


@register(
    "memory-pro",
    description="paper 004 Figs. 3-4: GRU self-referential bias on Memory-Pro (SGD vs Shampoo)",
    scales=SCALES,
)
def memory_pro(config: dict[str, Any], run: Run) -> dict[str, Any]:
    task = MemoryPro(config["period"], config["period"], config["period"], config["noise_var"])
    angles = task.fixed_angles(config["num_inputs"], config["seed"])
    eval_theta = torch.linspace(0, 2 * math.pi, 33, dtype=torch.float64)[:-1]
    eval_batch = task.batch(eval_theta, train=False)
    an_theta = torch.linspace(0, 2 * math.pi, config["analysis_batch"] + 1, dtype=torch.float64)[
        :-1
    ]
    an_batch = task.batch(an_theta, train=False)
    an_modes = target_modes(an_batch.targets)
    eval_modes = target_modes(eval_batch.targets)
    summary: dict[str, Any] = {}
    outputs: dict[str, Any] = {}
    run.checkpoint_every = config["checkpoint_every"]
    restored = run.restore()
    state = restored[1] if restored else {"run_index": 0}
    if restored:
        summary, outputs = state["summary"], state["outputs"]
    for index, (net, opt_name) in enumerate(RUNS):
        if index < state["run_index"]:
            continue  # finished before the interruption: its results are in summary/outputs
        key = f"{net}_{opt_name}"
        model = build_network(net, config)
        if opt_name == "sgd":
            opt: torch.optim.Optimizer = torch.optim.SGD(model.parameters(), lr=config["lr"])
        else:
            opt = Shampoo(
                model.parameters(), lr=config["shampoo_lr"], eps=1e-4, update_freq=10, graft="sgd"
            )
        g = torch.Generator().manual_seed(config["seed"] + 1)
        losses: list[tuple[int, float]] = []
        cosines: list[float] = []
        start = 0
        if index == state["run_index"] and "step" in state:  # resume inside this run
            model.load_state_dict(state["model"])
            opt.load_state_dict(state["optimizer"])
            g.set_state(state["generator"])
            losses, cosines, start = state["losses"], state["cosines"], state["step"]
        if opt_name == "sgd" and f"{net}_init" not in summary:
            init = analyse_init(model, an_batch.inputs, config)
            fps = zero_input_fixed_points(model, config["seed"])
            nontrivial = fps.locations.norm(dim=1) > 1e-6
            init["zero_input_stable_nontrivial_fixed_points"] = int((fps.stable & nontrivial).sum())
            init["zero_input_fixed_points"] = len(fps)
            summary[f"{net}_init"] = {
                k: v for k, v in init.items() if not k.startswith("cumvar") and k != "ntk_modes"
            }
            outputs[f"{net}_init"] = init
        if start == 0:
            with torch.no_grad():
                outputs[f"{key}_before"] = model(eval_batch.inputs)[0][:8].tolist()
        iters = config["iterations"]
        bar = Progress(range(start, iters + 1), total=iters + 1 - start, desc=key)
        for step in bar:
            if step % config["check_every"] == 0:
                with torch.no_grad():
                    out, hidden = model(eval_batch.inputs)
                    ev = float((out - eval_batch.targets).square().mean())
                row = {"run": key, "step": step, "eval_loss": ev}
                row |= {
                    f"hidden_alignment_mode{i + 1}": v
                    for i, v in enumerate(hidden_alignment(eval_modes, hidden))
                }
                if step % config["analysis_every"] == 0:
                    row |= analyse(model, an_batch.inputs, an_modes, config)
                    cosines.append(row["core_ntk_cosine"])
                run.log(row)
                losses.append((step, ev))
                bar.show(loss=ev)
            if step == iters:
                break
            idx = torch.randint(0, angles.shape[0], (config["batch"],), generator=g)
            batch = task.batch(angles[idx], train=True, generator=g)
            loss = (model(batch.inputs)[0] - batch.targets).square().mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            if not math.isfinite(float(loss.detach())):
                raise ValueError(f"{key} diverged at step {step}; lower the learning rate")
            if run.should_checkpoint(step + 1) and step + 1 < iters:
                # numbered across the three runs so that the newest file is the latest state
                run.checkpoint(
                    index * (iters + 1) + step + 1,
                    {
                        "run_index": index,
                        "step": step + 1,
                        "model": model.state_dict(),
                        "optimizer": opt.state_dict(),
                        "generator": g.get_state(),
                        "losses": losses,
                        "cosines": cosines,
                        "summary": summary,
                        "outputs": outputs,
                    },
                )
        bar.close()
        with torch.no_grad():
            outputs[f"{key}_after"] = model(eval_batch.inputs)[0][:8].tolist()
        mid = losses[len(losses) // 2][1]
        final = losses[-1][1]
        summary[key] = {
            "final_loss": final,
            "plateau_detected": bool((mid - final) / mid < 0.1 and final > 0.05),
            "core_ntk_cosine_mean": sum(cosines) / len(cosines) if cosines else None,
        }
        summary[key]["losses"] = losses
    summary["shampoo_escape_step"] = _escape_step(summary)
    summary["ntk_target_alignment_mode3_init"] = {
        net: next(
            (
                r["ntk_target_alignment_mode3"]
                for r in run.rows
                if r["run"].startswith(net) and r["step"] == 0 and "ntk_target_alignment_mode3" in r
            ),
            None,
        )
        for net in ("network1", "network2")
    }
    for key in [k for k in summary if isinstance(summary[k], dict) and "losses" in summary[k]]:
        summary[key].pop("losses")
    save_checkpoint(run.path("outputs.pt"), {"outputs": outputs, "eval_theta": eval_theta})
    _figures(run, outputs, config)
    return run.finish(summary)


def _escape_step(summary: dict[str, Any]) -> int | None:
    """First step at which Network 1 + Shampoo goes below half of Network 1 + SGD's final loss."""
    sgd = summary.get("network1_sgd", {})
    sh = summary.get("network1_shampoo", {})
    if not sgd or not sh:
        return None
    level = 0.5 * sgd["final_loss"]
    return next((s for s, v in sh["losses"] if v < level), None)


def _figures(run: Run, outputs: dict[str, Any], config: dict[str, Any]) -> None:
    rows = run.rows
    fig, ax = plotting.figure(1, 4, width=3.0)
    for key in {r["run"] for r in rows}:
        sub = [r for r in rows if r["run"] == key]
        ax[0, 0].semilogy([r["step"] for r in sub], [r["eval_loss"] for r in sub], label=key)
        an = [r for r in sub if "core_ntk_cosine" in r]
        ax[0, 1].plot([r["step"] for r in an], [r["core_ntk_cosine"] for r in an], "o-", label=key)
        ax[0, 3].plot(
            [r["step"] for r in an], [r["ntk_target_alignment_mode3"] for r in an], "o-", label=key
        )
        for i, style in ((1, "-"), (2, "--"), (3, ":")):
            ax[0, 2].plot(
                [r["step"] for r in sub],
                [r[f"hidden_alignment_mode{i}"] for r in sub],
                style,
                label=f"{key} mode {i}" if i == 1 else None,
            )
    ax[0, 0].set(title="4D loss", xlabel="step")
    ax[0, 1].set(title="3B cos(NTK_S, VVᵀ⊗I)", xlabel="step")
    ax[0, 2].set(title="4E target modes in hidden state", xlabel="step")
    ax[0, 3].set(title="4F NTK–target alignment, mode 3", xlabel="step")
    ax[0, 0].legend(fontsize=6)
    plotting.save(fig, run.path("fig3_fig4_memory_pro"))
    fig, ax = plotting.figure(1, 3, width=3.0)
    for net, style in (("network1", "-"), ("network2", "--")):
        init = outputs[f"{net}_init"]
        ax[0, 0].plot(
            range(1, len(init["cumvar_ntk"]) + 1), init["cumvar_ntk"], style, label=f"{net} NTK"
        )
        ax[0, 0].plot(
            range(1, len(init["cumvar_core"]) + 1), init["cumvar_core"], style, label=f"{net} VVᵀ"
        )
        ax[0, 0].plot(
            range(1, len(init["cumvar_P"]) + 1), init["cumvar_P"], style, label=f"{net} P"
        )
    ax[0, 0].set(title="3C cumulative variance (init)", xlabel="modes")
    ax[0, 0].legend(fontsize=5)
    modes = torch.tensor(outputs["network1_init"]["ntk_modes"])
    for k in range(min(3, modes.shape[0])):
        for b in range(modes.shape[1]):
            ax[0, 1].plot(modes[k, b], color=f"C{k}", linewidth=0.5)
    ax[0, 1].set(title="3D dominant NTK temporal modes (network 1)", xlabel="time")
    for key, style in (
        ("network1_sgd_after", "-"),
        ("network2_sgd_after", "--"),
        ("network1_shampoo_after", ":"),
    ):
        out = torch.tensor(outputs[key])
        ax[0, 2].plot(out[0, :, 1], style, label=key.replace("_after", ""))
    ax[0, 2].set(title="4A–B cos output (one angle)", xlabel="time")
    ax[0, 2].legend(fontsize=6)
    plotting.save(fig, run.path("fig3_spectra_modes_outputs"))
