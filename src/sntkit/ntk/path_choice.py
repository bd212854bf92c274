"""``path="auto"``: choose the propagator path by measured cost (paper 004 Cor. 1 kernels).

The two ways to apply ``P`` (:mod:`sntkit.ntk.propagator`) trade set-up for per-probe cost:

* ``"structured"`` forms all step Jacobians ``A_t`` once (``N`` VJPs of the batched step per
  time slice) and then each step of ``P``/``P^*`` is one batched GEMM;
* ``"matrix_free"`` pays nothing up front and each step is a JVP/VJP of the cell's step, whose
  fixed cost (vmap, autograd bookkeeping) dominates for small ``B·N``.

Rule (measured on the model itself, on one time slice, best of three): with ``T`` steps,
``s`` the time to form one slice of Jacobians, ``m`` the time of one forward-plus-adjoint JVP/VJP
step and ``g`` that of two GEMM steps on a block of ``k = 16`` probes,
choose ``"structured"`` iff the Jacobians fit in a quarter of the probe memory budget and ::

    T·s + n·T·g < n·T·m        with n = EXPECTED_PASSES = 40

i.e. the set-up pays for itself within ``n`` passes of ``P`` and ``P^*`` — about what a top-10
``eigsh`` uses. Both paths give the same operators (up to rounding); only speed differs. The
decision depends on the cell, the shapes, dtype and device, not on parameter values, so it is
cached per (cell, shape, dtype, device). benchmarks/gram_bench.py records it against the
measured cost of a top-5 ``eigsh`` on both paths.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch
from torch.func import jvp, vjp, vmap

from sntkit.models.cell import Cell, Params
from sntkit.ntk.propagator import step_jacobians
from sntkit.ntk.trajectory import Trajectory

EXPECTED_PASSES = 40
PROBE_BLOCK = 16
_CACHE: dict[tuple, str] = {}


def choose_path(cell: Cell, params: Params, traj: Trajectory, memory_budget: int) -> str:
    """``"structured"`` or ``"matrix_free"`` by the rule of the module docstring."""
    B, T, N = traj.shape
    dtype, device = traj.states.dtype, traj.states.device
    key = (id(cell), type(cell).__name__, (B, T, N), dtype, str(device))
    if key in _CACHE:
        return _CACHE[key]
    jac_bytes = B * T * N * N * traj.states.element_size()
    if jac_bytes > memory_budget // 4 or T < 2:
        path = "matrix_free"
    else:
        path = "structured" if _structured_pays(cell, params, traj) else "matrix_free"
    _CACHE[key] = path
    return path


def _structured_pays(cell: Cell, params: Params, traj: Trajectory) -> bool:
    B, T, N = traj.shape
    t = T // 2
    h = traj.prev[:, t].clone()
    x = None if traj.inputs is None else traj.inputs[:, t].clone()
    x_slice = None if traj.inputs is None else traj.inputs[:, t : t + 1]
    probes = torch.randn(B, PROBE_BLOCK, N, dtype=h.dtype, device=h.device)

    def step(v: torch.Tensor) -> torch.Tensor:
        return cell.step(params, v, x)

    pullback = vjp(step, h)[1]

    def matrix_free() -> None:
        vmap(lambda v: jvp(step, (h,), (v,))[1], in_dims=1, out_dims=1)(probes)
        vmap(lambda u: pullback(u)[0], in_dims=1, out_dims=1)(probes)

    A = step_jacobians(cell, params, traj.prev[:, t : t + 1], x_slice)[0]

    def structured() -> None:
        torch.baddbmm(probes, probes, A.transpose(1, 2))
        torch.baddbmm(probes, probes, A)

    s = _best(lambda: step_jacobians(cell, params, traj.prev[:, t : t + 1], x_slice))
    m, g = _best(matrix_free), _best(structured)
    n = EXPECTED_PASSES
    return T * s + n * T * g < n * T * m


def _best(fn: Callable[[], object], repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)
