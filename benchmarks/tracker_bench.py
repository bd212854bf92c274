"""Tracking overhead and bifurcation-aware training on the paper-000 student-teacher task.

``overhead``: SGD training (N = 64, B = 256, T = 25, float32) with a :class:`sntkit.Tracker`
checking every 50 steps over the quick run's 1,500 steps (its four bifurcation events included:
amortized), for several metric sets. The unit is the minimal plain-torch SGD step of the same
map and loss (``h ← tanh(h) Wᵀ + b`` in a Python loop, autograd, ``torch.optim.SGD``; no sntkit
code), timed in bursts through the same run (every 250 steps, five consecutive steps after a
warm-up one, like the loop's own back-to-back steps) so machine load cancels: the tracking time is
reported as a fraction of the plain-torch training time of the run (steps × unit), beside the
fraction of the loop's own training time (the sntkit student) and the median cost of a check
without an event in units.

``policy``: per seed (``--seeds``), the student trained from the same initialization by plain
SGD, by SGD under the always-on rank-1 natural-gradient preconditioner (refresh every 10 steps,
damping 1e3: the natural-gradient reproduction's setting) and by SGD under the
:class:`~sntkit.tracking.BifurcationAwarePolicy` (on when the sNTK stable rank is below
``--rank-below``, default 1.5, or a test function below 0.05; off after the event).
Bifurcation events come from a fixed-point tracker every 50 steps in all three runs (for the
policy, the tracker that drives it, sNTK on 64 of the 256 sequences). Reported:
upward loss spikes, total variation of log-loss, final loss, large drops (30 % in 20 steps) and
those at a bifurcation, wall time of training (for the policy including its tracker), and the
fraction of steps the preconditioner was on (``--kinds`` selects the runs).

    python benchmarks/tracker_bench.py overhead [--quick] [--iterations N] [--configs WORD ...]
    python benchmarks/tracker_bench.py policy --seeds 0 1 2 3 4 [--quick] [--json PATH]
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(__file__))
from common import bench_parser, machine, parse, plain_rnn_sgd_step, table
from sntkit.experiments.natural_gradient import smoothness
from sntkit.optim import StateSpaceNaturalGradient
from sntkit.tasks.student_teacher import APP_B, READOUT, StudentTeacherTask, make_student
from sntkit.tracking import METRICS, BifurcationAwarePolicy, Tracker

CHECK_EVERY, DROP_WINDOW, UNIT_EVERY, UNIT_BURST = 50, 20, 250, 5


def overhead(
    task: StudentTeacherTask, steps: int, only: list[str] | None = None
) -> dict[str, dict[str, float]]:
    h0, T = task.h0, task.steps
    probe = {"h0": h0[:32]}  # the probe batch a user tracks on: 32 of the 256 sequences
    init = {"init_scale": 1.5}
    configs = {
        "spectral radius only": {"metrics": ("spectral_radius",)},
        "top-3 eigenvalues + stable/participation ranks (16 probes), 32 sequences": {
            "metrics": ("eigenvalues", "ranks", "spectral_radius"),
            **probe,
        },
        "fixed points and events, full search every check": {
            "metrics": ("spectral_radius", "fixed_points"),
            "explore_every": 1,
            "monitor_kwargs": init,
        },
        "fixed points and events, full search every 5th check (default)": {
            "metrics": ("spectral_radius", "fixed_points"),
            "monitor_kwargs": init,
        },
        "Tracker defaults, 32 sequences": {"monitor_kwargs": init, **probe},
        # the accuracy knobs turned down: rank error bars ×1.4, new points found up to 9
        # checks late instead of 4
        "Tracker, 8 probes, full search every 10th check, 32 sequences": {
            "rank_matvecs": 8,
            "explore_every": 10,
            "monitor_kwargs": init,
            **probe,
        },
        "Tracker defaults + views, 32 sequences": {
            "metrics": METRICS,
            "monitor_kwargs": init,
            **probe,
        },
        "Tracker defaults, all 256 sequences": {"monitor_kwargs": init},
    }
    out = {}
    N = h0.shape[1]
    W0 = torch.randn(N, N, generator=torch.Generator().manual_seed(0)) / N**0.5
    unit = plain_rnn_sgd_step(h0, T, W0, task.targets, list(READOUT))
    for name, cfg in configs.items():
        if only and not any(word in name for word in only):
            continue
        student = make_student(h0.shape[1], gain=0.85, seed=0)
        opt = torch.optim.SGD(student.parameters(), lr=APP_B["lr"])
        tracker = Tracker(student, h0=cfg.pop("h0", h0), steps=T, every=CHECK_EVERY, **cfg)
        train = track = 0.0
        units = []
        for step in range(steps):
            if step % UNIT_EVERY == 0:
                unit()
                t0 = time.perf_counter()
                for _ in range(UNIT_BURST):
                    unit()
                units.append((time.perf_counter() - t0) / UNIT_BURST)
            t0 = time.perf_counter()
            loss = task.loss(student)
            opt.zero_grad()
            loss.backward()
            opt.step()
            t1 = time.perf_counter()
            tracker.step(step, loss=float(loss.detach()))
            train += t1 - t0
            track += time.perf_counter() - t1
        quiet = [r["seconds"] for r in tracker.rows if not r["num_events"]]
        unit_s = statistics.fmean(units)
        out[name] = {
            "train_s": train,
            "track_s": track,
            "unit_ms": 1e3 * unit_s,
            "fraction": track / (steps * unit_s),
            "fraction_of_loop": track / train,
            "sgd_ms": 1e3 * train / steps,
            "quiet_check_ms": 1e3 * statistics.median(quiet),
            "events": len(tracker.events),
        }
    return out


def train(
    task: StudentTeacherTask, kind: str, seed: int, iterations: int, rank_below: float = 1.5
) -> dict:
    student = make_student(task.h0.shape[1], gain=0.85, seed=seed)
    opt = torch.optim.SGD(student.parameters(), lr=APP_B["lr"])
    pre = StateSpaceNaturalGradient(
        student, h0=task.h0, steps=task.steps, rank=1, damping=1e3, update_every=10, seed=seed
    )
    policy_tracker = None
    if kind == "sgd":
        pre.enabled = False
    elif kind == "policy":
        # one tracker feeds the policy (ranks for "on", events for "off") and is timed
        policy = BifurcationAwarePolicy(pre, stable_rank_below=rank_below, test_below=0.05)
        policy_tracker = Tracker(
            student,
            h0=task.h0[:64],
            steps=task.steps,
            every=CHECK_EVERY,
            metrics=("ranks", "eigenvalues", "spectral_radius", "fixed_points"),
            top_k=1,
            rank_matvecs=16,
            sinks=[policy],
            seed=seed,
            monitor_kwargs={"init_scale": 1.5},
        )
    events_tracker = policy_tracker or Tracker(
        student,
        h0=task.h0,
        steps=task.steps,
        every=CHECK_EVERY,
        metrics=("fixed_points",),
        # the reference events of every run: the monitor's thorough settings, every check
        explore_every=1,
        seed=seed,
        monitor_kwargs={"init_scale": 1.5, "num_inits": 64, "tol": 1e-3},
    )
    losses, on_steps, seconds = [], 0, 0.0
    for step in range(iterations):
        with torch.no_grad():
            value = float(task.loss(student))
        if policy_tracker is None:
            events_tracker.step(step, loss=value)  # measurement only: not timed
        t0 = time.perf_counter()
        if policy_tracker is not None:
            policy_tracker.step(step, loss=value)
        loss = task.loss(student)
        opt.zero_grad()
        loss.backward()
        on_steps += pre.enabled
        pre.step()
        opt.step()
        seconds += time.perf_counter() - t0
        losses.append(float(loss.detach()))
    sm = smoothness(losses, DROP_WINDOW)
    steps = [e["step"] for e in events_tracker.events]
    kept = [
        d
        for d in sm["large_drops"]
        if any(d[0] - CHECK_EVERY <= s <= d[1] + CHECK_EVERY for s in steps)
    ]
    return {
        "upward_spikes": sm["upward_spikes"],
        "log_loss_tv": sm["log_loss_total_variation"],
        "final_loss": losses[-1],
        "large_drops": len(sm["large_drops"]),
        "drops_at_bifurcations": len(kept),
        "events": len(steps),
        "wall_s": seconds,
        "fraction_on": on_steps / iterations,
    }


def summarize(runs: list[dict]) -> dict[str, str]:
    out = {}
    for key in runs[0]:
        vals = [r[key] for r in runs]
        med = statistics.median(vals)
        out[key] = f"{med:.4g} [{min(vals):.4g}, {max(vals):.4g}]"
    return out


def main() -> None:
    ap = bench_parser()
    ap.add_argument("what", choices=("overhead", "policy"))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--iterations", type=int, default=None)
    ap.add_argument("--kinds", nargs="+", default=["sgd", "natural_gradient", "policy"])
    ap.add_argument("--rank-below", type=float, default=1.5, help="policy's stable-rank threshold")
    ap.add_argument("--configs", nargs="+", help="overhead: only the rows whose name has a word")
    args = parse(ap)
    n, B, T = (32, 64, 10) if args.quick else (APP_B["n"], APP_B["batch"], APP_B["steps_T"])
    print(f"machine: {machine()}; N={n}, B={B}, T={T}")
    result: dict = {"N": n, "B": B, "T": T}
    if args.what == "overhead":
        task = StudentTeacherTask.build(n, B, T, seed=0)
        res = overhead(task, args.iterations or (100 if args.quick else 1500), args.configs)
        rows = [
            (
                k,
                f"{v['unit_ms']:.2f} / {v['sgd_ms']:.2f}",
                f"{v['track_s']:.2f}",
                f"{100 * v['fraction']:.1f} % ({100 * v['fraction_of_loop']:.1f} %)",
                f"{v['quiet_check_ms']:.1f} ms = {v['quiet_check_ms'] / v['unit_ms']:.1f} SGD",
                str(v["events"]),
            )
            for k, v in res.items()
        ]
        heads = (
            "tracker every 50 steps",
            "unit / loop step ms",
            "track s",
            "track / plain training (/ loop)",
            "check",
            "events",
        )
        print(table(rows, heads))
        result["overhead"] = res
    else:
        iterations = args.iterations or (200 if args.quick else 1500)
        runs: dict[str, list[dict]] = {k: [] for k in args.kinds}
        for seed in args.seeds:
            task = StudentTeacherTask.build(n, B, T, seed=seed)
            for kind in runs:
                runs[kind].append(train(task, kind, seed, iterations, args.rank_below))
                print(seed, kind, json.dumps(runs[kind][-1]), flush=True)
        summary = {k: summarize(v) for k, v in runs.items()}
        keys = list(next(iter(summary.values())))
        print(table([(k, *(summary[m][k] for m in runs)) for k in keys], ("", *runs)))
        result |= {"runs": runs, "summary": summary, "seeds": args.seeds}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
