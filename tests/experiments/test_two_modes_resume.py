"""Two-modes reproduction (paper 000 Fig. 3): a resumed run equals an uninterrupted one."""

import pytest
from resume_checks import assert_same_results

from sntkit.cli.main import main
from sntkit.experiments import two_modes

TINY = {"n": 6, "batch": 8, "steps_T": 5, "iterations": 12, "track_every": 2,
        "update_every": 2, "checkpoint_every": 4}  # fmt: skip


# stop inside the SGD run (after step 8) / inside the natural-gradient run (after step 4); the
# resumed run tracks the eigenvalues at the steps left: 8, 10, 12 + 7 (NG) or 4, ..., 12
@pytest.mark.parametrize(("stop_at", "tracked"), [(2, 3 + 7), (3, 5)])
def test_interrupted_and_resumed_run_matches_an_uninterrupted_one(
    tmp_path, monkeypatch, interrupted, stop_at, tracked
):
    settings = [f"--set={k}={v}" for k, v in TINY.items()]
    full, part = tmp_path / "full", tmp_path / "part"
    assert main(["reproduce", "two-modes", "--out", str(full), *settings]) == 0
    interrupted(["reproduce", "two-modes", "--out", str(part), *settings], stop_at)
    calls = []
    leading = two_modes.leading_eigenvalues
    monkeypatch.setattr(two_modes, "leading_eigenvalues", lambda W: calls.append(1) or leading(W))
    assert main(["reproduce", "two-modes", "--out", str(part), "--resume", *settings]) == 0
    assert len(calls) == tracked  # continued from the checkpoint, not restarted
    assert_same_results(full, part)
    assert (part / "fig3_two_modes.png").exists()
