"""``path="auto"``: choose the propagator path by measured cost (paper 004 Cor. 1 kernels).

The two ways to apply ``P`` (:mod:`sntkit.ntk.propagator`) trade set-up for per-probe cost:

* ``"structured"`` forms all step Jacobians ``A_t`` once (``N`` VJPs of the batched step per
  time slice) and then each step of ``P``/``P^*`` is one batched GEMM;
* ``"matrix_free"`` pays nothing up front and each step is a JVP/VJP of the cell's step, whose
  fixed cost (vmap, autograd bookkeeping) dominates for small ``B·N``.

Rule (measured on the model itself with the real kernels, on its first ``S = min(T, 4)``
steps, best of three): with ``s`` the time to build the structured kernel on those steps
(scaled by ``T/S``), and ``g``, ``m`` the times of one pass of ``P`` then ``P^*`` on a block of
``k = 16`` probes on the structured and matrix-free kernels (scaled by ``(T−1)/(S−1)``),
choose ``"structured"`` iff the Jacobians fit in a quarter of the probe memory budget and ::

    s + n·g < c·n·m        with n = EXPECTED_PASSES = 6, c = MARGIN = 0.75

i.e. the set-up pays for itself within ``n`` passes of ``P`` and ``P^*`` — about what a top-5
to top-10 ``eigsh`` uses (5 block iterations for the paper-000 RNN at ``tol=1e-4``) — by a
margin of 25 %: below that the extrapolation from ``S`` steps is within its noise and the
matrix-free path's smaller memory (no ``B·T·N²`` Jacobians) decides. Both paths give the
same operators (up to rounding); only speed differs. The decision depends on the cell, the
shapes, dtype and device, not on parameter values, so it is cached per (cell, shape, dtype,
device). benchmarks/gram_bench.py records it against the
measured cost of a top-5 ``eigsh`` on both paths.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable

import torch

from sntkit.models.cell import Cell, Params
from sntkit.ntk.propagator import PropagatorKernel
from sntkit.ntk.trajectory import Trajectory

EXPECTED_PASSES = 6
MARGIN = 0.75
PROBE_BLOCK = 16
MEASURED_STEPS = 4
_CACHE: dict[tuple, str] = {}


def choose_path(
    cell: Cell, params: Params, traj: Trajectory, memory_budget: int, owner: object = None
) -> str:
    """``"structured"`` or ``"matrix_free"`` by the rule of the module docstring.

    ``owner`` keys the cache (default ``cell``): the user's module, whose adapter is rebuilt
    at every call.
    """
    B, T, N = traj.shape
    dtype, device = traj.states.dtype, traj.states.device
    owner = cell if owner is None else owner
    key = (id(owner), type(owner).__name__, (B, T, N), dtype, str(device))
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
    S = min(T, MEASURED_STEPS)
    prev = traj.prev[:, :S]
    inputs = None if traj.inputs is None else traj.inputs[:, :S]
    Y = torch.randn(S, B, PROBE_BLOCK, N, dtype=prev.dtype, device=prev.device)

    def build(path: str) -> PropagatorKernel:
        return PropagatorKernel(cell, params, prev, inputs, path)

    kernels = {path: build(path) for path in ("structured", "matrix_free")}

    def one_pass(kernel: PropagatorKernel) -> None:
        kernel.adjoint_(kernel.forward_(Y.clone()))

    one_pass(kernels["matrix_free"])  # its pullbacks are built on first use: set-up, not pass
    setup = _best(lambda: build("structured"), repeats=2) * T / S
    g, m = (_best(functools.partial(one_pass, kernels[p])) * (T - 1) / (S - 1) for p in kernels)
    n = EXPECTED_PASSES
    return setup + n * g < MARGIN * n * m


def _best(fn: Callable[[], object], repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        if torch.cuda.is_available():  # kernels are asynchronous on the GPU
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return min(times)
