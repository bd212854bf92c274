"""Parameter sweeps on Dask: a grid of independent runs, resumable, one tidy table.

``run_sweep(name, grid, ...)`` runs the registered experiment ``name`` once per point of the
product ``grid`` (``{"gain": [0.5, 1.0], "rank": [1, 4]}``), each in its own folder
``OUT/points/key=value_key=value/``, on

* an embedded ``distributed.LocalCluster`` by default (one single-threaded worker *process* per
  core: ``torch.func``'s forward-mode AD keeps process-global state, so two points must not run
  as threads of one process — ``processes=False`` is only safe with one worker), or
* an existing cluster: ``scheduler="tcp://host:8786"`` (``sntkit sweep ... --scheduler ADDR``).

On HPC systems start workers with dask-jobqueue and pass the client (or its scheduler address)::

    from dask_jobqueue import SLURMCluster          # pip install "sntkit[hpc]"
    from distributed import Client
    cluster = SLURMCluster(cores=1, processes=1, memory="8GB", walltime="02:00:00")
    cluster.scale(jobs=32)
    run_sweep("space-time-point", grid, client=Client(cluster))

Every point is a normal sntkit run: a point whose folder holds ``summary.json`` is finished and
skipped when the sweep is run again; an interrupted point resumes from its last checkpoint; a
point that raises is retried ``retries`` times (Dask's task retries) and then reported as failed
without stopping the others. ``OUT/results.parquet`` (written atomically) has one row per point:
its parameters, its summary's scalar values, ``status`` (``ok``/``failed``) and ``error``.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from sntkit.experiments import io
from sntkit.experiments.errors import ConfigError
from sntkit.experiments.progress import Progress
from sntkit.experiments.registry import get_experiment
from sntkit.experiments.run import Run, slug

Grid = Mapping[str, Sequence[Any]]


def parse_grid(items: Sequence[str]) -> dict[str, list[Any]]:
    """``["gain=0.5,1.0", "rank=1,4"]`` -> ``{"gain": [0.5, 1.0], "rank": [1, 4]}``."""
    grid: dict[str, list[Any]] = {}
    for item in items:
        key, sep, values = item.partition("=")
        if not sep or not key or not values:
            raise ConfigError(f"--grid expects KEY=V1,V2,..., got {item!r}")
        grid[key.strip()] = [yaml.safe_load(v) for v in values.split(",")]
    if not grid:
        raise ConfigError("a sweep needs at least one --grid KEY=V1,V2,...")
    return grid


def grid_points(grid: Grid) -> list[dict[str, Any]]:
    """The product of the grid's values, in a deterministic order."""
    keys = list(grid)
    values = itertools.product(*(grid[k] for k in keys))
    return [dict(zip(keys, v, strict=True)) for v in values]


def point_name(point: Mapping[str, Any]) -> str:
    """A folder name for a point, e.g. ``gain=0.5_rank=4``."""
    return slug("_".join(f"{k}={v}" for k, v in point.items()))


def run_point(name: str, scale: str, settings: dict[str, Any], out_dir: str) -> dict[str, Any]:
    """Run, resume or (if finished) skip one point; returns its status, summary and error."""
    out = Path(out_dir)
    if (out / "summary.json").exists():
        summary = io.read_json(out / "summary.json")
        return {"status": "ok", "summary": summary, "error": None, "ran": False}
    exp = get_experiment(name)
    config = exp.config(scale, settings)
    resume = (out / "config.json").exists()
    run = Run(out, config, resume=resume, checkpoint_every=exp.checkpoint_every)
    summary = exp.fn(config, run)
    return {"status": "ok", "summary": summary, "error": None, "ran": True}


def run_sweep(
    name: str,
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
    """Run ``name`` over ``grid`` on Dask (see module docstring); returns the results table."""
    import pandas as pd
    from distributed import Client, LocalCluster, as_completed

    exp = get_experiment(name)
    points = grid_points(grid)
    base = dict(base or {})
    for point in points:  # validate every configuration before starting anything
        exp.config(scale, base | point)
    out = Path(out or Path(os.environ.get("SNTKIT_RUNS", "runs")) / slug(f"sweep-{name}-{scale}"))
    out.mkdir(parents=True, exist_ok=True)
    io.write_json(
        out / "sweep.json", {"experiment": name, "scale": scale, "base": base, "grid": dict(grid)}
    )
    own_cluster = None
    if client is None:
        if scheduler:
            client = Client(scheduler)
        else:
            own_cluster = LocalCluster(
                n_workers=workers or os.cpu_count() or 1,
                threads_per_worker=1,
                processes=processes,
                dashboard_address=None,
            )
            client = Client(own_cluster)
    results: dict[int, dict[str, Any]] = {}
    attempts = dict.fromkeys(range(len(points)), 0)
    try:
        # explicit rounds rather than Dask's task retries: a point that fails is resubmitted up
        # to `retries` times, and its last error is what the table reports
        pending = list(range(len(points)))
        bar = Progress(range(len(points)), total=len(points), desc=f"sweep {name}")
        while pending:
            futures = {}
            for i in pending:
                attempts[i] += 1
                folder = str(out / "points" / point_name(points[i]))
                fut = client.submit(
                    run_point,
                    name,
                    scale,
                    base | points[i],
                    folder,
                    key=f"{name}-{point_name(points[i])}-{i}-try{attempts[i]}",
                    pure=False,
                )
                futures[fut] = i
            pending = []
            for fut in as_completed(list(futures)):
                i = futures[fut]
                try:
                    res = fut.result()
                except Exception as exc:
                    res = {
                        "status": "failed",
                        "summary": {},
                        "error": f"{type(exc).__name__}: {exc}",
                    }
                    if attempts[i] <= retries:
                        pending.append(i)
                        continue
                results[i] = res | {"attempts": attempts[i]}
                bar.bar.update(1)
                failed = sum(r["status"] == "failed" for r in results.values())
                bar.show(done=len(results), failed=failed)
        bar.close()
    finally:
        if own_cluster is not None:
            client.close()
            own_cluster.close()
    rows = []
    for i, point in enumerate(points):
        res = results[i]
        scalars = {
            k: v
            for k, v in res["summary"].items()
            if isinstance(v, int | float | str | bool) or v is None
        }
        folder = str(out / "points" / point_name(point))
        rows.append(
            {**point, **scalars, "status": res["status"], "error": res["error"], "folder": folder}
        )
    table = pd.DataFrame(rows)
    io.write_parquet(out / "results.parquet", table)
    return table
