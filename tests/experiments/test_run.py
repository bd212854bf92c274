"""The run folder: config, records, checkpoints and bit-identical resumption."""

import json
import random

import numpy as np
import pandas as pd
import pytest
import sntkit_test_dummies as dummies
import torch

from sntkit.experiments import io
from sntkit.experiments.errors import CheckpointError, ConfigError
from sntkit.experiments.registry import get_experiment
from sntkit.experiments.run import Run, rng_state, set_rng_state


def _execute(out, marks=None, resume=False, **settings):
    exp = get_experiment("counter")
    config = exp.config("quick", {"marks": str(marks) if marks else ""} | settings)
    return exp.execute(config, out, resume=resume)


def _outputs(out):
    return (
        pd.read_parquet(out / "metrics.parquet"),
        json.loads((out / "events.json").read_text()),
        json.loads((out / "summary.json").read_text()),
    )


def _assert_same_outputs(a, b):
    ma, ea, sa = _outputs(a)
    mb, eb, sb = _outputs(b)
    pd.testing.assert_frame_equal(ma, mb, check_exact=True)
    assert ea == eb and sa == sb


@pytest.fixture
def crash(monkeypatch):
    def at(step, exc=None):
        monkeypatch.setitem(dummies.CRASH, "at", step)
        monkeypatch.setitem(dummies.CRASH, "exc", exc or RuntimeError("injected crash"))

    return at


def test_run_folder_files(tmp_path):
    summary = _execute(tmp_path / "r")
    config = json.loads((tmp_path / "r" / "config.json").read_text())
    assert config["experiment"] == "counter" and config["scale"] == "quick"
    assert config["seed"] == 0 and config["device"] == "cpu" and config["steps"] == 20
    assert {"sntkit", "torch", "numpy", "python"} <= set(config["versions"])
    metrics, events, saved = _outputs(tmp_path / "r")
    assert metrics.step.tolist() == list(range(20))
    assert metrics.b.tolist() == [0.5] * 20 and metrics.w.dtype == np.float64
    assert events[0] == {"kind": "tick", "step": 3, "loss": None}  # NaN written as null
    assert saved == summary and summary["steps"] == 20
    names = [p.name for p in (tmp_path / "r" / "checkpoints").iterdir()]
    assert sorted(names) == ["step_00000015.pt", "step_00000020.pt"]  # keep=2


@pytest.mark.parametrize("crash_at", [2, 7, 9, 19])
def test_interrupted_and_resumed_run_is_bit_identical(tmp_path, crash, crash_at):
    _execute(tmp_path / "full")
    crash(crash_at)
    with pytest.raises(RuntimeError, match="injected"):
        _execute(tmp_path / "part")
    assert not (tmp_path / "part" / "summary.json").exists()
    crash(None)
    torch.manual_seed(123), np.random.seed(7), random.seed(5)  # a different process state
    _execute(tmp_path / "part", resume=True)
    _assert_same_outputs(tmp_path / "full", tmp_path / "part")


def test_resume_survives_two_interruptions_and_keyboard_interrupt(tmp_path, crash):
    marks = tmp_path / "marks"
    marks.mkdir()
    _execute(tmp_path / "full", marks)
    crash(6, KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        _execute(tmp_path / "part", marks)
    crash(13)
    with pytest.raises(RuntimeError):
        _execute(tmp_path / "part", marks, resume=True)
    rows = pd.read_parquet(tmp_path / "part" / "metrics.parquet")
    assert rows.step.tolist() == list(range(10))  # on disk: what the newest checkpoint holds
    crash(None)
    _execute(tmp_path / "part", marks, resume=True)
    _assert_same_outputs(tmp_path / "full", tmp_path / "part")
    assert dummies.starts(marks, "part") == 3
    _execute(tmp_path / "part", marks, resume=True)  # finished: nothing is recomputed
    assert dummies.starts(marks, "part") == 3


def test_existing_run_needs_resume_and_the_same_config(tmp_path):
    _execute(tmp_path / "r")
    with pytest.raises(ConfigError, match="already holds a run; pass --resume"):
        _execute(tmp_path / "r")
    with pytest.raises(ConfigError, match=r"differs in lr \(saved 0.05, now 0.1\)"):
        _execute(tmp_path / "r", resume=True, lr=0.1)
    with pytest.raises(ConfigError, match="seed"):
        _execute(tmp_path / "r", resume=True, seed=1)


def test_unwritable_folder(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ConfigError, match="not writable"):
        Run(blocker / "sub", {"seed": 0})
    with pytest.raises(ConfigError, match="not writable"):
        Run(blocker, {"seed": 0})


def test_damaged_newest_checkpoint_on_resume(tmp_path, crash):
    crash(12)
    with pytest.raises(RuntimeError):
        _execute(tmp_path / "r")
    crash(None)
    newest = tmp_path / "r" / "checkpoints" / "step_00000010.pt"
    assert newest.exists() and not (tmp_path / "r" / "checkpoints" / "step_00000015.pt").exists()
    newest.write_bytes(newest.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="cannot be read"):
        _execute(tmp_path / "r", resume=True)
    newest.unlink()  # as the message suggests: continue from the previous checkpoint
    _execute(tmp_path / "r", resume=True)
    _execute(tmp_path / "full")
    _assert_same_outputs(tmp_path / "full", tmp_path / "r")


def test_checkpoint_bookkeeping(tmp_path):
    run = Run(tmp_path / "r", {"seed": 0}, checkpoint_every=3, keep=3)
    assert [s for s in range(10) if run.should_checkpoint(s)] == [3, 6, 9]
    assert run.restore() is None  # a fresh run
    for step in (9, 10, 100_000_000, 999):  # more than 8 digits still sorts by step
        run.checkpoint(step, {"s": step})
    assert [p.name for p in run.checkpoints()] == [
        "step_00000010.pt",
        "step_00000999.pt",
        "step_100000000.pt",
    ]
    resumed = Run(tmp_path / "r", {"seed": 0}, resume=True)
    assert resumed.restore() == (100_000_000, {"s": 100_000_000})
    assert Run(tmp_path / "never", {"seed": 0}).should_checkpoint(5) is False


def test_track_restores_objects_in_place_once(tmp_path):
    model = torch.nn.Linear(2, 1)
    gen = torch.Generator().manual_seed(1)
    rng = np.random.default_rng(2)
    pyrng = random.Random(3)
    state = {"a": 1}
    history = [1]
    run = Run(tmp_path / "r", {"seed": 0})
    assert run.track(model=model, gen=gen) == 0
    run.track(rng=rng, pyrng=pyrng, state=state, history=history)
    run.log(step=0)
    run.event(kind="x")
    torch.manual_seed(4)
    run.checkpoint(1, {"extra": torch.arange(2)})
    expected = [torch.rand(1), gen.get_state(), rng.random(), pyrng.random()]
    saved_weight = model.weight.detach().clone()
    with torch.no_grad():
        model.weight.add_(1.0)
    state["a"], history[:] = 2, [9, 9]
    run.log(step=1)  # after the checkpoint: dropped on resume

    resumed = Run(tmp_path / "r", {"seed": 0}, resume=True)
    model2, gen2 = torch.nn.Linear(2, 1), torch.Generator()
    rng2, pyrng2 = np.random.default_rng(0), random.Random(0)
    state2, history2 = {"a": 0, "b": 5}, []
    assert resumed.track(model=model2, gen=gen2, rng=rng2) == 1
    assert resumed.track(pyrng=pyrng2, state=state2, history=history2) == 1  # not reapplied
    step, extra = resumed.restore()
    assert step == 1 and torch.equal(extra["extra"], torch.arange(2))
    assert torch.equal(model2.weight, saved_weight)
    assert state2 == {"a": 1} and history2 == [1]
    assert resumed.rows == [{"step": 0}] and resumed.events == [{"kind": "x"}]
    assert torch.equal(torch.rand(1), expected[0])
    assert torch.equal(gen2.get_state(), expected[1])
    assert rng2.random() == expected[2] and pyrng2.random() == expected[3]


def test_track_and_checkpoint_reject_unsaveable_state(tmp_path):
    run = Run(tmp_path / "r", {"seed": 0})
    with pytest.raises(TypeError, match="cannot track x=object"):
        run.track(x=object())
    with pytest.raises(TypeError, match="cannot be saved"):
        run.checkpoint(1, {"bad": object()})
    assert run.checkpoints() == []  # the unloadable file is not left behind
    run.track(model=torch.nn.Linear(1, 1))
    run.checkpoint(2)
    other = Run(tmp_path / "r", {"seed": 0}, resume=True)
    with pytest.raises(CheckpointError, match="no state for 'optimizer'"):
        other.track(optimizer=torch.optim.SGD(torch.nn.Linear(1, 1).parameters(), lr=0.1))
    again = Run(tmp_path / "r", {"seed": 0}, resume=True)
    with pytest.raises(CheckpointError, match="does not fit"):
        again.track(model=torch.nn.Linear(3, 1))


def test_checkpoint_that_is_not_a_run_checkpoint(tmp_path):
    Run(tmp_path / "r", {"seed": 0})
    io.save_checkpoint(tmp_path / "r" / "checkpoints" / "step_00000004.pt", {"weights": 1})
    with pytest.raises(CheckpointError, match="not a complete sntkit run checkpoint"):
        Run(tmp_path / "r", {"seed": 0}, resume=True).restore()


def test_global_rng_state_roundtrip_through_a_checkpoint(tmp_path):
    torch.manual_seed(0), np.random.seed(1), random.seed(2)
    torch.rand(3), np.random.normal(), random.gauss(0, 1)  # leaves cached gaussians around
    io.save_checkpoint(tmp_path / "rng.pt", {"rng": rng_state()})
    expected = (torch.rand(3), np.random.normal(size=3), [random.gauss(0, 1) for _ in range(3)])
    torch.manual_seed(9), np.random.seed(9), random.seed(9)
    set_rng_state(io.load_checkpoint(tmp_path / "rng.pt")["rng"])
    got = (torch.rand(3), np.random.normal(size=3), [random.gauss(0, 1) for _ in range(3)])
    assert torch.equal(got[0], expected[0])
    assert np.array_equal(got[1], expected[1]) and got[2] == expected[2]
