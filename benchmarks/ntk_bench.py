"""Global-state NTK / Fisher products and top-10 eigenpairs in units of a plain-torch SGD step.

Model: RNN "post" form ``h' = W tanh(h) + b``, autonomous, W and b trained, float32.

* **Units.** The plain-torch SGD step every user has: a Python loop of
  ``h = torch.tanh(h) @ W.T + b`` over T, MSE of all states against a fixed target, autograd,
  ``torch.optim.SGD`` (no sntkit code); beside it, the step of sntkit's own ``RNN`` module
  (the previous unit).
* **Scaling table** (N, B, T in ``SIZES``): SGD step, a 10-probe Fisher matmat and its cost per
  probe in SGD steps, top-10 eigenpairs (``tol=1e-3``, block 10, ``state_ntk`` build included)
  in SGD steps; then time against linear in T (25 -> 400) and B (256 -> 1024).
* **Top-10 at the paper-000 scale** (N 64, B 256, T 25) for the calls a user would write, each
  cold (a fresh ``StateNTK``, build included) and warm (the same object again), with the
  accuracy each delivers against a float64 reference (tol 1e-10), and the first NTK call of the
  process (after one SGD step).
* The earlier paper-scale rows (matvec, 32-probe matmat on both paths against a
  forward+backward on 32·B trajectories, ranks) and baselines: scipy ``eigsh`` on a plain
  ``torch.func`` Fisher matvec, the dense ``jacrev`` Jacobian (skip with ``--no-dense``), and
  kpflow's ``(P@K@P.T).eigsh(10, tol=1e-3)`` when ``SNTKIT_KPFLOW_PATH`` is set.

Every ratio pairs each run with an SGD step run right before it (``common.paired``) and takes the
median over repeats; wall and process-CPU times are both reported (the CPU time excludes time
spent descheduled on a shared machine).

    python benchmarks/ntk_bench.py [--quick] [--threads 2] [--no-dense] [--json F]
"""

from __future__ import annotations

import datetime
import json
import os
import sys
import time
import warnings
from collections.abc import Callable

import numpy as np
import scipy.sparse.linalg as spla
import torch
from torch.func import jacrev, jvp, vjp

sys.path.insert(0, os.path.dirname(__file__))
from common import (
    bench_parser,
    machine,
    paired,
    parse,
    peak_rss_gib,
    plain_rnn_sgd_step,
    table,
    timeit,
)
from kpflow_bench import kpflow_cell, kpflow_ntk, load_kpflow
from sntkit.linalg import effective_rank, eigsh
from sntkit.models import RNN
from sntkit.models.cell import rollout
from sntkit.ntk import state_ntk
from sntkit.operators import unchecked

SIZES = [
    (64, 256, 25),
    (64, 256, 100),
    (64, 256, 400),
    (64, 1024, 25),
    (128, 256, 25),
    (256, 256, 25),
]
EIG_KW = {"tol": 1e-3, "block_size": 10}  # the scaling table's top-10 call (as in the issue)
QUICK_SIZES = [(32, 64, 10), (32, 64, 40), (32, 256, 10)]


def setup(N: int, B: int, T: int) -> tuple[RNN, torch.Tensor, Callable]:
    torch.manual_seed(0)
    model = RNN(N, 0, form="post", gain=0.9)
    h0 = torch.rand(B, N) * 0.2 - 0.1
    h0[:, :2] = torch.rand(B, 2) * 4 - 2
    target = torch.randn(B, T, N, generator=torch.Generator().manual_seed(1))
    return model, h0, plain_rnn_sgd_step(h0, T, model.W, target)


def top10(model: RNN, h0: torch.Tensor, T: int, **kw: object) -> tuple:
    """Build the NTK and compute the top-10 Fisher eigenpairs (the cold call)."""
    ntk = state_ntk(model, h0, steps=T)
    return eigsh(ntk.fisher, 10, seed=0, return_info=True, **kw)


def fmt(r: dict[str, float], scale: float = 1.0) -> str:
    return f"{r['ratio_wall'] * scale:.2f} (cpu {r['ratio_cpu'] * scale:.2f})"


def scaling(sizes: list[tuple[int, int, int]], repeats: int) -> tuple[list, list]:
    rows, data = [], []
    for N, B, T in sizes:
        model, h0, sgd = setup(N, B, T)
        with unchecked():
            F = state_ntk(model, h0, steps=T).fisher
            V = torch.randn(10, F.shape_in[0])
            mm = paired(lambda F=F, V=V: F.matmat(V), sgd, repeats)
            eig = paired(
                lambda m=model, h=h0, T=T: top10(m, h, T, **EIG_KW), sgd, max(3, repeats // 2)
            )
            probes = top10(model, h0, T, **EIG_KW)[2].num_matvecs
        d = {"N": N, "B": B, "T": T, "sgd": mm["unit_wall"], "sgd_cpu": mm["unit_cpu"]}
        d |= {"matmat10": mm, "top10": eig, "top10_probes": probes}
        data.append(d)
        rows.append(
            (
                f"{N}, {B}, {T}",
                f"{mm['unit_wall'] * 1e3:.1f} (cpu {mm['unit_cpu'] * 1e3:.1f})",
                f"{mm['wall'] * 1e3:.1f}",
                f"**{fmt(mm, 0.1)}**",
                f"{fmt(eig)} ({probes} probes)",
            )
        )
        print(rows[-1], flush=True)
    return rows, data


def linearity(sizes: list[tuple[int, int, int]], repeats: int) -> list[tuple[str, ...]]:
    """Largest over smallest T (B) at fixed other sizes, timed alternately, over linear.

    The two sizes run back to back in every repeat (``common.paired``), so the ratio sees the
    same load; the plain SGD step's own ratio is beside it.
    """

    def kernels(N: int, B: int, T: int) -> tuple[Callable, Callable]:
        model, h0, sgd = setup(N, B, T)
        F = state_ntk(model, h0, steps=T).fisher
        V = torch.randn(10, F.shape_in[0])
        return (lambda: F.matmat(V)), sgd

    rows = []
    base = sizes[0]
    for axis in (2, 1):  # T, then B
        same = [s for s in sizes if all(s[i] == base[i] for i in range(3) if i != axis)]
        big = max(same, key=lambda s: s[axis])
        if big == base:
            continue
        lin = big[axis] / base[axis]
        (f_big, sgd_big), (f_base, sgd_base) = kernels(*big), kernels(*base)
        with unchecked():
            for what, pair in (
                ("Fisher matmat", (f_big, f_base)),
                ("plain SGD step", (sgd_big, sgd_base)),
            ):
                r = paired(*pair, repeats)
                rows.append(
                    (
                        f"{what}, {'NBT'[axis]} {base[axis]} -> {big[axis]}",
                        f"{r['ratio_wall']:.1f}× / {r['ratio_cpu']:.1f}× (linear {lin:.0f}×)",
                        f"**{r['ratio_wall'] / lin:.2f} / {r['ratio_cpu'] / lin:.2f}**",
                    )
                )
    return rows


def paper_scale_eigs(N: int, B: int, T: int, repeats: int) -> tuple[list, dict]:
    """Top-10 for the calls a user would write: cold, warm, and their accuracy."""
    model, h0, sgd = setup(N, B, T)
    ref_ntk = state_ntk(model, h0, steps=T, dtype=torch.float64)
    ref_vals, ref_vecs = eigsh(ref_ntk.fisher, 12, tol=1e-10, seed=1)
    gap = float((ref_vals[9] - ref_vals[10]) / ref_vals[9])
    calls = {
        "`eigsh(ntk.fisher, 10)` (defaults: tol 1e-6, block 15)": {},
        "tol 1e-4, block 10": {"tol": 1e-4, "block_size": 10},
        "tol 1e-3 (default block 15)": {"tol": 1e-3},
        "tol 1e-3, block 10": {"tol": 1e-3, "block_size": 10},
    }
    rows, out = [], {"lambda10_lambda11_rel_gap": gap, "reference": ref_vals[:11].tolist()}
    with unchecked():
        for name, kw in calls.items():
            cold = paired(lambda kw=kw: top10(model, h0, T, **kw), sgd, repeats)
            ntk = state_ntk(model, h0, steps=T)
            eigsh(ntk.fisher, 10, seed=0, **kw)
            warm = paired(lambda ntk=ntk, kw=kw: eigsh(ntk.fisher, 10, seed=0, **kw), sgd, repeats)
            vals, vecs, info = top10(model, h0, T, **kw)
            val_err = ((vals.double() - ref_vals[:10]).abs() / ref_vals[:10]).max().item()
            cos = (vecs.double() @ ref_vecs[:10].T).diagonal().abs().clamp(max=1)
            sines = (1 - cos.square()).sqrt()
            rows.append(
                (
                    name,
                    f"{info.num_matvecs}",
                    f"**{fmt(cold)}**",
                    fmt(warm),
                    f"{val_err:.1e}",
                    f"{sines[:9].max():.1e} / {sines[9]:.1e}",
                )
            )
            out[name] = {"cold": cold, "warm": warm, "probes": info.num_matvecs}
            out[name] |= {"max_rel_eigenvalue_err": val_err, "sin_angles": sines.tolist()}
            print(rows[-1], flush=True)
    return rows, out


def gap_study(N: int, B: int, T: int) -> list[tuple[str, ...]]:
    """The default call followed block by block: today's stopping test against gap-based bounds.

    Block 15 (the default for k = 10) run for 4..8 blocks; the 15 Ritz pairs give the gaps
    ``gap_i = min_j |θ_i − θ_j|`` of the top 10, so ``‖r‖²/gap`` bounds the eigenvalue error
    and ``‖r‖/gap`` the angle (Kato–Temple / Davis–Kahan, with Ritz values for the spectrum).
    """
    model, h0, _ = setup(N, B, T)
    ref_vals, ref_vecs = eigsh(
        state_ntk(model, h0, steps=T, dtype=torch.float64).fisher, 10, tol=1e-10, seed=1
    )
    ntk = state_ntk(model, h0, steps=T)
    rows = []
    with warnings.catch_warnings(), unchecked():
        warnings.simplefilter("ignore", RuntimeWarning)  # max_iters is reached on purpose
        for blocks in range(4, 9):
            vals, vecs, info = eigsh(
                ntk.fisher, 15, block_size=15, tol=1e-12, max_iters=blocks, seed=0, return_info=True
            )
            th, r = vals.double(), info.residuals.double()
            gap = torch.minimum(
                torch.cat([th[:1] * torch.inf, th[:-1] - th[1:]]),
                torch.cat([th[:-1] - th[1:], th[-1:] * torch.inf]),
            )[:10]
            th, r = th[:10], r[:10]
            err = ((th - ref_vals) / ref_vals).abs().max()
            cos = (vecs[:10].double() @ ref_vecs.T).diagonal().abs().clamp(max=1)
            rows.append(
                (
                    f"{info.num_matvecs}",
                    f"{(r / th[0]).max():.1e}",
                    f"{(r.square() / gap / th).max():.1e}",
                    f"{(r / gap).max():.1e}",
                    f"{err:.1e}",
                    f"{(1 - cos.square()).sqrt().max():.1e}",
                )
            )
    return rows


def legacy_rows(N: int, B: int, T: int, dense: bool, sgd_unit: float) -> tuple[list, dict]:
    """The earlier paper-scale rows and baselines (matvec/matmat, ranks, scipy, dense)."""
    model, h0, _ = setup(N, B, T)
    big, target_big = h0.repeat(32, 1), torch.randn(32 * B, T, N)

    def fwd_bwd_big() -> None:
        model.zero_grad()
        (model(big, steps=T) - target_big).square().mean().backward()

    fb32 = timeit(fwd_bwd_big, repeats=3)
    rows, out = [], {"fwd_bwd_Bx32_s": fb32}
    with unchecked():
        for path in ("structured", "matrix_free"):
            build = timeit(
                lambda path=path: state_ntk(model, h0, steps=T, path=path).linearization, repeats=3
            )
            op = state_ntk(model, h0, steps=T, path=path).operator
            x, X = torch.randn(B, T, N), torch.randn(32, B, T, N)
            mv = timeit(lambda op=op, x=x: op.matvec(x))
            mm = timeit(lambda op=op, X=X: op.matmat(X), repeats=3)
            rows += [
                (f"build ({path})", f"{build * 1e3:.1f}", f"{build / sgd_unit:.1f}"),
                (f"NTK matvec ({path})", f"{mv * 1e3:.1f}", f"{mv / sgd_unit:.1f}"),
                (
                    f"NTK matmat, 32 probes ({path})",
                    f"{mm * 1e3:.1f}",
                    f"{mm / sgd_unit:.1f} (= {mm / fb32:.2f}× fwd+bwd on 32B trajectories)",
                ),
            ]
            out[path] = {"build_s": build, "matvec_s": mv, "matmat32_s": mm}
        ntk = state_ntk(model, h0, steps=T)
        for kind in ("stable", "participation"):
            t0 = time.perf_counter()
            est = effective_rank(ntk.spectral_operator, kind, 48, seed=0)
            dt = time.perf_counter() - t0
            rows.append(
                (
                    f"{kind} rank = {est.value:.2f} ± {est.stderr:.2f}",
                    f"{dt * 1e3:.0f}",
                    f"{dt / sgd_unit:.1f} ({est.num_matvecs} probes)",
                )
            )
            out[f"{kind}_rank"] = {"value": est.value, "stderr": est.stderr, "s": dt}

    # baseline 1: scipy eigsh on the parameter side with a plain jvp/vjp matvec
    params = {k: v.detach() for k, v in model.named_parameters()}
    names = list(params)
    theta0 = torch.cat([params[n].reshape(-1) for n in names])
    sizes = [params[n].numel() for n in names]

    def unflat(t: torch.Tensor) -> dict[str, torch.Tensor]:
        return {n: p.reshape(params[n].shape) for n, p in zip(names, t.split(sizes), strict=True)}

    def states(t: torch.Tensor) -> torch.Tensor:
        return rollout(model, unflat(t), h0, None, T)

    def fisher_mv(v: np.ndarray) -> np.ndarray:
        u = torch.as_tensor(v, dtype=torch.float32)
        _, Ju = jvp(states, (theta0,), (u,))
        _, back = vjp(states, theta0)
        return back(Ju)[0].numpy()

    lin = spla.LinearOperator((theta0.numel(), theta0.numel()), matvec=fisher_mv, dtype=np.float32)
    t0 = time.perf_counter()
    spla.eigsh(lin, k=10, which="LA", tol=1e-4, return_eigenvectors=False)
    t_sp = time.perf_counter() - t0
    rows.append(
        (
            "baseline: scipy eigsh, jvp/vjp Fisher matvec",
            f"{t_sp * 1e3:.0f}",
            f"{t_sp / sgd_unit:.1f}",
        )
    )
    out["scipy_top10_s"] = t_sp
    if dense:  # baseline 2: the dense Jacobian by jacrev, at a reduced batch, linear in B
        b_small = max(4, B // 16)
        h_small = h0[:b_small]

        def dense_top10() -> torch.Tensor:
            J = jacrev(lambda t: rollout(model, unflat(t), h_small, None, T))(theta0)
            J = J.reshape(-1, theta0.numel())
            return torch.linalg.eigvalsh(J.T @ J)[-10:]

        t_dense = timeit(dense_top10, repeats=1, warmup=0) * B / b_small
        mem = B * T * N * theta0.numel() * 4 / 2**30
        rows.append(
            (
                f"baseline: dense jacrev J + eigh (B={b_small} measured, ×{B // b_small})",
                f"{t_dense * 1e3:.0f}",
                f"{t_dense / sgd_unit:.0f} (J alone {mem:.1f} GiB)",
            )
        )
        out["dense_top10_s_extrapolated"] = t_dense
    return rows, out


def kpflow_row(N: int, B: int, T: int) -> tuple[list, dict]:
    """kpflow's cheapest top-10 route on the same model, when ``SNTKIT_KPFLOW_PATH`` is set."""
    kp = load_kpflow()
    if kp is None:
        return [], {}
    model, h0, sgd = setup(N, B, T)
    cell = kpflow_cell(kp, model)
    r = paired(lambda: kpflow_ntk(kp, cell, h0, T).eigsh(10, tol=1e-3), sgd, 1, warmup=0)
    row = ("kpflow `(P@K@P.T).eigsh(10, tol=1e-3)`, build included", "", f"{fmt(r)}", "", "", "")
    return [row], {"kpflow_top10": r}


def main() -> None:
    ap = bench_parser()
    ap.add_argument("--no-dense", action="store_true", help="skip the dense-Jacobian baseline")
    ap.add_argument("--repeats", type=int, default=7, help="paired repeats per row (median)")
    args = parse(ap)
    sizes = QUICK_SIZES if args.quick else SIZES
    N, B, T = sizes[0]
    date = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    out: dict[str, object] = {"machine": machine(), "date": date, "sizes": sizes}

    # the first NTK call of this process, after one SGD step (a user trains before analysing)
    model, h0, sgd = setup(N, B, T)
    sgd()
    first, first_cpu = time.perf_counter(), time.process_time()
    top10(model, h0, T, **EIG_KW)
    first, first_cpu = time.perf_counter() - first, time.process_time() - first_cpu
    # the two units at the paper-000 scale
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    target = torch.randn(B, T, N)

    def module_step() -> None:
        loss = (model(h0, steps=T) - target).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()

    units = paired(module_step, sgd, 3 * args.repeats)
    first_steps = first / units["unit_wall"]
    first_cpu_steps = first_cpu / units["unit_cpu"]
    out |= {"units": units, "first_call_s": first, "first_call_sgd_steps": first_steps}
    out |= {"first_call_cpu_s": first_cpu, "first_call_cpu_sgd_steps": first_cpu_steps}
    print(f"machine: {out['machine']}; {date}; load average {os.getloadavg()}")
    print(
        f"plain-torch SGD step {units['unit_wall'] * 1e3:.2f} ms; sntkit RNN-module SGD step "
        f"{units['wall'] * 1e3:.2f} ms = {fmt(units)}× plain; first NTK call of the process "
        f"(top-10, tol 1e-3, block 10): {first * 1e3:.0f} ms = {first_steps:.0f} SGD steps "
        f"(cpu {first_cpu_steps:.0f})",
        flush=True,
    )

    rows, data = scaling(sizes, args.repeats)
    out["scaling"] = data
    head = ("N, B, T", "SGD step ms", "10-probe Fisher ms", "per probe (SGD)", "top-10 (SGD)")
    print(table(rows, head))
    lin_rows = linearity(sizes, args.repeats)
    out["linearity"] = lin_rows
    print(table(lin_rows, ("time", "measured, wall / cpu", "/ linear, wall / cpu")))

    eig_rows, out["paper_scale_top10"] = paper_scale_eigs(N, B, T, max(3, args.repeats // 2))
    kp_rows, kp = kpflow_row(N, B, T)
    out |= kp
    head = ("top-10 call", "probes", "cold (SGD)", "warm (SGD)", "max rel. Δλ", "max sin∠ 1-9 / 10")
    gap = out["paper_scale_top10"]["lambda10_lambda11_rel_gap"]
    print(f"paper scale; (λ10 − λ11)/λ10 = {gap:.1e}")
    print(table(eig_rows + kp_rows, head))

    gap_rows = gap_study(N, B, T)
    out["gap_study"] = gap_rows
    head = (
        "probes",
        "max ‖r‖/θ₁",
        "max ‖r‖²/(gap·θ)",
        "max ‖r‖/gap",
        "true max rel. Δλ",
        "true max sin∠",
    )
    print("the default call (block 15) block by block; today's test stops at ‖r‖/θ₁ ≤ 1e-6")
    print(table(gap_rows, head))

    leg_rows, out["legacy"] = legacy_rows(N, B, T, not args.no_dense, units["unit_wall"])
    print(table(leg_rows, ("operation", "ms", "plain SGD steps")))
    out["peak_rss_gib"] = peak_rss_gib()
    print(f"load average at the end {os.getloadavg()}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)


if __name__ == "__main__":
    main()
