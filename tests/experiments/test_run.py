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
from sntkit.experiments.run import Run, rng_state, seed_everything, set_rng_state


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


# ---------------------------------------------------------------------- stages and loops
class _StopError(Exception):
    pass


def _vector() -> torch.nn.Module:
    model = torch.nn.Module()
    model.w = torch.nn.Parameter(torch.zeros(4))
    return model


def _two_stage_run(out, resume=False, stop_after=None, calls=None):
    """Two stages, each drawing data from the global RNG before its loop and noise inside it.

    ``stop_after=n`` raises right after the n-th checkpoint (stage ends included).
    """
    seed_everything(0)  # as Experiment.execute does
    run = Run(out, {"experiment": "two-stage", "checkpoint_every": 3}, resume=resume)
    written = []
    real = run.checkpoint

    def checkpoint(step, state=None):
        path = real(step, state)
        written.append(path.name)
        if stop_after is not None and len(written) == stop_after:
            raise _StopError
        return path

    run.checkpoint = checkpoint

    def train(name, steps):
        (calls if calls is not None else []).append(name)
        target = torch.randn(4)  # pre-loop randomness: must replay identically on resume
        model = _vector()
        opt = torch.optim.SGD(model.parameters(), lr=0.2)
        for step in run.loop(steps, model=model, optimizer=opt):
            loss = (model.w - target - 0.1 * torch.randn(4)).square().sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
            run.log(stage=name, step=step, loss=float(loss.detach()))
        return {"w": model.w.detach().clone(), "final": float(loss.detach())}

    first = run.stage("first", lambda: train("first", 7))
    second = run.stage("second", lambda: train("second", 8))
    run.finish({"first": first["final"], "second": second["final"]})
    return run, first, second, written


@pytest.mark.parametrize("stop_after", [1, 2, 3, 4, 5])
def test_stages_resume_to_the_uninterrupted_results(tmp_path, stop_after):
    _, first, second, written = _two_stage_run(tmp_path / "whole")
    # 7 steps: checkpoints after 3, 6, stage end; 8 steps: after 3, 6, stage end
    assert written == [f"step_{s:08d}.pt" for s in (3, 6, 7, 10, 13, 15)]
    with pytest.raises(_StopError):
        _two_stage_run(tmp_path / "cut", stop_after=stop_after)
    calls = []
    _, first2, second2, _ = _two_stage_run(tmp_path / "cut", resume=True, calls=calls)
    assert torch.equal(first["w"], first2["w"]) and torch.equal(second["w"], second2["w"])
    _assert_same_outputs_no_events(tmp_path / "whole", tmp_path / "cut")
    # a stage that had finished is not trained again
    assert calls == (["first", "second"] if stop_after < 3 else ["second"])


def _assert_same_outputs_no_events(a, b):
    pd.testing.assert_frame_equal(
        pd.read_parquet(a / "metrics.parquet"),
        pd.read_parquet(b / "metrics.parquet"),
        check_exact=True,
    )
    assert json.loads((a / "summary.json").read_text()) == json.loads(
        (b / "summary.json").read_text()
    )


def test_resumed_loop_continues_rather_than_restarts(tmp_path):
    with pytest.raises(_StopError):
        _two_stage_run(tmp_path, stop_after=4)  # mid second stage, after its step 3
    run = Run(tmp_path, {"experiment": "two-stage", "checkpoint_every": 3}, resume=True)
    assert run.stage("first", lambda: pytest.fail("finished stage rerun"))["w"].shape == (4,)
    m = _vector()
    opt = torch.optim.SGD(m.parameters())
    steps = run.stage("second", lambda: list(run.loop(8, model=m, optimizer=opt)))
    assert steps == [3, 4, 5, 6, 7] and bool(m.w.detach().abs().sum() > 0)  # restored, not zeros


def test_stage_errors(tmp_path):
    run = Run(tmp_path, {"experiment": "x"})
    with pytest.raises(ValueError, match="stage name"):
        run.stage("", dict)
    with pytest.raises(ValueError, match="stage name"):
        run.stage("a/b", dict)
    with pytest.raises(RuntimeError, match="nest none"):
        run.stage("outer", lambda: run.stage("inner", dict))
    with pytest.raises(ValueError, match="steps must be a non-negative integer"):
        list(run.loop(2.5))


def test_stages_out_of_order_on_resume(tmp_path):
    with pytest.raises(_StopError):
        _two_stage_run(tmp_path, stop_after=4)
    run = Run(tmp_path, {"experiment": "two-stage", "checkpoint_every": 3}, resume=True)
    with pytest.raises(CheckpointError, match=r"written in stage 'second'.*reached stage 'third'"):
        run.stage("third", dict)
