"""Export to :class:`scipy.sparse.linalg.LinearOperator` (flattened, row-major vectors)."""

from __future__ import annotations

import numpy as np
import scipy.sparse.linalg as spla
import torch

from sntkit.operators.base import Operator


def to_scipy(op: Operator) -> spla.LinearOperator:
    """Wrap ``op`` so that scipy solvers (``eigsh``, ``svds``, ``cg``, ...) can use it.

    Vectors are flattened row-major; numpy arrays are converted to the operator's dtype and
    device on each call, and results are returned on the CPU.
    """
    np_dtype = torch.empty((), dtype=op.dtype).numpy().dtype

    def _to_torch(v: np.ndarray, shape: tuple[int, ...], k: int | None) -> torch.Tensor:
        t = torch.as_tensor(np.ascontiguousarray(v), dtype=op.dtype, device=op.device)
        return t.reshape(shape) if k is None else t.T.reshape(k, *shape)

    def matvec(v: np.ndarray) -> np.ndarray:
        return op.matvec(_to_torch(v, op.shape_in, None)).reshape(-1).cpu().numpy()

    def rmatvec(v: np.ndarray) -> np.ndarray:
        return op.rmatvec(_to_torch(v, op.shape_out, None)).reshape(-1).cpu().numpy()

    def matmat(V: np.ndarray) -> np.ndarray:
        k = V.shape[1]
        return op.matmat(_to_torch(V, op.shape_in, k)).reshape(k, -1).T.cpu().numpy()

    def rmatmat(V: np.ndarray) -> np.ndarray:
        k = V.shape[1]
        return op.rmatmat(_to_torch(V, op.shape_out, k)).reshape(k, -1).T.cpu().numpy()

    return spla.LinearOperator(
        (op.size_out, op.size_in),
        matvec=matvec,
        rmatvec=rmatvec,
        matmat=matmat,
        rmatmat=rmatmat,
        dtype=np_dtype,
    )
