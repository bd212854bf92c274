"""Natural-gradient reproduction (paper 000 Fig. 4): smoothness statistics, and a resumed run that
equals an uninterrupted one."""

import json
import math

import pytest

from sntkit.cli.main import main
from sntkit.experiments import natural_gradient

TINY = {"n": 6, "batch": 8, "steps_T": 5, "iterations": 12, "check_every": 4, "update_every": 2,
        "drop_window": 2, "lr": 0.05, "checkpoint_every": 4}  # fmt: skip
TIMING = ("seconds_per_step", "time_ratio_ng_over_sgd", "wall_time_s")


def test_smoothness_counts_spikes_variation_and_drops():
    sm = natural_gradient.smoothness([1.0, 1.2, 0.5, 0.4, 0.39, 0.1], drop_window=2)
    assert sm["upward_spikes"] == 1  # 1.0 -> 1.2 only
    assert sm["log_loss_total_variation"] == pytest.approx(math.log(1.2) + math.log(12.0))
    assert sm["large_drops"] == [[0, 2, 1.0, 0.5], [3, 5, 0.4, 0.1]]


def _results(folder):
    summary = json.loads((folder / "summary.json").read_text())
    for part in (summary, *(summary[k] for k in natural_gradient.OPTIMIZERS)):
        for key in TIMING:
            part.pop(key, None)
    return summary, (folder / "events.json").read_text()


# stop inside the SGD stage (after step 8) / inside the natural-gradient stage (SGD wrote 4, 8
# and its stage end, then NG after step 4): the resumed run trains only the steps left
@pytest.mark.parametrize(("stop_at", "steps_left"), [(2, 4 + 12), (4, 8)])
def test_interrupted_and_resumed_run_matches_an_uninterrupted_one(
    tmp_path, monkeypatch, interrupted, stop_at, steps_left
):
    settings = [f"--set={k}={v}" for k, v in TINY.items()]
    full, part = tmp_path / "full", tmp_path / "part"
    assert main(["reproduce", "natural-gradient", "--out", str(full), *settings]) == 0
    interrupted(["reproduce", "natural-gradient", "--out", str(part), *settings], stop_at)
    calls = []
    loss = natural_gradient.StudentTeacherTask.loss
    monkeypatch.setattr(
        natural_gradient.StudentTeacherTask, "loss", lambda *a: calls.append(1) or loss(*a)
    )
    assert main(["reproduce", "natural-gradient", "--out", str(part), "--resume", *settings]) == 0
    assert len(calls) == steps_left  # continued from the checkpoint, not restarted
    assert _results(full) == _results(part)
    assert (part / "fig4_natural_gradient.png").exists()
