"""``sntkit``: run the reproductions and sweeps from the command line.

    sntkit reproduce --list
    sntkit reproduce NAME [--scale quick|paper] [--out DIR] [--device cpu|cuda] [--seed N]
                          [--resume] [--set KEY=VALUE ...] [--config FILE.yaml|.toml|.json]
                          [--seeds K [--scheduler ADDRESS] [--workers N]]
    sntkit reproduce NAME [--scale S] [--set KEY=VALUE ...] --show-config
    sntkit sweep NAME [--grid KEY=V1,V2,... ...] [--config SWEEP.yaml|.toml] [--set KEY=VALUE ...]
                      [--scale S] [--out DIR] [--scheduler ADDRESS] [--workers N] [--retries N]
    sntkit --version

Settings come from the scale's defaults, then the ``--config`` file, then ``--set``, ``--seed``
and ``--device`` (later ones win). A run's own ``config.json`` is a valid ``--config`` file, so
``sntkit reproduce --config runs/X/config.json`` repeats a run. Exit codes: 0 success, 1 the
experiment failed (or a sweep point did), 2 bad input — unknown experiment or setting, invalid
value, unwritable folder, damaged checkpoint, CUDA requested without a GPU — reported as one
``sntkit: error: ...`` line without a traceback (``SNTKIT_DEBUG=1`` shows tracebacks of
failures), 130 interrupted.

The commands need the ``experiments`` extra (``pip install 'sntkit[experiments]'``); without it
``sntkit`` says so (exit code 2) instead of failing on an import. ``--version`` and ``--help``
work on the core install.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import tomllib
from pathlib import Path
from typing import Any, NoReturn, overload

__all__ = ["EXPERIMENTS_EXTRA", "build_parser", "main", "missing_extra", "read_config_file"]

#: modules of the ``experiments`` extra that the commands import, and their distributions
EXPERIMENTS_EXTRA: dict[str, str] = {
    "yaml": "pyyaml",
    "tqdm": "tqdm",
    "pandas": "pandas",
    "pyarrow": "pyarrow",
    "matplotlib": "matplotlib",
    "distributed": "dask[distributed]",
}


class _Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one ``sntkit: error:`` line, exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"sntkit: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """Return the ``sntkit`` argument parser."""
    from sntkit import __version__

    p = _Parser(prog="sntkit", description="State-space NTK toolkit: reproductions and sweeps.")
    p.add_argument("--version", action="version", version=f"sntkit {__version__}")
    sub = p.add_subparsers(dest="command", parser_class=_Parser, metavar="COMMAND")

    _add_reproduce(sub)
    _add_sweep(sub)
    return p


def _add_reproduce(sub: argparse._SubParsersAction[_Parser]) -> None:
    """Return the ``reproduce`` command."""
    r = sub.add_parser(
        "reproduce",
        help="run one of the papers' experiments",
        description="Run a registered experiment in its own run folder.",
    )
    r.add_argument("name", nargs="?", help="experiment name (see --list)")
    r.add_argument("--list", action="store_true", help="list the experiments and exit")
    _add_run_options(r)
    r.add_argument(
        "--show-config",
        action="store_true",
        help="print the settings (after --scale/--config/--set) with their defaults and exit",
    )
    r.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --out from its newest checkpoint (same settings required)",
    )
    r.add_argument(
        "--keep-checkpoints",
        type=int,
        default=2,
        metavar="N",
        help="number of newest checkpoints kept (default 2)",
    )
    _add_seed_options(r)
    r.set_defaults(func=_reproduce)


def _add_sweep(sub: argparse._SubParsersAction[_Parser]) -> None:
    """Return the ``sweep`` command."""
    s = sub.add_parser(
        "sweep",
        help="run a grid of an experiment on Dask",
        description="Run an experiment (or point function) over the product of a grid of "
        "settings on Dask; finished points are skipped when rerun.",
    )
    s.add_argument("name", nargs="?", help="experiment or point function (default: the file's)")
    _add_run_options(
        s,
        out_help="sweep folder (default runs/sweep-NAME-SCALE)",
        config_help="YAML/TOML sweep file: 'grid:' plus fixed settings",
    )
    s.add_argument(
        "--grid",
        action="append",
        default=[],
        metavar="KEY=V1,V2,...",
        help="a swept setting (repeatable); the grid is the product of them",
    )
    s.add_argument("--scheduler", metavar="ADDRESS", help="existing Dask scheduler to use")
    s.add_argument(
        "--workers", type=int, metavar="N", help="local cluster workers (default: cores)"
    )
    s.add_argument(
        "--threads",
        action="store_true",
        help="run the local workers as threads of this process (quick start, shared RNGs)",
    )
    s.add_argument(
        "--retries", type=int, default=1, metavar="N", help="retries of a failing point (1)"
    )
    s.set_defaults(func=_sweep)


def _add_seed_options(r: argparse.ArgumentParser) -> None:
    r.add_argument(
        "--seeds",
        type=int,
        metavar="K",
        help="run K seeds (--seed, --seed + 1, ...) as a resumable Dask sweep; writes per-seed "
        "folders, claims.parquet and claims.json (median [min, max] of every summary number)",
    )
    r.add_argument("--scheduler", metavar="ADDRESS", help="with --seeds: Dask scheduler to use")
    r.add_argument("--workers", type=int, metavar="N", help="with --seeds: local workers")


def _add_run_options(
    p: argparse.ArgumentParser,
    out_help: str = "run folder (default runs/NAME-SCALE-seedN)",
    config_help: str = "YAML, TOML or JSON file of settings",
) -> None:
    p.add_argument("--scale", help="quick (default) or paper")
    p.add_argument("--out", type=Path, metavar="DIR", help=out_help)
    p.add_argument("--device", help="cpu or cuda (default cpu)")
    p.add_argument("--seed", type=int, metavar="N", help="random seed (default 0)")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a setting (repeatable; VALUE is parsed as YAML)",
    )
    p.add_argument("--config", type=Path, metavar="FILE", help=config_help)
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")


def missing_extra() -> list[str]:
    """Distributions of :data:`EXPERIMENTS_EXTRA` that are not installed (empty when complete)."""
    return [dist for module, dist in EXPERIMENTS_EXTRA.items() if not _importable(module)]


def _importable(module: str) -> bool:
    if module in sys.modules:  # ``None`` there marks a module blocked from import
        return sys.modules[module] is not None
    return importlib.util.find_spec(module) is not None


def read_config_file(path: Path) -> dict[str, Any]:
    """Return the settings in a YAML/JSON (``yaml.safe_load``) or TOML (``tomllib``) file."""
    import yaml

    from sntkit.experiments.errors import ConfigError

    suffix = path.suffix.lower()
    if suffix not in (".yaml", ".yml", ".json", ".toml"):
        raise ConfigError(f"config file {path} must end in .yaml, .yml, .json or .toml")
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path} ({exc.strerror})") from None
    try:
        data = tomllib.loads(text) if suffix == ".toml" else yaml.safe_load(text)
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"config file {path} is not valid: {first}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of settings")
    return data


def _overrides(args: argparse.Namespace, settings: dict[str, Any]) -> dict[str, Any]:
    """File settings, then ``--set``, ``--seed`` and ``--device``."""
    import yaml

    from sntkit.experiments.errors import ConfigError

    out = dict(settings)
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set expects KEY=VALUE, got {item!r}")
        try:
            out[key.strip()] = yaml.safe_load(value) if value.strip() else ""
        except yaml.YAMLError:
            raise ConfigError(f"--set {item!r}: the value is not valid YAML") from None
    if args.seed is not None:
        out["seed"] = args.seed
    if args.device is not None:
        out["device"] = args.device
    return out


@overload
def _pick(flag: str | None, from_file: Any, what: str, default: str) -> str: ...


@overload
def _pick(flag: str | None, from_file: Any, what: str, default: None) -> str | None: ...


def _pick(flag: str | None, from_file: Any, what: str, default: str | None) -> str | None:
    from sntkit.experiments.errors import ConfigError

    if from_file is not None and not isinstance(from_file, str):
        raise ConfigError(f"the config file's {what!r} must be a string, got {from_file!r}")
    if flag and from_file and flag != from_file:
        raise ConfigError(f"the command names {what} {flag!r} but the config file {from_file!r}")
    return flag or from_file or default


def _print_list() -> None:
    from sntkit.experiments.registry import experiments

    exps = experiments()
    width = max((len(e.name) for e in exps), default=10) + 2
    for exp in exps:
        kind = " (point function)" if exp.kind == "point" else ""
        print(f"{exp.name:{width}s}{exp.description}{kind}  [scales: {', '.join(exp.scales)}]")


def _show_config(config: dict[str, Any], defaults: dict[str, Any]) -> None:
    """``config`` as YAML (a valid ``--config`` file), overridden settings marked."""
    print(f"# sntkit reproduce --config FILE.yaml runs these settings of {config['experiment']!r}")
    for key, value in config.items():
        line = f"{key}: {json.dumps(value)}"
        if key in defaults and defaults[key] != value:
            line += f"  # default {json.dumps(defaults[key])}"
        print(line)


def _reproduce(args: argparse.Namespace) -> int:
    from sntkit.experiments.errors import ConfigError
    from sntkit.experiments.registry import get_experiment
    from sntkit.experiments.run import default_out_dir, finished_summary

    if args.list:
        _print_list()
        return 0
    settings = read_config_file(args.config) if args.config else {}
    name = _pick(args.name, settings.pop("experiment", None), "experiment", None)
    scale = _pick(args.scale, settings.pop("scale", None), "scale", "quick")
    settings.pop("versions", None)
    if not name:
        raise ConfigError("name an experiment (sntkit reproduce --list shows them)")
    if args.keep_checkpoints < 1:
        raise ConfigError(f"--keep-checkpoints must be >= 1, got {args.keep_checkpoints}")
    exp = get_experiment(name)
    if args.seeds is not None:
        return _reproduce_seeds(args, exp, scale, settings)
    if args.scheduler or args.workers:
        raise ConfigError("--scheduler and --workers need --seeds K")
    config = exp.config(scale, _overrides(args, settings))
    if args.show_config:
        _show_config(config, exp.defaults(scale))
        return 0
    out = args.out or default_out_dir(exp.name, scale, config["seed"])
    if args.resume and finished_summary(out) is not None:
        print(f"sntkit: note: {out} is already finished (delete its summary.json to recompute "
              "its last part)", file=sys.stderr)  # fmt: skip
    summary = exp.execute(config, out, resume=args.resume, keep=args.keep_checkpoints)
    scalars = {k: v for k, v in summary.items() if not isinstance(v, list | dict)}
    if scalars:  # nested results (e.g. per normal form) stay in summary.json
        print(json.dumps(scalars, indent=2, default=str))
    print(f"results in {out}")
    return 0


def _reproduce_seeds(args: argparse.Namespace, exp: Any, scale: str, settings: dict) -> int:
    from sntkit.experiments.sweep import run_seeds

    base = _overrides(args, settings)
    table, stats = run_seeds(
        exp, args.seeds, first_seed=base.pop("seed", 0), out=args.out, scale=scale, base=base,
        scheduler=args.scheduler, workers=args.workers,
    )  # fmt: skip
    for key, s in stats.items():
        print(f"{key}: {s['median']:.6g} [{s['min']:.6g}, {s['max']:.6g}] (n={s['n']})")
    failed = table[table.status == "failed"]
    for row in failed.itertuples():
        print(f"failed: {row.folder}: {row.error}", file=sys.stderr)
    print(f"claims in {Path(table.attrs['path']).parent / 'claims.json'}")
    return 1 if len(failed) else 0


def _sweep(args: argparse.Namespace) -> int:
    from sntkit.experiments.errors import ConfigError
    from sntkit.experiments.sweep import parse_grid, run_sweep, split_sweep_spec

    data = read_config_file(args.config) if args.config else {}
    file_name, file_scale, grid, settings = split_sweep_spec(data)
    name = _pick(args.name, file_name, "experiment", None)
    if not name:
        raise ConfigError("name an experiment (or give 'experiment:' in the sweep file)")
    scale = _pick(args.scale, file_scale, "scale", "quick")
    grid = grid | parse_grid(args.grid)
    table = run_sweep(
        name,
        grid,
        scale=scale,
        base=_overrides(args, settings),
        out=args.out,
        scheduler=args.scheduler,
        workers=args.workers,
        processes=not args.threads,
        retries=args.retries,
    )
    counts = table.status.value_counts().to_dict()
    ran = int((table.attempts > 0).sum())
    print(
        f"{len(table)} points: {counts.get('ok', 0)} ok ({len(table) - ran} finished before), "
        f"{counts.get('failed', 0)} failed; table in {table.attrs['path']}"
    )
    for row in table[table.status == "failed"].itertuples():
        print(f"failed: {row.folder}: {row.error}", file=sys.stderr)
    return 1 if counts.get("failed", 0) else 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``sntkit`` console script; returns the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse printed help, the version or its one-line error
        return exc.code if isinstance(exc.code, int) else 0
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    if missing := missing_extra():
        print(
            f"sntkit: error: the sntkit command needs the 'experiments' extra (missing: "
            f"{', '.join(missing)}); install it with: pip install 'sntkit[experiments]'",
            file=sys.stderr,
        )
        return 2
    from sntkit.experiments import progress
    from sntkit.experiments.errors import CheckpointError, ConfigError, one_line

    if args.no_progress:
        progress.set_enabled(False)
    try:
        return int(args.func(args))
    except (ConfigError, CheckpointError) as exc:
        print(f"sntkit: error: {one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        hint = "--resume" if args.command == "reproduce" else "the same command"
        print(f"sntkit: interrupted; continue with {hint}", file=sys.stderr)
        return 130
    except Exception as exc:
        if os.environ.get("SNTKIT_DEBUG"):
            raise
        print(
            f"sntkit: error: {one_line(exc, with_type=True)} (SNTKIT_DEBUG=1 shows the traceback)",
            file=sys.stderr,
        )
        return 1
    finally:
        if args.no_progress:
            progress.set_enabled(None)


if __name__ == "__main__":
    raise SystemExit(main())
