"""Tiny experiments for testing the run/registry/sweep/CLI infrastructure (never shipped).

``counter`` trains ``y = w x + b`` with SGD + momentum on noisy data for ``steps`` steps. Its
noise comes from tracked generators (torch, numpy, ``random.Random``) and, depending on ``rng``,
also from the global torch and numpy generators (``"global"``) and Python's global ``random``
(``"all"``), so that resume equivalence exercises every RNG the :class:`Run` protocol captures.
Sweeps use ``"tracked"`` on threads (points share the process's global generators) and
``"global"`` on worker processes (Dask's own threads draw from Python's global ``random``).
Marker files in ``marks`` count how often each run folder was started; ``fail_point`` and
``fail_mode`` inject failures half-way (after a checkpoint) on the first start, or on every
start while a ``BLOCK-<folder>`` file exists.
:data:`CRASH` lets an in-process test interrupt the loop at a given step.
"""

from __future__ import annotations

import math
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sntkit.experiments.registry import register, register_point
from sntkit.experiments.run import Run

#: ``{"at": step, "exc": exception}``: raise ``exc`` right after step ``at`` (in-process tests)
CRASH: dict[str, Any] = {"at": None, "exc": RuntimeError("injected crash")}

COUNTER = {
    "steps": 20,
    "lr": 0.05,
    "checkpoint_every": 5,
    "noise": 0.1,
    "rng": "all",
    "marks": "",
    "fail_point": "",
    "fail_mode": "raise",
}


def starts(marks: str | Path, folder: str) -> int:
    """How many times the run folder named ``folder`` was started."""
    return len(list(Path(marks).glob(f"{folder}@*")))


@register(
    "counter",
    description="test dummy: SGD on a 2-parameter model",
    scales={"quick": COUNTER, "paper": COUNTER | {"steps": 200, "checkpoint_every": 50}},
    choices={"fail_mode": ("raise", "exit"), "rng": ("tracked", "global", "all")},
)
def counter(config: dict[str, Any], run: Run) -> dict[str, Any]:
    attempt = 0
    if config["marks"]:
        attempt = starts(config["marks"], run.dir.name)
        (Path(config["marks"]) / f"{run.dir.name}@{attempt}").touch()
    g = torch.Generator().manual_seed(config["seed"])
    model = torch.nn.Linear(1, 1)
    with torch.no_grad():
        model.weight.copy_(torch.randn(1, 1, generator=g))
        model.bias.copy_(torch.randn(1, generator=g))
    opt = torch.optim.SGD(model.parameters(), lr=config["lr"], momentum=0.9)
    np_rng = np.random.default_rng(config["seed"])
    py_rng = random.Random(config["seed"])
    totals = {"loss_sum": 0.0, "last_loss": math.nan}  # all the summary needs is tracked
    start = run.track(model=model, optimizer=opt, data=g, np_rng=np_rng, py_rng=py_rng)
    run.track(totals=totals)
    bar = run.progress(range(start, config["steps"]), desc="counter")
    for step in bar:
        x = torch.randn(8, 1, generator=g)
        y = 3.0 * x + 1.0 + config["noise"] * (float(np_rng.normal()) + py_rng.gauss(0.0, 1.0))
        if config["rng"] in ("global", "all"):
            y = y + config["noise"] * (torch.randn(8, 1) + float(np.random.normal()))
        if config["rng"] == "all":
            y = y + config["noise"] * random.gauss(0.0, 1.0)
        loss = torch.nn.functional.mse_loss(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        totals["loss_sum"] += loss.item()
        totals["last_loss"] = loss.item()
        run.log(step=step, loss=loss.detach(), w=model.weight.detach()[0, 0], b=np.float64(0.5))
        if step % 7 == 3:
            run.event(kind="tick", step=step, loss=math.nan)
        bar.show(step=step, loss=loss.item())
        if run.should_checkpoint(step + 1):
            run.checkpoint(step + 1)
        if CRASH["at"] == step:
            raise CRASH["exc"]
        if run.dir.name == config["fail_point"] and step + 1 == config["steps"] // 2:
            blocked = (Path(config["marks"]) / f"BLOCK-{run.dir.name}").exists()
            if attempt == 0 and config["fail_mode"] == "exit":
                os._exit(13)  # a worker process killed mid-point
            if blocked or attempt == 0:
                raise RuntimeError(f"injected failure at step {step}")
    bar.close()
    return run.finish(
        {
            "final_loss": totals["last_loss"],
            "w": float(model.weight.detach()),
            "b": float(model.bias.detach()),
            "loss_sum": totals["loss_sum"],
            "steps": config["steps"],
        }
    )


@register_point(
    "quadratic-point",
    description="test dummy point function: a x^2 + c",
    scales={"quick": {"a": 1.0, "x": 2.0, "c": 0.0}},
    signed=("x", "c"),
)
def quadratic_point(config: dict[str, Any]) -> dict[str, Any]:
    value = config["a"] * config["x"] ** 2 + config["c"]
    return {
        "value": value,
        "a": config["a"] * 2,  # collides with the parameter, different value
        "x": config["x"],  # collides with the parameter, same value
        "status": "mine",  # collides with a sweep column
        "undefined": math.nan,
        "nested": {"half": value / 2, "tag": "q"},
        "series": [1, 2, 3],  # not a scalar: left out of the table
    }


@register_point(
    "noisy-point",
    description="test dummy point function: x + a uniform draw of the seed's generator",
    scales={"quick": {"x": 1.0, "fail_seed": -1}, "paper": {"x": 1.0, "fail_seed": -1}},
    signed=("x", "fail_seed"),
)
def noisy_point(config: dict[str, Any]) -> dict[str, Any]:
    if config["seed"] == config["fail_seed"]:
        raise RuntimeError(f"injected failure of seed {config['seed']}")
    g = torch.Generator().manual_seed(config["seed"])
    return {"value": config["x"] + float(torch.rand(1, generator=g, dtype=torch.float64))}


SEEDED_SWEEP = {"xs": [1.0, 2.0], "fail_seed": -1, "workers": 1, "scheduler": "", "seeds": 1}


@register(
    "seeded-sweep",
    description="test dummy seed-axis experiment: a sweep of noisy-point over x",
    scales={"quick": SEEDED_SWEEP, "paper": SEEDED_SWEEP},
    signed=("xs", "fail_seed"),
    seed_axis=True,
)
def seeded_sweep(config: dict[str, Any], run: Run) -> dict[str, Any]:
    from sntkit.experiments.sweep import run_sweep, seed_axis, summarize_seeds

    seeds, fixed = seed_axis(config)
    table = run_sweep(
        "noisy-point",
        {"x": config["xs"]} | seeds,
        base=fixed | {"fail_seed": config["fail_seed"]},
        out=run.path("sweep"),
        scheduler=config["scheduler"] or None,
        workers=config["workers"],
        processes=False,
        retries=0,
    )

    def summarize(tables: dict[str, Any]) -> dict[str, Any]:
        ok = tables["sweep"][tables["sweep"].status == "ok"]
        return {"total": float(ok.value.sum()),
                "by_x": dict(zip(ok.x.tolist(), ok.value.tolist(), strict=True))}  # fmt: skip

    return run.finish(summarize_seeds(run, config, {"sweep": table}, summarize))
