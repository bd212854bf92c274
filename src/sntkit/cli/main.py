"""``sntkit``: run the reproductions and sweeps from the command line.

    sntkit reproduce --list
    sntkit reproduce NAME [--scale quick|paper] [--out DIR] [--device cpu|cuda] [--seed N]
                          [--resume] [--set KEY=VALUE ...] [--config FILE.yaml|FILE.toml]
    sntkit sweep NAME --grid KEY=V1,V2 [...] [--config FILE] [--out DIR] [--scheduler ADDRESS]

Bad input (unknown experiment or setting, invalid value, unwritable folder, damaged checkpoint,
CUDA requested without a GPU) prints one ``sntkit: error: ...`` line and exits with code 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tomllib
from pathlib import Path
from typing import Any, NoReturn

import yaml

from sntkit.experiments.errors import CheckpointError, ConfigError


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"sntkit: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    from sntkit import __version__

    p = _Parser(prog="sntkit", description="State-space NTK toolkit: reproductions and sweeps.")
    p.add_argument("--version", action="version", version=f"sntkit {__version__}")
    sub = p.add_subparsers(dest="command", parser_class=_Parser)

    r = sub.add_parser("reproduce", help="run one of the papers' experiments")
    r.add_argument("name", nargs="?", help="experiment name (see --list)")
    r.add_argument("--list", action="store_true", help="list the experiments and exit")
    _add_run_options(r)
    r.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    r.set_defaults(func=_reproduce)

    s = sub.add_parser("sweep", help="run a grid of an experiment on Dask")
    s.add_argument("name", help="experiment name")
    _add_run_options(s)
    s.add_argument(
        "--grid",
        action="append",
        default=[],
        metavar="KEY=V1,V2,...",
        help="a swept setting (repeatable); the grid is their product",
    )
    s.add_argument(
        "--scheduler", help="address of an existing Dask scheduler (default: a local cluster)"
    )
    s.add_argument(
        "--workers", type=int, default=None, help="local cluster workers (default: cores)"
    )
    s.add_argument("--retries", type=int, default=1, help="retries of a failed point")
    s.set_defaults(func=_sweep)
    return p


def _add_run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--scale", default="quick", help="quick (default) or paper")
    p.add_argument("--out", type=Path, help="output folder (default runs/NAME-SCALE-seedN)")
    p.add_argument("--device", help="cpu or cuda")
    p.add_argument("--seed", type=int, help="random seed")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a setting (repeatable)",
    )
    p.add_argument("--config", type=Path, help="YAML or TOML file of settings")


def read_config_file(path: Path) -> dict[str, Any]:
    """Settings from a YAML (``yaml.safe_load``) or TOML file; must be a mapping."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path} ({exc.strerror})") from None
    try:
        data = tomllib.loads(text) if path.suffix == ".toml" else yaml.safe_load(text)
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"config file {path} is not valid: {str(exc).splitlines()[0]}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of settings")
    return data


def overrides_from(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = read_config_file(args.config) if args.config else {}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set expects KEY=VALUE, got {item!r}")
        out[key.strip()] = yaml.safe_load(value)
    if args.seed is not None:
        out["seed"] = args.seed
    if args.device is not None:
        out["device"] = args.device
    return out


def check_device(device: str) -> None:
    import torch

    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise ConfigError(f"device must be 'cpu' or 'cuda', got {device!r}")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError("--device cuda was requested but no CUDA device is available")


def _reproduce(args: argparse.Namespace) -> int:
    from sntkit.experiments.registry import REGISTRY, get_experiment, load_builtin_experiments
    from sntkit.experiments.run import Run, default_out_dir

    if args.list:
        load_builtin_experiments()
        for name in sorted(REGISTRY):
            exp = REGISTRY[name]
            print(f"{name:20s} {exp.description}  [scales: {', '.join(exp.scales)}]")
        return 0
    if not args.name:
        raise ConfigError("name an experiment (sntkit reproduce --list shows them)")
    exp = get_experiment(args.name)
    config = exp.config(args.scale, overrides_from(args))
    check_device(config["device"])
    out = args.out or default_out_dir(exp.name, args.scale, config["seed"])
    run = Run(out, config, resume=args.resume, checkpoint_every=exp.checkpoint_every)
    summary = exp.fn(config, run)
    print(
        json.dumps(
            {k: v for k, v in summary.items() if not isinstance(v, list | dict)},
            indent=2,
            default=str,
        )
    )
    print(f"results in {out}")
    return 0


def _sweep(args: argparse.Namespace) -> int:
    from sntkit.experiments.sweep import parse_grid, run_sweep

    grid = parse_grid(args.grid)
    run_sweep(
        args.name,
        grid,
        scale=args.scale,
        base=overrides_from(args),
        out=args.out,
        scheduler=args.scheduler,
        workers=args.workers,
        retries=args.retries,
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``sntkit`` console script; returns the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse already printed its one-line error (or help/version)
        return int(exc.code or 0)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args))
    except (ConfigError, CheckpointError) as exc:
        print(f"sntkit: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("sntkit: interrupted; continue with the same command and --resume", file=sys.stderr)
        return 130
    except Exception as exc:
        if os.environ.get("SNTKIT_DEBUG"):
            raise
        print(
            f"sntkit: error: {type(exc).__name__}: {exc} (SNTKIT_DEBUG=1 shows the traceback)",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
