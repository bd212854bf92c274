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


@pytest.fixture
def interrupted(monkeypatch):
    """``interrupted(args, stop_at)``: run the CLI with ``args`` and raise KeyboardInterrupt
    right after its ``stop_at``-th checkpoint is written (exit code 130 expected)."""
    from sntkit.cli.main import main
    from sntkit.experiments.run import Run

    def run(args: list[str], stop_at: int) -> None:
        real, calls = Run.checkpoint, []

        def checkpoint(self, step, state=None):
            path = real(self, step, state)
            calls.append(step)
            if len(calls) == stop_at:
                raise KeyboardInterrupt
            return path

        with monkeypatch.context() as m:
            m.setattr(Run, "checkpoint", checkpoint)
            assert main(args) == 130

    return run
