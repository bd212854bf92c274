"""The GRU of paper 004 §5.1 at full size: top-10 NTK_S eigenpairs and both views, on the CPU.

GRU with N = 256 units and 3 inputs (Memory-Pro: fixation, cos θ, sin θ), B = 500 trials,
T = 90 steps, every parameter trained, float32, on the memory-light ``matrix_free`` path
(nothing of size ``B·T·N²`` is stored: the states ``(B, T, N)`` are the largest tensor).
Reported: set-up, one ``NTK_S`` matvec, top-10 eigenpairs (block Krylov, tol 1e-3), the
participation ratio of the temporal view ``tr_N(NTK_S)/N`` on ``(B, T)`` and of the spatial
view ``tr_{B,T}(NTK_S)/(BT)`` on ``(N,)`` (two-probe estimator, 32 samples, jackknife error),
one SGD step for scale, and the process's peak resident memory (target: < 24 GiB).

    python benchmarks/gru_scale.py [--quick] [--json PATH]
"""

from __future__ import annotations

import json
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(__file__))
from common import bench_parser, machine, parse, peak_rss_gib, table
from sntkit.linalg import eigsh
from sntkit.models import GRU
from sntkit.ntk import state_ntk
from sntkit.tasks.memory_pro import MemoryPro


def stopwatch(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def main() -> None:
    args = parse(bench_parser("N=64, B=64, T=45 smoke run"))
    N, B, stage = (64, 64, 15) if args.quick else (256, 500, 30)
    task = MemoryPro(stimulus=stage, memory=stage, response=stage)
    batch = task.batch(task.fixed_angles(B), train=False)
    cell = GRU(N, 3, generator=torch.Generator().manual_seed(0))
    h0 = torch.zeros(B, N)

    def sgd_step():
        states = cell(h0, batch.inputs)
        loss = states.square().mean()
        loss.backward()

    sgd_step()
    _, t_sgd = stopwatch(sgd_step)
    ntk, t_build = stopwatch(lambda: state_ntk(cell, h0, batch.inputs, path="matrix_free"))
    probe = torch.randn(ntk.state_shape)
    ntk.operator.matvec(probe)  # warm-up: first-call set-up of the vmapped jvp/vjp
    _, t_matvec = stopwatch(lambda: ntk.operator.matvec(probe))
    (vals, _, info), t_eig = stopwatch(
        lambda: eigsh(ntk.spectral_operator, 10, tol=1e-3, seed=0, return_info=True)
    )
    temporal, t_temp = stopwatch(lambda: ntk.view_participation(("batch", "time"), num_samples=32))
    spatial, t_space = stopwatch(lambda: ntk.view_participation(("unit",), num_samples=32))
    rss = peak_rss_gib()
    rows = [
        ("one SGD step (forward + backward)", f"{t_sgd:.2f}", "1"),
        ("set-up (trajectory)", f"{t_build:.2f}", f"{t_build / t_sgd:.1f}"),
        ("one NTK_S matvec", f"{t_matvec:.2f}", f"{t_matvec / t_sgd:.1f}"),
        (
            f"top-10 eigenpairs ({info.num_matvecs} probes)",
            f"{t_eig:.1f}",
            f"{t_eig / t_sgd:.0f}",
        ),
        (f"temporal view participation {temporal}", f"{t_temp:.1f}", f"{t_temp / t_sgd:.0f}"),
        (f"spatial view participation {spatial}", f"{t_space:.1f}", f"{t_space / t_sgd:.0f}"),
    ]
    print(f"machine: {machine()}; GRU N={N}, B={B}, T={task.steps}, float32, matrix_free")
    print(table(rows, ("quantity", "seconds", "× SGD step")))
    print(f"top-10 eigenvalues: {[f'{v:.4g}' for v in vals.tolist()]}")
    print(f"peak resident memory: {rss:.2f} GiB")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {
                    "N": N,
                    "B": B,
                    "T": task.steps,
                    "seconds": {
                        "sgd": t_sgd,
                        "build": t_build,
                        "matvec": t_matvec,
                        "eigsh10": t_eig,
                        "temporal": t_temp,
                        "spatial": t_space,
                    },
                    "eigsh_matvecs": info.num_matvecs,
                    "eigenvalues": vals.tolist(),
                    "temporal_participation": [temporal.value, temporal.stderr],
                    "spatial_participation": [spatial.value, spatial.stderr],
                    "peak_rss_gib": rss,
                },
                f,
                indent=2,
            )


if __name__ == "__main__":
    main()
