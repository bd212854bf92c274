"""Paper 004, Figures 3 and 4: self-referential bias on Memory-Pro (§5.1–5.2).

Two recurrent networks with a linear readout (3 outputs) learn Memory-Pro
(:mod:`sntkit.tasks.memory_pro`), in one of two settings (``model=``), because the paper's text
and the authors' code (github meeree/kpflow, ``examples/train.py``) disagree:

* ``model="gru"`` — the text: a GRU with Xavier initialization (zero biases), input noise of
  variance 3.2 drawn afresh for every batch. Network 2 takes the same input weights and
  recurrent weights from the fixed-point construction (App. A.2.1) adapted to the GRU: with
  ``W_hr = W_hz = 0`` the gates sit at ``r = z = 1/2`` under zero input, and ``[W_hn | b_hn]``
  solves ``W_hn x̄_i + b_hn = 2 artanh(x̄_i)`` for ``num_fixed_points`` points ``x̄_i = ±a`` sign
  vectors (minimal-norm solution plus a random part annihilating the augmented points, scaled
  by ``perp_gain``), so each ``x̄_i`` is a fixed point ``x̄ = tanh(½(W_hn x̄ + b_hn))``.
* ``model="leaky_rnn"`` — the code: ``h' = (1 − α) h + α (W tanh(h) + W_in x)`` with
  ``α = dt = 0.7``, no bias, ``nn.Linear``'s default initialization ``U(±1/√fan_in)`` for
  ``W``, ``W_in`` and the readout, and one fixed training set of ``num_inputs`` trials whose
  input noise (std ``0.1·√2``, variance 0.02) is drawn once; batches are random subsets.
  Network 2 inserts ``num_fixed_points`` points ``x̄_i ~ N(0, I)`` one after the other by the
  rank-one change ``W ← x̄ sᵀ/‖s‖² + W (I − s sᵀ/‖s‖²)``, ``s = tanh(x̄)``, which makes
  ``W tanh(x̄) = x̄`` — a zero-input fixed point — for the point just inserted (later insertions
  move the earlier ones slightly, as in the authors' code).

The GRU trains through the fused ``torch.nn.GRU`` kernel (same equations as
:class:`sntkit.models.GRU`, whose seeded Xavier draw initializes it); the NTK analyses see it
through :func:`sntkit.models.as_cell`. Loss: mean squared error over batch, time and channels.

Runs: Network 1 with SGD and with Shampoo (``shampoo=``: ``"torch_optimizer"``, the authors'
``torch_optimizer.Shampoo`` rule — exponent −1/order, preconditioners every step, no grafting —
or ``"textbook"``, −1/(2·order) with SGD grafting and preconditioners every 10 steps), Network 2
with SGD. Recorded over training (``metrics.parquet``): the evaluation loss; for each of the
target's three temporal SVD modes ``Y = U Σ Vᵀ`` (``B·T × 3``) the output alignment
``‖U_iᵀ Ŷ‖ / σ_i`` of the network output ``Ŷ`` (Fig. 4E as the authors compute it: 1 when the
mode is produced, 0 when absent) and the hidden-state alignment ``‖U_iᵀ H‖² / ‖H‖_F²``; at
analysis steps, ``cos(NTK_S, V Vᵀ ⊗ I_N)`` (Fig. 3B) and the NTK–target alignment of mode 3
(Fig. 4F), both on a small analysis batch. At initialization: the cumulative variance explained
by the temporal spectra of ``NTK_S``, ``V Vᵀ`` and ``P Pᵀ`` (Fig. 3C; temporal views by
Hutchinson partial traces, eigenvalues by block Krylov) and the dominant temporal modes of
``NTK_S`` (Fig. 3D). Outputs before/after training for a few angles (Fig. 4A–B).

Summary per run: ``final_loss``, ``plateau_detected``, ``core_ntk_cosine_mean``,
``output_mode_alignment_final`` (3 values), ``output_mode3_rise_step`` (first check step with
output alignment of mode 3 ≥ 0.5) and ``ntk_mode3_alignment_rise_step`` (first analysis step at
which the mode-3 NTK–target alignment reaches 10× its value at step 0); ``escape_step`` of
Network 1 + Shampoo: the first check step from which its evaluation loss stays below half the
final loss of Network 1 + SGD (``None``: no escape).
"""

from __future__ import annotations

import copy
import math
from typing import Any

import torch
from matplotlib.lines import Line2D
from torch import nn

from sntkit.dynamics import find_fixed_points
from sntkit.experiments import plotting
from sntkit.experiments.io import save_checkpoint
from sntkit.experiments.optimizers import make_optimizer
from sntkit.experiments.progress import Progress
from sntkit.experiments.registry import register
from sntkit.experiments.run import Run
from sntkit.linalg import cosine_similarity, eigsh, trace
from sntkit.models import GRU, RNN, Cell, as_cell
from sntkit.ntk import state_ntk
from sntkit.operators import Identity
from sntkit.tasks.memory_pro import MemoryPro

#: settings that follow the model unless given (``"auto"``): (scale, model) -> values
MODEL_DEFAULTS = {
    ("quick", "gru"): {"lr": 0.05, "shampoo_lr": 0.01, "noise_var": 3.2},
    ("paper", "gru"): {"lr": 0.01, "shampoo_lr": 0.01, "noise_var": 3.2},
    ("quick", "leaky_rnn"): {"lr": 0.01, "shampoo_lr": 0.01, "noise_var": 0.02},
    ("paper", "leaky_rnn"): {"lr": 0.01, "shampoo_lr": 0.01, "noise_var": 0.02},
}
LEAK = 0.7  # the authors' dt

SCALES = {
    "quick": {
        "model": "gru", "shampoo": "torch_optimizer", "runs": "all",
        "lr": "auto", "shampoo_lr": "auto", "noise_var": "auto",
        "n": 64, "period": 15, "batch": 64, "num_inputs": 1000,
        "iterations": 1500, "check_every": 50, "analysis_every": 250, "analysis_batch": 8,
        "num_fixed_points": 5, "fp_amplitude": 0.8, "perp_gain": 0.5,
        "spectrum_modes": 24, "estimator_samples": 32, "checkpoint_every": 500,
        "init_spectra": True,
    },
    "paper": {
        "model": "leaky_rnn", "shampoo": "torch_optimizer", "runs": "all",
        "lr": "auto", "shampoo_lr": "auto", "noise_var": "auto",
        "n": 256, "period": 30, "batch": 500, "num_inputs": 5000,
        "iterations": 1200, "check_every": 25, "analysis_every": 300, "analysis_batch": 20,
        "num_fixed_points": 5, "fp_amplitude": 0.8, "perp_gain": 0.5,
        "spectrum_modes": 48, "estimator_samples": 48, "checkpoint_every": 100,
        "init_spectra": False,
    },
}  # fmt: skip
CHOICES = {
    "model": ("gru", "leaky_rnn"),
    "shampoo": ("torch_optimizer", "textbook"),
    "runs": ("all", "network1"),
}

RUNS = (("network1", "sgd"), ("network1", "shampoo"), ("network2", "sgd"))


def resolve(config: dict[str, Any]) -> dict[str, Any]:
    """``config`` with the ``"auto"`` settings replaced by the model's values (MODEL_DEFAULTS)."""
    out = dict(config)
    defaults = MODEL_DEFAULTS[(config.get("scale", "quick"), config["model"])]
    for key, value in defaults.items():
        given = config.get(key, "auto")
        if given == "auto":
            out[key] = value
            continue
        try:
            out[key] = float(given)
        except (TypeError, ValueError):
            raise ValueError(f"{key} must be 'auto' or a number, got {given!r}") from None
        if not out[key] > 0 and not (key == "noise_var" and out[key] == 0):
            raise ValueError(f"{key} must be positive, got {given!r}")
    return out


class MemoryProNet(nn.Module):
    """Recurrent network + linear readout of its state (3 outputs); see the module docstring.

    ``forward(x)`` with ``x`` of shape ``(B, T, 3)`` returns outputs ``(B, T, 3)`` and states
    ``(B, T, N)`` from ``h_0 = 0``; :meth:`analysis_cell` is the sntkit cell that the NTK
    analyses differentiate (it shares the parameters).
    """

    def __init__(self, model: str, n: int, generator: torch.Generator) -> None:
        super().__init__()
        self.model = model
        self.readout = nn.Linear(n, 3)
        if model == "gru":
            seeded = GRU(n, 3, generator=generator)  # per-gate Xavier, zero biases
            self.rnn: nn.Module = nn.GRU(3, n, batch_first=True)
            with torch.no_grad():
                for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                    getattr(self.rnn, f"{name}_l0").copy_(getattr(seeded, name))
                std = math.sqrt(2.0 / (n + 3))
                self.readout.weight.copy_(torch.randn(3, n, generator=generator) * std)
                self.readout.bias.zero_()
        elif model == "leaky_rnn":
            self.rnn = RNN(n, 3, form="post", leak=LEAK, bias=False)
            with torch.no_grad():  # nn.Linear's default U(±1/√fan_in), drawn with `generator`
                for p in (self.rnn.W, self.rnn.W_in, self.readout.weight, self.readout.bias):
                    fan_in = p.shape[1] if p.ndim == 2 else n
                    p.copy_((2 * torch.rand(p.shape, generator=generator) - 1) / fan_in**0.5)
        else:
            raise ValueError(f"model must be 'gru' or 'leaky_rnn', got {model!r}")
        self.placed = torch.zeros(0, n)

    def analysis_cell(self) -> Cell:
        return as_cell(self.rnn)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.model == "gru":
            h = self.rnn(x)[0]
        else:
            h = self.rnn(x.new_zeros(x.shape[0], self.rnn.n_state), x)
        return self.readout(h), h


def place_fixed_points(
    gru: GRU, points: torch.Tensor, perp_gain: float, generator: torch.Generator
) -> None:
    """Network 2's GRU recurrent weights (module docstring): each row of ``points`` is fixed."""
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


def insert_fixed_points(W: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Network 2's leaky-RNN recurrent matrix: ``W ← x̄ sᵀ/‖s‖² + W (I − s sᵀ/‖s‖²)`` per point.

    ``s = tanh(x̄)``; afterwards ``W tanh(x̄) = x̄`` for the last point exactly (module docstring).
    """
    W = W.double()
    for x in points.double():
        s = torch.tanh(x)
        s2 = s @ s
        W = torch.outer(x, s) / s2 + W - torch.outer(W @ s, s) / s2
    return W


def build_network(kind: str, config: dict[str, Any]) -> MemoryProNet:
    """Network 1 or 2 (module docstring); Network 2's placed points are ``model.placed``."""
    g = torch.Generator().manual_seed(config["seed"])
    n = config["n"]
    model = MemoryProNet(config["model"], n, g)
    if kind != "network2":
        return model
    if config["model"] == "gru":
        seeded = GRU(n, 3)
        with torch.no_grad():
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                getattr(seeded, name).copy_(getattr(model.rnn, f"{name}_l0"))
        shape = (config["num_fixed_points"], n)
        signs = torch.randint(0, 2, shape, generator=g) * 2.0 - 1.0
        model.placed = config["fp_amplitude"] * signs
        place_fixed_points(seeded, model.placed, config["perp_gain"], g)
        with torch.no_grad():
            for name in ("weight_hh", "bias_ih", "bias_hh"):
                getattr(model.rnn, f"{name}_l0").copy_(getattr(seeded, name))
    else:
        model.placed = torch.randn(config["num_fixed_points"], n, generator=g)
        with torch.no_grad():
            model.rnn.W.copy_(insert_fixed_points(model.rnn.W, model.placed).float())
    return model


def zero_input_fixed_points(model: MemoryProNet, seed: int) -> Any:
    """Fixed points under zero input, started from where zero-input trajectories end."""
    n = model.readout.in_features
    g = torch.Generator().manual_seed(seed)
    cell = as_cell(copy.deepcopy(model.rnn).double())
    h = 2 * torch.rand(256, n, generator=g, dtype=torch.float64) - 1
    with torch.no_grad():
        traj = cell(h, torch.zeros(256, 60, 3, dtype=torch.float64))
    return find_fixed_points(cell, inits=torch.cat([traj[:, -1], model.placed.double()]))


def target_modes(targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """SVD ``Y = U Σ Vᵀ`` of the ``(B·T) × 3`` target: modes ``U`` as ``(3, B, T)`` and ``Σ``."""
    B, T, C = targets.shape
    U, S, _ = torch.linalg.svd(targets.reshape(B * T, C).double(), full_matrices=False)
    return U.T.reshape(C, B, T), S


def hidden_alignment(modes: torch.Tensor, hidden: torch.Tensor) -> list[float]:
    """``‖U_iᵀ H‖² / ‖H‖_F²`` for each temporal mode: the share of the state in mode ``i``."""
    H = hidden.reshape(-1, hidden.shape[-1]).double()
    U = modes.reshape(modes.shape[0], -1)
    return ((U @ H).square().sum(1) / H.square().sum()).tolist()


def output_alignment(modes: torch.Tensor, sigma: torch.Tensor, out: torch.Tensor) -> list[float]:
    """``‖U_iᵀ Ŷ‖ / σ_i`` for each target mode (Fig. 4E; the authors' ``targ_proj``).

    ``Ŷ`` is the network output ``(B, T, 3)`` flattened to ``(B·T) × 3``; when ``Ŷ = Y``,
    ``U_iᵀ Y = σ_i v_iᵀ`` and the ratio is 1.
    """
    Y = out.reshape(-1, out.shape[-1]).double()
    U = modes.reshape(modes.shape[0], -1)
    return ((U @ Y).norm(dim=1) / sigma).tolist()


def temporal_spectrum(op_view, k: int, seed: int) -> tuple[torch.Tensor, float]:
    """Top-``k`` eigenvalues of a temporal view operator and its trace (Hutch++)."""
    vals, vecs = eigsh(op_view, min(k, op_view.size_in), seed=seed, tol=1e-4, max_iters=30)
    tr = trace(op_view, "hutch++", 60, seed=seed).value
    return vals.double().clamp_min(0).cpu(), tr, vecs


def modes_for(vals: torch.Tensor, tr: float, fraction: float = 0.95) -> int | None:
    cum = torch.cumsum(vals, 0) / tr
    hit = (cum >= fraction).nonzero()
    return int(hit[0]) + 1 if hit.numel() else None


def analyse_init(model: MemoryProNet, x: torch.Tensor, config: dict[str, Any]) -> dict[str, Any]:
    """Fig. 3C–D at initialization: temporal spectra of NTK_S, V Vᵀ and P Pᵀ, NTK modes."""
    ntk = state_ntk(model.analysis_cell(), x.new_zeros(x.shape[0], config["n"]), x)
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
    model: MemoryProNet, x: torch.Tensor, modes: torch.Tensor, config: dict[str, Any]
) -> dict[str, float]:
    """Fig. 3B and 4F on the analysis batch: cos(NTK_S, V Vᵀ ⊗ I) and NTK–target alignment."""
    ntk = state_ntk(
        model.analysis_cell(), x.new_zeros(x.shape[0], config["n"]), x, path="matrix_free"
    )
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


class TrainingData:
    """Training batches: fresh noise per batch (``gru``) or one fixed noisy set (``leaky_rnn``)."""

    def __init__(self, task: MemoryPro, config: dict[str, Any]) -> None:
        self.task, self.batch_size = task, config["batch"]
        self.angles = task.fixed_angles(config["num_inputs"], config["seed"])
        self.fixed = None
        if config["model"] == "leaky_rnn":
            g = torch.Generator().manual_seed(config["seed"] + 2)
            self.fixed = task.batch(self.angles, train=True, generator=g)

    def sample(self, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        if self.fixed is not None:  # a random subset, as a shuffled DataLoader's first batch
            idx = torch.randperm(self.angles.shape[0], generator=g)[: self.batch_size]
            return self.fixed.inputs[idx], self.fixed.targets[idx]
        idx = torch.randint(0, self.angles.shape[0], (self.batch_size,), generator=g)
        batch = self.task.batch(self.angles[idx], train=True, generator=g)
        return batch.inputs, batch.targets


@register(
    "memory-pro",
    description="paper 004 Figs. 3-4: self-referential bias on Memory-Pro (SGD vs Shampoo)",
    scales=SCALES,
    choices=CHOICES,
)
def memory_pro(config: dict[str, Any], run: Run) -> dict[str, Any]:
    config = resolve(config)
    period = config["period"]
    task = MemoryPro(period, period, period, config["noise_var"])
    data = TrainingData(task, config)
    eval_theta = torch.linspace(0, 2 * math.pi, 33, dtype=torch.float64)[:-1]
    eval_batch = task.batch(eval_theta, train=False)
    an_theta = torch.linspace(0, 2 * math.pi, config["analysis_batch"] + 1, dtype=torch.float64)
    an_batch = task.batch(an_theta[:-1], train=False)
    an_modes, _ = target_modes(an_batch.targets)
    eval_modes, eval_sigma = target_modes(eval_batch.targets)
    summary: dict[str, Any] = {}
    outputs: dict[str, Any] = {"target": eval_batch.targets[:8].tolist()}
    run.checkpoint_every = config["checkpoint_every"]
    restored = run.restore()
    state = restored[1] if restored else {"run_index": 0}
    if restored:
        summary, outputs = state["summary"], state["outputs"]
    runs = RUNS if config["runs"] == "all" else RUNS[:2]
    for index, (net, opt_name) in enumerate(runs):
        if index < state["run_index"]:
            continue  # finished before the interruption: its results are in summary/outputs
        key = f"{net}_{opt_name}"
        model = build_network(net, config)
        opt = make_optimizer(opt_name, model, config)
        g = torch.Generator().manual_seed(config["seed"] + 1)
        losses: list[tuple[int, float]] = []
        start = 0
        if index == state["run_index"] and "step" in state:  # resume inside this run
            model.load_state_dict(state["model"])
            opt.load_state_dict(state["optimizer"])
            g.set_state(state["generator"])
            losses, start = state["losses"], state["step"]
        if opt_name == "sgd" and f"{net}_init" not in summary:
            # Fig. 3C-D spectra: block Krylov on Hutchinson views, ~2,000 NTK products; the
            # paper scale skips them on CPUs (benchmarks/memory_pro_bench.py)
            init = analyse_init(model, an_batch.inputs, config) if config["init_spectra"] else {}
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
                for name, values in (
                    ("output", output_alignment(eval_modes, eval_sigma, out)),
                    ("hidden", hidden_alignment(eval_modes, hidden)),
                ):
                    row |= {f"{name}_alignment_mode{i + 1}": v for i, v in enumerate(values)}
                if step % config["analysis_every"] == 0 or step == iters:
                    row |= analyse(model, an_batch.inputs, an_modes, config)
                run.log(row)
                losses.append((step, ev))
                bar.show(loss=ev)
            if step == iters:
                break
            inputs, targets = data.sample(g)
            loss = (model(inputs)[0] - targets).square().mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            if not math.isfinite(float(loss.detach())):
                raise ValueError(f"{key} diverged at step {step}; lower the learning rate")
            if run.should_checkpoint(step + 1) and step + 1 < iters:
                # numbered across the runs so that the newest file is the latest state
                run.checkpoint(
                    index * (iters + 1) + step + 1,
                    {
                        "run_index": index,
                        "step": step + 1,
                        "model": model.state_dict(),
                        "optimizer": opt.state_dict(),
                        "generator": g.get_state(),
                        "losses": losses,
                        "summary": summary,
                        "outputs": outputs,
                    },
                )
        bar.close()
        with torch.no_grad():
            outputs[f"{key}_after"] = model(eval_batch.inputs)[0][:8].tolist()
        summary[key] = run_summary([r for r in run.rows if r["run"] == key])
    sgd_plateau = summary["network1_sgd"]["final_loss"]
    rows = [r for r in run.rows if r["run"] == "network1_shampoo"]
    summary["network1_shampoo"]["escape_step"] = escape_step(rows, sgd_plateau)
    summary["shampoo_escape_step"] = summary["network1_shampoo"]["escape_step"]
    summary["settings"] = {k: config[k] for k in ("model", "shampoo", "lr", "shampoo_lr")}
    summary["settings"]["noise_var"] = config["noise_var"]
    summary["ntk_target_alignment_mode3_init"] = {
        net: summary[f"{net}_sgd"]["ntk_target_alignment_mode3_init"]
        for net in ("network1", "network2")
        if f"{net}_sgd" in summary
    }
    save_checkpoint(run.path("outputs.pt"), {"outputs": outputs, "eval_theta": eval_theta})
    _figures(run, outputs)
    return run.finish(summary)


def run_summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """One run's summary from its logged rows (module docstring)."""
    losses = [r["eval_loss"] for r in rows]
    mid, final = losses[len(losses) // 2], losses[-1]
    an = [r for r in rows if "core_ntk_cosine" in r]
    cosines = [r["core_ntk_cosine"] for r in an]
    align0 = an[0]["ntk_target_alignment_mode3"] if an else None
    return {
        "final_loss": final,
        "plateau_detected": bool((mid - final) / mid < 0.1 and final > 0.05),
        "core_ntk_cosine_mean": sum(cosines) / len(cosines) if cosines else None,
        "output_mode_alignment_final": [rows[-1][f"output_alignment_mode{i}"] for i in (1, 2, 3)],
        "output_mode3_rise_step": next(
            (r["step"] for r in rows if r["output_alignment_mode3"] >= 0.5), None
        ),
        "ntk_target_alignment_mode3_init": align0,
        "ntk_mode3_alignment_rise_step": next(
            (r["step"] for r in an if r["ntk_target_alignment_mode3"] >= 10 * align0), None
        )
        if an
        else None,
    }


def escape_step(rows: list[dict[str, Any]], plateau: float) -> int | None:
    """First logged step from which the evaluation loss stays below ``plateau / 2``."""
    step = None
    for r in reversed(rows):
        if r["eval_loss"] >= 0.5 * plateau:
            break
        step = r["step"]
    return step


RUN_STYLE = {"network1_sgd": "C0", "network1_shampoo": "C1", "network2_sgd": "C2"}
MODE_STYLE = {1: "-", 2: "--", 3: ":"}


def _figures(run: Run, outputs: dict[str, Any]) -> None:
    rows = run.rows
    keys = [k for k in RUN_STYLE if any(r["run"] == k for r in rows)]
    fig, ax = plotting.figure(1, 5, width=3.2)
    for key in keys:
        sub = [r for r in rows if r["run"] == key]
        an = [r for r in sub if "core_ntk_cosine" in r]
        steps, c = [r["step"] for r in sub], RUN_STYLE[key]
        ax[0, 0].semilogy(steps, [r["eval_loss"] for r in sub], color=c, label=key)
        ax[0, 1].plot([r["step"] for r in an], [r["core_ntk_cosine"] for r in an], "o-", color=c)
        ax[0, 4].semilogy(
            [r["step"] for r in an], [r["ntk_target_alignment_mode3"] for r in an], "o-", color=c
        )
        for i, ls in MODE_STYLE.items():
            ax[0, 2].plot(steps, [r[f"output_alignment_mode{i}"] for r in sub], ls, color=c)
            ax[0, 3].semilogy(steps, [r[f"hidden_alignment_mode{i}"] for r in sub], ls, color=c)
    ax[0, 0].set(title="4D evaluation loss", xlabel="training step", ylabel="MSE")
    ax[0, 1].set(title="3B NTK vs core", xlabel="training step", ylabel="cos(NTK_S, VVᵀ⊗I)")
    ax[0, 2].set(title="4E target modes in output", xlabel="training step", ylabel="‖U_iᵀŶ‖/σ_i")
    ax[0, 3].set(
        title="target modes in hidden state", xlabel="training step", ylabel="‖U_iᵀH‖²/‖H‖²"
    )
    ax[0, 4].set(title="4F NTK–target alignment, mode 3", xlabel="training step", ylabel="cosine")
    handles = [Line2D([], [], color=RUN_STYLE[k], label=k) for k in keys]
    handles += [
        Line2D([], [], color="k", ls=ls, label=f"target mode {i}") for i, ls in MODE_STYLE.items()
    ]
    ax[0, 2].legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.22), ncols=3)
    plotting.save(fig, run.path("fig3_fig4_memory_pro"))
    spectra = "ntk_modes" in outputs.get("network1_init", {})
    fig, ax = plotting.figure(1, 3 if spectra else 1, width=3.2)
    if spectra:
        _spectra_panels(ax[0, 0], ax[0, 1], outputs)
    for key in keys:
        out = torch.tensor(outputs[f"{key}_after"])
        ax[0, -1].plot(out[0, :, 1], color=RUN_STYLE[key], label=key)
    target = torch.tensor(outputs["target"])
    ax[0, -1].plot(target[0, :, 1], "k:", label="target")
    ax[0, -1].set(title="4A–B cos θ output after training", xlabel="time step", ylabel="output")
    ax[0, -1].legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    plotting.save(fig, run.path("fig3_spectra_modes_outputs"))


def _spectra_panels(ax_c: Any, ax_d: Any, outputs: dict[str, Any]) -> None:
    """Fig. 3C (cumulative temporal variance at init) and 3D (dominant NTK temporal modes)."""
    for net, ls in (("network1", "-"), ("network2", "--")):
        init = outputs.get(f"{net}_init")
        if init is None:
            continue
        for name, c, label in (("ntk", "C0", "NTK_S"), ("core", "C1", "VVᵀ"), ("P", "C2", "PPᵀ")):
            cum = init[f"cumvar_{name}"]
            ax_c.plot(range(1, len(cum) + 1), cum, ls, color=c, label=f"{net} {label}")
    ax_c.set(title="3C temporal spectra at init", xlabel="modes", ylabel="cumulative variance")
    ax_c.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    modes = torch.tensor(outputs["network1_init"]["ntk_modes"])
    for k in range(min(3, modes.shape[0])):
        for b in range(modes.shape[1]):
            label = f"NTK mode {k + 1}" if b == 0 else None
            ax_d.plot(modes[k, b], color=f"C{k}", linewidth=0.5, label=label)
    ax_d.set(
        title="3D dominant NTK temporal modes (network 1)",
        xlabel="time step",
        ylabel="√λ · mode (one line per trial)",
    )
    ax_d.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.0, 1.0))
