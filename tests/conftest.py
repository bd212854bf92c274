"""Shared test configuration: float64 defaults are set per test, never globally.

Tests work on tiny tensors, where a second intra-op thread only adds synchronization cost
(orders of magnitude on a loaded machine), so each test runs on one torch thread; the count is
restored afterwards for code that inspects it.
"""

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
