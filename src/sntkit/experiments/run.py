"""A run folder: configuration, metric rows, events, summary, figures and checkpoints.

Layout of ``out_dir``::

    config.json        everything needed to rerun (experiment, scale, seed, all settings, versions)
    metrics.parquet    one row per check (rewritten atomically at every checkpoint and at the end)
    events.json        records such as detected bifurcations
    summary.json       the headline numbers, written last
    *.png, *.pdf       figures
    checkpoints/       step_XXXXXXXX.pt, the newest ``keep`` of them

Resuming: :meth:`Run.restore` returns the experiment state of the newest checkpoint and puts
back the metric rows and events recorded up to it together with the global RNG states (torch
CPU and CUDA, numpy, ``random``). An experiment that keeps all of its randomness either in those
generators or in generator states it stores in its checkpoint therefore ends with exactly the
results of an uninterrupted run.
"""

from __future__ import annotations

import os
import platform
import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sntkit.experiments import io
from sntkit.experiments.errors import CheckpointError, ConfigError

_IGNORED_ON_RESUME = ("resume",)


class Run:
    """One experiment run in ``out_dir`` (see module docstring)."""

    def __init__(
        self,
        out_dir: str | Path,
        config: dict[str, Any],
        *,
        resume: bool = False,
        checkpoint_every: int = 0,
        keep: int = 2,
    ) -> None:
        self.dir = Path(out_dir)
        self.config = dict(config)
        self.resume = resume
        self.checkpoint_every = checkpoint_every
        self.keep = keep
        self.rows: list[dict[str, Any]] = []
        self.events: list[dict[str, Any]] = []
        self._prepare_dir()

    # ------------------------------------------------------------------ folder
    def _prepare_dir(self) -> None:
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            probe = self.dir / ".write_test"
            probe.write_text("ok")
            probe.unlink()
        except OSError as exc:
            raise ConfigError(
                f"output folder {self.dir} is not writable ({exc.strerror})"
            ) from None
        cfg_path = self.dir / "config.json"
        has_run = cfg_path.exists() or any(self.ckpt_dir.glob("step_*.pt"))
        if has_run and not self.resume:
            raise ConfigError(
                f"{self.dir} already holds a run; pass --resume to continue it or choose "
                "another --out"
            )
        if self.resume and cfg_path.exists():
            saved = io.read_json(cfg_path)
            diff = sorted(
                k
                for k in set(saved) | set(self.config)
                if k not in _IGNORED_ON_RESUME
                and k != "versions"
                and io.to_jsonable(saved.get(k)) != io.to_jsonable(self.config.get(k))
            )
            if diff:
                raise ConfigError(
                    f"cannot resume {self.dir}: its config differs in {diff}; rerun with the "
                    "same settings or choose another --out"
                )
        self.config["versions"] = {
            "sntkit": _version(),
            "torch": torch.__version__,
            "python": platform.python_version(),
        }
        io.write_json(cfg_path, self.config)

    @property
    def ckpt_dir(self) -> Path:
        return self.dir / "checkpoints"

    def path(self, name: str) -> Path:
        """A path inside the run folder."""
        return self.dir / name

    # ------------------------------------------------------------------ records
    def log(self, row: dict[str, Any]) -> None:
        """Append one metrics row (written at the next checkpoint and at the end)."""
        self.rows.append(dict(row))

    def event(self, record: dict[str, Any]) -> None:
        """Append one event record (e.g. a bifurcation)."""
        self.events.append(io.to_jsonable(record))

    def flush(self) -> None:
        """Write ``metrics.parquet`` and ``events.json`` as they are now."""
        if self.rows:
            io.write_parquet(self.path("metrics.parquet"), self.rows)
        io.write_json(self.path("events.json"), self.events)

    def finish(self, summary: dict[str, Any]) -> dict[str, Any]:
        """Write all records and ``summary.json`` (last, so its presence marks a finished run)."""
        self.flush()
        io.write_json(self.path("summary.json"), summary)
        return summary

    # ------------------------------------------------------------------ checkpoints
    def should_checkpoint(self, step: int) -> bool:
        """True every ``checkpoint_every`` steps (never if 0)."""
        return self.checkpoint_every > 0 and step % self.checkpoint_every == 0

    def checkpoint(self, step: int, state: dict[str, Any]) -> None:
        """Save ``state`` with the records and RNG states so far; keep the newest ``keep``."""
        payload = {
            "step": int(step),
            "state": state,
            "rows": io.to_jsonable(self.rows),
            "events": self.events,
            "rng": _rng_state(),
        }
        io.save_checkpoint(self.ckpt_dir / f"step_{step:08d}.pt", payload)
        self.flush()
        for old in sorted(self.ckpt_dir.glob("step_*.pt"))[: -self.keep]:
            old.unlink(missing_ok=True)

    def restore(self) -> tuple[int, dict[str, Any]] | None:
        """``(step, state)`` of the newest checkpoint if resuming, else ``None``."""
        if not self.resume:
            return None
        files = sorted(self.ckpt_dir.glob("step_*.pt"))
        if not files:
            return None
        payload = io.load_checkpoint(files[-1])
        try:
            step, state = int(payload["step"]), payload["state"]
            self.rows = list(payload["rows"])
            self.events = list(payload["events"])
            _set_rng_state(payload["rng"])
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise CheckpointError(f"checkpoint {files[-1]} is incomplete ({exc})") from None
        return step, state


def _version() -> str:
    from sntkit import __version__

    return __version__


def _rng_state() -> dict[str, Any]:
    np_state = np.random.get_state()
    py_state = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
        "python": [py_state[0], list(py_state[1]), py_state[2]],
    }


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    kind, keys, *rest = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), *rest))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))


def slug(text: str) -> str:
    """A file-name-safe version of ``text``."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "run"


def default_out_dir(name: str, scale: str, seed: int) -> Path:
    """``runs/NAME-SCALE-seedN`` under ``$SNTKIT_RUNS`` (default: the current folder)."""
    return Path(os.environ.get("SNTKIT_RUNS", "runs")) / slug(f"{name}-{scale}-seed{seed}")
