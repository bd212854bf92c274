"""Parameter sweeps on Dask: a grid of independent runs, resumable, one tidy table.

``run_sweep(name, grid, ...)`` runs the registered experiment (or point function) ``name`` once
per point of the product ``grid`` (``{"gain": [0.5, 1.0], "rank": [1, 4]}``), each a normal
sntkit run in its own folder ``OUT/points/gain=0.5_rank=4/`` (named from the point's parameters,
keys sorted; a short hash is added when a value has characters unsafe in file names). Points
are Dask futures, executed on

* an embedded ``distributed.LocalCluster`` by default: ``workers`` single-threaded worker
  *processes* (default: one per core, at most one per point). ``processes=False`` runs the
  workers as threads of this process — fast to start, but the points then share the global RNGs
  and torch's process-wide state, so only experiments that keep their randomness in their own
  generators are reproducible that way (on any worker, Dask's own threads draw from Python's
  global ``random``: use a tracked ``random.Random`` instead, see :mod:`~sntkit.experiments.run`);
* an existing cluster: ``scheduler="tcp://host:8786"`` (``sntkit sweep ... --scheduler ADDR``),
  or any ``client=distributed.Client(...)``. The workers must see the output folder (a shared
  file system) and have sntkit installed.

On HPC systems start the workers with dask-jobqueue (``pip install "sntkit[hpc]"``), e.g. SLURM::

    from dask_jobqueue import SLURMCluster           # or PBSCluster, SGECluster, LSFCluster
    from distributed import Client
    from sntkit.experiments.sweep import run_sweep

    cluster = SLURMCluster(cores=4, processes=1, memory="16GB", walltime="04:00:00",
                           job_extra_directives=["--partition=cpu"])
    cluster.adapt(minimum_jobs=1, maximum_jobs=32)   # or cluster.scale(jobs=32)
    with Client(cluster) as client:
        run_sweep("space-time-point", {"gain": [0.5, 1, 2], "input_rank": [1, 4, 16]},
                  out="/scratch/me/sweep", client=client)

or start the scheduler and ``dask worker`` jobs yourself and pass ``--scheduler ADDRESS``
(see ``docs/sweeps.md``). Jobs killed at their wall-time are harmless: Dask reschedules their
points, which resume from their last checkpoint.

Resuming and failures. Points whose folder holds a complete ``summary.json`` are finished: a
rerun of the same sweep reads their summaries and submits only the others; an interrupted point
resumes from its newest checkpoint (``Run(resume=True)``). A point that raises is retried up to
``retries`` times (resubmitted as soon as it fails), then reported as ``failed`` with its error
— the traceback is in its folder's ``error.txt`` — without stopping the others; a worker that
dies is replaced and its point rescheduled by Dask. ``OUT/sweep.json`` records the experiment,
scale and fixed settings; rerunning into the same folder with different ones is refused.

``OUT/results.parquet`` (atomic, rewritten as points finish) is one tidy table with one row
per point: the point's parameters, the scalar values of its summary (nested mappings flattened
as ``key.sub``; a summary key equal to a parameter name is dropped when it repeats the value
and stored as ``summary.KEY`` otherwise), then ``status`` (``ok``/``failed``/``pending``),
``error``, ``attempts`` (in this invocation; 0 for points finished earlier) and ``folder``
(relative to ``OUT``). The returned ``DataFrame`` is that table, with ``attrs["path"]`` its file.

Seeds. ``run_seeds(name, K)`` (``sntkit reproduce NAME --seeds K``) is the sweep over ``seed``
alone: per-seed folders ``OUT/points/seed=S/``, the table also written as ``OUT/claims.parquet``
and ``OUT/claims.json`` with ``median``, ``min``, ``max`` and ``n`` (finished seeds) of every
numeric summary value (:func:`seed_statistics`).

Experiments that are sweeps themselves (``space-time``, ``transformer``: registered with
``seed_axis=True``) are not nested in another sweep — a point may not start a cluster of its
own. ``run_seeds`` runs such an experiment once, in ``OUT``, with its setting ``seeds = K``: the
seed becomes one more axis of the experiment's own sweep (:func:`seed_axis`), so that every
(seed, point) pair is one Dask task, resumable like any sweep point. The experiment summarizes
each seed's rows exactly as a single run with that seed would (:func:`summarize_seeds`), writes
them to ``OUT/seeds/seed=S/summary.json``, and ``run_seeds`` builds ``claims.parquet`` and
``claims.json`` from them as above.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
import logging
import os
import time
import traceback
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import yaml

from sntkit.experiments import io, progress
from sntkit.experiments.errors import ConfigError, one_line
from sntkit.experiments.registry import Experiment, check_device, get_experiment
from sntkit.experiments.run import Run, finished_summary, slug

__all__ = [
    "grid_points",
    "parse_grid",
    "point_name",
    "run_point",
    "run_seeds",
    "run_sweep",
    "seed_axis",
    "seed_statistics",
    "split_sweep_spec",
    "summarize_seeds",
]

Grid = Mapping[str, Sequence[Any]]
#: columns the sweep adds after the parameters and the summary values
STATUS_COLUMNS = ("status", "error", "attempts", "folder")
_MAX_NAME = 120


def parse_grid(items: Sequence[str]) -> dict[str, list[Any]]:
    """``["gain=0.5,1.0", "task=W,W_in"]`` -> ``{"gain": [0.5, 1.0], "task": ["W", "W_in"]}``.

    Values are parsed as YAML scalars (numbers, booleans, strings).
    """
    grid: dict[str, list[Any]] = {}
    for item in items:
        key, sep, values = item.partition("=")
        parts = [v.strip() for v in values.split(",")]
        if not sep or not key.strip() or not all(parts):
            raise ConfigError(f"--grid expects KEY=V1,V2,..., got {item!r}")
        try:
            grid[key.strip()] = [yaml.safe_load(v) for v in parts]
        except yaml.YAMLError:
            raise ConfigError(f"--grid {item!r}: values must be plain numbers or words") from None
    return grid


def split_sweep_spec(data: Mapping[str, Any]) -> tuple[str | None, str | None, dict, dict]:
    """Split a sweep file's mapping into ``(experiment, scale, grid, fixed settings)``.

    The file holds ``grid:`` (a mapping of setting -> list of values), optionally
    ``experiment:`` and ``scale:``; every other key is a setting fixed for all points.
    """
    data = dict(data)
    experiment, scale = data.pop("experiment", None), data.pop("scale", None)
    data.pop("versions", None)
    grid = data.pop("grid", {}) or {}
    if not isinstance(grid, Mapping):
        raise ConfigError("the sweep file's 'grid' must map settings to lists of values")
    return experiment, scale, dict(grid), data


def grid_points(grid: Grid) -> list[dict[str, Any]]:
    """Return the product of the grid's values in a fixed order (the last key varies fastest).

    A scalar value counts as a one-element list; an empty list is an error.
    """
    axes: dict[str, list[Any]] = {}
    for key, values in grid.items():
        vals = list(values) if isinstance(values, list | tuple) else [values]
        if not vals:
            raise ConfigError(f"grid setting {key!r} has no values")
        axes[str(key)] = vals
    keys = list(axes)
    return [dict(zip(keys, v, strict=True)) for v in itertools.product(*axes.values())]


def _fmt(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list | tuple):
        return ",".join(_fmt(v) for v in value)
    return str(value)


def point_name(point: Mapping[str, Any]) -> str:
    """Return the folder name of a point: ``gain=0.5_task=W`` (keys sorted).

    A short hash of the exact parameters is appended when characters had to be replaced or
    the name had to be shortened, so that points with different printed values never share a
    folder (values that print alike, ``1`` and ``"1"``, are refused by :func:`run_sweep`).
    """
    raw = "_".join(f"{k}={_fmt(point[k])}" for k in sorted(point))
    name = slug(raw)
    if name != raw or len(name) > _MAX_NAME:
        digest = hashlib.sha1(
            json.dumps(io.to_jsonable(point), sort_keys=True).encode()
        ).hexdigest()[:8]
        name = f"{name[:_MAX_NAME]}-{digest}"
    return name


def run_point(
    experiment: Experiment,
    scale: str,
    settings: dict[str, Any],
    out_dir: str,
    torch_threads: int | None = None,
) -> dict[str, Any]:
    """Run, resume or (if finished) read one point; executed on a Dask worker.

    Returns ``{"status": "ok"|"failed", "summary": ..., "error": ...}``; an exception is
    caught, reported as ``"Type: message"`` and its traceback written to ``error.txt``.
    """
    out = Path(out_dir)
    done = finished_summary(out)
    if done is not None:
        return {"status": "ok", "summary": done, "error": None}
    try:
        if torch_threads:
            import torch

            torch.set_num_threads(torch_threads)
        config = experiment.config(scale, settings)
        resume = (out / "config.json").exists()
        with progress.suppressed():
            summary = experiment.execute(config, out, resume=resume)
    except Exception as exc:
        with suppress(OSError):
            io.write_text(out / "error.txt", traceback.format_exc())
        return {"status": "failed", "summary": {}, "error": one_line(exc, with_type=True)}
    (out / "error.txt").unlink(missing_ok=True)
    return {"status": "ok", "summary": io.to_jsonable(summary), "error": None}


def _flat_scalars(summary: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in summary.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out |= _flat_scalars(value, f"{name}.")
        elif value is None or isinstance(value, bool | int | float | str):
            out[name] = value
    return out


def _table(points: list[dict], records: list[dict], names: list[str], root: str = "points") -> Any:
    import pandas as pd

    rows: list[dict[str, Any]] = []
    summary_cols: dict[str, None] = {}
    for point, rec, name in zip(points, records, names, strict=True):
        row = dict(point)
        for key, value in _flat_scalars(rec["summary"]).items():
            if key in point and io.to_jsonable(point[key]) == value:
                continue
            col = f"summary.{key}" if key in point or key in STATUS_COLUMNS else key
            row[col] = value
            summary_cols[col] = None
        row |= {
            "status": rec["status"],
            "error": rec["error"],
            "attempts": rec["attempts"],
            "folder": str(Path(root) / name),
        }
        rows.append(row)
    columns = [*points[0], *summary_cols, *STATUS_COLUMNS] if points else list(STATUS_COLUMNS)
    return pd.DataFrame(rows, columns=columns)


def _prepare_out(out: Path, spec: dict[str, Any]) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
        (out / "points").mkdir(exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"sweep folder {out} is not writable ({exc.strerror})") from None
    if not os.access(out, os.W_OK):
        raise ConfigError(f"sweep folder {out} is not writable")
    saved_path = out / "sweep.json"
    if saved_path.exists():
        try:
            saved = io.read_json(saved_path)
        except (OSError, ValueError):
            saved = {}
        fixed = ("experiment", "scale", "settings")
        diff = [k for k in fixed if saved.get(k) != io.to_jsonable(spec[k])]
        if diff:
            raise ConfigError(
                f"{out} holds a sweep with a different {', '.join(diff)}; rerun it with the same "
                "experiment, scale and fixed settings, or choose another --out"
            )
        grid = dict(saved.get("grid", {})) | io.to_jsonable(spec["grid"])
        spec = spec | {"grid": grid}
    io.write_json(saved_path, spec)


@contextmanager
def _dask_client(
    client: Any, scheduler: str | None, workers: int | None, processes: bool, tasks: int
) -> Iterator[tuple[Any, int | None]]:
    """``(client, torch threads per point or None)``; a cluster started here is closed after."""
    if client is not None:
        yield client, None
        return
    from distributed import Client, LocalCluster

    if scheduler:
        try:
            own = Client(scheduler, timeout="20s")
        except (OSError, TimeoutError) as exc:
            raise ConfigError(f"cannot connect to the Dask scheduler {scheduler} ({exc})") from None
        with own:
            yield own, None
        return
    cores = os.cpu_count() or 1
    n = workers or max(1, min(cores, tasks))
    with (
        LocalCluster(
            n_workers=n,
            threads_per_worker=1,
            processes=processes,
            dashboard_address=None,
            silence_logs=logging.ERROR,
        ) as cluster,
        Client(cluster) as own,
    ):
        yield own, (max(1, cores // n) if processes else None)


def run_sweep(
    experiment: str | Experiment,
    grid: Grid,
    *,
    scale: str = "quick",
    base: Mapping[str, Any] | None = None,
    out: str | Path | None = None,
    scheduler: str | None = None,
    client: Any = None,
    workers: int | None = None,
    processes: bool = True,
    retries: int = 1,
) -> Any:
    """Run ``experiment`` over the product of ``grid`` on Dask; returns the results table.

    Every point's configuration is validated before anything runs (:class:`ConfigError`).
    The table (a ``pandas.DataFrame``, also written to ``OUT/results.parquet``) is described
    in the module docstring.

    Parameters
    ----------
    experiment:
        A registered experiment or point function (name or :class:`Experiment`).
    grid:
        Setting -> list of values; the points are their product (:func:`grid_points`).
    scale, base:
        The scale and the settings fixed for every point (a grid value overrides ``base``).
    out:
        The sweep folder (default ``runs/sweep-NAME-SCALE`` under ``$SNTKIT_RUNS``).
    scheduler, client:
        An existing Dask scheduler address or client; default: a ``LocalCluster`` of
        ``workers`` single-threaded workers (``processes=False``: threads of this process).
    retries:
        How many times a failing point is resubmitted before it is reported as failed.
    """
    base = dict(base or {})
    local = client is None and not scheduler
    exp, points, names = _check_sweep(experiment, grid, scale, base, retries, workers, local)
    out = _sweep_folder(out, exp, scale, base, grid)
    folders = [out / "points" / n for n in names]
    records = [_record(finished_summary(folder)) for folder in folders]
    pending = [i for i, r in enumerate(records) if r["status"] == "pending"]
    write_table = functools.partial(_write_table, out, points, records, names)
    if not pending:
        return write_table()
    done = len(points) - len(pending)
    bar = progress.Progress(total=len(points), initial=done, desc=f"sweep {exp.name}", unit="pt")
    try:
        with _dask_client(client, scheduler, workers, processes, len(pending)) as (cl, th):
            _collect(cl, th, exp, scale, base, points, names, folders, pending, records,
                     retries, bar, write_table)  # fmt: skip
    finally:  # an interrupted sweep still leaves the table of what finished
        bar.close()
        table = write_table()
    return table


def _check_sweep(
    experiment: str | Experiment,
    grid: Grid,
    scale: str,
    base: dict[str, Any],
    retries: int,
    workers: int | None,
    local: bool,
) -> tuple[Experiment, list[dict[str, Any]], list[str]]:
    """Return the experiment, the grid points and their folder names; ``ConfigError`` first.

    ``local``: this machine runs the points, so their devices are checked here.
    """
    if retries < 0:
        raise ConfigError(f"retries must be >= 0, got {retries}")
    if workers is not None and workers < 1:
        raise ConfigError(f"workers must be >= 1, got {workers}")
    exp = experiment if isinstance(experiment, Experiment) else get_experiment(experiment)
    if not grid:
        raise ConfigError("a sweep needs a grid: give --grid KEY=V1,V2,... or a 'grid:' mapping")
    points = grid_points(grid)
    for point in points:  # every configuration is checked before anything runs
        exp.config(scale, base | point)
    names = [point_name(p) for p in points]
    if len(set(names)) != len(names):
        raise ConfigError(
            "two grid points share a folder name: give each value once (and not both 1 and '1')"
        )
    if local:
        for device in {exp.config(scale, base | p)["device"] for p in points}:
            check_device(device)
    return exp, points, names


def _sweep_folder(
    out: str | Path | None, exp: Experiment, scale: str, base: dict[str, Any], grid: Grid
) -> Path:
    """Return the sweep folder (default under ``$SNTKIT_RUNS``), prepared for this sweep's spec."""
    folder = Path(
        out or Path(os.environ.get("SNTKIT_RUNS", "runs")) / slug(f"sweep-{exp.name}-{scale}")
    )
    spec = {"experiment": exp.name, "scale": scale, "settings": base, "grid": dict(grid)}
    _prepare_out(folder, spec)
    return folder


def _write_table(
    out: Path, points: list[dict[str, Any]], records: list[dict[str, Any]], names: list[str]
) -> Any:
    """Write ``OUT/results.parquet`` from the records so far; the table, its path in attrs."""
    table = _table(points, records, names)
    io.write_parquet(out / "results.parquet", table)
    table.attrs["path"] = str(out / "results.parquet")
    return table


def _record(done: dict[str, Any] | None) -> dict[str, Any]:
    """Return a point's row before the sweep runs: finished (its summary) or pending."""
    status = "ok" if done is not None else "pending"
    return {"status": status, "summary": done or {}, "error": None, "attempts": 0}


def _collect(
    client: Any,
    torch_threads: int | None,
    exp: Experiment,
    scale: str,
    base: dict[str, Any],
    points: list[dict[str, Any]],
    names: list[str],
    folders: list[Path],
    pending: list[int],
    records: list[dict[str, Any]],
    retries: int,
    bar: progress.Progress,
    write_table: Any,
) -> None:
    """Submit the pending points and gather them as they complete, resubmitting failures."""
    from distributed import as_completed

    token = uuid.uuid4().hex[:8]

    def submit(i: int) -> Any:
        records[i]["attempts"] += 1
        key = f"{slug(exp.name)}-{names[i]}-{token}-try{records[i]['attempts']}"
        return client.submit(
            run_point, exp, scale, base | points[i], str(folders[i]), torch_threads,
            key=key, pure=False,
        )  # fmt: skip

    index = {}
    for i in pending:
        index[submit(i)] = i
    last_write = time.monotonic()
    queue = as_completed(list(index))
    for fut in queue:
        i = index.pop(fut)
        try:
            res = fut.result()
        except Exception as exc:  # the worker died too often, lost connection, ...
            res = {"status": "failed", "summary": {}, "error": one_line(exc, with_type=True)}
        if res["status"] == "failed" and records[i]["attempts"] <= retries:
            new = submit(i)
            index[new] = i
            queue.add(new)
            continue
        records[i] |= {k: res[k] for k in ("status", "summary", "error")}
        bar.update(1)
        failed = sum(r["status"] == "failed" for r in records)
        bar.show(ok=sum(r["status"] == "ok" for r in records), failed=failed)
        if time.monotonic() - last_write > 2.0:
            write_table()
            last_write = time.monotonic()


def seed_statistics(table: Any) -> dict[str, dict[str, float | int]]:
    """``{key: {"median", "min", "max", "n"}}`` over the finished rows of a seed table.

    Every numeric (not boolean) summary column counts; NaN and missing values are skipped, and
    a column without any finite value is left out. The point parameter ``seed`` is excluded.
    """
    import pandas as pd

    ok = table[table["status"] == "ok"]
    out: dict[str, dict[str, float | int]] = {}
    for col in ok.columns:
        if col in (*STATUS_COLUMNS, "seed") or not pd.api.types.is_numeric_dtype(ok[col]):
            continue
        if pd.api.types.is_bool_dtype(ok[col]):
            continue
        vals = ok[col].astype(float)
        vals = vals[vals.notna() & (vals.abs() != float("inf"))]
        if len(vals):
            out[col] = {"median": float(vals.median()), "min": float(vals.min()),
                        "max": float(vals.max()), "n": len(vals)}  # fmt: skip
    return out


def seed_axis(config: Mapping[str, Any]) -> tuple[dict[str, list[int]], dict[str, Any]]:
    """``(grid axis, fixed settings)`` that put a seed-axis experiment's seeds into its sweep.

    With ``config["seeds"] == 1`` there is no axis and the points get ``seed`` (the layout of a
    single run); with ``K > 1`` the axis is ``seed = [seed, seed + 1, ..., seed + K - 1]``.
    """
    first, count = config["seed"], config["seeds"]
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ConfigError(f"seeds must be a positive integer, got {count!r}")
    if count == 1:
        return {}, {"seed": first}
    return {"seed": list(range(first, first + count))}, {}


def summarize_seeds(
    run: Run,
    config: Mapping[str, Any],
    tables: Mapping[str, Any],
    summarize: Callable[[dict[str, Any]], dict[str, Any]],
) -> dict[str, Any]:
    """Summarize a seed-axis experiment from the results tables of its sweeps.

    One seed (``config["seeds"] == 1``): ``summarize(tables)``. Several: ``summarize`` of each
    seed's rows (the tables restricted to ``seed == S``, the column dropped) — what a single run
    with that seed computes — written to ``seeds/seed=S/summary.json`` in the run folder, and
    returned as ``{"seeds": [...], "per_seed": {"S": summary}, "failed_seeds": [...]}`` (a seed
    fails when any of its points did).
    """
    grid, _ = seed_axis(config)
    if not grid:
        return summarize(dict(tables))
    per_seed, failed = {}, []
    for seed in grid["seed"]:
        mine = {k: t[t.seed == seed].drop(columns="seed") for k, t in tables.items()}
        summary = io.to_jsonable(summarize(mine))
        io.write_json(run.path("seeds") / f"seed={seed}" / "summary.json", summary)
        per_seed[str(seed)] = summary
        if any((t.status != "ok").any() for t in mine.values()):
            failed.append(seed)
    return {"seeds": grid["seed"], "per_seed": per_seed, "failed_seeds": failed}


def run_seeds(
    experiment: str | Experiment,
    seeds: int,
    *,
    first_seed: int = 0,
    out: str | Path | None = None,
    **sweep: Any,
) -> tuple[Any, dict[str, dict[str, float | int]]]:
    """Run ``experiment`` for ``seeds`` seeds ``first_seed, first_seed + 1, ...`` on Dask.

    ``sweep`` is passed on to :func:`run_sweep` (``scale``, ``base``, ``scheduler``, ...);
    ``out`` defaults to ``runs/NAME-SCALE-seedsK``. Writes ``claims.parquet`` and
    ``claims.json`` (:func:`seed_statistics`) in ``out``; returns the table and the statistics.
    A seed-axis experiment runs once with its seeds as an axis of its own sweep (module
    docstring); of ``sweep`` it takes ``scale``, ``scheduler`` and ``workers`` only.
    """
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise ConfigError(f"seeds must be a positive integer, got {seeds!r}")
    exp = experiment if isinstance(experiment, Experiment) else get_experiment(experiment)
    base = dict(sweep.pop("base", None) or {})
    base.pop("seed", None)  # the seeds are the grid
    scale = sweep.get("scale", "quick")
    runs = Path(os.environ.get("SNTKIT_RUNS", "runs"))
    out = Path(out or runs / slug(f"{exp.name}-{scale}-seeds{seeds}"))
    grid = {"seed": list(range(first_seed, first_seed + seeds))}
    if exp.seed_axis:
        table = _run_seed_axis(exp, grid["seed"], out, base, sweep)
    else:
        table = run_sweep(exp, grid, base=base, out=out, **sweep)
    stats = seed_statistics(table)
    io.write_parquet(out / "claims.parquet", table)
    io.write_json(out / "claims.json", {"experiment": exp.name, "scale": scale,
                                        "seeds": grid["seed"], "statistics": stats})  # fmt: skip
    return table, stats


def _run_seed_axis(
    exp: Experiment, seeds: list[int], out: Path, base: dict[str, Any], sweep: dict[str, Any]
) -> Any:
    """Run a seed-axis experiment once in ``out``; its per-seed table (as :func:`run_sweep`'s)."""
    scale = sweep.pop("scale", "quick")
    for key in ("scheduler", "workers"):
        if sweep.get(key) is not None:
            base[key] = sweep[key]
        sweep.pop(key, None)
    if sweep:
        raise ConfigError(
            f"{exp.name!r} runs its seeds as an axis of its own sweep: "
            f"{', '.join(sorted(sweep))} cannot be given with seeds (scale, scheduler and "
            "workers can)"
        )
    config = exp.config(scale, base | {"seed": seeds[0], "seeds": len(seeds)})
    ran = 0 if finished_summary(out) is not None else 1
    summary = exp.execute(config, out, resume=(out / "config.json").exists())
    if len(seeds) == 1:  # a single seed's summary is the run's: give it its seed folder too
        summary = io.to_jsonable(summary)
        io.write_json(out / "seeds" / f"seed={seeds[0]}" / "summary.json", summary)
        summary = {"per_seed": {str(seeds[0]): summary}, "failed_seeds": []}
    failed = set(summary["failed_seeds"])
    records = [
        {"status": "failed" if s in failed else "ok", "summary": summary["per_seed"][str(s)],
         "error": "some of its points failed" if s in failed else None, "attempts": ran}
        for s in seeds
    ]  # fmt: skip
    points = [{"seed": s} for s in seeds]
    table = _table(points, records, [point_name(p) for p in points], root="seeds")
    table.attrs["path"] = str(out / "claims.parquet")
    return table
