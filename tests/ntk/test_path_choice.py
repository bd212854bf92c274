"""``path="auto"``: the measured rule of sntkit.ntk.path_choice."""

import pytest
import torch

from sntkit.models import GRU
from sntkit.models.cell import detached_params
from sntkit.ntk import path_choice, state_ntk
from sntkit.ntk.trajectory import unroll

DT = torch.float64


def _setup(T=5):
    cell = GRU(4, 2, dtype=DT)
    x = torch.randn(3, T, 2, dtype=DT, generator=torch.Generator().manual_seed(0))
    params = detached_params(cell)
    return cell, params, unroll(cell, params, torch.zeros(3, 4, dtype=DT), x, None)


@pytest.fixture(autouse=True)
def _fresh_cache():
    path_choice._CACHE.clear()
    yield
    path_choice._CACHE.clear()


@pytest.mark.parametrize(
    ("setup", "mf", "gemm", "expect"),
    [
        (1.0, 1.0, 0.3, "structured"),  # 1·5/4 + 6·0.3·4/3 < 0.75·6·1·4/3 (T = 5, S = 4)
        (10.0, 1.0, 0.3, "matrix_free"),  # set-up not repaid in 6 passes
        (1.0, 1.0, 0.6, "matrix_free"),  # a saving within the 25 % margin
    ],
)
def test_rule_compares_setup_plus_passes(monkeypatch, setup, mf, gemm, expect):
    cell, params, traj = _setup()
    calls = iter([setup, gemm, mf])
    monkeypatch.setattr(path_choice, "_best", lambda fn, repeats=3: next(calls))
    assert path_choice.choose_path(cell, params, traj, 2**30) == expect


def test_memory_budget_short_trajectories_and_cache(monkeypatch):
    cell, params, traj = _setup()

    def no_measuring(fn, repeats=3):
        pytest.fail("measured although the answer was known")

    monkeypatch.setattr(path_choice, "_best", no_measuring)
    jac_bytes = 3 * 5 * 4 * 4 * 8  # (B, T, N, N) float64 step Jacobians
    assert path_choice.choose_path(cell, params, traj, 4 * jac_bytes - 1) == "matrix_free"
    path_choice._CACHE.clear()
    _, _, short = _setup(T=1)
    assert path_choice.choose_path(cell, params, short, 2**30) == "matrix_free"
    path_choice._CACHE.clear()
    calls = iter([0.0, 0.0, 1.0])
    monkeypatch.setattr(path_choice, "_best", lambda fn, repeats=3: next(calls))
    assert path_choice.choose_path(cell, params, traj, 4 * jac_bytes) == "structured"
    monkeypatch.setattr(path_choice, "_best", no_measuring)
    assert path_choice.choose_path(cell, params, traj, 4 * jac_bytes) == "structured"  # cached


def test_auto_decision_is_cached_per_user_module(monkeypatch):
    gru = torch.nn.GRU(2, 4, batch_first=True).to(DT)
    x = torch.randn(3, 5, 2, dtype=DT)
    first = state_ntk(gru, inputs=x).path

    def no_measuring(fn, repeats=3):
        pytest.fail("re-measured for the same module and shapes")

    monkeypatch.setattr(path_choice, "_best", no_measuring)
    assert state_ntk(gru, inputs=x).path == first  # a new adapter, the same module


def test_auto_gives_the_same_operators():
    cell, _, traj = _setup()
    h0 = torch.zeros(3, 4, dtype=DT)
    auto = state_ntk(cell, h0, traj.inputs)
    assert auto.path in ("structured", "matrix_free")
    ref = state_ntk(cell, h0, traj.inputs, path="matrix_free")
    assert torch.allclose(auto.operator.to_dense(), ref.operator.to_dense(), atol=1e-12)
