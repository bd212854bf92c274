"""Dynamics tests work on tiny tensors (2–64 units), where intra-op threads only add
synchronization cost (large on a loaded machine); run them on one thread, restored afterwards."""

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
