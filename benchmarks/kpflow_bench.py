"""Top-10 NTK eigenvalues: the authors' reference code kpflow against sntkit, in SGD steps.

Same model, weights and batch on both sides: RNN "post" form ``h_{t+1} = W tanh(h_t) + b``,
N = 64, B = 256, T = 25 (``--quick``: 32, 64, 10), autonomous, ``h0 ~ U[-2, 2]`` on units 0, 1
and 0 elsewhere, ``W`` Xavier-normal × 0.85, ``b ~ N(0, 1/64)`` (std 1/8), W and b trained,
float32, one torch thread. Times are in multiples of one SGD step (forward + backward + update
on the same batch, MSE of units 0, 1 against a random target) measured in the same run.

* sntkit: ``eigsh(state_ntk(model, h0, steps=T).spectral_operator, 10, tol=1e-3, seed=0)``,
  construction of ``state_ntk`` included.
* kpflow: ``P K P*`` built as in its examples (``examples/paper_experiment_1``):
  ``PropagationOperator_LinearForm(cell, x, hidden) @ ParameterOperator(cell, x, hidden) @ pop.T``
  on kpflow's own ``architecture.BasicRNNCell`` (``h' = tanh(h) W_hh^T + x W_ih^T``, dt = 1) with
  ``W_hh = W``, a constant input ``x ≡ 1`` and ``W_ih = b[:, None]``: the same map and the same
  N² + N parameters. Top-10 eigenvalues two ways, build (rollout + per-step Jacobians)
  included: ``op.svd(10)`` with its defaults (scipy ARPACK on the Gram ``(P K P*)²``,
  tol 1e-8, square roots), as its examples call it, and ``op.eigsh(10, tol=1e-3)`` on the
  operator itself (the cheapest route its API offers). "NTK applications" counts products
  with ``P K P*`` (two per Gram product); sntkit's count is its probes (Fisher-side products).
  kpflow runs are timed once each after a one-product warm-up (sntkit: median of 3).

kpflow's ``ParameterOperator`` evaluates the first step's parameter Jacobian at ``h = 0``
instead of ``h0`` (``JThetaOperator``'s ``h_0`` argument is never passed), so its K differs from
the true one in the first time step; the eigenvalue agreement is reported as is, and again for
the same kpflow operator with ``h_0`` passed explicitly.

    SNTKIT_KPFLOW_PATH=/path/to/kpflow/src python benchmarks/kpflow_bench.py [--quick] [--json F]
"""

from __future__ import annotations

import datetime
import importlib
import json
import os
import sys
import time
from collections.abc import Callable

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(__file__))
from common import bench_parser, machine, parse, table, timeit
from sntkit.linalg import eigsh
from sntkit.models import RNN
from sntkit.ntk import state_ntk


def load_kpflow() -> dict[str, object] | None:
    """Import kpflow from ``$SNTKIT_KPFLOW_PATH`` only; ``None`` (with a message) if impossible."""
    path = os.environ.get("SNTKIT_KPFLOW_PATH")
    if not path:
        print("SNTKIT_KPFLOW_PATH is not set: point it at kpflow's src/ directory; skipping.")
        return None
    sys.path.insert(0, path)
    try:
        arch = importlib.import_module("kpflow.architecture")
        par = importlib.import_module("kpflow.parameter_op")
        prop = importlib.import_module("kpflow.propagation_op")
    except Exception as exc:
        print(f"could not import kpflow from SNTKIT_KPFLOW_PATH={path!r} ({exc!r}); skipping.")
        return None
    finally:
        sys.path.remove(path)
    return {
        "BasicRNNCell": arch.BasicRNNCell,
        "ParameterOperator": par.ParameterOperator,
        "JThetaOperator": par.JThetaOperator,
        "PropagationOperator_LinearForm": prop.PropagationOperator_LinearForm,
    }


def kpflow_cell(kp: dict[str, object], model: RNN) -> object:
    """kpflow's ``BasicRNNCell`` holding ``model``'s map: ``W_hh = W``, input ≡ 1, ``W_ih = b``."""
    cell = kp["BasicRNNCell"](1, model.n_state)
    with torch.no_grad():
        cell.weight_hh.copy_(model.W)
        cell.weight_ih.copy_(model.b[:, None])
    return cell


def kpflow_ntk(
    kp: dict[str, object],
    cell: object,
    h0: torch.Tensor,
    T: int,
    h0_fix: bool = False,
    on_apply: Callable[[], None] | None = None,
) -> object:
    """kpflow's ``P K P*`` built as in its examples (rollout and per-step Jacobians included).

    ``h0_fix`` passes the true ``h_0`` to the first step's Jacobian; ``on_apply`` is called on
    every application of ``P`` (one per NTK product).
    """
    x = torch.ones(h0.shape[0], T, 1)
    with torch.no_grad():  # kpflow's forward pass: the trajectory h_1..h_T
        h, hs = h0, []
        for t in range(T):
            h = cell(x[:, t], h)
            hs.append(h)
        hidden = torch.stack(hs, 1)
    pop = kp["PropagationOperator_LinearForm"](cell, x, hidden)
    kop = kp["ParameterOperator"](cell, x, hidden)
    if h0_fix:  # the same class, with the true h0 for the first step's Jacobian
        kop.jtheta_op = kp["JThetaOperator"](cell, x, hidden, h_0=h0[:, None])
    if on_apply is not None:
        fwd = pop._matvec

        def counted(q: torch.Tensor) -> torch.Tensor:
            on_apply()
            return fwd(q)

        pop._matvec = counted
    return pop @ kop @ pop.T


def rel_diff(a: np.ndarray, b: np.ndarray) -> float:
    """Largest relative difference of two descending top-k lists, relative to ``b``."""
    return float(np.max(np.abs(np.sort(a)[::-1] - np.sort(b)[::-1]) / np.abs(np.sort(b)[::-1])))


def main() -> None:
    args = parse(bench_parser("N=32, B=64, T=10, for a smoke run"))
    kp = load_kpflow()
    if kp is None:
        return
    N, B, T = (32, 64, 10) if args.quick else (64, 256, 25)

    torch.manual_seed(0)
    model = RNN(N, 0, form="post", gain=0.85)
    with torch.no_grad():
        model.b.copy_(torch.randn(N) / 8.0)
    h0 = torch.zeros(B, N)
    h0[:, :2] = torch.rand(B, 2) * 4 - 2
    target = torch.randn(B, T, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.0)

    def sgd_step() -> None:
        loss = (model(h0, steps=T)[..., :2] - target).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()

    sgd = timeit(sgd_step, repeats=20, warmup=3)

    # ---- sntkit
    def sntkit_top10() -> torch.Tensor:
        ntk = state_ntk(model, h0, steps=T)
        return eigsh(ntk.spectral_operator, 10, tol=1e-3, seed=0, return_info=True)

    t_snt = timeit(sntkit_top10, repeats=3)
    snt_vals, _, info = sntkit_top10()
    snt_vals = snt_vals.double().numpy()

    # ---- kpflow, on its own cell class holding the same weights
    cell = kpflow_cell(kp, model)
    x = torch.ones(B, T, 1)
    with torch.no_grad():  # same map: kpflow's cell reproduces sntkit's trajectory
        h, traj = h0, []
        for t in range(T):
            h = cell(x[:, t], h)
            traj.append(h)
        traj_err = float((torch.stack(traj, 1) - model(h0, steps=T)).abs().max())
    calls = {"n": 0}

    def count() -> None:
        calls["n"] += 1

    def kpflow_op(h0_fix: bool = False) -> object:
        return kpflow_ntk(kp, cell, h0, T, h0_fix=h0_fix, on_apply=count)

    def kp_svd() -> np.ndarray:
        return np.asarray(kpflow_op().svd(10))

    def kp_eigsh() -> np.ndarray:
        return np.asarray(kpflow_op().eigsh(10, tol=1e-3))

    warm = kpflow_op()  # warm-up: one build and one application of P K P* and of its Gram
    warm(torch.randn(B, T, N))
    warm.gram()(torch.randn(B, T, N))
    results = {}
    for name, fn in (("svd", kp_svd), ("eigsh", kp_eigsh)):
        calls["n"] = 0
        t0 = time.perf_counter()
        vals = fn()
        dt = time.perf_counter() - t0
        results[name] = {"s": dt, "ntk_matvecs": calls["n"], "eigenvalues": vals}
    kp_fixed = np.asarray(kpflow_op(h0_fix=True).eigsh(10, tol=1e-8))
    kp_asis = np.asarray(kpflow_op().eigsh(10, tol=1e-8))

    svd, eig = results["svd"], results["eigsh"]
    agree_asis = rel_diff(kp_asis, snt_vals)
    agree_fixed = rel_diff(kp_fixed, snt_vals)
    date = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    threads = torch.get_num_threads()
    setup = table(
        [
            (
                machine(),
                date,
                str(threads),
                f"N={N}, B={B}, T={T}, P={N * N + N}",
                f"{sgd * 1e3:.2f}",
            )
        ],
        ("machine", "date", "torch threads", "sizes", "SGD step ms"),
    )
    rows = [
        (
            "sntkit `eigsh(state_ntk(...).spectral_operator, 10, tol=1e-3)`",
            f"{t_snt:.3f}",
            f"{t_snt / sgd:.1f}",
            "1",
            f"{info.num_matvecs}",
            "—",
        ),
        (
            "kpflow `(P@K@P.T).svd(10)` (defaults: Gram, tol 1e-8)",
            f"{svd['s']:.3f}",
            f"{svd['s'] / sgd:.1f}",
            f"{svd['s'] / t_snt:.1f}",
            f"{svd['ntk_matvecs']}",
            f"{rel_diff(svd['eigenvalues'], snt_vals):.1e}",
        ),
        (
            "kpflow `(P@K@P.T).eigsh(10, tol=1e-3)`",
            f"{eig['s']:.3f}",
            f"{eig['s'] / sgd:.1f}",
            f"{eig['s'] / t_snt:.1f}",
            f"{eig['ntk_matvecs']}",
            f"{rel_diff(eig['eigenvalues'], snt_vals):.1e}",
        ),
    ]
    print(setup + "\n")
    print(
        table(
            rows,
            (
                "top-10 eigenvalues (incl. build)",
                "s",
                "SGD steps",
                "kpflow / sntkit",
                "NTK applications",
                "max rel. diff to sntkit",
            ),
        )
    )
    print(
        f"eigenvalue agreement (kpflow eigsh tol 1e-8 vs sntkit tol 1e-3, max over top 10): "
        f"kpflow as is (h0 -> 0 in step 1 of K) {agree_asis:.1e}; "
        f"kpflow with h_0 passed to JThetaOperator {agree_fixed:.1e}"
    )
    print(f"kpflow's cell reproduces sntkit's trajectory: max |Δh| = {traj_err:.1e}")
    print("sntkit top-10:", np.array2string(snt_vals, precision=4))
    print("kpflow as is :", np.array2string(kp_asis, precision=4))
    if args.json:
        out = {
            "machine": machine(),
            "date": date,
            "torch_threads": threads,
            "sizes": {"N": N, "B": B, "T": T},
            "sgd_step_s": sgd,
            "trajectory_max_abs_diff": traj_err,
            "sntkit": {
                "s": t_snt,
                "sgd_steps": t_snt / sgd,
                "probes": info.num_matvecs,
                "eigenvalues": snt_vals.tolist(),
            },
            **{
                f"kpflow_{name}": {
                    "s": r["s"],
                    "sgd_steps": r["s"] / sgd,
                    "ratio_to_sntkit": r["s"] / t_snt,
                    "ntk_matvecs": r["ntk_matvecs"],
                    "eigenvalues": r["eigenvalues"].tolist(),
                }
                for name, r in (("svd", svd), ("eigsh", eig))
            },
            "kpflow_as_is_eigenvalues": kp_asis.tolist(),
            "kpflow_h0_fixed_eigenvalues": kp_fixed.tolist(),
            "max_rel_diff_as_is": agree_asis,
            "max_rel_diff_h0_fixed": agree_fixed,
        }
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)


if __name__ == "__main__":
    main()
