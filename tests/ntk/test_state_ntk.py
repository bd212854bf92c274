"""NTK_S = J J^* of every model kind against dense float64 Jacobians (paper 004 Prop. 1)."""

import pytest
import torch
from ntk_cases import DT, PARAMS, build, close, randomize
from ntk_reference import dense_jacobian, dense_parameter_jacobian

from sntkit.models import RNN
from sntkit.ntk import state_ntk


@pytest.mark.parametrize("name, trainable, path", PARAMS)
def test_ntk_equals_dense_jacobian_gram(name, trainable, path):
    ntk = build(name, trainable, path)
    J = dense_jacobian(ntk)
    close(ntk.jacobian.to_dense(), J)
    close(ntk.operator.to_dense(), J @ J.T)
    close(ntk.fisher.to_dense(), J.T @ J)


def test_first_step_from_h0_enters_K():
    """kpflow's P K P^T omits the first step; here trajectories of length 1 have NTK = K."""
    cell = randomize(RNN(4, 0, form="post", dtype=DT))
    h0 = torch.randn(2, 4, dtype=DT)
    ntk = state_ntk(cell, h0, steps=1)
    Dth = dense_parameter_jacobian(ntk)
    close(ntk.operator.to_dense(), Dth @ Dth.T)
    assert ntk.operator.to_dense().abs().max() > 0.1


def test_fused_fisher_runs_probe_blocks_in_one_pass_whatever_the_state_budget(monkeypatch):
    """The fused Fisher's memory does not grow with B: the state-sized budget must not split it.

    (Splitting 10 probes into 6 + 4 at T = 400 halved every GEMM: the product grew 1.55x faster
    than T at 2 threads.) An explicit ``max_probes`` still splits, with the same numbers.
    """
    import importlib

    module = importlib.import_module("sntkit.ntk.state_ntk")  # the package exports the function
    torch.manual_seed(0)
    cell = RNN(4, form="post", dtype=DT)
    h0 = torch.randn(200, 4, dtype=DT)
    state_bytes = module.PROBE_FOOTPRINT * 200 * 5 * 4 * 8
    monkeypatch.setattr(module, "PROBE_MEMORY_BUDGET", 2 * state_bytes)
    default = state_ntk(cell, h0, steps=5)
    split = state_ntk(cell, h0, steps=5, max_probes=3)
    assert default.linearization.fused and default.max_probes == 2
    calls: dict[str, list[int]] = {"default": [], "split": []}
    for key, ntk in (("default", default), ("split", split)):
        kernel = ntk.linearization.fisher
        monkeypatch.setattr(
            ntk.linearization, "fisher", lambda V, k=kernel, c=calls[key]: c.append(len(V)) or k(V)
        )
    V = torch.randn(7, default.num_params, dtype=DT)
    J = dense_jacobian(default)
    torch.testing.assert_close(default.fisher.matmat(V), V @ (J.T @ J), rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(split.fisher.matmat(V), default.fisher.matmat(V), rtol=1e-12, atol=0)
    assert calls["default"] == [7, 7] and calls["split"] == [3, 3, 1]
