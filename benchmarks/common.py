"""Timing helpers shared by the benchmarks (median of repeats after a warm-up)."""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import subprocess
import time
from collections.abc import Callable

import torch


def plain_rnn_sgd_step(
    h0: torch.Tensor,
    steps: int,
    W0: torch.Tensor,
    target: torch.Tensor,
    readout: list[int] | None = None,
) -> Callable[[], None]:
    """The unit of the benchmarks: the minimal plain-torch SGD step of the post-form RNN.

    ``h ← tanh(h) Wᵀ + b`` in a Python loop from ``h0`` for ``steps`` steps, the mean squared
    error of the states (their ``readout`` coordinates) against ``target``, autograd and
    ``torch.optim.SGD`` — no sntkit code. ``W`` starts as a copy of ``W0``, ``b`` at zero, lr 0
    (the step's cost does not depend on the values).
    """
    W = torch.nn.Parameter(W0.detach().clone())
    b = torch.nn.Parameter(torch.zeros(W0.shape[0], dtype=W0.dtype))
    opt = torch.optim.SGD([W, b], lr=0.0)
    cols = slice(None) if readout is None else readout

    def step() -> None:
        h, hs = h0, []
        for _ in range(steps):
            h = torch.tanh(h) @ W.T + b
            hs.append(h)
        loss = (torch.stack(hs, 1)[..., cols] - target).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()

    return step


def timeit(fn: Callable[[], object], repeats: int = 5, warmup: int = 1) -> float:
    """Median wall time of ``fn()`` in seconds."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def paired(
    fn: Callable[[], object], unit: Callable[[], object], repeats: int = 5, warmup: int = 1
) -> dict[str, float]:
    """``fn`` and ``unit`` timed alternately; medians and the median of per-repeat ratios.

    On a shared machine the load changes between seconds, so a ratio of two medians taken
    minutes apart is noisy; pairing each ``fn`` run with a ``unit`` run right before it and
    taking the median of the ratios is not. Wall time and process CPU time (which excludes
    time spent descheduled; with several threads it adds their CPU time) are both recorded.
    """
    for _ in range(warmup):
        unit()
        fn()
    rec: dict[str, list[float]] = {k: [] for k in ("wall", "unit_wall", "cpu", "unit_cpu")}
    for _ in range(repeats):
        for key, f in (("unit_", unit), ("", fn)):
            w, c = time.perf_counter(), time.process_time()
            f()
            rec[key + "wall"].append(time.perf_counter() - w)
            rec[key + "cpu"].append(time.process_time() - c)
    out = {k: statistics.median(v) for k, v in rec.items()}
    for clock in ("wall", "cpu"):
        pairs = zip(rec[clock], rec["unit_" + clock], strict=True)
        out["ratio_" + clock] = statistics.median(a / b for a, b in pairs)
    return out


def machine() -> str:
    """CPU model, core count and torch threads, for RESULTS.md."""
    model = platform.processor() or "unknown CPU"
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        for line in out.splitlines():
            if line.startswith("Model name"):
                model = line.split(":", 1)[1].strip()
    except OSError:
        pass
    threads = torch.get_num_threads()
    return f"{model}, {os.cpu_count()} cores, torch {torch.__version__} ({threads} threads)"


def peak_rss_gib() -> float:
    """Peak resident memory of this process so far (GiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def table(rows: list[tuple[str, ...]], header: tuple[str, ...]) -> str:
    """A GitHub-markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def bench_parser(quick_help: str = "smaller sizes, for a smoke run") -> argparse.ArgumentParser:
    """The options every benchmark takes: ``--quick`` (smoke sizes), ``--threads``, ``--json``."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help=quick_help)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    ap.add_argument("--json", help="write the numbers to this file")
    return ap


def parse(ap: argparse.ArgumentParser) -> argparse.Namespace:
    """Parse the command line and set the torch thread count it asks for."""
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    return args
