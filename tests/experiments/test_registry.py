"""Registration and validation of experiment settings."""

import json
import math

import pytest
import sntkit_test_dummies  # noqa: F401  (registers the dummies)

from sntkit.experiments import registry
from sntkit.experiments.errors import ConfigError
from sntkit.experiments.registry import (
    Experiment,
    experiments,
    get_experiment,
    register,
    register_point,
)

EXP = Experiment(
    "e",
    "d",
    lambda config, run: {},
    {
        "quick": {
            "n": 4,
            "lr": 0.1,
            "flag": True,
            "shift": -1.0,
            "gains": [0.5, 1.0],
            "ranks": [1, 4],
            "task": "W",
            "opt": None,
            "checkpoint_every": 0,
        }
    },
    frozenset({"shift"}),
    choices={"task": ("W", "W_in")},
)


@pytest.fixture(autouse=True)
def _registrations_stay_in_the_test(monkeypatch):
    registry.load_builtin_experiments()  # before the copy, so that they stay registered
    monkeypatch.setattr(registry, "REGISTRY", dict(registry.REGISTRY))


def test_overrides_are_coerced_to_the_defaults_types():
    cfg = EXP.config(
        "quick",
        {
            "n": "8",
            "lr": 1,
            "flag": "false",
            "shift": -2,
            "gains": "0.25, 2",
            "ranks": [2.0, 3],
            "task": "W_in",
            "opt": {"any": "thing"},
            "seed": 3,
            "checkpoint_every": 0,
        },
    )
    assert cfg["experiment"] == "e" and cfg["scale"] == "quick"
    assert cfg["n"] == 8 and cfg["lr"] == 1.0 and type(cfg["lr"]) is float
    assert cfg["flag"] is False and cfg["shift"] == -2.0
    assert cfg["gains"] == [0.25, 2.0] and cfg["ranks"] == [2, 3]
    assert cfg["task"] == "W_in" and cfg["opt"] == {"any": "thing"} and cfg["seed"] == 3
    assert cfg["device"] == "cpu"


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"n": 0}, "'n' must be positive, got 0"),
        ({"n": -4}, "must be positive"),
        ({"lr": -0.1}, "must be positive"),
        ({"lr": math.nan}, "NaN"),
        ({"gains": [0.5, -1]}, "'gains' must be positive"),
        ({"ranks": "1,x"}, "'ranks' must be a list of int like its default [1, 4]"),
        ({"lr": "fast"}, "must be float"),
        ({"n": 1.5}, "must be int"),
        ({"n": True}, "must be int"),
        ({"flag": "maybe"}, "must be bool"),
        ({"gains": 3}, "must be a list of float"),
        ({"task": "V"}, "must be one of ['W', 'W_in']"),
        ({"task": [1]}, "must be str"),
        ({"nn": 1}, "unknown setting 'nn' for 'e'; did you mean 'n'?"),
        ({"zzz": 1}, "known settings: checkpoint_every, device"),
        ({"seed": -1}, "'seed' must be >= 0"),
        ({"checkpoint_every": -5}, ">= 0"),
        ({"device": "gpu"}, "device must be 'cpu', 'cuda' or 'cuda:N'"),
        ({"experiment": "x"}, "unknown setting"),
    ],
)
def test_bad_settings_are_rejected_with_a_clear_message(bad, message):
    with pytest.raises(ConfigError) as info:
        EXP.config("quick", bad)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_unknown_scale_and_experiment():
    with pytest.raises(ConfigError, match="no scale 'huge'; choose one of quick"):
        EXP.config("huge")
    with pytest.raises(ConfigError, match="unknown experiment 'countr'; did you mean 'counter'"):
        get_experiment("countr")


def test_registration_is_validated():
    def fn(config, run):
        return {}

    with pytest.raises(ValueError, match="needs a 'quick' scale"):
        register("t-noquick", description="", scales={"paper": {"n": 1}})
    with pytest.raises(ValueError, match="same settings"):
        register("t-keys", description="", scales={"quick": {"n": 1}, "paper": {"m": 1}})
    with pytest.raises(ValueError, match="unknown settings"):
        register("t-signed", description="", scales={"quick": {"n": 1}}, signed=("m",))
    with pytest.raises(ValueError, match="may not be named"):
        register("t-reserved", description="", scales={"quick": {"scale": 1}})
    with pytest.raises(ValueError, match="must be letters"):
        register("bad name", description="", scales={"quick": {}})
    with pytest.raises(ValueError, match=r"default settings of 't-default'.*must be positive"):
        register("t-default", description="", scales={"quick": {"n": -1}})(fn)
    with pytest.raises(ValueError, match="already registered"):
        register("counter", description="", scales={"quick": {}})(fn)
    with pytest.raises(ValueError, match="seed-axis experiment needs an integer setting 'seeds'"):
        register("t-axis", description="", scales={"quick": {"seeds": 1.0}}, seed_axis=True)
    assert registry.REGISTRY["seeded-sweep"].seed_axis
    assert not registry.REGISTRY["counter"].seed_axis
    assert "t-default" not in registry.REGISTRY
    assert registry.REGISTRY["counter"].fn.__name__ == "counter"


def test_point_function_runs_in_its_own_folder(tmp_path):
    exp = get_experiment("quadratic-point")
    assert exp.kind == "point"
    summary = exp.execute(exp.config("quick", {"x": -3}), tmp_path / "p")
    assert summary["value"] == 9.0
    saved = json.loads((tmp_path / "p" / "summary.json").read_text())
    assert saved["undefined"] is None and saved["nested"] == {"half": 4.5, "tag": "q"}
    assert json.loads((tmp_path / "p" / "config.json").read_text())["x"] == -3.0


def test_experiment_that_does_not_finish_gets_its_summary_written(tmp_path):
    @register_point("t-plain", description="", scales={"quick": {"k": 2}})
    def plain(config):
        return {"k2": config["k"] ** 2}

    @register("t-nofinish", description="", scales={"quick": {"k": 2}})
    def nofinish(config, run):
        run.log(k=config["k"])
        return {"k": config["k"]}

    exp = get_experiment("t-nofinish")
    exp.execute(exp.config(), tmp_path / "n")
    assert json.loads((tmp_path / "n" / "summary.json").read_text()) == {"k": 2}
    assert (tmp_path / "n" / "metrics.parquet").exists()

    @register("t-badsummary", description="", scales={"quick": {"k": 2}})
    def bad(config, run):
        return [1]

    with pytest.raises(TypeError, match="not a summary dict"):
        get_experiment("t-badsummary").execute({"seed": 0, "device": "cpu"}, tmp_path / "b")


def test_builtin_experiments_are_registered_consistently():
    names = {e.name for e in experiments()}
    assert {"student-teacher", "normal-forms", "counter", "quadratic-point"} <= names
    for exp in experiments():
        assert {"quick", "paper"} <= set(exp.scales) or exp.name == "quadratic-point"
        assert exp.description
        for scale in exp.scales:
            exp.config(scale)  # every scale's defaults validate


def test_entry_points_list_every_module_that_registers_experiments():
    """A reproduction module missing from the entry points would vanish from the CLI."""
    import importlib.metadata
    import re
    from pathlib import Path

    package = Path(registry.__file__).parent
    registering = {
        f"sntkit.experiments.{p.stem}"
        for p in package.glob("*.py")
        if re.search(r"^@register(_point)?\(", p.read_text(), re.MULTILINE)
    }
    listed = {e.value for e in importlib.metadata.entry_points(group=registry.ENTRY_POINT_GROUP)}
    assert registering and listed == registering
    names = {e.name for e in registry.experiments()}
    assert {"memory-pro", "student-teacher", "space-time-point"} <= names
