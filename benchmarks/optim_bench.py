"""Per-step cost of the optimizers, in multiples of one SGD step measured in the same run.

Paper-000 scale (student-teacher: post-form tanh RNN, N = 64, B = 256, T = 25, W and b
trained, float32). A "step" is loss, backward and ``opt.step()``; each optimizer is timed over
``--steps`` consecutive steps (median of 3 blocks after a warm-up block), so the refresh cost of
``update_every`` / ``update_freq`` is amortized exactly as in training. Optimizers:

* SGD (the reference);
* rank-1 low-rank natural gradient with the Fisher refreshed every 10 steps (the
  natural-gradient reproduction's setting), every step, and at rank 2 every 10 steps, on the
  unrolled NTK path (fastest for a handful of probes) and on the default path;
* Shampoo (update frequency 1 and 10, SGD grafting);
* the :class:`~sntkit.optim.StateSpaceNaturalGradient` preconditioner (rank 1, refresh every 10
  steps) in front of SGD and of Adam, against plain Adam.

    python benchmarks/optim_bench.py [--quick] [--json PATH]
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

import torch

sys.path.insert(0, os.path.dirname(__file__))
from common import bench_parser, machine, parse, table
from sntkit.ntk import state_ntk
from sntkit.optim import LowRankNaturalGradient, Shampoo, StateSpaceNaturalGradient
from sntkit.tasks.student_teacher import StudentTeacherTask, make_student


def time_steps(task: StudentTeacherTask, make_opt, steps: int) -> float:
    """Median seconds per step over 3 blocks of ``steps`` steps (after one warm-up block)."""
    student = make_student(task.h0.shape[1], seed=0)
    opt = make_opt(student)
    blocks = [train_block(task, student, opt, steps) for _ in range(4)]
    return sorted(blocks[1:])[1]


def train_block(task: StudentTeacherTask, student: torch.nn.Module, opt: Any, steps: int) -> float:
    """Seconds per step of ``steps`` training steps (loss, backward, ``opt.step()``)."""
    t0 = time.perf_counter()
    for _ in range(steps):
        loss = task.loss(student)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return (time.perf_counter() - t0) / steps


class Preconditioned:
    """``precond.step()`` between ``backward`` and ``opt.step()`` (the user's loop)."""

    def __init__(self, pre: StateSpaceNaturalGradient, opt: torch.optim.Optimizer) -> None:
        self.pre, self.opt = pre, opt

    def zero_grad(self) -> None:
        self.opt.zero_grad()

    def step(self) -> None:
        self.pre.step()
        self.opt.step()


def interleaved(task: StudentTeacherTask, makers: dict, rounds: int, block: int = 10) -> dict:
    """Median seconds per step, the optimizers timed in alternating blocks of ``block`` steps.

    Alternation puts every optimizer under the same machine load, so their ratio survives a
    shared, fluctuating machine; a block of 10 steps holds exactly one refresh every 10 steps.
    """
    states = {}
    for name, make in makers.items():
        student = make_student(task.h0.shape[1], seed=0)
        states[name] = (student, make(student), [])
    for r in range(rounds + 1):
        for student, opt, times in states.values():
            seconds = train_block(task, student, opt, block)
            if r:  # the first round is the warm-up (and the cold start)
                times.append(seconds)
    return {name: sorted(t)[len(t) // 2] for name, (_, _, t) in states.items()}


def main() -> None:
    ap = bench_parser()
    ap.add_argument("--steps", type=int, default=50, help="steps per timed block")
    ap.add_argument(
        "--interleaved",
        type=int,
        default=0,
        metavar="ROUNDS",
        help="only the preconditioner vs SGD/Adam, in ROUNDS alternating 10-step blocks",
    )
    args = parse(ap)
    N, B, T = (32, 64, 10) if args.quick else (64, 256, 25)
    task = StudentTeacherTask.build(N, B, T, seed=0)

    def ng(rank: int, every: int, path: str):
        def make(model):
            return LowRankNaturalGradient(
                model,
                lambda: state_ntk(model, task.h0, steps=T, path=path),
                rank=rank,
                lr=5e-3,
                damping=1e3,
                update_every=every,
                seed=0,
            )

        return make

    def pre(opt_cls, path="auto", **kw):
        def make(model):
            p = StateSpaceNaturalGradient(
                model, h0=task.h0, steps=T, rank=1, damping=1e3, update_every=10, path=path
            )
            return Preconditioned(p, opt_cls(model.parameters(), **kw))

        return make

    optimizers = {
        "SGD": lambda m: torch.optim.SGD(m.parameters(), lr=5e-3),
        "NG rank 1, every 10 (unrolled)": ng(1, 10, "unrolled"),
        "NG rank 1, every 10 (auto path)": ng(1, 10, "auto"),
        "NG rank 1, every step (unrolled)": ng(1, 1, "unrolled"),
        "NG rank 2, every 10 (unrolled)": ng(2, 10, "unrolled"),
        "Shampoo, update_freq 1": lambda m: Shampoo(m.parameters(), lr=5e-3, graft="sgd"),
        "Shampoo, update_freq 10": lambda m: Shampoo(
            m.parameters(), lr=5e-3, graft="sgd", update_freq=10
        ),
        "preconditioner rank 1, every 10 + SGD": pre(torch.optim.SGD, lr=5e-3),
        "preconditioner rank 1, every 10 (unrolled) + SGD": pre(
            torch.optim.SGD, path="unrolled", lr=5e-3
        ),
        "Adam": lambda m: torch.optim.Adam(m.parameters(), lr=1e-3),
        "preconditioner rank 1, every 10 + Adam": pre(torch.optim.Adam, lr=1e-3),
    }
    if args.interleaved:
        names = ("SGD", "preconditioner rank 1, every 10 + SGD", "Adam")
        names += ("preconditioner rank 1, every 10 (unrolled) + SGD",)
        names += ("preconditioner rank 1, every 10 + Adam",)
        seconds = interleaved(task, {n: optimizers[n] for n in names}, args.interleaved)
    else:
        seconds = {name: time_steps(task, make, args.steps) for name, make in optimizers.items()}
    sgd = seconds["SGD"]
    adam = seconds["Adam"]
    rows = [
        (name, f"{1e3 * s:.2f}", f"{s / sgd:.2f}", f"{s / adam:.2f}") for name, s in seconds.items()
    ]
    print(f"machine: {machine()}; N={N}, B={B}, T={T}; {args.steps} steps per block")
    print(table(rows, ("optimizer", "ms / step", "× SGD step", "× Adam step")))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"N": N, "B": B, "T": T, "seconds_per_step": seconds}, f, indent=2)


if __name__ == "__main__":
    main()
