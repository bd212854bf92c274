"""Paper 000, Figure 3 (App. C): learning a teacher with two unstable modes.

The teacher is a post-form tanh RNN ``h' = W tanh(h)`` whose readout plane (units 0, 1) carries
two decoupled unstable modes, ``W_00 = λ_1`` and ``W_11 = λ_2`` (> 1), with the rest of ``W``
a contracting ``0.5 ×`` Xavier block off the plane. The student (Xavier × ``student_gain``,
initially stable, zero bias) learns the readout trajectories from initial conditions in the
plane, once with SGD and once with rank-2 state-space natural gradient. The two leading
eigenvalues of the student's ``W`` (by real part) are tracked against ``λ_1, λ_2``. Summary per
optimizer: the steps at which each mode crosses ``1`` and comes within ``tol`` of its teacher
value, and the ratio second/first (the paper reports about 100× more iterations for the second
mode).
"""

from __future__ import annotations

import math
from typing import Any

import torch

from sntkit.experiments import plotting, style
from sntkit.experiments.progress import Progress
from sntkit.experiments.registry import register
from sntkit.experiments.run import Run
from sntkit.models.rnn import RNN
from sntkit.ntk import state_ntk
from sntkit.optim import LowRankNaturalGradient
from sntkit.tasks.student_teacher import APP_B

SCALES = {
    "quick": {
        "n": 32,
        "batch": 128,
        "steps_T": 25,
        "lr": 0.02,
        "iterations": 4000,
        "lambda1": 1.3,
        "lambda2": 1.1,
        "student_gain": 0.5,
        "ic_range": 1.0,
        "tol": 0.02,
        "track_every": 10,
        "damping": 100.0,
        "update_every": 10,
        "checkpoint_every": 2000,
    },
    "paper": {
        **APP_B,
        "iterations": 35000,
        "lambda1": 1.3,
        "lambda2": 1.1,
        "student_gain": 0.5,
        "ic_range": 1.0,
        "tol": 0.02,
        "track_every": 25,
        "damping": 100.0,
        "update_every": 10,
        "checkpoint_every": 5000,
    },
}
OPTIMIZERS = ("sgd", "natural_gradient_rank2")
#: legend names of the optimizers
_NAMES = {"sgd": "SGD", "natural_gradient_rank2": "rank-2 natural gradient"}


def two_mode_teacher(n: int, l1: float, l2: float, seed: int) -> RNN:
    g = torch.Generator().manual_seed(20_000 + seed)
    W = 0.5 * torch.randn(n, n, generator=g) / math.sqrt(n)
    W[:2, :], W[:, :2] = 0.0, 0.0
    W[0, 0], W[1, 1] = l1, l2
    teacher = RNN(n, 0, form="post")
    with torch.no_grad():
        teacher.W.copy_(W)
        teacher.b.zero_()
    return teacher


def leading_eigenvalues(W: torch.Tensor, k: int = 2) -> list[float]:
    ev = torch.linalg.eigvals(W.detach().double())
    ev = ev[ev.real.argsort(descending=True)]
    return [float(e.real) for e in ev[:k]]


def milestones(track: list[dict], targets: tuple[float, float], tol: float) -> dict[str, Any]:
    """First steps at which mode i exceeds 1 and reaches ``targets[i] ± tol``."""
    out: dict[str, Any] = {}
    for i, lam in enumerate(targets, start=1):
        cross = next((r["step"] for r in track if r[f"eig{i}"] > 1.0), None)
        reach = next((r["step"] for r in track if abs(r[f"eig{i}"] - lam) <= tol), None)
        out[f"mode{i}_crosses_1"] = cross
        out[f"mode{i}_reaches_teacher"] = reach
    a, b = out["mode1_reaches_teacher"], out["mode2_reaches_teacher"]
    out["ratio_second_over_first"] = (b / a) if a and b else None
    ca, cb = out["mode1_crosses_1"], out["mode2_crosses_1"]
    out["crossing_ratio_second_over_first"] = (cb / ca) if ca and cb else None
    return out


@register(
    "two-modes",
    description="paper 000 Fig. 3: two unstable modes, SGD vs rank-2 natural gradient",
    scales=SCALES,
)
def two_modes(config: dict[str, Any], run: Run) -> dict[str, Any]:
    n, T, B = config["n"], config["steps_T"], config["batch"]
    teacher = two_mode_teacher(n, config["lambda1"], config["lambda2"], config["seed"])
    g = torch.Generator().manual_seed(config["seed"])
    h0 = torch.zeros(B, n)
    h0[:, :2] = (2 * torch.rand(B, 2, generator=g) - 1) * config["ic_range"]
    with torch.no_grad():
        target = teacher(h0, steps=T)[..., :2]
    targets = (config["lambda1"], config["lambda2"])
    summary: dict[str, Any] = {"teacher_eigenvalues": list(targets)}
    tracks: dict[str, list[dict]] = {}
    run.checkpoint_every = config["checkpoint_every"]
    restored = run.restore()
    state = restored[1] if restored else {"index": 0}
    if restored:
        summary, tracks = state["summary"], state["tracks"]
    iters = config["iterations"]
    for index, kind in enumerate(OPTIMIZERS):
        if index < state["index"]:
            continue  # finished before the interruption
        student = RNN(
            n,
            0,
            form="post",
            gain=config["student_gain"],
            generator=torch.Generator().manual_seed(config["seed"] + 1),
        )
        with torch.no_grad():
            student.b.zero_()
        if kind == "sgd":
            opt: torch.optim.Optimizer = torch.optim.SGD(student.parameters(), lr=config["lr"])
        else:
            opt = LowRankNaturalGradient(
                student,
                lambda student=student: state_ntk(student, h0, steps=T, path="unrolled"),
                rank=2,
                lr=config["lr"],
                damping=config["damping"],
                update_every=config["update_every"],
                seed=config["seed"],
            )
        track: list[dict] = []
        start = 0
        if index == state["index"] and "step" in state:  # resume inside this run
            student.load_state_dict(state["student"])
            opt.load_state_dict(state["optimizer"])
            track, start = state["track"], state["step"]
        bar = Progress(range(start, iters + 1), total=iters + 1 - start, desc=kind)
        for step in bar:
            loss = (student(h0, steps=T)[..., :2] - target).square().mean()
            if step % config["track_every"] == 0:
                e1, e2 = leading_eigenvalues(student.W)
                row = {
                    "optimizer": kind,
                    "step": step,
                    "loss": float(loss.detach()),
                    "eig1": e1,
                    "eig2": e2,
                }
                track.append(row)
                run.log(row)
                bar.show(loss=row["loss"], eig1=e1, eig2=e2)
            if step == iters:
                break
            if not math.isfinite(float(loss.detach())):
                raise ValueError(f"{kind} diverged at step {step}; lower lr")
            opt.zero_grad()
            loss.backward()
            opt.step()
            if run.should_checkpoint(step + 1) and step + 1 < iters:
                run.checkpoint(
                    index * (iters + 1) + step + 1,  # the newest file is the latest state
                    {
                        "index": index,
                        "step": step + 1,
                        "student": student.state_dict(),
                        "optimizer": opt.state_dict(),
                        "track": track,
                        "tracks": tracks,
                        "summary": summary,
                    },
                )
        bar.close()
        tracks[kind] = track
        summary[kind] = milestones(track, targets, config["tol"]) | {
            "final_loss": track[-1]["loss"],
            "final_eigenvalues": [track[-1]["eig1"], track[-1]["eig2"]],
        }
    _figure(run, tracks, targets)
    return run.finish(summary)


def _figure(run: Run, tracks: dict[str, list[dict]], targets: tuple[float, float]) -> None:
    fig, ax = plotting.figure(1, 3, width=3.3)
    dashes = dict(zip(OPTIMIZERS, ("-", "--"), strict=True))
    modes = {1: style.COLORS[0], 2: style.COLORS[1]}
    for kind, dash in dashes.items():
        steps = [r["step"] for r in tracks[kind]]
        for i, color in modes.items():
            vals = [r[f"eig{i}"] for r in tracks[kind]]
            for a in ax[0, :2]:
                a.plot(steps, vals, dash, color=color, linewidth=1)
        ax[0, 2].semilogy(steps, [r["loss"] for r in tracks[kind]], dash, color="k")
    for a in ax[0, :2]:
        for lam in targets:
            a.axhline(lam, color="k", linestyle=":", linewidth=0.8)
        a.axhline(1.0, color="gray", linewidth=0.6)
        a.set(xlabel="step", ylabel="leading eigenvalues of W")
    ax[0, 0].set_title("student vs teacher eigenvalues")
    last = tracks["sgd"][-1]["step"]
    ax[0, 1].set(xlim=(0, max(1, last // 4)), ylim=(0.9, max(targets) + 0.15), title="zoom")
    ax[0, 2].set(xlabel="step", ylabel="loss")
    handles = [
        *(style.proxy(f"mode {i}", color=c) for i, c in modes.items()),
        *(style.proxy(_NAMES.get(kind, kind), linestyle=d) for kind, d in dashes.items()),
        style.proxy("teacher eigenvalues", linestyle=":"),
        style.proxy("|λ| = 1", color="gray"),
    ]
    style.legend_outside(ax[0, 2], handles=handles)
    plotting.save(fig, run.path("fig3_two_modes"))
