"""Named, reproducible experiments with per-scale defaults.

An experiment is a function ``(config, run) -> summary`` registered under a name with default
settings for each scale (``quick``, the default, and ``paper``). The configuration is the
scale's defaults overridden by user values, which are validated against the defaults: unknown
keys, wrong types and non-positive sizes are rejected with a :class:`ConfigError`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sntkit.experiments.errors import ConfigError
from sntkit.experiments.run import Run

ExperimentFn = Callable[[dict[str, Any], Run], dict[str, Any]]

#: keys every experiment understands in addition to its own
COMMON = {"seed": 0, "device": "cpu"}


@dataclass(frozen=True)
class Experiment:
    """A registered experiment (see module docstring)."""

    name: str
    description: str
    fn: ExperimentFn
    scales: dict[str, dict[str, Any]]
    #: settings that may be zero or negative (all other numbers must be positive)
    signed: frozenset[str] = field(default_factory=frozenset)
    checkpoint_every: int = 0

    def config(self, scale: str, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The validated configuration for ``scale`` with ``overrides`` applied."""
        if scale not in self.scales:
            raise ConfigError(
                f"experiment {self.name!r} has no scale {scale!r}; "
                f"choose one of {sorted(self.scales)}"
            )
        defaults = COMMON | self.scales[scale]
        config = dict(defaults)
        for key, value in (overrides or {}).items():
            if key not in defaults:
                raise ConfigError(
                    f"unknown setting {key!r} for {self.name!r}; known: {sorted(defaults)}"
                )
            config[key] = _coerce(key, value, defaults[key])
        for key, value in config.items():
            if (
                isinstance(value, int | float)
                and not isinstance(value, bool)
                and key not in self.signed
                and key != "seed"
                and value <= 0
            ):
                raise ConfigError(f"setting {key!r} must be positive, got {value}")
        if config["seed"] < 0:
            raise ConfigError(f"seed must be >= 0, got {config['seed']}")
        return {"experiment": self.name, "scale": scale} | config


def _coerce(key: str, value: Any, default: Any) -> Any:
    kind = type(default)
    try:
        if kind is bool:
            if isinstance(value, str):
                if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError
                return value.lower() in ("true", "1", "yes")
            return bool(value)
        if kind is int:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            return int(value)
        if kind is float:
            return float(value)
        if kind in (list, tuple):
            if isinstance(value, str):
                value = [float(v) if "." in v or "e" in v else int(v) for v in value.split(",")]
            return list(value)
        return kind(value) if default is not None else value
    except (TypeError, ValueError):
        raise ConfigError(
            f"setting {key!r} must be {kind.__name__} like its default {default!r}, got {value!r}"
        ) from None


REGISTRY: dict[str, Experiment] = {}


def register(
    name: str,
    *,
    description: str,
    scales: dict[str, dict[str, Any]],
    signed: tuple[str, ...] = (),
    checkpoint_every: int = 0,
) -> Callable[[ExperimentFn], ExperimentFn]:
    """Register ``fn`` as experiment ``name`` (decorator)."""

    def deco(fn: ExperimentFn) -> ExperimentFn:
        REGISTRY[name] = Experiment(
            name, description, fn, scales, frozenset(signed), checkpoint_every
        )
        return fn

    return deco


def get_experiment(name: str) -> Experiment:
    """The registered experiment ``name`` (:class:`ConfigError` if unknown)."""
    load_builtin_experiments()
    if name not in REGISTRY:
        raise ConfigError(f"unknown experiment {name!r}; available: {', '.join(sorted(REGISTRY))}")
    return REGISTRY[name]


def load_builtin_experiments() -> None:
    """Import the reproduction modules so that they register themselves."""
    import sntkit.experiments.reproductions  # noqa: F401
