"""Global-state NTK at the paper-000 scale, in multiples of one SGD step measured in the same run.

RNN "post" form ``h' = W tanh(h) + b``, N = 64, B = 256, T = 25, autonomous, W and b trained,
float32. Reported: one NTK matvec and a 32-probe matmat (both paths), a forward+backward pass
on B·32 trajectories (the target: matmat ≤ 3× that), top-10 eigenpairs (target < 30 SGD steps),
stable and participation rank with error bars; baselines: scipy ``eigsh`` on the parameter side
with a plain ``torch.func`` jvp/vjp matvec, and the dense ``torch.func.jacrev`` Jacobian (at a
reduced batch, extrapolated linearly in B).

    python benchmarks/ntk_bench.py [--quick]
"""

from __future__ import annotations

import json
import os
import sys
import time

import numpy as np
import scipy.sparse.linalg as spla
import torch
from torch.func import jacrev, jvp, vjp

sys.path.insert(0, os.path.dirname(__file__))
from common import bench_parser, machine, parse, peak_rss_gib, table, timeit
from sntkit.linalg import effective_rank, eigsh
from sntkit.models import RNN
from sntkit.models.cell import rollout
from sntkit.ntk import state_ntk
from sntkit.operators import unchecked


def main() -> None:
    args = parse(bench_parser())
    N, B, T = (32, 64, 10) if args.quick else (64, 256, 25)
    torch.manual_seed(0)
    model = RNN(N, 0, form="post", gain=0.9)
    h0 = torch.rand(B, N) * 0.2 - 0.1
    h0[:, :2] = torch.rand(B, 2) * 4 - 2
    target = torch.randn(B, T, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.0)

    def sgd_step(batch: torch.Tensor = h0) -> None:
        loss = (model(batch, steps=T)[..., :2] - target[: batch.shape[0]]).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()

    sgd = timeit(sgd_step, repeats=20, warmup=3)
    big = h0.repeat(32, 1)
    target_big = target.repeat(32, 1, 1)

    def fwd_bwd_big() -> None:
        loss = (model(big, steps=T)[..., :2] - target_big).square().mean()
        opt.zero_grad()
        loss.backward()

    fb32 = timeit(fwd_bwd_big, repeats=3)
    rows, out = [], {"machine": machine(), "sizes": {"N": N, "B": B, "T": T}, "sgd_step_s": sgd}
    out["fwd_bwd_Bx32_s"] = fb32
    with unchecked():
        for path in ("structured", "matrix_free"):
            build = timeit(
                lambda path=path: state_ntk(model, h0, steps=T, path=path).linearization, repeats=3
            )
            ntk = state_ntk(model, h0, steps=T, path=path)
            op = ntk.operator
            x = torch.randn(B, T, N)
            X = torch.randn(32, B, T, N)
            mv = timeit(lambda op=op, x=x: op.matvec(x))
            mm = timeit(lambda op=op, X=X: op.matmat(X), repeats=3)
            rows += [
                (f"build ({path})", f"{build * 1e3:.1f}", f"{build / sgd:.1f}"),
                (f"NTK matvec ({path})", f"{mv * 1e3:.1f}", f"{mv / sgd:.1f}"),
                (
                    f"NTK matmat, 32 probes ({path})",
                    f"{mm * 1e3:.1f}",
                    f"{mm / sgd:.1f} (= {mm / fb32:.2f}× fwd+bwd on 32B trajectories)",
                ),
            ]
            out[path] = {"build_s": build, "matvec_s": mv, "matmat32_s": mm}

        # default block (k + 5 oversampling) and a block of exactly k probes
        for block, key in ((None, "top10"), (10, "top10_block10")):

            def top10(block: int | None = block) -> object:
                ntk = state_ntk(model, h0, steps=T)
                op = ntk.spectral_operator
                return eigsh(op, 10, block_size=block, tol=1e-3, seed=0, return_info=True)

            t_eig = timeit(top10, repeats=3)
            vals, _, info = top10()
            rows.append(
                (
                    f"top-10 eigenpairs (block {block or 'default'}, Fisher side, incl. build)",
                    f"{t_eig * 1e3:.0f}",
                    f"{t_eig / sgd:.1f} ({info.num_matvecs} probes)",
                )
            )
            out[key] = {"s": t_eig, "probes": info.num_matvecs, "eigenvalues": vals.tolist()}
        vals = torch.tensor(out["top10"]["eigenvalues"])
        ntk = state_ntk(model, h0, steps=T)
        for kind in ("stable", "participation"):
            t0 = time.perf_counter()
            est = effective_rank(ntk.spectral_operator, kind, 48, seed=0)
            dt = time.perf_counter() - t0
            rows.append(
                (
                    f"{kind} rank = {est.value:.2f} ± {est.stderr:.2f}",
                    f"{dt * 1e3:.0f}",
                    f"{dt / sgd:.1f} ({est.num_matvecs} probes)",
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
    sp_vals = spla.eigsh(lin, k=10, which="LA", tol=1e-4, return_eigenvectors=False)
    t_sp = time.perf_counter() - t0
    rows.append(
        ("baseline: scipy eigsh, jvp/vjp Fisher matvec", f"{t_sp * 1e3:.0f}", f"{t_sp / sgd:.1f}")
    )
    out["scipy_top10_s"] = t_sp
    out["scipy_vs_ours_top_eigenvalue_rel_diff"] = float(
        abs(np.sort(sp_vals)[-1] - vals[0].item()) / vals[0].item()
    )

    # baseline 2: the dense Jacobian by jacrev, at a reduced batch, extrapolated (linear in B)
    b_small = max(4, B // 16)
    h_small = h0[:b_small]

    def dense() -> torch.Tensor:
        J = jacrev(lambda t: rollout(model, unflat(t), h_small, None, T))(theta0).reshape(
            -1, theta0.numel()
        )
        return torch.linalg.eigvalsh(J.T @ J)[-10:]

    t_dense_small = timeit(dense, repeats=1, warmup=0)
    t_dense = t_dense_small * B / b_small
    mem = b_small * T * N * theta0.numel() * 4 * (B / b_small) / 2**30
    rows.append(
        (
            f"baseline: dense jacrev J + eigh (B={b_small} measured, ×{B // b_small} extrapolated)",
            f"{t_dense * 1e3:.0f}",
            f"{t_dense / sgd:.0f} (J alone {mem:.1f} GiB)",
        )
    )
    out["dense_top10_s_extrapolated"] = t_dense
    out["dense_jacobian_gib"] = mem

    out["peak_rss_gib"] = peak_rss_gib()
    print(
        f"machine: {out['machine']}\nsizes: N={N}, B={B}, T={T}; one SGD step = {sgd * 1e3:.2f} ms"
    )
    print(table(rows, ("operation", "ms", "SGD steps")))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)


if __name__ == "__main__":
    main()
