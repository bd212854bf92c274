"""Clear errors on bad input, dtype handling, and never mutating the user's model."""

import pytest
import torch

from sntkit.models import RNN, FunctionalCell
from sntkit.ntk import state_ntk

DT = torch.float64


def test_bad_shapes_name_the_argument():
    cell = RNN(4, 2, dtype=DT)
    h0 = torch.zeros(3, 4, dtype=DT)
    x = torch.zeros(3, 5, 2, dtype=DT)
    with pytest.raises(ValueError, match=r"h0 has shape \(3, 5\)"):
        state_ntk(cell, torch.zeros(3, 5, dtype=DT), x)
    with pytest.raises(ValueError, match="inputs have shape"):
        state_ntk(cell, h0, torch.zeros(2, 5, 2, dtype=DT))
    with pytest.raises(ValueError, match="inputs have shape"):
        state_ntk(cell, h0, torch.zeros(3, 5, 7, dtype=DT))
    with pytest.raises(ValueError, match="pass inputs"):
        state_ntk(cell, h0)
    with pytest.raises(ValueError, match="steps=T"):
        state_ntk(RNN(4, dtype=DT), h0)
    with pytest.raises(ValueError, match=r"inputs are torch\.float32"):
        state_ntk(cell, h0, x.float())
    with pytest.raises(ValueError, match="trainable names"):
        state_ntk(cell, h0, x, trainable=["V"])
    with pytest.raises(ValueError, match="NaN"):
        state_ntk(cell, h0, x * float("nan"))


def test_exploding_trajectory_reports_the_step():
    cell = FunctionalCell(
        lambda p, h, x: p["a"] * h**3, {"a": torch.tensor(10.0, dtype=DT)}, n_state=1
    )
    with pytest.raises(ValueError, match=r"not finite from step t=\d+"):
        state_ntk(cell, torch.full((1, 1), 2.0, dtype=DT), steps=20)


def test_huge_but_finite_trajectory_is_accepted_and_the_first_bad_step_is_named():
    # float32 states near 3e38: their sum overflows, every state is finite (no error)
    still = FunctionalCell(lambda p, h, x: p["a"] * h, {"a": torch.tensor(1.0)}, n_state=2)
    ntk = state_ntk(still, torch.full((4, 2), 3e38), steps=3)
    assert ntk.states.shape == (4, 3, 2)
    grow = FunctionalCell(lambda p, h, x: p["a"] * h, {"a": torch.tensor(10.0)}, n_state=2)
    with pytest.raises(ValueError, match=r"not finite from step t=2 "):
        state_ntk(grow, torch.full((4, 2), 1e37), steps=3)  # 1e38, then inf at h_2


def test_unsupported_module_says_how_to_wrap():
    with pytest.raises(TypeError, match="FunctionalCell"):
        state_ntk(torch.nn.Linear(3, 3), torch.zeros(1, 3), steps=2)


def test_model_is_never_mutated():
    cell = RNN(4, 2)
    before = {k: v.clone() for k, v in cell.state_dict().items()}
    ntk = state_ntk(cell, torch.randn(2, 4), torch.randn(2, 3, 2), dtype=DT)
    ntk.operator.matvec(torch.randn(ntk.state_shape, dtype=DT))
    _ = ntk.fisher.matvec(torch.randn(ntk.num_params, dtype=DT))
    for k, v in cell.state_dict().items():
        assert torch.equal(v, before[k]) and v.dtype == torch.float32
    assert all(p.requires_grad for p in cell.parameters())
    assert all(p.grad is None for p in cell.parameters())


def test_float32_and_dtype_argument():
    torch.manual_seed(0)
    cell = RNN(5, 2)
    h0, x = torch.randn(2, 5), torch.randn(2, 3, 2)
    n32 = state_ntk(cell, h0, x)
    n64 = state_ntk(cell, h0, x, dtype=DT)
    assert n32.states.dtype == torch.float32 and n64.states.dtype == DT
    torch.testing.assert_close(
        n32.operator.to_dense().double(), n64.operator.to_dense(), rtol=1e-4, atol=1e-5
    )


def test_probe_validation_on_ntk_operators():
    ntk = state_ntk(RNN(3, 0, dtype=DT), torch.zeros(2, 3, dtype=DT), steps=2)
    with pytest.raises(ValueError, match="expected"):
        ntk.operator.matvec(torch.zeros(2, 2, 4, dtype=DT))
    with pytest.raises(ValueError, match="dtype"):
        ntk.operator.matvec(torch.zeros(2, 2, 3))
    with pytest.raises(ValueError, match="NaN"):
        ntk.operator.matvec(torch.full((2, 2, 3), float("inf"), dtype=DT))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    torch.manual_seed(0)
    cell = RNN(5, 2, dtype=DT)
    h0, x = torch.randn(2, 5, dtype=DT), torch.randn(2, 3, 2, dtype=DT)
    cpu = state_ntk(cell, h0, x).operator.to_dense()
    gpu = state_ntk(cell.cuda(), h0.cuda(), x.cuda()).operator.to_dense().cpu()
    torch.testing.assert_close(cpu, gpu)


@pytest.mark.parametrize("path", ["structured", "matrix_free"])
def test_probe_blocks_split_into_passes_give_the_same_products(path, monkeypatch):
    from sntkit.models import GRU

    torch.manual_seed(0)
    cell = GRU(5, 2, dtype=torch.float64)
    h0, x = torch.randn(3, 5, dtype=torch.float64), torch.randn(3, 4, 2, dtype=torch.float64)
    whole = state_ntk(cell, h0, x, path=path, max_probes=100)
    split = state_ntk(cell, h0, x, path=path, max_probes=3)
    calls = []
    kernel = split.linearization.ntk
    monkeypatch.setattr(split.linearization, "ntk", lambda E: calls.append(len(E)) or kernel(E))
    E = torch.randn(7, *whole.state_shape, dtype=torch.float64)
    torch.testing.assert_close(
        split.operator.matmat(E), whole.operator.matmat(E), rtol=1e-12, atol=0
    )
    assert calls == [3, 3, 1]
    G = torch.randn(7, whole.num_params, dtype=torch.float64)
    torch.testing.assert_close(split.fisher.matmat(G), whole.fisher.matmat(G), rtol=1e-12, atol=0)
    torch.testing.assert_close(
        split.jacobian.rmatmat(E), whole.jacobian.rmatmat(E), rtol=1e-12, atol=0
    )
    for keep in (("batch", "time"), ("unit",)):  # the view estimator slices its samples too
        a = split.view_participation(keep, num_samples=5, seed=1)
        b = whole.view_participation(keep, num_samples=5, seed=1)
        assert a.value == pytest.approx(b.value, rel=1e-12)
        assert a.stderr == pytest.approx(b.stderr, rel=1e-9)
    # the default keeps one pass under the memory budget
    from sntkit.ntk.state_ntk import PROBE_FOOTPRINT, PROBE_MEMORY_BUDGET

    big = PROBE_MEMORY_BUDGET // (PROBE_FOOTPRINT * 3 * 4 * 5 * 8)  # (B, T, N) float64
    assert state_ntk(cell, h0, x, path=path).max_probes == big
    with pytest.raises(ValueError, match="max_probes"):
        state_ntk(cell, h0, x, max_probes=0)
