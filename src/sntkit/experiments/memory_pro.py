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
  by ``perp_gain``), so each ``x̄_i`` is a fixed point ``x̄ = tanh(½(W_hn x̄ + b_hn))``
  (:func:`sntkit.dynamics.gru_fixed_point_weights`).
* ``model="leaky_rnn"`` — the code: ``h' = (1 − α) h + α (W tanh(h) + W_in x)`` with
  ``α = dt = 0.7``, no bias, ``nn.Linear``'s default initialization ``U(±1/√fan_in)`` for
  ``W``, ``W_in`` and the readout, and one fixed training set of ``num_inputs`` trials whose
  input noise (std ``0.1·√2``, variance 0.02) is drawn once; batches are random subsets.
  Network 2 inserts ``num_fixed_points`` points ``x̄_i ~ N(0, I)`` one after the other by the
  rank-one change ``W ← x̄ sᵀ/‖s‖² + W (I − s sᵀ/‖s‖²)``, ``s = tanh(x̄)``, which makes
  ``W tanh(x̄) = x̄`` — a zero-input fixed point — for the point just inserted (later insertions
  move the earlier ones slightly, as in the authors' code;
  :func:`sntkit.dynamics.insert_fixed_points`).

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

Each run is a stage of the run folder (:meth:`sntkit.experiments.run.Run.stage`): an
interrupted run resumes inside the run it stopped in, from its newest checkpoint.

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
from dataclasses import dataclass
from functools import partial
from typing import Any

import torch
from matplotlib.lines import Line2D
from torch import nn

from sntkit.dynamics import (
    FixedPoints,
    find_fixed_points,
    gru_fixed_point_weights,
    insert_fixed_points,
)
from sntkit.experiments import plotting
from sntkit.experiments.errors import CheckpointError
from sntkit.experiments.io import save_checkpoint
from sntkit.experiments.optimizers import make_optimizer
from sntkit.experiments.registry import register
from sntkit.experiments.run import Run
from sntkit.linalg import cosine_similarity, eigsh, trace
from sntkit.models import GRU, RNN, Cell, as_cell
from sntkit.ntk import state_ntk
from sntkit.operators import Identity, Operator
from sntkit.tasks.memory_pro import MemoryPro, TaskBatch

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
    """``config`` with the ``"auto"`` settings replaced by the model's values (MODEL_DEFAULTS).

    Parameters
    ----------
    config:
        The settings; ``lr``, ``shampoo_lr`` and ``noise_var`` are ``"auto"`` or a number.

    Returns
    -------
    dict
        A copy with those three as floats.

    Raises
    ------
    ValueError
        If one of them is neither ``"auto"`` nor a positive number (``noise_var`` may be 0).
    """
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
            self.rnn: nn.GRU | RNN = nn.GRU(3, n, batch_first=True)
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
        """Return the sntkit cell of the recurrent part, sharing its parameters (for the NTK)."""
        return as_cell(self.rnn)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return outputs ``(B, T, 3)`` and states ``(B, T, N)`` for inputs ``x`` ``(B, T, 3)``."""
        if isinstance(self.rnn, nn.GRU):
            h = self.rnn(x)[0]
        else:
            h = self.rnn(x.new_zeros(x.shape[0], self.rnn.n_state), x)
        return self.readout(h), h


def build_network(kind: str, config: dict[str, Any]) -> MemoryProNet:
    """Network 1 or 2 (module docstring); Network 2's placed points are ``model.placed``.

    Parameters
    ----------
    kind:
        ``"network1"`` (the initialization alone) or ``"network2"`` (with placed fixed points:
        :func:`sntkit.dynamics.gru_fixed_point_weights` for the GRU,
        :func:`sntkit.dynamics.insert_fixed_points` for the leaky RNN).
    config:
        The resolved settings (``seed``, ``n``, ``model``, ``num_fixed_points``,
        ``fp_amplitude``, ``perp_gain``).

    Returns
    -------
    MemoryProNet
        The network, in float32.
    """
    g = torch.Generator().manual_seed(config["seed"])
    n = config["n"]
    model = MemoryProNet(config["model"], n, g)
    if kind != "network2":
        return model
    shape = (config["num_fixed_points"], n)
    with torch.no_grad():
        if isinstance(model.rnn, nn.GRU):
            signs = torch.randint(0, 2, shape, generator=g) * 2.0 - 1.0
            model.placed = config["fp_amplitude"] * signs
            weights = gru_fixed_point_weights(
                model.placed, perp_gain=config["perp_gain"], generator=g
            )
            for name, value in weights.items():
                getattr(model.rnn, f"{name}_l0").copy_(value)
        else:
            model.placed = torch.randn(shape, generator=g)
            model.rnn.W.copy_(insert_fixed_points(model.rnn.W, model.placed))
    return model


def zero_input_fixed_points(model: MemoryProNet, seed: int) -> FixedPoints:
    """Find fixed points under zero input, started from where zero-input trajectories end.

    Parameters
    ----------
    model:
        The network; analysed in a float64 copy (not modified).
    seed:
        Seed of the 256 starting states, uniform in ``[−1, 1]^N``, run for 60 zero-input steps;
        the placed points of Network 2 are starting points too.

    Returns
    -------
    FixedPoints
        The distinct fixed points found, with their stability.
    """
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


def temporal_spectrum(
    op_view: Operator, k: int, seed: int
) -> tuple[torch.Tensor, float, torch.Tensor]:
    """Top-``k`` eigenpairs of a temporal view operator and its trace (Hutch++).

    Returns the eigenvalues (float64, clamped at 0, descending), the trace and the eigenvectors.
    """
    vals, vecs = eigsh(op_view, min(k, op_view.size_in), seed=seed, tol=1e-4, max_iters=30)
    tr = trace(op_view, "hutch++", 60, seed=seed).value
    return vals.double().clamp_min(0).cpu(), tr, vecs


def modes_for(vals: torch.Tensor, tr: float, fraction: float = 0.95) -> int | None:
    """Count the leading eigenvalues that explain ``fraction`` of ``tr`` (None: not reached)."""
    cum = torch.cumsum(vals, 0) / tr
    hit = (cum >= fraction).nonzero()
    return int(hit[0]) + 1 if hit.numel() else None


def analyse_init(model: MemoryProNet, x: torch.Tensor, config: dict[str, Any]) -> dict[str, Any]:
    """Fig. 3C–D at initialization: temporal spectra of NTK_S, V Vᵀ and P Pᵀ, NTK modes.

    Parameters
    ----------
    model:
        The network at initialization.
    x:
        The analysis inputs ``(B, T, 3)``; the states start at ``h_0 = 0``.
    config:
        ``n``, ``estimator_samples`` (Hutchinson probes of the temporal views),
        ``spectrum_modes`` (eigenpairs computed) and ``seed``.

    Returns
    -------
    dict
        ``modes_95_*`` (modes explaining 95 % of the variance; ``modes_95_*_more_than`` when
        not reached within ``spectrum_modes``), ``cumvar_*`` (cumulative variance) and
        ``ntk_modes`` (the 4 dominant temporal modes of NTK_S scaled by ``√λ``, ``(4, B, T)``).
    """
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
    """Fig. 3B and 4F on the analysis batch: cos(NTK_S, V Vᵀ ⊗ I) and NTK–target alignment.

    Parameters
    ----------
    model:
        The network.
    x:
        The analysis inputs ``(B, T, 3)``; the states start at ``h_0 = 0``.
    modes:
        The target's temporal modes ``(3, B, T)`` (:func:`target_modes`); the third is used.
    config:
        ``n``, ``estimator_samples`` and ``seed`` of the randomized estimates.

    Returns
    -------
    dict
        ``core_ntk_cosine`` with its standard error ``core_ntk_cosine_err`` and
        ``ntk_target_alignment_mode3``.
    """
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
        """One batch ``(inputs, targets)``, each ``(batch, T, 3)``, drawn with ``g``."""
        if self.fixed is not None:  # a random subset, as a shuffled DataLoader's first batch
            idx = torch.randperm(self.angles.shape[0], generator=g)[: self.batch_size]
            return self.fixed.inputs[idx], self.fixed.targets[idx]
        idx = torch.randint(0, self.angles.shape[0], (self.batch_size,), generator=g)
        batch = self.task.batch(self.angles[idx], train=True, generator=g)
        return batch.inputs, batch.targets


@dataclass(frozen=True)
class Batches:
    """What every run shares: the training data and the fixed evaluation and analysis batches.

    The evaluation batch has 32 angles evenly spaced on ``[0, 2π)``, the analysis batch
    ``analysis_batch``; both are noise-free and come with their target modes (:func:`target_modes`).
    """

    data: TrainingData
    eval_theta: torch.Tensor
    eval_batch: TaskBatch
    eval_modes: torch.Tensor
    eval_sigma: torch.Tensor
    an_batch: TaskBatch
    an_modes: torch.Tensor

    @classmethod
    def build(cls, config: dict[str, Any]) -> Batches:
        """Build the batches of the resolved ``config`` (module docstring)."""
        period = config["period"]
        task = MemoryPro(period, period, period, config["noise_var"])
        data = TrainingData(task, config)
        eval_theta = torch.linspace(0, 2 * math.pi, 33, dtype=torch.float64)[:-1]
        eval_batch = task.batch(eval_theta, train=False)
        an_theta = torch.linspace(0, 2 * math.pi, config["analysis_batch"] + 1, dtype=torch.float64)
        an_batch = task.batch(an_theta[:-1], train=False)
        an_modes, _ = target_modes(an_batch.targets)
        eval_modes, eval_sigma = target_modes(eval_batch.targets)
        return cls(data, eval_theta, eval_batch, eval_modes, eval_sigma, an_batch, an_modes)


@register(
    "memory-pro",
    description="paper 004 Figs. 3-4: self-referential bias on Memory-Pro (SGD vs Shampoo)",
    scales=SCALES,
    choices=CHOICES,
)
def memory_pro(config: dict[str, Any], run: Run) -> dict[str, Any]:
    """Train and analyse every run of ``RUNS``, one :meth:`Run.stage` each (module docstring).

    Parameters
    ----------
    config:
        The settings of a scale of ``SCALES`` (``"auto"`` values resolved by :func:`resolve`).
    run:
        The run folder; an interrupted run resumes inside the stage it stopped in.

    Returns
    -------
    dict
        The summary written to ``summary.json``.
    """
    config = resolve(config)
    batches = Batches.build(config)
    summary: dict[str, Any] = {}
    outputs: dict[str, Any] = {"target": batches.eval_batch.targets[:8].tolist()}
    for net, opt_name in RUNS if config["runs"] == "all" else RUNS[:2]:
        key = f"{net}_{opt_name}"
        result = run.stage(key, partial(_train, run, config, batches, net, opt_name))
        if "init" in result:
            init = result["init"]
            summary[f"{net}_init"] = {
                k: v for k, v in init.items() if not k.startswith("cumvar") and k != "ntk_modes"
            }
            outputs[f"{net}_init"] = init
        outputs[f"{key}_before"], outputs[f"{key}_after"] = result["before"], result["after"]
        summary[key] = result["summary"]
    summary |= _overall(summary, run.rows, config)
    save_checkpoint(run.path("outputs.pt"), {"outputs": outputs, "eval_theta": batches.eval_theta})
    _figures(run, outputs)
    return run.finish(summary)


def _train(
    run: Run, config: dict[str, Any], batches: Batches, net: str, opt_name: str
) -> dict[str, Any]:
    """One stage: train network ``net`` with ``opt_name``, checking it every ``check_every`` steps.

    Returns the stage's results: ``init`` (the analysis at initialization, first run of each
    network only), the evaluation outputs ``before`` and ``after`` training and the run's
    ``summary`` (:func:`run_summary`). The model, optimizer, batch generator and these results
    are checkpointed by :meth:`Run.loop`, so a resumed stage continues where it stopped.
    """
    key = f"{net}_{opt_name}"
    model = build_network(net, config)
    opt = make_optimizer(opt_name, model, config)
    g = torch.Generator().manual_seed(config["seed"] + 1)
    record: dict[str, Any] = {}
    iters, every = config["iterations"], config["check_every"]
    loop = run.loop(iters, desc=key, model=model, optimizer=opt, generator=g, record=record)
    if loop.start == 0 and any(r["run"] == key for r in run.rows):
        raise CheckpointError(
            f"the newest checkpoint in {run.ckpt_dir} holds rows of {key} but not its training "
            "state (written before memory-pro ran its runs as stages); start again in a new --out"
        )
    if loop.start == 0:
        if opt_name == "sgd":
            record["init"] = _initial_analysis(model, batches.an_batch.inputs, config)
        record["before"] = _eval_outputs(model, batches)
    for step in loop:
        if step % every == 0:
            loop.show(loss=_check(run, model, batches, config, key, step))
        inputs, targets = batches.data.sample(g)
        loss = (model(inputs)[0] - targets).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if not math.isfinite(float(loss.detach())):
            raise ValueError(f"{key} diverged at step {step}; lower the learning rate")
    if iters % every == 0:  # the end point, analysed too (Fig. 4F's rise needs it)
        _check(run, model, batches, config, key, iters)
    record["after"] = _eval_outputs(model, batches)
    record["summary"] = run_summary([r for r in run.rows if r["run"] == key])
    return record


def _initial_analysis(
    model: MemoryProNet, x: torch.Tensor, config: dict[str, Any]
) -> dict[str, Any]:
    """Fig. 3C–D spectra (when ``init_spectra``) and the zero-input fixed points at init."""
    # the spectra cost ~2,000 NTK products (block Krylov on Hutchinson views): the paper scale
    # skips them on CPUs (benchmarks/memory_pro_bench.py)
    init = analyse_init(model, x, config) if config["init_spectra"] else {}
    fps = zero_input_fixed_points(model, config["seed"])
    nontrivial = fps.locations.norm(dim=1) > 1e-6
    init["zero_input_stable_nontrivial_fixed_points"] = int((fps.stable & nontrivial).sum())
    init["zero_input_fixed_points"] = len(fps)
    return init


def _eval_outputs(model: MemoryProNet, batches: Batches) -> list[Any]:
    """Return the outputs of the first 8 evaluation trials (Fig. 4A–B)."""
    with torch.no_grad():
        return model(batches.eval_batch.inputs)[0][:8].tolist()


def _check(
    run: Run,
    model: MemoryProNet,
    batches: Batches,
    config: dict[str, Any],
    key: str,
    step: int,
) -> float:
    """Log one metrics row (evaluation loss, mode alignments; NTK analyses when due)."""
    with torch.no_grad():
        out, hidden = model(batches.eval_batch.inputs)
        ev = float((out - batches.eval_batch.targets).square().mean())
    row: dict[str, Any] = {"run": key, "step": step, "eval_loss": ev}
    for name, values in (
        ("output", output_alignment(batches.eval_modes, batches.eval_sigma, out)),
        ("hidden", hidden_alignment(batches.eval_modes, hidden)),
    ):
        row |= {f"{name}_alignment_mode{i + 1}": v for i, v in enumerate(values)}
    if step % config["analysis_every"] == 0 or step == config["iterations"]:
        row |= analyse(model, batches.an_batch.inputs, batches.an_modes, config)
    run.log(row)
    return ev


def _overall(
    summary: dict[str, Any], rows: list[dict[str, Any]], config: dict[str, Any]
) -> dict[str, Any]:
    """Add the entries across runs: Shampoo's escape step, settings, NTK alignments at init."""
    shampoo = [r for r in rows if r["run"] == "network1_shampoo"]
    summary["network1_shampoo"]["escape_step"] = escape_step(
        shampoo, summary["network1_sgd"]["final_loss"]
    )
    settings = {k: config[k] for k in ("model", "shampoo", "lr", "shampoo_lr", "noise_var")}
    return {
        "shampoo_escape_step": summary["network1_shampoo"]["escape_step"],
        "settings": settings,
        "ntk_target_alignment_mode3_init": {
            net: summary[f"{net}_sgd"]["ntk_target_alignment_mode3_init"]
            for net in ("network1", "network2")
            if f"{net}_sgd" in summary
        },
    }


def run_summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """One run's summary from its logged rows (module docstring).

    Parameters
    ----------
    rows:
        The run's metric rows in step order (``eval_loss``, the output alignments; the NTK
        analyses in the rows that have them).

    Returns
    -------
    dict
        ``final_loss``, ``plateau_detected``, ``core_ntk_cosine_mean``,
        ``output_mode_alignment_final``, ``output_mode3_rise_step``,
        ``ntk_target_alignment_mode3_init`` and ``ntk_mode3_alignment_rise_step``.
    """
    losses = [r["eval_loss"] for r in rows]
    mid, final = losses[len(losses) // 2], losses[-1]
    an = [r for r in rows if "core_ntk_cosine" in r]
    cosines = [r["core_ntk_cosine"] for r in an]
    align0 = an[0]["ntk_target_alignment_mode3"] if an else None
    rise = None
    if align0 is not None:
        rise = next((r["step"] for r in an if r["ntk_target_alignment_mode3"] >= 10 * align0), None)
    return {
        "final_loss": final,
        "plateau_detected": bool((mid - final) / mid < 0.1 and final > 0.05),
        "core_ntk_cosine_mean": sum(cosines) / len(cosines) if cosines else None,
        "output_mode_alignment_final": [rows[-1][f"output_alignment_mode{i}"] for i in (1, 2, 3)],
        "output_mode3_rise_step": next(
            (r["step"] for r in rows if r["output_alignment_mode3"] >= 0.5), None
        ),
        "ntk_target_alignment_mode3_init": align0,
        "ntk_mode3_alignment_rise_step": rise,
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
            ax_d.plot(
                modes[k, b],
                color=f"C{k}",
                linewidth=0.5,
                label=f"NTK mode {k + 1}" if b == 0 else None,
            )
    ax_d.set(
        title="3D dominant NTK temporal modes (network 1)",
        xlabel="time step",
        ylabel="√λ · mode (one line per trial)",
    )
    ax_d.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.0, 1.0))
