"""Atomic files, JSON sanitizing, checkpoints and the run folder."""

import json
import math

import numpy as np
import pytest
import torch

from sntkit.experiments import io
from sntkit.experiments.errors import CheckpointError, ConfigError
from sntkit.experiments.registry import Experiment
from sntkit.experiments.run import Run


def test_atomic_write_leaves_no_partial_file(tmp_path):
    target = tmp_path / "out.json"
    io.write_json(target, {"a": 1})

    def explode(tmp):
        tmp.write_text('{"half": ')
        raise RuntimeError("killed mid-write")

    with pytest.raises(RuntimeError):
        io.atomic_write(target, explode)
    assert json.loads(target.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_json_sanitizes_numbers_and_tensors(tmp_path):
    obj = {
        "nan": math.nan,
        "inf": float("inf"),
        "np": np.float32(1.5),
        "t": torch.tensor([1.0, 2.0]),
        "i": np.int64(3),
    }
    io.write_json(tmp_path / "x.json", obj)
    assert json.loads((tmp_path / "x.json").read_text()) == {
        "nan": None,
        "inf": None,
        "np": 1.5,
        "t": [1.0, 2.0],
        "i": 3,
    }


def test_checkpoints_roundtrip_and_reject_damage(tmp_path):
    path = tmp_path / "c.pt"
    io.save_checkpoint(path, {"w": torch.ones(2), "step": 3})
    state = io.load_checkpoint(path)
    assert state["step"] == 3 and torch.equal(state["w"], torch.ones(2))
    path.write_bytes(path.read_bytes()[:20])
    with pytest.raises(CheckpointError, match="cannot be read"):
        io.load_checkpoint(path)


def test_run_restores_rows_events_and_rng(tmp_path):
    run = Run(tmp_path / "r", {"experiment": "x", "seed": 0}, checkpoint_every=2)
    run.log({"step": 0, "v": 1.0})
    run.event({"kind": "k"})
    torch.manual_seed(5)
    run.checkpoint(2, {"w": torch.zeros(1)})
    expected = torch.rand(3)
    run.log({"step": 1, "v": 2.0})  # after the checkpoint: dropped on resume
    resumed = Run(tmp_path / "r", {"experiment": "x", "seed": 0}, resume=True)
    step, state = resumed.restore()
    assert step == 2 and torch.equal(state["w"], torch.zeros(1))
    assert resumed.rows == [{"step": 0, "v": 1.0}] and resumed.events == [{"kind": "k"}]
    assert torch.equal(torch.rand(3), expected)
    with pytest.raises(ConfigError, match="differs"):
        Run(tmp_path / "r", {"experiment": "x", "seed": 1}, resume=True)


def test_registry_validates_settings():
    exp = Experiment(
        "e",
        "d",
        lambda c, r: {},
        {"quick": {"n": 4, "lr": 0.1, "flag": True, "shift": -1.0}},
        frozenset({"shift"}),
    )
    cfg = exp.config("quick", {"n": "8", "flag": "false", "shift": -2})
    assert cfg["n"] == 8 and cfg["flag"] is False and cfg["shift"] == -2.0
    for bad, msg in (
        ({"n": 0}, "positive"),
        ({"lr": "x"}, "float"),
        ({"zz": 1}, "unknown"),
        ({"n": 1.5}, "int"),
    ):
        with pytest.raises(ConfigError, match=msg):
            exp.config("quick", bad)
