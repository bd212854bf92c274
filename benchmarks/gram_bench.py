"""Spectra of Gram operators on the cheap side, and the rule behind ``path="auto"``.

1. Paper-000 scale (post-form tanh RNN, N = 64, B = 256, T = 25, autonomous, W and b trained,
   P = 4,160, float32): ``eigsh(ntk.operator, 10)`` — NTK_S on 409,600 states, which now runs
   on the Fisher side and maps eigenvectors back — against ``eigsh(ntk.fisher, 10)``, same
   tolerance (the default), same seed, medians in the same run. Target: ratio <= 1.2.
2. ``path="auto"``: top-5 eigenpairs (build included) on the structured and matrix-free paths
   for a GRU (N = 32, B = 16, T = 30, 3 inputs) and for the paper-000 RNN, and the path ``auto``
   chose (with the time its measurement took).

    python benchmarks/gram_bench.py [--quick] [--threads N] [--json PATH]
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(__file__))
from common import bench_parser, machine, parse, table, timeit
from sntkit.linalg import eigsh
from sntkit.models import GRU, RNN
from sntkit.ntk import path_choice, state_ntk
from sntkit.operators import unchecked


def paper000(quick: bool) -> tuple[RNN, torch.Tensor, int]:
    N, B, T = (32, 64, 10) if quick else (64, 256, 25)
    torch.manual_seed(0)
    model = RNN(N, 0, form="post", gain=0.9)
    h0 = torch.rand(B, N) * 0.2 - 0.1
    h0[:, :2] = torch.rand(B, 2) * 4 - 2
    return model, h0, T


def cheap_side_rows(quick: bool, out: dict, repeats: int = 5) -> list[tuple[str, ...]]:
    model, h0, T = paper000(quick)
    ntk = state_ntk(model, h0, steps=T, path="matrix_free")
    # interleaved repeats, medians: the machine is shared, so noise hits both sides alike
    times: dict[str, list[float]] = {"fisher": [], "operator": []}
    runs = {}
    for _ in range(repeats):
        for name in times:
            op = getattr(ntk, name)
            t0 = time.perf_counter()
            runs[name] = eigsh(op, 10, seed=0, return_info=True)
            times[name].append(time.perf_counter() - t0)
    t_f, t_s = (statistics.median(times[n]) for n in ("fisher", "operator"))
    vals_f, _, info_f = runs["fisher"]
    vals_s, U, info_s = runs["operator"]
    # the mapped-back vectors are eigenvectors of NTK_S itself: relative residuals
    AU = ntk.operator.matmat(U).flatten(1)
    res = torch.linalg.vector_norm(AU - vals_s[:, None] * U.flatten(1), dim=1) / vals_s[0]
    ratio = t_s / t_f
    out["cheap_side"] = {
        "fisher_s": t_f,
        "operator_s": t_s,
        "ratio": ratio,
        "max_rel_eigenvalue_diff": float(((vals_s - vals_f).abs() / vals_f).max()),
        "max_rel_residual_state_side": float(res.max()),
        "probes": [info_f.num_matvecs, info_s.num_matvecs],
        "all_s": times,
    }
    B, _, N = h0.shape[0], T, h0.shape[1]
    return [
        (
            f"eigsh(ntk.fisher, 10), P = {ntk.num_params}",
            f"{t_f * 1e3:.0f}",
            "1",
            f"{info_f.num_matvecs} Fisher probes",
        ),
        (
            f"eigsh(ntk.operator, 10), {B}·{T}·{N} = {B * T * N:,} states",
            f"{t_s * 1e3:.0f}",
            f"**{ratio:.2f}**",
            f"{info_s.num_matvecs} probes (the same + {info_s.num_matvecs - info_f.num_matvecs} "
            f"J map-back); eigenvalues equal to "
            f"{out['cheap_side']['max_rel_eigenvalue_diff']:.1e}; "
            f"NTK_S residuals ≤ {float(res.max()):.1e}·λ₁",
        ),
    ]


def path_rows(name: str, model: torch.nn.Module, h0, x, steps, out: dict) -> list[tuple]:
    kw = {"inputs": x} if x is not None else {"steps": steps}
    times = {}
    for path in ("structured", "matrix_free"):

        def top5(path: str = path) -> object:
            return eigsh(state_ntk(model, h0, path=path, **kw).operator, 5, tol=1e-4, seed=0)

        times[path] = timeit(top5, repeats=3)
    path_choice._CACHE.clear()
    t0 = time.perf_counter()
    chosen = state_ntk(model, h0, **kw).path
    t_choose = time.perf_counter() - t0
    best = min(times, key=times.__getitem__)
    out[f"auto_{name}"] = {"times_s": times, "auto": chosen, "auto_build_s": t_choose}
    ratio = times["structured"] / times["matrix_free"]
    return [
        (
            name,
            f"{times['structured'] * 1e3:.0f}",
            f"{times['matrix_free'] * 1e3:.0f}",
            f"{ratio:.2f}",
            f"{chosen} ({'=' if chosen == best else '≠'} fastest; build+rule "
            f"{t_choose * 1e3:.0f} ms)",
        )
    ]


def main() -> None:
    args = parse(bench_parser())
    out: dict = {"machine": machine()}
    with unchecked():
        rows = cheap_side_rows(args.quick, out)
        torch.manual_seed(0)
        gru = GRU(32, 3)
        Bg, Tg = (8, 15) if args.quick else (16, 30)
        xg = torch.randn(Bg, Tg, 3)
        prow = path_rows(f"GRU N 32, B {Bg}, T {Tg}", gru, torch.zeros(Bg, 32), xg, None, out)
        model, h0, T = paper000(args.quick)
        prow += path_rows(
            f"post RNN N {h0.shape[1]}, B {h0.shape[0]}, T {T}", model, h0, None, T, out
        )
    print(f"machine: {out['machine']}")
    print(table(rows, ("top-10 eigenpairs (default tol)", "ms", "ratio to Fisher", "check")))
    print()
    print(
        table(
            prow,
            (
                "top-5 eigenpairs, build incl.",
                "structured ms",
                "matrix_free ms",
                "structured/matrix_free",
                "auto chose",
            ),
        )
    )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)


if __name__ == "__main__":
    main()
