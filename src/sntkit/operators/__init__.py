"""Matrix-free linear operators on tensor-shaped spaces (paper 004, App. A.1).

Every operator maps tensors of shape ``shape_in`` to ``shape_out`` and is applied to a batch of
probes at once (``matmat``). Build operators from the concrete classes below and combine them
with ``@`` (composition), ``+``/``-``, scalar ``*``, ``.T`` (adjoint), ``.kron`` (tensor
product), ``.reshape``, ``.gram()`` and ``.partial_trace`` / ``.partial_mean``.
"""

from sntkit.operators.adjoint import Adjoint
from sntkit.operators.base import Operator
from sntkit.operators.composition import Composition
from sntkit.operators.dense import Dense
from sntkit.operators.diagonal import Diagonal
from sntkit.operators.direct_sum import DirectSum
from sntkit.operators.function import FunctionOperator
from sntkit.operators.gram import Gram
from sntkit.operators.identity import Identity
from sntkit.operators.jacobian import Jacobian
from sntkit.operators.kronecker import Kronecker
from sntkit.operators.partial_trace import PartialTrace
from sntkit.operators.reshaped import Reshaped
from sntkit.operators.sum import Sum
from sntkit.operators.validation import unchecked

__all__ = [
    "Adjoint",
    "Composition",
    "Dense",
    "Diagonal",
    "DirectSum",
    "FunctionOperator",
    "Gram",
    "Identity",
    "Jacobian",
    "Kronecker",
    "Operator",
    "PartialTrace",
    "Reshaped",
    "Sum",
    "unchecked",
]
