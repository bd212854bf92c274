"""The estimator tests multiply tiny matrices, where a second BLAS/OpenMP thread only adds
synchronization (orders of magnitude slower when other jobs share the cores)."""

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
