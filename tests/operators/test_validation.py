"""The validation module: wrong types raise TypeError, wrong values ValueError, each naming the
argument and the fix."""

import pytest
import torch

from sntkit.operators import Dense, unchecked
from sntkit.operators import validation as v


def test_wrong_types_are_type_errors_and_wrong_values_value_errors():
    with pytest.raises(TypeError, match=r"f: x must be a torch.Tensor, got list"):
        v.check_tensor([1.0], name="x", where="f")
    with pytest.raises(ValueError, match=r"f: x has shape \(2,\), expected \(3,\)"):
        v.check_tensor(torch.zeros(2), name="x", where="f", shape=(3,))
    with pytest.raises(ValueError, match=r"convert it with x.to\(torch.float64\)"):
        v.check_tensor(torch.zeros(2), name="x", where="f", dtype=torch.float64)
    with pytest.raises(ValueError, match="NaN or inf"):
        v.check_tensor(torch.tensor([float("nan")]), name="x", where="f")
    with unchecked():
        v.check_tensor(torch.tensor([float("nan")]), name="x", where="f")
    with pytest.raises(TypeError, match="k must be an int, got float"):
        v.positive_int(2.0, "k", "f")
    with pytest.raises(TypeError, match="k must be an int, got bool"):
        v.positive_int(True, "k", "f")
    with pytest.raises(ValueError, match="k must be >= 1, got 0"):
        v.positive_int(0, "k", "f")
    with pytest.raises(ValueError, match="method must be one of"):
        v.choice("x", "method", "f", ("a", "b"))
    with pytest.raises(ValueError, match="try float64"):
        v.finite(float("inf"), "the trace", "f")


def test_operator_checks():
    A = Dense(torch.randn(3, 4, dtype=torch.float64))
    assert v.require_operator(A, "op", "f") is A
    with pytest.raises(TypeError, match="op must be an sntkit Operator, got Tensor; wrap a matrix"):
        v.require_operator(torch.zeros(3, 3), "op", "f")
    with pytest.raises(ValueError, match=r"op must be square.*use op.gram\(\)"):
        v.require_square(A, "op", "f")
    with pytest.raises(ValueError, match="must have the same shapes"):
        v.require_same_space(A, A.T, "f")
    H = torch.tensor([[1.0, 2.0], [0.0, 1.0]], dtype=torch.float64)
    with pytest.raises(ValueError, match="must be symmetric"):
        v.require_symmetric(H, torch.float64, "op", "f")
    v.require_symmetric(H + H.T, torch.float64, "op", "f")
