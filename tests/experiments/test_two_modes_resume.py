"""Two-modes reproduction (paper 000 Fig. 3): a resumed run equals an uninterrupted one."""

import pytest
from resume_checks import assert_same_results

from sntkit.cli.main import main
from sntkit.experiments import two_modes

TINY = {"n": 6, "batch": 8, "steps_T": 5, "iterations": 12, "track_every": 2, "rank_every": 4,
        "rank_matvecs": 4, "update_every": 2, "checkpoint_every": 4}  # fmt: skip


# stop inside the SGD stage (2nd checkpoint: after step 8) / inside the natural-gradient stage
# (5th: SGD wrote 4, 8, 12 and its stage end, then NG after step 4);
# the resumed run tracks the modes at the steps left: 8, 10, 12 + 7 (NG) or 4, ..., 12
@pytest.mark.parametrize(("stop_at", "tracked"), [(2, 3 + 7), (5, 5)])
def test_interrupted_and_resumed_run_matches_an_uninterrupted_one(
    tmp_path, monkeypatch, interrupted, stop_at, tracked
):
    settings = [f"--set={k}={v}" for k, v in TINY.items()]
    full, part = tmp_path / "full", tmp_path / "part"
    assert main(["reproduce", "two-modes", "--out", str(full), *settings]) == 0
    interrupted(["reproduce", "two-modes", "--out", str(part), *settings], stop_at)
    calls = []
    track = two_modes.track_modes
    monkeypatch.setattr(two_modes, "track_modes", lambda W, V: calls.append(1) or track(W, V))
    assert main(["reproduce", "two-modes", "--out", str(part), "--resume", *settings]) == 0
    assert len(calls) == tracked  # continued from the checkpoint, not restarted
    assert_same_results(full, part)
    assert (part / "fig3_two_modes.png").exists()
