"""Bad input raises ValueError (TypeError for wrong types) with a message naming the argument."""

import pytest
import torch
from operator_cases import DT, dense_op, rand

from sntkit.operators import Dense, DirectSum, FunctionOperator, Identity, Kronecker


def meta_op(shape=(2, 3)):
    """An operator that lives on another device (``meta``), for device-mismatch tests."""
    return FunctionOperator(lambda x: x, None, shape, shape, dtype=DT, device="meta")


@pytest.mark.parametrize(
    ("method", "arg", "bad", "pattern"),
    [
        ("matvec", "x", rand(6), r"matvec: x has shape \(6,\), expected \(2, 3\).*reshape"),
        ("matvec", "x", rand(1, 2, 3), r"matvec: x has shape \(1, 2, 3\), expected \(2, 3\)"),
        ("matmat", "X", rand(2, 3), r"matmat: X has shape \(2, 3\).*leading probe axis.*X\[None\]"),
        ("matmat", "X", rand(4, 6), r"matmat: X has shape \(4, 6\), expected \(k, \*\(2, 3\)\)"),
        ("rmatvec", "y", rand(5), r"rmatvec: y has shape \(5,\), expected \(4,\)"),
        ("rmatmat", "Y", rand(4), r"rmatmat: Y has shape \(4,\)"),
    ],
)
def test_probe_shape_errors_name_the_argument(method, arg, bad, pattern):
    A = dense_op((2, 3), (4,))
    with pytest.raises(ValueError, match=pattern):
        getattr(A, method)(bad)


def test_probe_dtype_device_and_type_errors():
    A = dense_op((2, 3), (4,))
    with pytest.raises(
        ValueError, match=r"matvec: x has dtype torch.float32.*x.to\(torch.float64\)"
    ):
        A.matvec(torch.zeros(2, 3))
    with pytest.raises(ValueError, match=r"matmat: X has dtype torch.float32"):
        A.matmat(torch.zeros(1, 2, 3))
    with pytest.raises(ValueError, match=r"rmatvec: y has dtype torch.float32"):
        A.rmatvec(torch.zeros(4))
    with pytest.raises(ValueError, match=r"matvec: x is on cpu, expected meta.*x.to\('meta'\)"):
        meta_op().matvec(rand(2, 3))
    with pytest.raises(ValueError, match=r"rmatmat: Y is on cpu, expected meta"):
        meta_op().rmatmat(rand(1, 2, 3))
    with pytest.raises(TypeError, match=r"matvec: x must be a torch.Tensor, got list"):
        A.matvec([[0.0] * 3] * 2)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_nan_and_inf_probes(value):
    A = dense_op((2, 3), (4,))
    x = rand(2, 3)
    x[1, 2] = value
    with pytest.raises(ValueError, match="matvec: x contains NaN or inf"):
        A.matvec(x)
    with pytest.raises(ValueError, match="matmat: X contains NaN or inf"):
        A.matmat(x[None])
    y = rand(4)
    y[0] = value
    with pytest.raises(ValueError, match="rmatvec: y contains NaN or inf"):
        A.rmatvec(y)
    with pytest.raises(ValueError, match="rmatmat: Y contains NaN or inf"):
        A.rmatmat(y[None])


def test_nan_and_inf_results():
    nan = FunctionOperator(lambda x: x * float("nan"), None, 3, 3, dtype=DT, device="cpu")
    for call, probe in [
        (nan.matvec, rand(3)),
        (nan.matmat, rand(2, 3)),
        (nan.rmatvec, rand(3)),
        (nan.rmatmat, rand(2, 3)),
        (lambda _: nan.to_dense(), None),
    ]:
        with pytest.raises(ValueError, match=r"FunctionOperator\(\(3,\) -> \(3,\)\) produced NaN"):
            call(probe)
    overflow = Dense(torch.tensor([[1e308, 1e308]], dtype=DT))
    with pytest.raises(ValueError, match=r"matvec: Dense.*produced NaN or inf.*float64"):
        overflow.matvec(torch.tensor([1e308, 1e308], dtype=DT))
    with pytest.raises(ValueError, match="Dense: matrix contains NaN or inf"):
        Dense(torch.tensor([[float("nan")]], dtype=DT))


def test_combination_errors():
    A = dense_op((2, 3), (4,))
    with pytest.raises(
        ValueError, match=r"cannot compose .*right.shape_out \(4,\) != left.shape_in \(2, 3\)"
    ):
        A @ A
    with pytest.raises(ValueError, match="cannot add"):
        A + dense_op((6,), (4,))
    with pytest.raises(
        ValueError, match=r"sum: operators have different dtypes .*float64 vs torch.float32"
    ):
        A + Dense(torch.zeros(4, 6), shape_in=(2, 3))
    with pytest.raises(
        ValueError, match=r"composition: operators live on different devices \(meta vs cpu\)"
    ):
        meta_op() @ Identity((2, 3), dtype=DT, device="cpu")
    with pytest.raises(ValueError, match=r"kron: operators live on different devices"):
        Kronecker(Identity(2, dtype=DT, device="cpu"), meta_op())
    with pytest.raises(ValueError, match=r"kron: operators have different dtypes"):
        A.kron(Identity(2, dtype=torch.float32))
    with pytest.raises(ValueError, match=r"reshape: .*hold 5 -> 4"):
        A.reshape((5,), (4,))
    with pytest.raises(ValueError, match=r"DirectSum: .*leading shapes"):
        DirectSum([dense_op((2, 3), (2, 1)), dense_op((3, 3), (3, 1))])
    with pytest.raises(ValueError, match="rmatvec=None means self-adjoint"):
        FunctionOperator(lambda x: x, None, 3, 4, dtype=DT, device="cpu")
    with pytest.raises(ValueError, match=r"Dense: matrix has shape \(4, 6\) but shape_out=\(5,\)"):
        Dense(rand(4, 6), shape_out=5)
    with pytest.raises(ValueError, match=r"names_in \('a',\) must name each of the 2 axes"):
        Dense(rand(6, 6), shape_in=(2, 3), names_in=("a",))
    with pytest.raises(ValueError, match=r"shape_in must contain positive sizes, got \(2, 0\)"):
        Identity((2, 0))
    with pytest.raises(TypeError):
        A * A
    with pytest.raises(TypeError):
        A + 1.0


def test_partial_trace_errors():
    B = dense_op((2, 3, 2), (2, 3, 2), names_in=("batch", "time", "unit"))
    with pytest.raises(
        ValueError, match=r"partial_trace needs a square operator.*\(2, 3\) -> \(4,\)"
    ):
        dense_op((2, 3), (4,)).partial_trace(0)
    with pytest.raises(ValueError, match=r"partial_trace needs a square operator"):
        Dense(rand(6, 6), shape_in=(2, 3), shape_out=(3, 2)).partial_trace(0)
    with pytest.raises(
        ValueError, match=r"axis name 'neuron' is not one of .*'batch', 'time', 'unit'"
    ):
        B.partial_trace("neuron")
    with pytest.raises(
        ValueError, match="axis name 'batch' is not one of this operator's axis names None"
    ):
        dense_op((2, 3), (2, 3)).partial_trace("batch")
    with pytest.raises(ValueError, match=r"axis 3 is out of range for shape_in \(2, 3, 2\)"):
        B.partial_trace(3)
    with pytest.raises(ValueError, match="name the same axis twice"):
        B.partial_trace(("unit", 2))
    with pytest.raises(TypeError, match="axes must be an axis index or name"):
        B.partial_trace(1.5)
    with pytest.raises(ValueError, match="full trace"):
        B.partial_trace(("batch", "time", "unit"))
    with pytest.raises(ValueError, match="method must be 'exact' or 'hutchinson', got 'magic'"):
        B.partial_trace(0, method="magic")
    with pytest.raises(ValueError, match="num_samples must be >= 1, got 0"):
        B.partial_trace(0, method="hutchinson", num_samples=0)
