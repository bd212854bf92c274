"""A run folder: configuration, metric rows, events, summary, figures and checkpoints.

Layout of ``out_dir``::

    config.json        everything needed to rerun: experiment, scale, seed, device, every
                       setting, and the sntkit/torch/numpy/python versions
    metrics.parquet    one row per check (rewritten atomically at every checkpoint and at the end)
    events.json        records such as detected bifurcations
    summary.json       the headline numbers, written last: its presence marks a finished run
    *.png, *.pdf       figures
    checkpoints/       step_XXXXXXXX.pt, the newest ``keep`` of them

Writing a resumable training loop (see also :func:`sntkit.experiments.registry.register`)::

    model, opt = make_model(config), torch.optim.SGD(...)
    last = {"loss": math.nan}  # loop state that the summary needs is tracked too
    for step in run.loop(config["steps"], model=model, optimizer=opt, last=last):
        last["loss"] = train_step(model, opt)
        run.log(step=step, loss=last["loss"])
    return run.finish({"final_loss": last["loss"]})

:meth:`Run.loop` restores the tracked objects on resume, yields the steps still to do behind a
progress bar, and checkpoints after every ``checkpoint_every``-th step ("step + 1 steps are
done"). A run interrupted after its last checkpoint resumes into an empty loop, hence ``last``.

Experiments with several training runs (SGD, then another optimizer; two networks) give each
one a *stage*::

    def train(kind):                  # trains one model, returns its (saveable) results
        model, opt = ...
        for step in run.loop(n, model=model, optimizer=opt):
            ...
        return {"final_loss": ...}

    results = {kind: run.stage(kind, lambda: train(kind)) for kind in ("sgd", "ng")}

:meth:`Run.stage` runs a stage once: the results of finished stages travel in every checkpoint,
so on resume they are returned without training again, and the interrupted stage continues
from its checkpoint. Tracked objects belong to the stage that tracked them.

Resume determinism. ``checkpoint(step, state)`` saves, atomically and in one file, the
experiment's ``state`` dict, the state of every object given to :meth:`Run.track` (modules,
optimizers, schedulers — anything with ``state_dict``/``load_state_dict`` — torch and numpy
generators, ``random.Random``, plain dicts and lists, updated in place), the metric rows and
events recorded so far, and the global RNG states (torch CPU and, when initialized, CUDA;
numpy's legacy global generator; Python's ``random``). :meth:`Run.restore` (or ``track``) puts
all of these back, discarding rows logged after the checkpoint, so the loop continues exactly as
the uninterrupted run did: metrics, events and summary come out bit-identical, provided that all
randomness lives in those generators and every piece of loop state is checkpointed. Rows are
converted to plain Python values when logged, so restored and live rows are identical objects.
Python's global ``random`` is also drawn from by other threads of the process (Dask's event
loop does), so inside sweep workers keep Python randomness in a tracked ``random.Random``;
likewise points running as threads of one process share all global generators. On resume the
saved ``config.json`` must equal the new configuration (versions excepted), else
:class:`ConfigError`. Nondeterministic kernels (some CUDA reductions) are outside this promise:
use ``torch.use_deterministic_algorithms(True)`` where bit-identity on GPUs matters.
"""

from __future__ import annotations

import os
import platform
import random
import re
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sized
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sntkit.experiments import io
from sntkit.experiments.errors import CheckpointError, ConfigError
from sntkit.experiments.progress import Progress

__all__ = [
    "Run",
    "TrainingLoop",
    "default_out_dir",
    "finished_summary",
    "rng_state",
    "seed_everything",
    "set_rng_state",
    "slug",
]

#: config keys that may differ between a run and its resumption
_NOT_COMPARED = frozenset({"versions"})
_CKPT = re.compile(r"^step_(\d+)\.pt$")
_UNSET: Any = object()


class Run:
    """One experiment run in ``out_dir`` (see the module docstring).

    Parameters
    ----------
    out_dir:
        The run folder; created if missing. An unwritable folder raises :class:`ConfigError`,
        and so does a folder that already holds a run unless ``resume`` is true.
    config:
        The full configuration, written to ``config.json`` (with the library versions added).
    resume:
        Continue the run in ``out_dir``: the saved configuration must match ``config``, and
        :meth:`restore`/:meth:`track` load the newest checkpoint.
    checkpoint_every:
        Period (in steps) of :meth:`should_checkpoint`; default ``config["checkpoint_every"]``
        or 0 (never).
    keep:
        Number of newest checkpoints kept on disk.
    """

    def __init__(
        self,
        out_dir: str | Path,
        config: dict[str, Any],
        *,
        resume: bool = False,
        checkpoint_every: int | None = None,
        keep: int = 2,
    ) -> None:
        if keep < 1:
            raise ValueError(f"keep must be at least 1, got {keep}")
        self.dir = Path(out_dir)
        self.config = dict(config)
        self.resume = bool(resume)
        if checkpoint_every is None:
            checkpoint_every = int(self.config.get("checkpoint_every", 0))
        self.checkpoint_every = checkpoint_every
        self.keep = keep
        self.rows: list[dict[str, Any]] = []
        self.events: list[Any] = []
        self._tracked: dict[str, Any] = {}
        self._saved_tracked: dict[str, Any] = {}
        self._restored: Any = _UNSET
        self._verified = False
        #: results of the finished stages, and the stage now running (see :meth:`stage`)
        self.stages: dict[str, Any] = {}
        self._stage: str | None = None
        self._stage_rng: dict[str, Any] | None = None
        self._stage_steps = 0
        self._offset = 0  # steps of the finished stages, for checkpoint file names
        self._saved_stage: str | None = None
        self._saved_stage_rng: dict[str, Any] | None = None
        self._pending_rng: dict[str, Any] | None = None
        self._prepare_dir()

    # ------------------------------------------------------------------ folder
    def _prepare_dir(self) -> None:
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=self.dir):
                pass
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            raise ConfigError(f"output folder {self.dir} is not writable ({reason})") from None
        cfg_path = self.path("config.json")
        if cfg_path.exists() and not self.resume:
            raise ConfigError(
                f"{self.dir} already holds a run; pass --resume to continue it or choose "
                "another --out"
            )
        if self.resume and cfg_path.exists():
            self._check_same_config(cfg_path)
        self.config["versions"] = _versions()
        io.write_json(cfg_path, self.config)

    def _check_same_config(self, cfg_path: Path) -> None:
        try:
            saved = io.read_json(cfg_path)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot resume: {cfg_path} is unreadable ({exc})") from None
        if not isinstance(saved, dict):
            raise ConfigError(f"cannot resume: {cfg_path} does not hold a mapping")
        mine = io.to_jsonable(self.config)
        missing = "<missing>"
        diffs = [
            f"{k} (saved {_short(saved.get(k, missing))}, now {_short(mine.get(k, missing))})"
            for k in sorted(set(saved) | set(mine))
            if k not in _NOT_COMPARED and saved.get(k, missing) != mine.get(k, missing)
        ]
        if diffs:
            more = f" and {len(diffs) - 4} more" if len(diffs) > 4 else ""
            raise ConfigError(
                f"cannot resume {self.dir}: its config differs in {', '.join(diffs[:4])}{more}; "
                "rerun with the saved settings or choose another --out"
            )

    @property
    def ckpt_dir(self) -> Path:
        """The folder of the checkpoints."""
        return self.dir / "checkpoints"

    def path(self, name: str) -> Path:
        """Return a path inside the run folder."""
        return self.dir / name

    @property
    def finished(self) -> bool:
        """Whether the folder holds a complete ``summary.json``."""
        return finished_summary(self.dir) is not None

    # ------------------------------------------------------------------ records
    def log(self, row: dict[str, Any] | None = None, /, **values: Any) -> None:
        """Append one metrics row (``row`` and/or keyword values), converted to plain values.

        Rows are written to ``metrics.parquet`` at every checkpoint and at the end.
        """
        self.rows.append(io.plain_value({**(row or {}), **values}))

    def event(self, record: dict[str, Any] | None = None, /, **values: Any) -> None:
        """Append one event record (e.g. a bifurcation) for ``events.json``."""
        self.events.append(io.to_jsonable({**(record or {}), **values}))

    def flush(self) -> None:
        """Write ``metrics.parquet`` and ``events.json`` as they are now."""
        io.write_parquet(self.path("metrics.parquet"), self.rows)
        io.write_json(self.path("events.json"), self.events)

    def finish(self, summary: dict[str, Any]) -> dict[str, Any]:
        """Write all records, then ``summary.json`` (last: it marks the run as finished)."""
        if not isinstance(summary, dict):
            raise TypeError(f"summary must be a dict, got {type(summary).__name__}")
        self.flush()
        io.write_json(self.path("summary.json"), summary)
        return summary

    def progress(self, iterable: Iterable[Any], **kwargs: Any) -> Progress:
        """Return a :class:`~sntkit.experiments.progress.Progress` bar over ``iterable``."""
        if "total" not in kwargs and isinstance(iterable, Sized):
            kwargs["total"] = len(iterable)
        return Progress(iterable, **kwargs)

    # ------------------------------------------------------------------ checkpoints
    def should_checkpoint(self, step: int) -> bool:
        """Return whether ``step > 0`` is a multiple of ``checkpoint_every`` (never if it is 0)."""
        every = self.checkpoint_every
        return every > 0 and step > 0 and step % every == 0

    def track(self, **objects: Any) -> int:
        """Checkpoint ``objects`` with every :meth:`checkpoint` and restore them on resume.

        Accepted: anything with ``state_dict``/``load_state_dict`` (modules, optimizers, LR
        schedulers), ``torch.Generator``, ``numpy.random.Generator``, ``random.Random``, and
        dicts and lists of checkpointable values (restored in place). Returns the step to
        continue from: the step of the checkpoint being resumed (when it was written in the
        current stage), else 0.
        """
        for name, obj in objects.items():
            _check_trackable(name, obj)
            self._tracked[name] = obj
        restored = self.restore()
        if restored is None or self._saved_stage != self._stage:
            return 0
        for name, obj in objects.items():
            self._load_tracked(name, obj)
        return restored[0]

    def stage(self, name: str, body: Callable[[], Any]) -> Any:
        """Run ``body()`` as stage ``name`` once and return its result (see module docstring).

        When resuming, a stage that finished before the interruption returns its saved result
        without calling ``body``; the interrupted stage starts again from the global RNG state
        it started with, and its :meth:`loop` continues from the checkpoint. The result must be
        checkpointable (tensors, numbers, strings, lists and dicts of them). A checkpoint is
        written when the stage ends.
        """
        if not isinstance(name, str) or not name or "/" in name:
            raise ValueError(f"stage name must be a non-empty string without '/', got {name!r}")
        if self._stage is not None:
            raise RuntimeError(f"stage {name!r} started inside stage {self._stage!r}; nest none")
        if self._restored is _UNSET:
            self._restored = self._load_newest()
        if name in self.stages:
            return self.stages[name]
        if self._pending_rng is not None:  # the first stage not finished before the interruption
            if self._saved_stage is None:
                self._apply_pending_rng()
            elif self._saved_stage == name:
                _set_saved_rng(self._saved_stage_rng, self.ckpt_dir)
            else:
                raise CheckpointError(
                    f"the newest checkpoint in {self.ckpt_dir} was written in stage "
                    f"{self._saved_stage!r}, but this run reached stage {name!r} first"
                )
        self._stage, self._stage_rng = name, rng_state()
        try:
            result = body()
        finally:
            self._stage = None
        self.stages[name] = result
        self._offset += self._stage_steps
        self._stage_steps = 0
        self.checkpoint(0)
        return result

    def loop(self, steps: int, *, desc: str | None = None, **objects: Any) -> TrainingLoop:
        """Return the training steps ``start..steps-1`` still to do, checkpointing as it goes.

        ``objects`` are tracked as with :meth:`track` (inside a stage, under that stage), which
        also gives ``start`` (0, or the step of the checkpoint being resumed). Iterating yields
        the steps; after the body of step ``s`` ran, a checkpoint is written when
        :meth:`should_checkpoint` of ``s + 1`` holds and steps remain. A progress bar shows the
        steps (labelled ``desc``); ``loop.show(loss=...)`` sets the values displayed beside it.
        """
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
            raise ValueError(f"steps must be a non-negative integer, got {steps!r}")
        self._stage_steps = steps
        start = self.track(**{self._key(k): v for k, v in objects.items()})
        label = desc or self._stage or self.config.get("experiment", "run")
        return TrainingLoop(self, start, steps, self.progress(range(start, steps), desc=str(label)))

    def _key(self, name: str) -> str:
        return name if self._stage is None else f"{self._stage}/{name}"

    def checkpoint(self, step: int, state: dict[str, Any] | None = None) -> Path:
        """Save ``state``, the tracked objects, the records and the RNG states after ``step``.

        ``step`` is the number of steps done, i.e. the step the loop continues from (counted
        within the current stage; the file name counts the steps of finished stages too, so
        that the newest checkpoint sorts last). The file is written atomically, then
        ``metrics.parquet``/``events.json`` are updated and all but the newest ``keep``
        checkpoints are deleted. The first checkpoint of a run is read back at once, so that
        state the safe loader would refuse fails now, not on resume.
        """
        payload = {
            "format": 1,
            "step": int(step),
            "state": dict(state or {}),
            "tracked": {name: _get_state(obj) for name, obj in self._tracked.items()},
            "stages": self.stages,
            "stage": self._stage,
            "stage_rng": self._stage_rng if self._stage is not None else None,
            "offset": self._offset,
            "rows": self.rows,
            "events": self.events,
            "rng": rng_state(),
        }
        name = f"step_{self._offset + int(step):08d}.pt"
        path = io.save_checkpoint(self.ckpt_dir / name, payload)
        if not self._verified:
            try:
                io.load_checkpoint(path)
            except CheckpointError as exc:
                path.unlink(missing_ok=True)
                raise TypeError(f"checkpoint state cannot be saved: {exc}") from None
            self._verified = True
        self.flush()
        for old in self.checkpoints()[: -self.keep]:
            old.unlink(missing_ok=True)
        return path

    def checkpoints(self) -> list[Path]:
        """Return the checkpoint files on disk, oldest first."""
        if not self.ckpt_dir.is_dir():
            return []
        found = [(int(m[1]), p) for p in self.ckpt_dir.iterdir() if (m := _CKPT.match(p.name))]
        return [p for _, p in sorted(found)]

    def restore(self) -> tuple[int, dict[str, Any]] | None:
        """``(step, state)`` of the newest checkpoint when resuming, else ``None``.

        Also puts back the rows, events, finished stages and RNG states saved with it (the RNG
        states only once the run is back in the stage that wrote the checkpoint). The
        checkpoint is loaded once; later calls return the same result without reapplying it.
        A damaged checkpoint raises :class:`CheckpointError`.
        """
        if self._restored is _UNSET:
            self._restored = self._load_newest()
        if self._saved_stage == self._stage:
            self._apply_pending_rng()
        return self._restored

    def _apply_pending_rng(self) -> None:
        if self._pending_rng is not None:
            _set_saved_rng(self._pending_rng, self.ckpt_dir)
            self._pending_rng = None

    def _load_newest(self) -> tuple[int, dict[str, Any]] | None:
        files = self.checkpoints() if self.resume else []
        if not files:
            return None
        path = files[-1]
        payload = io.load_checkpoint(path)
        try:
            step, state = int(payload["step"]), dict(payload["state"])
            rows, events = list(payload["rows"]), list(payload["events"])
            tracked = dict(payload.get("tracked", {}))
            stages, saved_stage = dict(payload.get("stages", {})), payload.get("stage")
            offset, stage_rng = int(payload.get("offset", 0)), payload.get("stage_rng")
            rng = payload["rng"]
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise CheckpointError(
                f"checkpoint {path} is not a complete sntkit run checkpoint ({exc})"
            ) from None
        self.rows, self.events, self._saved_tracked = rows, events, tracked
        self.stages, self._saved_stage, self._offset = stages, saved_stage, offset
        self._saved_stage_rng, self._pending_rng = stage_rng, rng
        return step, state

    def _load_tracked(self, name: str, obj: Any) -> None:
        if name not in self._saved_tracked:
            raise CheckpointError(
                f"the newest checkpoint in {self.ckpt_dir} has no state for {name!r}; it was "
                "written by a different version of the experiment"
            )
        try:
            _set_state(obj, self._saved_tracked[name])
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise CheckpointError(
                f"the checkpointed state of {name!r} does not fit ({msg})"
            ) from None


class TrainingLoop:
    """The steps a :meth:`Run.loop` still has to do, with its progress bar and checkpoints."""

    def __init__(self, run: Run, start: int, steps: int, bar: Progress) -> None:
        self.run, self.start, self.steps, self.bar = run, start, steps, bar

    def __iter__(self) -> Iterator[int]:
        for step in self.bar:
            yield step
            if step + 1 < self.steps and self.run.should_checkpoint(step + 1):
                self.run.checkpoint(step + 1)
        self.bar.close()

    def show(self, **values: float | int | str | None) -> None:
        """Display ``values`` beside the progress bar."""
        self.bar.show(**values)


# ---------------------------------------------------------------------- tracked objects
def _check_trackable(name: str, obj: Any) -> None:
    ok = isinstance(obj, torch.Generator | np.random.Generator | random.Random | dict | list) or (
        hasattr(obj, "state_dict") and hasattr(obj, "load_state_dict")
    )
    if not ok:
        raise TypeError(
            f"cannot track {name}={type(obj).__name__}: give an object with state_dict/"
            "load_state_dict, a torch/numpy generator, random.Random, or a dict or list"
        )


def _get_state(obj: Any) -> Any:
    if isinstance(obj, torch.Generator):
        return obj.get_state()
    if isinstance(obj, np.random.Generator):
        return obj.bit_generator.state
    if isinstance(obj, random.Random):
        return obj.getstate()
    if isinstance(obj, dict | list):
        return obj
    return obj.state_dict()


def _set_state(obj: Any, state: Any) -> None:
    if isinstance(obj, torch.Generator):
        obj.set_state(state)
    elif isinstance(obj, np.random.Generator):
        obj.bit_generator.state = state
    elif isinstance(obj, random.Random):
        version, internal, gauss = state
        obj.setstate((version, tuple(internal), gauss))
    elif isinstance(obj, dict):
        obj.clear()
        obj.update(state)
    elif isinstance(obj, list):
        obj[:] = state
    else:
        obj.load_state_dict(state)


# ---------------------------------------------------------------------- global RNGs
def seed_everything(seed: int) -> None:
    """Seed Python's ``random``, numpy's global generator and torch (CPU and every CUDA device)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state() -> dict[str, Any]:
    """Return the global RNG states (torch CPU, CUDA if initialized, numpy legacy, ``random``)."""
    state = np.random.get_state(legacy=True)
    if isinstance(state, dict):  # only a non-MT19937 global generator gives a dict
        raise RuntimeError("numpy's global generator is not the legacy MT19937; cannot save it")
    kind, keys, pos, has_gauss, gauss = state
    version, internal, py_gauss = random.getstate()
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else []
    return {
        "torch": torch.get_rng_state(),
        "cuda": list(cuda),
        "numpy": {
            "kind": kind,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "gauss": float(gauss),
        },
        "python": {"version": version, "internal": list(internal), "gauss": py_gauss},
    }


def set_rng_state(state: dict[str, Any]) -> None:
    """Put back the global RNG states saved by :func:`rng_state`.

    CUDA states are skipped when CUDA is unavailable (a CPU run does not depend on them).
    """
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"][: torch.cuda.device_count()])
    npy = state["numpy"]
    np.random.set_state(
        (npy["kind"], npy["keys"].numpy().astype(np.uint32), npy["pos"], npy["has_gauss"],
         npy["gauss"])
    )  # fmt: skip
    py = state["python"]
    random.setstate((py["version"], tuple(py["internal"]), py["gauss"]))


def _set_saved_rng(state: Any, where: Path) -> None:
    try:
        set_rng_state(state)
    except (KeyError, TypeError, ValueError, RuntimeError, AttributeError) as exc:
        raise CheckpointError(
            f"the newest checkpoint in {where} holds no complete RNG state ({exc})"
        ) from None


# ---------------------------------------------------------------------- helpers
def finished_summary(folder: str | Path) -> dict[str, Any] | None:
    """Return the summary of the finished run in ``folder``, or ``None`` if it has none (yet)."""
    try:
        summary = io.read_json(Path(folder) / "summary.json")
    except (OSError, ValueError):
        return None
    return summary if isinstance(summary, dict) else None


def _versions() -> dict[str, str]:
    from sntkit import __version__

    return {
        "sntkit": __version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


def _short(value: Any, width: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= width else text[: width - 3] + "..."


def slug(text: str) -> str:
    """Return a file-name-safe version of ``text`` (runs of other characters become ``-``)."""
    return re.sub(r"[^A-Za-z0-9._=+,-]+", "-", text).strip("-.") or "run"


def default_out_dir(name: str, scale: str, seed: int) -> Path:
    """``runs/NAME-SCALE-seedN``, with ``runs`` replaced by ``$SNTKIT_RUNS`` when that is set."""
    return Path(os.environ.get("SNTKIT_RUNS", "runs")) / slug(f"{name}-{scale}-seed{seed}")
