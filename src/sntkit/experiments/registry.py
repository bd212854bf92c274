"""Named, reproducible experiments with per-scale defaults.

An experiment is a function ``(config, run) -> summary`` registered under a name, with default
settings for each scale (``quick``, the default and CPU-friendly one, and usually ``paper``)::

    @register(
        "counter",
        description="a toy: SGD on a 2-parameter model",
        scales={"quick": {"steps": 50, "lr": 0.1, "checkpoint_every": 10},
                "paper": {"steps": 5000, "lr": 0.01, "checkpoint_every": 500}},
        signed=("bias",),  # settings that may be zero or negative
        choices={"init": ("zeros", "normal")},
    )
    def counter(config: dict, run: Run) -> dict: ...

A *point function* ``(config) -> summary`` (:func:`register_point`) is the light-weight form
meant for sweeps: no training loop, no checkpoints; it still gets its own run folder.

Every experiment understands :data:`COMMON` (``seed`` and ``device``) besides its own settings.
The configuration is the scale's defaults overridden by user values, validated against the
defaults (:meth:`Experiment.config`): unknown keys, values that do not convert to the default's
type, non-positive numbers (unless declared ``signed``; ``seed`` and ``checkpoint_every`` may be
0), NaN, values outside declared ``choices`` and malformed devices raise :class:`ConfigError`.
:meth:`Experiment.execute` runs it in a :class:`~sntkit.experiments.run.Run` folder after
seeding every global generator with ``config["seed"]``.
"""

from __future__ import annotations

import difflib
import importlib.metadata
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sntkit.experiments.errors import ConfigError
from sntkit.experiments.run import Run, finished_summary, seed_everything

__all__ = [
    "COMMON",
    "ENTRY_POINT_GROUP",
    "REGISTRY",
    "Experiment",
    "check_device",
    "experiments",
    "get_experiment",
    "load_builtin_experiments",
    "register",
    "register_point",
]

ExperimentFn = Callable[[dict[str, Any], Run], dict[str, Any]]
PointFn = Callable[[dict[str, Any]], dict[str, Any]]

#: settings every experiment understands in addition to its own
COMMON: dict[str, Any] = {"seed": 0, "device": "cpu"}
#: settings that may be zero (all other numbers must be positive unless declared signed)
NONNEGATIVE = frozenset({"seed", "checkpoint_every"})
#: keys that describe the run rather than configure it
RESERVED = frozenset({"experiment", "scale", "versions"})
_DEVICE = re.compile(r"^(cpu|cuda(:\d+)?)$")


@dataclass(frozen=True)
class Experiment:
    """A registered experiment (see the module docstring)."""

    name: str
    description: str
    fn: ExperimentFn
    scales: dict[str, dict[str, Any]]
    #: settings that may be zero or negative
    signed: frozenset[str] = field(default_factory=frozenset)
    #: default period of checkpoints when the scale has no ``checkpoint_every`` setting
    checkpoint_every: int = 0
    #: allowed values of some settings
    choices: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)
    #: ``"experiment"`` or ``"point"`` (registered with :func:`register_point`)
    kind: str = "experiment"
    #: the experiment is a sweep whose integer setting ``seeds`` adds the seeds ``seed, seed + 1,
    #: ...`` as one more axis of its own sweep and whose summary then holds ``per_seed``
    #: (:func:`sntkit.experiments.sweep.run_seeds` runs it once instead of once per seed)
    seed_axis: bool = False

    def defaults(self, scale: str = "quick") -> dict[str, Any]:
        """Return the settings of ``scale`` before overrides (common settings included)."""
        if scale not in self.scales:
            raise ConfigError(
                f"experiment {self.name!r} has no scale {scale!r}; choose one of "
                f"{', '.join(self.scales)}"
            )
        return COMMON | self.scales[scale]

    def config(self, scale: str = "quick", overrides: Mapping[str, Any] | None = None) -> dict:
        """Return the validated configuration for ``scale`` with ``overrides`` applied.

        Returns ``{"experiment": name, "scale": scale, **settings}``.
        """
        defaults = self.defaults(scale)
        config = dict(defaults)
        for key, value in (overrides or {}).items():
            if key not in defaults:
                hint = _hint(key, defaults)
                raise ConfigError(f"unknown setting {key!r} for {self.name!r}{hint}")
            config[key] = _coerce(key, value, defaults[key])
        for key, value in config.items():
            self._check_value(key, value)
        return {"experiment": self.name, "scale": scale} | config

    def _check_value(self, key: str, value: Any) -> None:
        if key == "device":
            if not isinstance(value, str) or not _DEVICE.match(value):
                raise ConfigError(f"device must be 'cpu', 'cuda' or 'cuda:N', got {value!r}")
            return
        if key in self.choices and value not in self.choices[key]:
            raise ConfigError(
                f"setting {key!r} must be one of {list(self.choices[key])}, got {value!r}"
            )
        for v in value if isinstance(value, list) else [value]:
            if not isinstance(v, int | float) or isinstance(v, bool):
                continue
            if isinstance(v, float) and math.isnan(v):
                raise ConfigError(f"setting {key!r} must be a number, got NaN")
            if key in self.signed:
                continue
            if key in NONNEGATIVE and v < 0:
                raise ConfigError(f"setting {key!r} must be >= 0, got {v}")
            if key not in NONNEGATIVE and v <= 0:
                raise ConfigError(f"setting {key!r} must be positive, got {v}")

    def execute(
        self, config: dict[str, Any], out_dir: str | Path, *, resume: bool = False, keep: int = 2
    ) -> dict[str, Any]:
        """Run the experiment with a validated ``config`` in the run folder ``out_dir``.

        Checks the device, creates the :class:`Run` (``resume`` continues the run there; a
        finished run is not recomputed: its saved summary is returned), seeds the global RNGs
        with ``config["seed"]`` and calls the experiment. Writes ``summary.json`` if the
        experiment did not call ``run.finish`` itself. Returns the summary.
        """
        check_device(config["device"])
        run = Run(out_dir, config, resume=resume, keep=keep)
        if run.checkpoint_every == 0:
            run.checkpoint_every = self.checkpoint_every
        if resume and (done := finished_summary(run.dir)) is not None:
            return done
        seed_everything(int(config["seed"]))
        summary = self.fn(config, run)
        if not isinstance(summary, dict):
            raise TypeError(
                f"experiment {self.name!r} returned {type(summary).__name__}, not a summary dict"
            )
        if finished_summary(run.dir) is None:
            run.finish(summary)
        return summary


def _hint(key: str, known: Mapping[str, Any]) -> str:
    close = difflib.get_close_matches(key, list(known), n=1)
    if close:
        return f"; did you mean {close[0]!r}?"
    return f"; known settings: {', '.join(sorted(known))}"


def _coerce(key: str, value: Any, default: Any) -> Any:
    """``value`` converted to the type of ``default`` (lists element-wise), else ConfigError."""
    try:
        if default is None:
            return value
        if isinstance(default, list | tuple):
            if isinstance(value, str):
                value = [v.strip() for v in value.strip("[]()").split(",") if v.strip()]
            if not isinstance(value, list | tuple):
                raise ValueError
            kinds = {type(v) for v in default}
            if len(kinds) == 1:
                (example,) = default[:1]
                return [_coerce(key, v, example) for v in value]
            return list(value)
        if isinstance(default, bool):
            return _to_bool(value)
        if isinstance(default, int):
            if isinstance(value, bool):
                raise ValueError
            if isinstance(value, float):
                if not value.is_integer():
                    raise ValueError
                return int(value)
            return int(value)
        if isinstance(default, float):
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        if isinstance(default, str):
            if isinstance(value, list | dict | tuple):
                raise ValueError
            return str(value)
        if isinstance(default, dict):
            if not isinstance(value, dict):
                raise ValueError
            return dict(value)
        return type(default)(value)
    except (TypeError, ValueError):
        kind = type(default).__name__
        if isinstance(default, list | tuple):
            names = {type(v).__name__ for v in default}
            kind = f"a list of {names.pop()}" if len(names) == 1 else "a list"
        raise ConfigError(
            f"setting {key!r} must be {kind} like its default {default!r}, got {value!r}"
        ) from None


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0", "yes", "no"):
        return value.strip().lower() in ("true", "1", "yes")
    raise ValueError


def check_device(device: str) -> None:
    """Raise :class:`ConfigError` unless ``device`` is ``cpu`` or an available CUDA device."""
    import torch

    if not isinstance(device, str) or not _DEVICE.match(device):
        raise ConfigError(f"device must be 'cpu', 'cuda' or 'cuda:N', got {device!r}")
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(
                f"--device {device} was requested but no CUDA device is available "
                "(torch.cuda.is_available() is False)"
            )
        index = int(device.partition(":")[2] or 0)
        if index >= torch.cuda.device_count():
            raise ConfigError(
                f"--device {device}: only {torch.cuda.device_count()} CUDA device(s) available"
            )


REGISTRY: dict[str, Experiment] = {}


def _validate_registration(
    name: str,
    scales: Mapping[str, Mapping[str, Any]],
    signed: Sequence[str],
    choices: Mapping[str, Sequence[Any]],
) -> None:
    if not re.match(r"^[A-Za-z0-9][A-Za-z0-9._-]*$", name):
        raise ValueError(f"experiment name {name!r} must be letters, digits, '.', '_' or '-'")
    if "quick" not in scales:
        raise ValueError(f"experiment {name!r} needs a 'quick' scale (the default)")
    keys = [set(s) for s in scales.values()]
    if any(k != keys[0] for k in keys):
        raise ValueError(f"every scale of {name!r} must define the same settings")
    if keys[0] & RESERVED:
        raise ValueError(f"{name!r}: settings may not be named {sorted(keys[0] & RESERVED)}")
    known = keys[0] | set(COMMON)
    unknown = (set(signed) | set(choices)) - known
    if unknown:
        raise ValueError(f"{name!r}: signed/choices name unknown settings {sorted(unknown)}")


def _add(exp: Experiment) -> None:
    for scale in exp.scales:
        try:
            exp.config(scale)
        except ConfigError as exc:
            msg = f"default settings of {exp.name!r} at scale {scale!r}: {exc}"
            raise ValueError(msg) from None
    old = REGISTRY.get(exp.name)
    if old is not None and _qualname(old.fn) != _qualname(exp.fn):
        raise ValueError(f"experiment {exp.name!r} is already registered by {_qualname(old.fn)}")
    REGISTRY[exp.name] = exp  # re-importing the same module re-registers the same function


def _qualname(fn: Callable[..., Any]) -> str:
    target = getattr(fn, "point", fn)
    return f"{target.__module__}.{target.__qualname__}"


def _registrar(
    name: str,
    description: str,
    scales: dict[str, dict[str, Any]],
    signed: Sequence[str],
    choices: Mapping[str, Sequence[Any]] | None,
    checkpoint_every: int,
    kind: str,
    seed_axis: bool = False,
) -> Callable[[Callable[..., dict[str, Any]]], Callable[..., dict[str, Any]]]:
    choices = dict(choices or {})
    _validate_registration(name, scales, signed, choices)
    if seed_axis and not all(isinstance(s.get("seeds"), int) for s in scales.values()):
        raise ValueError(f"{name!r}: a seed-axis experiment needs an integer setting 'seeds'")

    def deco(fn: Callable[..., dict[str, Any]]) -> Callable[..., dict[str, Any]]:
        _add(
            Experiment(
                name,
                description,
                _PointAdapter(fn) if kind == "point" else fn,
                {k: dict(v) for k, v in scales.items()},
                frozenset(signed),
                checkpoint_every,
                {k: tuple(v) for k, v in choices.items()},
                kind,
                seed_axis,
            )
        )
        return fn

    return deco


def register(
    name: str,
    *,
    description: str,
    scales: dict[str, dict[str, Any]],
    signed: Sequence[str] = (),
    choices: Mapping[str, Sequence[Any]] | None = None,
    checkpoint_every: int = 0,
    seed_axis: bool = False,
) -> Callable[[ExperimentFn], ExperimentFn]:
    """Register ``fn(config, run) -> summary`` as experiment ``name`` (decorator).

    ``scales`` maps scale names to default settings; every scale must define the same keys and
    ``quick`` must exist. ``signed`` lists settings that may be zero or negative, ``choices``
    the allowed values of some settings, ``checkpoint_every`` the checkpoint period when no
    scale sets ``checkpoint_every``. ``seed_axis`` marks an experiment that is itself a sweep
    and runs several seeds as one more axis of it (:attr:`Experiment.seed_axis`). Bad
    registrations raise ``ValueError`` at import time.
    """
    return _registrar(
        name, description, scales, signed, choices, checkpoint_every, "experiment", seed_axis
    )


@dataclass(frozen=True)
class _PointAdapter:
    """``(config, run) -> summary`` around a point function (picklable for Dask workers)."""

    point: PointFn

    def __call__(self, config: dict[str, Any], run: Run) -> dict[str, Any]:
        return run.finish(self.point(config))


def register_point(
    name: str,
    *,
    description: str,
    scales: dict[str, dict[str, Any]],
    signed: Sequence[str] = (),
    choices: Mapping[str, Sequence[Any]] | None = None,
) -> Callable[[PointFn], PointFn]:
    """Register a point function ``fn(config) -> summary`` (decorator), e.g. for sweeps.

    Same validation as :func:`register`; each call still gets its own run folder with
    ``config.json`` and ``summary.json``.
    """
    return _registrar(name, description, scales, signed, choices, 0, "point")


#: entry-point group through which packages (sntkit itself included) provide experiments: each
#: entry names a module that registers its experiments when imported
ENTRY_POINT_GROUP = "sntkit.experiments"


def load_builtin_experiments() -> None:
    """Import every module listed under the ``sntkit.experiments`` entry points.

    The registry finds the reproductions (and experiments of other installed packages) through
    package metadata rather than importing them, so it depends on nothing above it.
    """
    for entry in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        entry.load()


def experiments() -> list[Experiment]:
    """Every registered experiment (built-in ones included), sorted by name."""
    load_builtin_experiments()
    return [REGISTRY[k] for k in sorted(REGISTRY)]


def get_experiment(name: str) -> Experiment:
    """Return the registered experiment ``name`` (:class:`ConfigError` if unknown)."""
    if name not in REGISTRY:
        load_builtin_experiments()
    if name not in REGISTRY:
        close = difflib.get_close_matches(name, list(REGISTRY), n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise ConfigError(f"unknown experiment {name!r}; {hint}sntkit reproduce --list shows them")
    return REGISTRY[name]
