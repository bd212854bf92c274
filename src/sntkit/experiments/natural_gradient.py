"""Paper 000, Figure 4: rank-one state-space natural gradient near bifurcations (App. C.1).

``sntkit reproduce natural-gradient`` trains the student of the student-teacher task twice from
the same initialization — plain SGD and :class:`~sntkit.optim.LowRankNaturalGradient` (rank 1) —
and records the loss at every step, bifurcation events (fixed-point signature changes located
between checks) and the time per step. Smoothness of a loss curve ``L_t``:

* ``upward_spikes``: the number of steps with ``L_{t+1} > 1.1 L_t`` (a jump up of more than 10 %);
* ``log_loss_total_variation``: ``Σ_t |log L_{t+1} − log L_t|`` (for a monotone curve this is
  ``log L_0 − log L_end``; oscillations add to it);
* ``large_drops``: windows of ``drop_window`` steps over which the loss falls by more than 30 %,
  and which of them contain a detected bifurcation ("kept" drops).

The claim tested: the natural-gradient curve is much smoother, keeps the large drops at the
bifurcations, and costs little more than SGD per step (target ≤ 1.5×).
"""

from __future__ import annotations

import functools
import math
import time
from typing import Any

import torch

from sntkit.dynamics import BifurcationMonitor
from sntkit.experiments import plotting, style
from sntkit.experiments.optimizers import make_optimizer
from sntkit.experiments.registry import register
from sntkit.experiments.run import Run
from sntkit.ntk import state_ntk
from sntkit.tasks.student_teacher import APP_B, StudentTeacherTask, make_student

SCALES = {
    "quick": {
        **APP_B,
        "iterations": 1500,
        "rank": 1,
        "damping": 1000.0,
        "update_every": 10,
        "check_every": 50,
        "drop_window": 20,
        "student_gain": 0.85,
        "checkpoint_every": 500,
    },
    "paper": {
        **APP_B,
        "iterations": 35000,
        "rank": 1,
        "damping": 1000.0,
        "update_every": 10,
        "check_every": 250,
        "drop_window": 20,
        "student_gain": 0.85,
        "checkpoint_every": 5000,
    },
}

OPTIMIZERS = ("sgd", "natural_gradient")


def smoothness(losses: list[float], drop_window: int) -> dict[str, Any]:
    """Spikes, total variation of log-loss and large drops of a loss curve (module docstring)."""
    L = torch.tensor(losses, dtype=torch.float64)
    drops = []
    t = 0
    while t + drop_window < len(L):
        if float(L[t + drop_window]) < 0.7 * float(L[t]):
            drops.append([t, t + drop_window, float(L[t]), float(L[t + drop_window])])
            t += drop_window
        else:
            t += 1
    return {
        "upward_spikes": int((L[1:] > 1.1 * L[:-1]).sum()),
        "log_loss_total_variation": float(L.log().diff().abs().sum()),
        "large_drops": drops,
    }


def train(config: dict[str, Any], task: StudentTeacherTask, kind: str, run: Run) -> dict[str, Any]:
    """Train once with ``kind`` (in :data:`OPTIMIZERS`).

    Returns the loss at every step, the detected bifurcations and the training time (a stage of
    the run: it resumes from its checkpoint).
    """
    student = make_student(
        config["n"], gain=config["student_gain"], seed=config["seed"], device=config["device"]
    )
    T = config["steps_T"]
    opt = make_optimizer(
        kind, student, config, lambda: state_ntk(student, task.h0, steps=T, path="unrolled")
    )
    monitor = BifurcationMonitor(
        student, every=config["check_every"], init_scale=1.5, seed=config["seed"]
    )
    out: dict[str, Any] = {"losses": [], "events": [], "train_time": 0.0}
    loop = run.loop(config["iterations"], desc=kind, student=student, optimizer=opt,
                    monitor=monitor, out=out)  # fmt: skip
    for step in loop:
        if monitor.due(step):
            params = {k: v.detach().clone() for k, v in student.named_parameters()}
            _, events = monitor.check(step, params)
            out["events"] += [e.to_dict() | {"optimizer": kind} for e in events]
        t0 = time.perf_counter()
        loss = task.loss(student)
        opt.zero_grad()
        loss.backward()
        opt.step()
        out["train_time"] += time.perf_counter() - t0
        value = float(loss.detach())
        if not math.isfinite(value):
            raise ValueError(f"{kind} diverged at step {step}; lower lr")
        out["losses"].append(value)
        if step % 50 == 0:
            loop.show(loss=value)
    return out


@register(
    "natural-gradient",
    description="paper 000 Fig. 4: rank-1 state-space natural gradient vs SGD (student-teacher)",
    scales=SCALES,
)
def natural_gradient(config: dict[str, Any], run: Run) -> dict[str, Any]:
    """Run paper 000 Fig. 4: SGD against the rank-1 state-space natural gradient."""
    task = StudentTeacherTask.build(
        config["n"],
        config["batch"],
        config["steps_T"],
        seed=config["seed"],
        device=config["device"],
    )
    done = {
        kind: run.stage(kind, functools.partial(train, config, task, kind, run))
        for kind in OPTIMIZERS
    }
    summary: dict[str, Any] = {}
    for kind, res in done.items():
        sm = smoothness(res["losses"], config["drop_window"])
        event_steps = [e["step"] for e in res["events"]]
        kept = [
            d
            for d in sm["large_drops"]
            if any(
                d[0] - config["check_every"] <= s <= d[1] + config["check_every"]
                for s in event_steps
            )
        ]
        summary[kind] = {
            "final_loss": res["losses"][-1],
            "upward_spikes": sm["upward_spikes"],
            "log_loss_total_variation": sm["log_loss_total_variation"],
            "large_drops": len(sm["large_drops"]),
            "large_drops_at_bifurcations": len(kept),
            "events": [{k: e[k] for k in ("step", "kind")} for e in res["events"]],
            "seconds_per_step": res["train_time"] / len(res["losses"]),
        }
        for t, value in enumerate(res["losses"]):
            run.log({"optimizer": kind, "step": t, "loss": value})
        for e in res["events"]:
            run.event(e)
    summary["time_ratio_ng_over_sgd"] = (
        summary["natural_gradient"]["seconds_per_step"] / summary["sgd"]["seconds_per_step"]
    )
    summary["smoother"] = (
        summary["natural_gradient"]["upward_spikes"] < summary["sgd"]["upward_spikes"]
        and summary["natural_gradient"]["log_loss_total_variation"]
        < summary["sgd"]["log_loss_total_variation"]
    )
    _figure(run, done)
    return run.finish(summary)


def _figure(run: Run, done: dict) -> None:
    fig, ax = plotting.figure(1, 1, width=5.0, height=3.0)
    for (kind, res), color in zip(done.items(), style.COLORS, strict=False):
        name = "SGD" if kind == "sgd" else kind.replace("_", " ")
        ax[0, 0].semilogy(res["losses"], label=name, linewidth=0.8, color=color)
        plotting.mark_events(
            ax[0, 0],
            [e["step"] for e in res["events"]],
            color=color,
            linestyle=":",
            linewidth=0.6,
            label=f"{name}: bifurcations",
        )
    ax[0, 0].set(xlabel="step", ylabel="loss", title="SGD vs rank-1 state-space natural gradient")
    style.legend_outside(ax[0, 0], "below", ncols=2)
    plotting.save(fig, run.path("fig4_natural_gradient"))
