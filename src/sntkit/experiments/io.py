"""Atomic result files: JSON, parquet tables, figures and checkpoints.

Every writer goes through :func:`atomic_write`: the content is written to a temporary file in
the destination folder, flushed and ``fsync``-ed, then renamed over the destination with
``os.replace`` (atomic on POSIX and Windows) and the folder entry is synced. A reader — or a run
killed mid-write — therefore sees either the old file or the complete new one, never a partial
file, and no temporary file is left behind when the writer raises.

Conventions:

* JSON (:func:`write_json`): tensors and arrays become (nested) lists, numpy/torch scalars plain
  numbers, paths strings, sets sorted lists; **NaN and ±inf are written as** ``null`` (strict
  JSON has no non-finite numbers), so a reader gets ``None`` back for them.
* Parquet (:func:`write_parquet`): rows keep NaN and ±inf (parquet stores IEEE floats); tensors
  and numpy scalars in rows become plain Python values.
* Checkpoints (:func:`save_checkpoint`, :func:`load_checkpoint`) are ``torch.save`` files read
  back with ``weights_only=True``: they may hold tensors, numbers, strings, ``None`` and
  dicts/lists/tuples of those. numpy scalars are stored as Python numbers and numpy arrays as
  tensors, because the safe loader refuses numpy objects.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
import pickle
import re
import tempfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sntkit.experiments.errors import CheckpointError

__all__ = [
    "atomic_write",
    "load_checkpoint",
    "plain_value",
    "read_json",
    "save_checkpoint",
    "save_figure",
    "to_jsonable",
    "write_json",
    "write_parquet",
    "write_text",
]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_umask()


def atomic_write(path: str | Path, write: Callable[[Path], object]) -> Path:
    """Create ``path`` atomically: ``write(tmp)`` fills a temporary sibling that is then renamed.

    ``write`` receives the temporary path and may open it however it likes. If it raises (or
    the process is interrupted), the temporary file is removed and ``path`` is left untouched.
    The new file gets the usual permissions (``0o666`` minus the umask), not ``mkstemp``'s
    private ``0o600``, so that collaborators can read shared run folders.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, _FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    return path


def _fsync_dir(folder: Path) -> None:
    # makes the rename itself durable; not possible on every platform/file system
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) atomically."""
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def _map_leaves(obj: Any, leaf: Callable[[Any], Any]) -> Any:
    """``obj`` with ``leaf`` applied to everything that is not a mapping, list or tuple."""
    if isinstance(obj, Mapping):
        return {k: _map_leaves(v, leaf) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_map_leaves(v, leaf) for v in obj]
    if isinstance(obj, tuple):
        return tuple(_map_leaves(v, leaf) for v in obj)
    return leaf(obj)


def _plain_leaf(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu().tolist()
    if isinstance(obj, np.ndarray | np.generic):
        return obj.tolist()
    return obj


def plain_value(obj: Any) -> Any:
    """``obj`` with tensors, arrays and numpy/torch scalars turned into plain Python values.

    0-d tensors and numpy scalars become numbers (or bools), larger tensors and arrays nested
    lists; mappings, lists and tuples are converted recursively. Non-finite floats are kept.
    """
    return _map_leaves(obj, _plain_leaf)


def to_jsonable(obj: Any) -> Any:
    """Plain JSON types (see module docstring): NaN and ±inf become ``None``.

    Raises ``TypeError`` naming the type for objects with no JSON form.
    """
    obj = plain_value(obj)
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, set | frozenset):
        return sorted((to_jsonable(v) for v in obj), key=repr)
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if obj is None or isinstance(obj, bool | int | str):
        return obj
    if isinstance(obj, Path):
        return str(obj)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return to_jsonable(dataclasses.asdict(obj))
    if hasattr(obj, "to_dict"):
        return to_jsonable(obj.to_dict())
    raise TypeError(
        f"cannot write {type(obj).__name__} to JSON; convert it to numbers, strings, lists or "
        "dicts first"
    )


def write_json(path: str | Path, obj: Any) -> Path:
    """Write ``obj`` as indented JSON, atomically (NaN and ±inf are written as ``null``)."""
    text = json.dumps(to_jsonable(obj), indent=2, allow_nan=False) + "\n"
    return write_text(path, text)


def read_json(path: str | Path) -> Any:
    """Return the parsed content of a JSON file."""
    return json.loads(Path(path).read_text(encoding="utf-8"))


def write_parquet(path: str | Path, rows: Iterable[Mapping[str, Any]] | Any) -> Path:
    """Write a list of dict rows (or a ``pandas.DataFrame``) as a parquet table, atomically.

    Rows may differ in their keys (missing values become null). An object column whose values
    have different types (e.g. ``1`` and ``"auto"``), which parquet cannot store, is written as
    strings rather than failing after a long computation.
    """
    import pandas as pd

    if isinstance(rows, pd.DataFrame):
        df = rows
    else:
        df = pd.DataFrame([plain_value(dict(r)) for r in rows])
    df = _arrow_safe(df)
    return atomic_write(path, lambda tmp: df.to_parquet(tmp, index=False))


def _arrow_safe(df: Any) -> Any:
    mixed = []
    for col in df.columns:
        if df[col].dtype != object:
            continue
        kinds = {_kind(v) for v in df[col] if v is not None and not _is_nan(v)}
        if len(kinds) > 1:
            mixed.append(col)
    if not mixed:
        return df
    df = df.copy()
    for col in mixed:
        df[col] = [None if v is None or _is_nan(v) else str(v) for v in df[col]]
    return df


def _kind(value: Any) -> type:
    # ints and floats mix fine in one parquet column; everything else must agree
    return float if isinstance(value, int | float) and not isinstance(value, bool) else type(value)


def _is_nan(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)


def save_figure(fig: Any, path_stem: str | Path, dpi: int = 150) -> list[Path]:
    """Save a matplotlib figure as ``STEM.png`` and ``STEM.pdf``, each atomically.

    A ``.png``/``.pdf`` suffix on ``path_stem`` is dropped; any other dots are kept
    (``fig1.v2`` → ``fig1.v2.png``). Returns the two paths.
    """
    stem = Path(path_stem)
    if stem.suffix.lower() in (".png", ".pdf"):
        stem = stem.with_suffix("")
    return [
        atomic_write(
            stem.parent / f"{stem.name}.{ext}",
            functools.partial(fig.savefig, format=ext, dpi=dpi, bbox_inches="tight"),
        )
        for ext in ("png", "pdf")
    ]


def _checkpoint_leaf(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(obj))
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def save_checkpoint(path: str | Path, state: Mapping[str, Any]) -> Path:
    """``torch.save`` a dict of tensors and plain values, atomically (see module docstring)."""
    if not isinstance(state, Mapping):
        raise TypeError(f"state must be a dict, got {type(state).__name__}")
    payload = _map_leaves(dict(state), _checkpoint_leaf)
    return atomic_write(path, lambda tmp: torch.save(payload, tmp))


_REFUSED = re.compile(r"Unsupported global: GLOBAL (\S+)")


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint with ``torch.load(..., weights_only=True)`` onto the CPU.

    A missing, truncated or corrupt file, or one holding objects the safe loader refuses,
    raises :class:`CheckpointError` with a one-line message naming the file.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        refused = _REFUSED.search(str(exc))
        if refused:
            raise CheckpointError(
                f"checkpoint {path} holds a {refused.group(1)}, which weights_only loading "
                "refuses; store only tensors, numbers, strings and dicts/lists of them"
            ) from None
        raise _damaged(path, exc) from None
    except Exception as exc:  # torch raises many types for damaged files
        raise _damaged(path, exc) from None
    if not isinstance(state, dict):
        raise CheckpointError(f"checkpoint {path} holds a {type(state).__name__}, not a dict")
    return state


def _damaged(path: Path, exc: BaseException) -> CheckpointError:
    return CheckpointError(
        f"checkpoint {path} cannot be read (truncated or corrupt: {type(exc).__name__}); "
        "delete it to continue from the previous checkpoint, or start a new run"
    )
