"""Where tracker rows go: CSV, parquet, TensorBoard, an sntkit run folder, or any callable.

A sink is any object with ``log(row)`` (and optionally ``event(record)`` and ``close()``), or a
callable ``fn(row)``. Rows are flat dicts of numbers/strings; event records are dicts of one
bifurcation (:meth:`sntkit.dynamics.Bifurcation.to_dict`). pandas/pyarrow (parquet) and
tensorboard are imported only when their sink is used.
"""

from __future__ import annotations

import csv
import json
import math
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

Row = dict[str, Any]


class _FileSink:
    """Rows to ``path`` and event records to ``<stem>_events<suffix>`` next to it.

    Each file is rewritten atomically at every call (a crash never leaves half a file).
    """

    suffix = ""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.rows: list[Row] = []
        self.events: list[Row] = []

    def log(self, row: Row) -> None:
        self.rows.append(row)
        self._write(self.path, self.rows)

    def event(self, record: Row) -> None:
        self.events.append(self._event_row(record))
        self._write(self.path.with_name(f"{self.path.stem}_events{self.suffix}"), self.events)

    def _event_row(self, record: Row) -> Row:
        raise NotImplementedError

    def _write(self, path: Path, rows: list[Row]) -> None:
        raise NotImplementedError


class CSVSink(_FileSink):
    """Appends rows to a CSV file; the header is the union of keys seen (rewritten if it grows).

    Events go to ``<stem>_events.csv`` next to it (as JSON in one ``record`` column).
    """

    suffix = ".csv"

    def _event_row(self, record: Row) -> Row:
        return {"step": record.get("step"), "record": json.dumps(record)}

    def _write(self, path: Path, rows: list[Row]) -> None:
        keys = list(dict.fromkeys(k for r in rows for k in r))
        _replace(path, lambda f: _csv(f, keys, rows), "w")


def _csv(f: Any, keys: list[str], rows: list[Row]) -> None:
    w = csv.DictWriter(f, fieldnames=keys)
    w.writeheader()
    w.writerows(rows)


class ParquetSink(_FileSink):
    """Rows to a parquet file (and events to ``<stem>_events.parquet``), rewritten atomically."""

    suffix = ".parquet"

    def _event_row(self, record: Row) -> Row:
        return {k: json.dumps(v) if isinstance(v, dict | list) else v for k, v in record.items()}

    def _write(self, path: Path, rows: list[Row]) -> None:
        try:
            import pandas as pd
        except ImportError as err:  # core install: torch, numpy, scipy only
            raise ImportError(
                "ParquetSink needs pandas and pyarrow: pip install 'sntkit[experiments]'"
            ) from err
        frame = pd.DataFrame(rows)
        _replace(path, lambda f: frame.to_parquet(f), "wb")


class TensorBoardSink:
    """Numeric row entries as scalars ``<prefix>/<key>`` at ``global_step=row["step"]``.

    ``writer`` is a ``torch.utils.tensorboard.SummaryWriter`` (or a log directory to open one).
    Events become text entries ``<prefix>/events``; warnings ``<prefix>/warnings``.
    """

    def __init__(self, writer: Any, prefix: str = "sntk") -> None:
        if isinstance(writer, str | os.PathLike):
            from torch.utils.tensorboard import SummaryWriter

            writer = SummaryWriter(str(writer))
        if not hasattr(writer, "add_scalar"):
            raise TypeError(
                "writer must be a torch.utils.tensorboard.SummaryWriter or a log directory, got "
                f"{type(writer).__name__}"
            )
        self.writer = writer
        self.prefix = prefix

    def log(self, row: Row) -> None:
        """Write the row's finite numbers as scalars at its step."""
        step = row.get("step")
        for k, v in row.items():
            numeric = isinstance(v, int | float) and not isinstance(v, bool)
            if k != "step" and numeric and math.isfinite(v):
                self.writer.add_scalar(f"{self.prefix}/{k}", v, global_step=step)
        if row.get("warning"):
            self.writer.add_text(f"{self.prefix}/warnings", str(row["warning"]), global_step=step)

    def event(self, record: Row) -> None:
        """Write the event record as text."""
        self.writer.add_text(f"{self.prefix}/events", json.dumps(record), record.get("step"))

    def close(self) -> None:
        """Flush the TensorBoard writer."""
        self.writer.flush()


class CallableSink:
    """Wraps ``fn(row)``; events are passed as ``fn(record | {"event": True})``."""

    def __init__(self, fn: Callable[[Row], Any]) -> None:
        self.fn = fn

    def log(self, row: Row) -> None:
        """Call the function with the row."""
        self.fn(row)

    def event(self, record: Row) -> None:
        """Call the function with the event record, marked ``event: True``."""
        self.fn({**record, "event": True})


def as_sink(sink: Any) -> Any:
    """Return a sink object from a sink, a ``SummaryWriter``, an sntkit ``Run`` or a callable."""
    if hasattr(sink, "add_scalar"):
        return TensorBoardSink(sink)
    if hasattr(sink, "log"):
        return sink
    if callable(sink):
        return CallableSink(sink)
    raise TypeError(
        "each sink must have log(row) (CSVSink, ParquetSink, an sntkit Run), be a "
        f"SummaryWriter, or be a callable taking a row dict; got {type(sink).__name__}"
    )


def _replace(path: Path, write: Callable[[Any], None], mode: str) -> None:
    """Write to a temporary file in the same folder, then rename over ``path`` (atomic)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, mode, newline=None if "b" in mode else "") as f:
            write(f)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
