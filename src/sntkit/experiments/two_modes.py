"""Paper 000, Figure 3 (App. C): learning a teacher with two unstable modes.

Claim tested: "learning the second unstable mode requires roughly two orders of magnitude more
iterations" than the first, because after mode 1 crosses the stability boundary the sNTK
collapses onto it (rank ≈ 1) and gradient descent barely moves along mode 2.

Teacher (:func:`two_mode_teacher`): a post-form tanh RNN ``h' = W tanh(h)`` (no bias), so its
linearization at the origin is ``W``. The readout plane (units 0, 1) carries the block
``R(θ) diag(λ_1, λ_2) R(θ)^T`` with ``λ_1 > λ_2 > 1``: two real unstable modes whose
eigenvectors are the plane rotated by ``angle`` θ (default 45°: both readout channels see both
modes; at θ = 0 the task splits into two 1-D fits), or, with ``between`` ≠ 90°, the non-normal
block ``P diag(λ_1, λ_2) P^{-1}`` whose eigenvectors are ``between`` degrees apart. Note: a
rotation alone hardly changes SGD (the loss sums both channels, the square of initial conditions
has isotropic covariance and ``tanh`` is nearly linear while the student's states are small, so
in that regime SGD is equivariant under rotations of the readout plane); non-orthogonal modes
(``between`` ≠ 90°) couple the two fits for real. Off the plane ``W`` is a contracting
``0.5 ×`` Xavier block (spectral radius ≈ 0.5), so these are the only unstable eigenvalues.

Student (App. B): :func:`sntkit.tasks.student_teacher.make_student` (64 units, Xavier ×
``student_gain`` with bias), initial conditions uniform on ``[−ic_range, ic_range]²`` in the
readout plane, loss the readout MSE over ``T`` steps, full-batch SGD (stage ``sgd``) and
optionally rank-2 state-space natural gradient (stage ``natural_gradient_rank2``).

Tracking by eigenvector: every ``track_every`` steps, teacher mode ``k`` is matched to the
student eigenvalue of ``W`` whose eigenvectors overlap most with the teacher's eigenvector
``v_k`` (:func:`track_modes`: right and left eigenvectors; the two modes get distinct student
eigenvalues, the pair with the larger total overlap). Milestones (:func:`milestones`), each
the first tracked step from which a condition holds at *every* later tracked step:
``mode{k}_crossing`` (Re λ > 1) and ``mode{k}_learned`` (Re λ > 1 and ``|Re λ − λ_k| ≤
max(rel_tol (λ_k − 1), abs_tol)``, ``abs_tol`` 0 by default: the tolerance scales with the
mode's instability; an absolute 0.02 is rarely met for good at
quick scale, where the student's eigenvalues of ``W`` settle a few hundredths off the teacher's
— the student has a bias and hidden units of its own, so only its readout has to match). Ratios::

    ratio          = (mode2_learned − mode1_crossing) / mode1_learned
    crossing_ratio = (mode2_crossing − mode1_crossing) / mode1_crossing

i.e. the time mode 2 needs once mode 1 is unstable, in units of the time mode 1 needed. The
sNTK stable rank (Hutchinson estimate with ``rank_matvecs`` probes, every ``rank_every`` steps)
is summarised before mode 1's crossing and on mode 1's plateau (from ``mode1_learned`` to
``mode2_crossing``, or to the end). ``two-modes-sweep`` runs ``two-modes`` (SGD only) over a grid
of ``λ_2 − 1``, ``λ_1``, ``lr``, ``T`` and seeds on Dask and reports the ratio's distribution.
"""

from __future__ import annotations

import functools
import math
import statistics
from typing import TYPE_CHECKING, Any

import torch

from sntkit.experiments import plotting, style
from sntkit.experiments.optimizers import make_optimizer
from sntkit.experiments.registry import register
from sntkit.experiments.run import Run
from sntkit.experiments.stats import spearman
from sntkit.experiments.sweep import run_sweep
from sntkit.linalg import effective_rank
from sntkit.models.rnn import RNN
from sntkit.ntk import state_ntk
from sntkit.tasks.student_teacher import APP_B, READOUT, StudentTeacherTask, make_student

if TYPE_CHECKING:
    from matplotlib.typing import LineStyleType

_COMMON = {
    "lambda1": 1.3,
    "lambda2": 1.1,
    "angle": 45.0,
    "between": 90.0,
    "student_gain": 0.85,
    "ic_range": 2.0,
    "rel_tol": 0.5,
    "abs_tol": 0.0,
    "rank_matvecs": 32,
    "damping": 100.0,
    "update_every": 10,
    "natural_gradient": True,
}
SCALES = {
    "quick": {**APP_B, **_COMMON, "iterations": 3000, "track_every": 25, "rank_every": 250,
              "checkpoint_every": 1000},
    "paper": {**APP_B, **_COMMON, "iterations": 35000, "track_every": 25, "rank_every": 500,
              "checkpoint_every": 5000},
}  # fmt: skip
OPTIMIZERS = ("sgd", "natural_gradient_rank2")
#: legend names of the optimizers
_NAMES = {"sgd": "SGD", "natural_gradient_rank2": "rank-2 natural gradient"}


def two_mode_teacher(
    n: int, l1: float, l2: float, angle: float = 45.0, seed: int = 0, between: float = 90.0
) -> tuple[RNN, torch.Tensor]:
    """Return the teacher of the module docstring and its two unstable eigenvectors ``(n, 2)``.

    Mode 1's eigenvector is the readout axis 0 rotated by ``angle`` degrees, mode 2's a further
    ``between`` degrees on: 90 gives a normal readout block ``R diag(λ) R^T``, other values a
    non-normal one ``P diag(λ) P^{-1}`` whose modes are not orthogonal.
    """
    if not l1 > l2 > 1.0:
        raise ValueError(f"need lambda1 > lambda2 > 1, got lambda1={l1}, lambda2={l2}")
    if between % 180.0 == 0.0:
        raise ValueError(f"between must not be a multiple of 180 degrees, got {between}")
    g = torch.Generator().manual_seed(20_000 + seed)
    W = 0.5 * torch.randn(n, n, generator=g) / math.sqrt(n)
    W[:2, :], W[:, :2] = 0.0, 0.0
    a = torch.tensor([angle, angle + between], dtype=torch.float64).deg2rad()
    P = torch.stack([a.cos(), a.sin()])  # unit eigenvectors as columns
    W[:2, :2] = (
        P @ torch.diag(torch.tensor([l1, l2], dtype=P.dtype)) @ torch.linalg.inv(P)
    ).float()
    V = torch.zeros(n, 2)
    V[:2] = P.float()
    return RNN.from_weights(W), V


def track_modes(W: torch.Tensor, V: torch.Tensor) -> list[tuple[float, float, float]]:
    """``(Re λ, Im λ, overlap)`` of the student eigenvalue matched to each teacher mode.

    ``W = Σ_j λ_j u_j w_j^H`` (right eigenvectors ``u_j``, left ``w_j^H``, ``w_j^H u_i = δ_ij``).
    The overlap of student mode ``j`` with teacher eigenvector ``v`` (a column of ``V``) is
    ``|cos∠(v, u_j)| |cos∠(v, w_j)|`` (at most 1, and 1 when ``v`` is both a right and a left
    eigenvector, as the teacher's are). Right eigenvectors alone match poorly: the student's
    learned modes spread over its hidden units, and at a given step a stable bulk vector often
    leans as much towards the readout plane; the left factor asks the mode to be excited from
    ``v`` too. Normalising ``w_j`` keeps near-degenerate, ill-conditioned pairs of a non-normal
    ``W`` (whose ``|w_j|`` is large) from winning.
    """
    ev, U = torch.linalg.eig(W.detach().double())
    Vc = (V.double() / V.double().norm(dim=0)).to(U.dtype)
    left = torch.linalg.inv(U)  # rows w_j^H
    ov = ((Vc.conj().T @ U).T * (left @ Vc) / left.norm(dim=1, keepdim=True)).abs()  # (n, 2)
    best = ov.argmax(dim=0).tolist()
    if best[0] == best[1]:  # one student mode serves both: give the other mode its next best
        alt = [ov[:, k].clone() for k in (0, 1)]
        alt[0][best[1]] = alt[1][best[0]] = -1.0
        a, b = (best[0], int(alt[1].argmax())), (int(alt[0].argmax()), best[1])
        best = list(a if ov[a[0], 0] + ov[a[1], 1] >= ov[b[0], 0] + ov[b[1], 1] else b)
    return [(float(ev[j].real), float(ev[j].imag), float(ov[j, k])) for k, j in enumerate(best)]


def _first_stay(rows: list[dict], ok: Any) -> int | None:
    """Return the first row's step from which ``ok(row)`` holds for all later rows (None: never)."""
    found = None
    for row in rows:
        found = (row["step"] if found is None else found) if ok(row) else None
    return found


def milestones(
    rows: list[dict], targets: tuple[float, float], rel_tol: float, abs_tol: float = 0.0
) -> dict[str, Any]:
    """Crossing and learned steps of both modes, and the two ratios (module docstring).

    Learned: unstable (Re λ > 1) and within ``max(rel_tol (λ_k − 1), abs_tol)`` of ``λ_k``; the
    floor ``abs_tol`` keeps the tolerance from shrinking with a weakly unstable mode (at
    ``λ_2 − 1 = 0.02`` the relative one is 0.01, below where the student's ``W`` settles).
    """
    out: dict[str, Any] = {}
    for k, lam in enumerate(targets, start=1):
        key, tol = f"eig{k}", max(rel_tol * (lam - 1.0), abs_tol)
        out[f"mode{k}_crossing"] = _first_stay(rows, lambda r, key=key: r[key] > 1.0)
        out[f"mode{k}_learned"] = _first_stay(
            rows, lambda r, key=key, lam=lam, tol=tol: r[key] > 1.0 and abs(r[key] - lam) <= tol
        )
    c1, c2, l1, l2 = (out[k] for k in ("mode1_crossing", "mode2_crossing", "mode1_learned",
                                       "mode2_learned"))  # fmt: skip
    out["ratio"] = (l2 - c1) / l1 if None not in (c1, l1, l2) and l1 > 0 else None
    out["crossing_ratio"] = (c2 - c1) / c1 if None not in (c1, c2) and c1 > 0 else None
    return out


def _stable_rank(student: RNN, task: StudentTeacherTask, matvecs: int, seed: int) -> float:
    ntk = state_ntk(student, task.h0, steps=task.steps)
    return float(effective_rank(ntk.spectral_operator, "stable", matvecs, seed=seed).value)


def _check(config, student, task, V, kind: str, step: int, loss: float) -> dict[str, Any]:
    (e1, i1, o1), (e2, i2, o2) = track_modes(student.W, V)
    row = {"optimizer": kind, "step": step, "loss": loss, "eig1": e1, "eig2": e2, "imag1": i1,
           "imag2": i2, "overlap1": o1, "overlap2": o2, "stable_rank": math.nan}  # fmt: skip
    if step % config["rank_every"] == 0 or step == config["iterations"]:
        row["stable_rank"] = _stable_rank(student, task, config["rank_matvecs"], config["seed"])
    return row


def _train(config: dict, run: Run, kind: str, task: StudentTeacherTask, V: torch.Tensor) -> dict:
    """One stage: train a fresh student with optimizer ``kind``; returns its milestones."""
    student = make_student(config["n"], gain=config["student_gain"], seed=config["seed"] + 1)
    opt = make_optimizer(
        kind,
        student,
        config,
        lambda: state_ntk(student, task.h0, steps=task.steps, path="unrolled"),
    )
    iters = config["iterations"]
    loop = run.loop(iters + 1, desc=kind, student=student, optimizer=opt)
    for step in loop:
        loss = task.loss(student)
        if step % config["track_every"] == 0 or step == iters:
            run.log(_check(config, student, task, V, kind, step, float(loss.detach())))
            loop.show(loss=run.rows[-1]["loss"], eig1=run.rows[-1]["eig1"],
                      eig2=run.rows[-1]["eig2"])  # fmt: skip
        if step == iters:
            continue  # the last pass only checks the final parameters
        if not math.isfinite(float(loss.detach())):
            raise ValueError(f"{kind} diverged at step {step} (loss not finite); lower lr")
        opt.zero_grad()
        loss.backward()
        opt.step()
    return _stage_summary(config, [r for r in run.rows if r["optimizer"] == kind])


def _stage_summary(config: dict, rows: list[dict]) -> dict[str, Any]:
    targets = (config["lambda1"], config["lambda2"])
    out = milestones(rows, targets, config["rel_tol"], config.get("abs_tol", 0.0))
    c1, l1 = out["mode1_crossing"], out["mode1_learned"]
    end = out["mode2_crossing"] if out["mode2_crossing"] is not None else rows[-1]["step"]

    def median_rank(lo: float, hi: float) -> float | None:
        vals = [r["stable_rank"] for r in rows if lo <= r["step"] <= hi]
        vals = [v for v in vals if math.isfinite(v)]
        return statistics.median(vals) if vals else None

    out["stable_rank_initial"] = median_rank(0, (c1 if c1 is not None else end) - 1)
    out["stable_rank_plateau"] = median_rank(l1, end) if l1 is not None else None
    out["final_loss"] = rows[-1]["loss"]
    out["final_eigenvalues"] = [rows[-1]["eig1"], rows[-1]["eig2"]]
    return out


def make_task(config: dict[str, Any]) -> tuple[StudentTeacherTask, torch.Tensor]:
    """Return the teacher's task (fixed batch of initial conditions) and its mode eigenvectors."""
    n, B, T = config["n"], config["batch"], config["steps_T"]
    teacher, V = two_mode_teacher(
        n, config["lambda1"], config["lambda2"], config["angle"], config["seed"], config["between"]
    )
    g = torch.Generator().manual_seed(config["seed"])
    h0 = torch.zeros(B, n)
    h0[:, list(READOUT)] = (2 * torch.rand(B, 2, generator=g) - 1) * config["ic_range"]
    with torch.no_grad():
        target = teacher(h0, steps=T)[..., list(READOUT)]
    return StudentTeacherTask(teacher, h0, target, T), V


@register(
    "two-modes",
    description="paper 000 Fig. 3: two coupled unstable modes, SGD vs rank-2 natural gradient",
    scales=SCALES,
    signed=("angle", "abs_tol"),  # abs_tol <= 0: no floor
)
def two_modes(config: dict[str, Any], run: Run) -> dict[str, Any]:
    """Run paper 000 Fig. 3: two unstable modes, SGD against rank-2 natural gradient."""
    task, V = make_task(config)
    kinds = OPTIMIZERS if config["natural_gradient"] else OPTIMIZERS[:1]
    summary: dict[str, Any] = {"teacher_eigenvalues": [config["lambda1"], config["lambda2"]]}
    for kind in kinds:
        summary[kind] = run.stage(kind, functools.partial(_train, config, run, kind, task, V))
    summary |= {k: summary["sgd"][k] for k in ("ratio", "crossing_ratio", "stable_rank_plateau")}
    _figure(run, kinds, (config["lambda1"], config["lambda2"]))
    return run.finish(summary)


def _figure(run: Run, kinds: tuple[str, ...], targets: tuple[float, float]) -> None:
    fig, ax = plotting.figure(1, 3, width=3.3)
    line_styles: tuple[LineStyleType, ...] = ("-", "--")
    dashes = dict(zip(kinds, line_styles, strict=False))
    modes = {1: style.COLORS[0], 2: style.COLORS[1]}
    for kind, dash in dashes.items():
        rows = [r for r in run.rows if r["optimizer"] == kind]
        steps = [r["step"] for r in rows]
        for k, color in modes.items():
            ax[0, 0].plot(steps, [r[f"eig{k}"] for r in rows], dash, color=color, linewidth=1)
        ranked = [r for r in rows if math.isfinite(r["stable_rank"])]
        ax[0, 1].plot([r["step"] for r in ranked], [r["stable_rank"] for r in ranked], dash,
                      color="k")  # fmt: skip
        ax[0, 2].semilogy(steps, [r["loss"] for r in rows], dash, color="k")
    for lam in targets:
        ax[0, 0].axhline(lam, color="k", linestyle=":", linewidth=0.8)
    ax[0, 0].axhline(1.0, color="gray", linewidth=0.6)
    ax[0, 0].set(xlabel="SGD step", ylabel="Re λ matched to teacher mode",
                 title="student vs teacher eigenvalues")  # fmt: skip
    ax[0, 1].set(xlabel="SGD step", ylabel="sNTK stable rank", title="sNTK stable rank")
    ax[0, 2].set(xlabel="SGD step", ylabel="loss (MSE)", title="loss")
    handles = [
        *(style.proxy(f"mode {k}", color=c) for k, c in modes.items()),
        *(style.proxy(_NAMES.get(kind, kind), linestyle=d) for kind, d in dashes.items()),
        style.proxy("teacher eigenvalues", linestyle=":"),
        style.proxy("λ = 1", color="gray"),
    ]
    style.legend_outside(ax[0, 2], handles=handles)
    plotting.save(fig, run.path("fig3_two_modes"))


# ---------------------------------------------------------------------- the sweep
#: settings passed on to every point unchanged
_POINT = (
    "n",
    "batch",
    "angle",
    "iterations",
    "track_every",
    "rank_every",
    "rank_matvecs",
    "rel_tol",
    "abs_tol",
)
SWEEP_SCALES = {
    "quick": {"lambda2_minus_1": [0.1], "lambda1": [1.3], "lr": [5e-3], "steps_T": [25],
              "seeds": 5, "workers": 2,
              **{k: SCALES["quick"][k] for k in _POINT}},
    "paper": {"lambda2_minus_1": [0.02, 0.05, 0.1, 0.2], "lambda1": [1.3, 1.5],
              "lr": [2.5e-3, 5e-3], "steps_T": [15, 25], "seeds": 5, "workers": 0,
              **{k: SCALES["paper"][k] for k in _POINT}},
}  # fmt: skip


@register(
    "two-modes-sweep",
    description="paper 000 App. C: distribution of the two-modes ratio over a grid and seeds",
    scales=SWEEP_SCALES,
    signed=("workers", "angle", "abs_tol"),
)
def two_modes_sweep(config: dict[str, Any], run: Run) -> dict[str, Any]:
    """Run paper 000 App. C: the two-modes ratio over a grid of settings and seeds."""
    grid = {
        "lambda1": config["lambda1"],
        "lambda2": [round(1.0 + d, 10) for d in config["lambda2_minus_1"]],
        "lr": config["lr"],
        "steps_T": config["steps_T"],
        "seed": list(range(config["seeds"])),
    }
    base = {"natural_gradient": False, "device": config["device"]}
    base |= {k: config[k] for k in _POINT}
    table = run_sweep("two-modes", grid, base=base, out=run.path("sweep"),
                      workers=config["workers"] or None)  # fmt: skip
    summary = ratio_summary(table, list(grid)[:-1], config["seeds"])
    _ratio_figure(run, lower_bounds(table, config["iterations"]))
    return run.finish(summary)


def ratio_summary(table: Any, settings: list[str], seeds: int) -> dict[str, Any]:
    """``ratio_median``/``_min``/``_max`` over finished points, per setting and overall."""
    done = table[(table.status == "ok") & table["ratio"].notna()]
    ratios = [float(r) for r in done["ratio"]]
    out: dict[str, Any] = {"num_seeds": seeds, "num_points": len(table),
                           "num_with_ratio": len(ratios)}  # fmt: skip
    out["num_mode2_not_learned"] = int((table.status == "ok").sum()) - len(ratios)
    out |= {"ratio_median": None, "ratio_min": None, "ratio_max": None, "ratio_max_setting": None}
    if ratios:
        top = done.loc[done["ratio"].astype(float).idxmax()]
        out |= {"ratio_median": statistics.median(ratios), "ratio_min": min(ratios),
                "ratio_max": max(ratios),
                "ratio_max_setting": {k: top[k] for k in [*settings, "seed"]}}  # fmt: skip
    ranked = done[done["stable_rank_plateau"].notna()]
    if len(ranked) >= 3:
        out["spearman_ratio_vs_plateau_rank"] = spearman(
            list(ranked["ratio"]), list(ranked["stable_rank_plateau"])
        )
    out["per_setting"] = [
        {**dict(zip(settings, key, strict=True)), "n": len(g), "median": float(g.median()),
         "min": float(g.min()), "max": float(g.max())}
        for key, g in done.groupby(settings)["ratio"]
    ]  # fmt: skip
    return out


def lower_bounds(table: Any, iterations: int) -> Any:
    """Return the finished rows with the lower bounds of the ratios mode 2 has not reached.

    Columns ``learned`` / ``crossing``: where mode 2 was not learned / did not cross by the last
    step ``iterations``, the ratio it would have there (a lower bound); ``NaN`` elsewhere and
    where mode 1 has no milestone.
    """
    ok = table[table.status == "ok"]
    c1, l1 = ok["sgd.mode1_crossing"].astype(float), ok["sgd.mode1_learned"].astype(float)
    return ok.assign(
        learned=((iterations - c1) / l1).where(ok["ratio"].isna()),
        crossing=((iterations - c1) / c1).where(ok["crossing_ratio"].isna()),
    )


def _ratio_figure(run: Run, bounds: Any) -> None:
    """Plot the learned and the crossing ratio per seed, :func:`lower_bounds` as ▲."""
    fig, ax = plotting.figure(1, 2, width=3.6)
    panels = (("ratio", "learned", "(t2 learned − t1 cross) / t1 learned"),
              ("crossing_ratio", "crossing", "(t2 cross − t1 cross) / t1 cross"))  # fmt: skip
    for a, (key, bound, label) in zip(ax[0], panels, strict=True):
        for i, ((l1, lr, T), g) in enumerate(bounds.groupby(["lambda1", "lr", "steps_T"])):
            color, x = f"C{i}", g["lambda2"] - 1.0
            a.semilogy(x, g[key].astype(float).clip(lower=1e-2), "o", color=color, alpha=0.6,
                       label=f"λ1={l1}, lr={lr}, T={T}")  # fmt: skip
            a.semilogy(x, g[bound], "^", mfc="none", color=color, alpha=0.8)
        a.axhline(100.0, color="k", linestyle=":", linewidth=0.8, label="paper: ~100×")
        a.set(xlabel="λ2 − 1", ylabel=label)
    fig.suptitle("two-modes ratio per seed (▲: not there by the last step, a lower bound)")
    style.legend_outside(ax[0, 1])
    plotting.save(fig, run.path("fig3_ratio_distribution"))
