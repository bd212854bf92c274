"""Paper 000, Figure 1: sNTK collapse at the first learned bifurcation of a student RNN.

``sntkit reproduce student-teacher`` trains the student of :mod:`sntkit.tasks.student_teacher`
with plain full-batch SGD and, at checks, records the loss, the sNTK stable and participation
ranks (with error bars), the spectral radius of ``W`` and the student's fixed points; each change
of the fixed-point signature between checks is located and classified
(:class:`sntkit.dynamics.BifurcationMonitor`). At the first event the sNTK is split into the
bifurcation channel and the rest (dominance ratio; also for the sNTK of ``W`` alone, without the
bias channels: ``dominance_ratio_weights_only``) and the landscape along ``e_g`` is fitted by
the matching normal form. Outputs: ``metrics.parquet``, ``events.json``, ``summary.json``,
``teacher.pt``, figures ``fig1_training``, ``fig1_phase_portraits``, ``fig1_landscape``,
``fig1_bifurcation``.
"""

from __future__ import annotations

import copy
import math
import statistics
import time
from typing import Any

import torch

from sntkit.dynamics import (
    BifurcationMonitor,
    channel_decomposition,
    eigenvalue_gradient,
    find_fixed_points,
    fit_normal_form,
    interpolate,
    local_landscape,
)
from sntkit.experiments import plotting, style
from sntkit.experiments.io import save_checkpoint
from sntkit.experiments.registry import register
from sntkit.experiments.run import Run
from sntkit.linalg import effective_rank
from sntkit.models.rnn import RNN
from sntkit.ntk import state_ntk
from sntkit.tasks.student_teacher import APP_B, READOUT, StudentTeacherTask, make_student

SCALES = {
    "quick": {
        **APP_B,
        "iterations": 1500,
        "check_every": 25,
        "fine_every": 5,
        "fine_window": 100,
        "rank_matvecs": 48,
        "student_gain": 0.85,
        "landscape_span": 6.0,
        "locate_tol": 1e-3,
        "checkpoint_every": 250,
    },
    "paper": {
        **APP_B,
        "iterations": 35000,
        "check_every": 100,
        "fine_every": 10,
        "fine_window": 300,
        "rank_matvecs": 96,
        "student_gain": 0.85,
        "landscape_span": 6.0,
        "locate_tol": 1e-3,
        "checkpoint_every": 2500,
    },
}


def sntk_ranks(model: RNN, h0: torch.Tensor, T: int, matvecs: int, seed: int) -> dict[str, float]:
    """Stable and participation rank of the student's sNTK (on the Fisher side) with errors."""
    ntk = state_ntk(model, h0, steps=T)
    op = ntk.spectral_operator
    stable = effective_rank(op, "stable", matvecs, seed=seed)
    part = effective_rank(op, "participation", matvecs, seed=seed)
    return {
        "stable_rank": stable.value,
        "stable_rank_err": stable.stderr,
        "participation_rank": part.value,
        "participation_rank_err": part.stderr,
    }


def _window(rows: list[dict], key: str, lo: float, hi: float, how: str) -> float:
    vals = [r[key] for r in rows if lo <= r["step"] <= hi and r.get(key) is not None]
    vals = [v for v in vals if math.isfinite(v)]
    if not vals:
        return math.nan
    return statistics.median(vals) if how == "median" else min(vals)


def _analyse_event(
    student: RNN, task: StudentTeacherTask, event: Any, p0: dict, p1: dict, span: float
) -> dict[str, Any]:
    """Channel decomposition and normal-form landscape fit at the event's parameters."""
    at = copy.deepcopy(student).double()
    params = interpolate(p0, p1, min(1.0, event.s_bracket[1]))
    with torch.no_grad():
        for name, p in at.named_parameters():
            p.copy_(params[name])
    h0 = task.h0.double()
    ntk = state_ntk(at, h0, steps=task.steps)
    target = complex(*event.critical_eigenvalue)
    point = torch.tensor(event.critical_point, dtype=torch.float64)
    dec = channel_decomposition(ntk, point, target if math.isfinite(target.real) else 1.0)
    # the same split of the sNTK of W alone: how much of the gap to 1 the bias channels make
    weights = channel_decomposition(
        state_ntk(at, h0, steps=task.steps, trainable=["W"]), point, dec.critical_eigenvalue
    )
    # landscape along e_g over ±span/‖∇λ_c‖: wide enough to show the amplification peak past
    # g* and its decay (a window of ±0.3/‖∇λ_c‖ only sees the monotone rise up to the peak)
    grad, _ = eigenvalue_gradient(ntk, point, dec.critical_eigenvalue)
    delta = span / max(float(grad.norm()), 1e-12)
    s = torch.linspace(-delta, delta, 41, dtype=torch.float64)
    landscape = local_landscape(ntk, dec.e_g, s)
    form = "pitchfork" if "pitchfork" in event.kind else "stability_flip"
    fit = fit_normal_form(s, landscape, form, T=task.steps, sign=1)
    free = fit_normal_form(s, landscape, form, T=task.steps)
    flip = fit_normal_form(s, landscape, "stability_flip", T=task.steps, sign=1)
    return {
        "decomposition": dec.to_dict(),
        "decomposition_weights_only": weights.to_dict(),
        "landscape": {
            "s": s.tolist(),
            "values": landscape.tolist(),
            "fit": fit.to_dict(),
            "predicted": fit.predicted.tolist(),
            "fit_free_sign": free.to_dict(),
            "fit_stability_flip": flip.to_dict(),
        },
    }


@register(
    "student-teacher",
    description="paper 000 Fig. 1: sNTK rank collapse at the first learned bifurcation",
    scales=SCALES,
)
def student_teacher(config: dict[str, Any], run: Run) -> dict[str, Any]:
    """Run paper 000 Fig. 1: sNTK rank collapse at the first learned bifurcation."""
    device, T = config["device"], config["steps_T"]
    task = StudentTeacherTask.build(
        config["n"], config["batch"], T, seed=config["seed"], device=device
    )
    student = make_student(
        config["n"], gain=config["student_gain"], seed=config["seed"], device=device
    )
    teacher_fps = find_fixed_points(task.teacher, inits=256, scale=1.5)
    save_checkpoint(
        run.path("teacher.pt"), {"state_dict": task.teacher.state_dict(), "h0": task.h0}
    )
    initial_fps = find_fixed_points(student, inits=128, scale=1.5)
    state = _train(config, run, task, student)
    final_fps = find_fixed_points(student, inits=256, scale=1.5)
    analysis = state["analysis"]
    summary = _summary(config, run, analysis, initial_fps, final_fps, teacher_fps, state["elapsed"])
    _figures(run, task, student, final_fps, teacher_fps, analysis)
    return run.finish(summary)


def _train(
    config: dict[str, Any], run: Run, task: StudentTeacherTask, student: RNN
) -> dict[str, Any]:
    """Full-batch SGD with fixed-point checks; returns ``{"analysis", "elapsed"}``."""
    T, seed = config["steps_T"], config["seed"]
    opt = torch.optim.SGD(student.parameters(), lr=config["lr"])
    monitor = BifurcationMonitor(
        student,
        every=config["check_every"],
        fine_every=config["fine_every"],
        fine_window=config["fine_window"],
        tol=config["locate_tol"],
        extra_metrics=lambda params: sntk_ranks(student, task.h0, T, config["rank_matvecs"], seed),
        init_scale=1.5,
        seed=seed,
    )
    state: dict[str, Any] = {"analysis": None, "elapsed": 0.0}
    tick, steps = time.perf_counter(), config["iterations"]
    # one pass more than there are SGD steps: the last one only checks the final parameters
    loop = run.loop(steps + 1, desc="student-teacher", student=student, optimizer=opt,
                    monitor=monitor, state=state)  # fmt: skip
    for step in loop:
        if monitor.due(step) or step == steps:
            loss_now = _check(config, run, task, student, monitor, step, state)
            loop.show(step=step, loss=loss_now, stable_rank=run.rows[-1]["stable_rank"])
        if step < steps:
            loss = task.loss(student)
            opt.zero_grad()
            loss.backward()
            opt.step()
            if not math.isfinite(float(loss.detach())):
                raise ValueError(f"training diverged at step {step} (loss is not finite); lower lr")
        now = time.perf_counter()
        state["elapsed"] += now - tick
        tick = now
    return state


def _check(config, run, task, student, monitor, step, state) -> float:
    """One monitor check: log its row and events; analyse the first event's geometry."""
    params = {k: v.detach().clone() for k, v in student.named_parameters()}
    with torch.no_grad():
        loss_now = float(task.loss(student))
        traj = student(task.h0, steps=config["steps_T"])
    prev = monitor.prev
    row, events = monitor.check(step, params, loss=loss_now, trajectory=traj)
    run.log(row)
    before = run.rows[-2] if len(run.rows) > 1 else {}
    for ev in events:
        rec = ev.to_dict() | {
            "loss_before": before.get("loss"),
            "loss_after": loss_now,
            "stable_rank_before": before.get("stable_rank"),
            "stable_rank_after": row["stable_rank"],
        }
        run.event(rec)
        if state["analysis"] is None and prev is not None:
            try:
                analysis = _analyse_event(
                    student, task, ev, prev[1], monitor.prev[1], config["landscape_span"]
                )
                state["analysis"] = analysis | {"event": rec}
            except (ValueError, RuntimeError) as exc:  # degenerate geometry: report it
                state["analysis"] = {"event": rec, "error": str(exc)}
    return loss_now


def _summary(config, run, analysis, initial_fps, final_fps, teacher_fps, wall):
    rows, events = run.rows, run.events
    first = events[0] if events else None
    out: dict[str, Any] = {
        "events": [
            {
                k: e.get(k)
                for k in (
                    "step",
                    "kind",
                    "s",
                    "loss_before",
                    "loss_after",
                    "stable_rank_before",
                    "stable_rank_after",
                    "critical_eigenvalue",
                )
            }
            for e in events
        ],
        "first_bifurcation_step": first["step"] if first else None,
        "first_bifurcation_kind": first["kind"] if first else None,
        "final_loss": rows[-1]["loss"] if rows else None,
        "student_initial_fixed_points": len(initial_fps),
        "student_initial_stable_fixed_points": initial_fps.num_stable,
        "student_stable_fixed_points": final_fps.num_stable,
        "student_fixed_points": len(final_fps),
        "teacher_stable_fixed_points": teacher_fps.num_stable,
        "teacher_fixed_points": len(teacher_fps),
        "wall_time_s": wall,
    }
    if first:
        n, s = config["iterations"], first["step"]
        out["stable_rank_before"] = _window(rows, "stable_rank", s - 0.1 * n, s - 1, "median")
        out["stable_rank_at"] = _window(rows, "stable_rank", s - 0.02 * n, s + 0.02 * n, "min")
        out["loss_before"] = _window(rows, "loss", s - 0.1 * n, s - 1, "median")
        out["loss_after"] = _window(rows, "loss", s + 1, s + 0.1 * n, "median")
    if analysis and "decomposition" in analysis:
        out["dominance_ratio"] = analysis["decomposition"]["dominance_ratio"]
        out["fisher_cosine"] = analysis["decomposition"]["fisher_cosine"]
        if "decomposition_weights_only" in analysis:  # absent in runs resumed from older ones
            only = analysis["decomposition_weights_only"]
            out["dominance_ratio_weights_only"] = only["dominance_ratio"]
            out["fisher_cosine_weights_only"] = only["fisher_cosine"]
        out["landscape_fit_r2"] = analysis["landscape"]["fit"]["r2"]
        out["landscape_fit_form"] = analysis["landscape"]["fit"]["form"]
        out["landscape_fit_r2_free_sign"] = analysis["landscape"]["fit_free_sign"]["r2"]
        out["landscape_fit_r2_stability_flip"] = analysis["landscape"]["fit_stability_flip"]["r2"]
    elif analysis:
        out["analysis_error"] = analysis.get("error")
    return out


def _figures(run, task, student, final_fps, teacher_fps, analysis) -> None:
    _training_figure(run)
    _phase_portraits(run, task, student, final_fps, teacher_fps)
    if analysis and "landscape" in analysis:
        _landscape_figure(run, analysis["landscape"])
    if run.events:
        _bifurcation_figure(run, student)


def _training_figure(run) -> None:
    """Fig. 1 A–C: loss, sNTK stable rank and spectral radius, bifurcations marked."""
    rows = run.rows
    steps = [r["step"] for r in rows]
    ev_steps = [e["step"] for e in run.events]
    first = ev_steps[:1]
    fig, ax = plotting.figure(1, 3, width=3.4)
    ax[0, 0].semilogy(steps, [r["loss"] for r in rows])
    ax[0, 0].set(xlabel="SGD step", ylabel="loss", title="A  loss")
    rank = [r["stable_rank"] for r in rows]
    plotting.line(ax[0, 1], steps, rank, [r["stable_rank_err"] for r in rows])
    ax[0, 1].set(xlabel="SGD step", ylabel="stable rank of sNTK", title="B  sNTK stable rank")
    ax[0, 2].plot(steps, [r.get("spectral_radius") for r in rows])
    ax[0, 2].axhline(1.0, color="gray", linewidth=0.8, label="ρ(W) = 1")
    ax[0, 2].set(xlabel="SGD step", ylabel="spectral radius of W", title="C  spectral radius")
    for a in ax[0]:
        plotting.mark_events(a, first, label="first bifurcation")
        plotting.mark_events(
            a, ev_steps[1:], color="gray", linestyle=":", linewidth=0.6, label="later bifurcations"
        )
    style.legend_outside(ax[0, 2])
    plotting.save(fig, run.path("fig1_training"))


def _phase_portraits(run, task, student, final_fps, teacher_fps) -> None:
    """Fig. 1 D: trajectories and fixed points of the student and the teacher."""
    fig, ax = plotting.figure(1, 2, width=3.4, height=3.2)
    grid = torch.linspace(-2.0, 2.0, 13)
    gx, gy = torch.meshgrid(grid, grid, indexing="ij")
    h0 = torch.zeros(gx.numel(), student.n_state, dtype=task.h0.dtype, device=task.h0.device)
    h0[:, 0], h0[:, 1] = gx.reshape(-1), gy.reshape(-1)
    for a, model, fps, title in (
        (ax[0, 0], student, final_fps, "D  student"),
        (ax[0, 1], task.teacher, teacher_fps, "D  teacher"),
    ):
        with torch.no_grad():
            tr = model(h0, steps=40)[..., list(READOUT)].cpu()
        for k in range(tr.shape[0]):
            a.plot(
                tr[k, :, 0],
                tr[k, :, 1],
                color=style.COLORS[0],
                alpha=0.25,
                linewidth=0.6,
                label="trajectories (40 steps)" if k == 0 else None,
            )
        loc = fps.locations[:, list(READOUT)]
        st = fps.stable
        a.scatter(loc[st, 0], loc[st, 1], color="k", zorder=3, label="stable")
        a.scatter(
            loc[~st, 0], loc[~st, 1], facecolor="white", edgecolor="k", zorder=3, label="unstable"
        )
        a.set(xlabel="$h_0$", ylabel="$h_1$", title=title)
    style.legend_outside(ax[0, 1])
    plotting.save(fig, run.path("fig1_phase_portraits"))


def _landscape_figure(run, ls) -> None:
    """Fig. 1 E: the local sNTK_g landscape and its normal-form fit."""
    fig, ax = plotting.figure(1, 1, width=3.6)
    ax[0, 0].semilogy(ls["s"], ls["values"], "o", label="RNN: $\\|J(θ^*+s e_g)e_g\\|^2$")
    fit = ls["fit"]
    ax[0, 0].semilogy(
        ls["s"], ls["predicted"], "-", label=f"{fit['form']} normal form (R²={fit['r2']:.3f})"
    )
    ax[0, 0].set(xlabel="s along $e_g$", ylabel="sNTK$_g$ norm", title="E  local landscape")
    style.legend_outside(ax[0, 0], "below")
    plotting.save(fig, run.path("fig1_landscape"))


def _bifurcation_figure(run, student) -> None:
    """Fig. 1 G: the fixed points before and after the first bifurcation."""
    ev = run.events[0]
    fig, ax = plotting.figure(1, 2, width=3.2, height=3.0)
    for a, side in ((ax[0, 0], "before"), (ax[0, 1], "after")):
        locs = torch.tensor(ev[side]["locations"]).reshape(-1, student.n_state)[:, list(READOUT)]
        stable = torch.tensor(
            [lab.startswith("stable") for lab in ev[side]["labels"]], dtype=torch.bool
        )
        a.scatter(locs[stable, 0], locs[stable, 1], color="k", label="stable")
        a.scatter(
            locs[~stable, 0],
            locs[~stable, 1],
            facecolor="white",
            edgecolor="k",
            label="unstable",
        )
        a.set(xlabel="$h_0$", ylabel="$h_1$", title=f"G  {side}: {len(locs)} fixed points")
    style.legend_outside(ax[0, 1])
    fig.suptitle(f"first bifurcation: {ev['kind']} at step {ev['step']}")
    plotting.save(fig, run.path("fig1_bifurcation"))
