"""Progress bars for long runs: tqdm on stderr showing the step, the loss and a last metric.

Bars are shown only when stderr is a terminal. ``SNTKIT_PROGRESS=0`` (or ``false``/``no``/
``off``) turns them off and ``SNTKIT_PROGRESS=1`` on regardless; :func:`set_enabled` (the
command line's ``--no-progress``) overrides both for the process, and :func:`suppressed`
turns them off in the current thread only (sweep points running as threads of a Dask worker).
Whether a bar is shown is decided when it is created.

    bar = Progress(range(start, steps), total=steps - start, desc="student-teacher")
    for step in bar:
        ...
        bar.show(step=step, loss=loss, stable_rank=rank)
    bar.close()
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from tqdm import tqdm

_override: bool | None = None
_local = threading.local()


def set_enabled(flag: bool | None) -> None:
    """Show (``True``) or hide (``False``) every bar of this process; ``None``: automatic."""
    global _override
    _override = flag


@contextmanager
def suppressed() -> Iterator[None]:
    """Hide the bars created in this thread inside the ``with`` block."""
    before = getattr(_local, "off", False)
    _local.off = True
    try:
        yield
    finally:
        _local.off = before


def enabled() -> bool:
    """Whether a bar created now is shown (see module docstring for the precedence)."""
    if getattr(_local, "off", False):
        return False
    if _override is not None:
        return _override
    flag = os.environ.get("SNTKIT_PROGRESS")
    if flag is not None and flag.strip():
        return flag.strip().lower() not in ("0", "false", "no", "off")
    return sys.stderr.isatty()


class Progress:
    """A tqdm bar over ``iterable`` (or a counter of ``total``) with a postfix of latest values.

    ``show(step=..., loss=..., stable_rank=...)`` sets the values displayed after the bar
    (floats to 4 significant digits); ``update(n)`` advances a bar that has no iterable.
    """

    def __init__(
        self,
        iterable: Iterable[Any] | None = None,
        *,
        total: int | None = None,
        desc: str = "",
        initial: int = 0,
        unit: str = "it",
    ) -> None:
        self.bar = tqdm(
            iterable,
            total=total,
            desc=desc,
            initial=initial,
            unit=unit,
            disable=not enabled(),
            dynamic_ncols=True,
            file=sys.stderr,
        )

    def __iter__(self) -> Iterator[Any]:
        return iter(self.bar)

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def disabled(self) -> bool:
        """Return whether the bar is hidden (no terminal, or progress turned off)."""
        return bool(self.bar.disable)

    def show(self, **values: float | int | str | None) -> None:
        """Display ``values`` after the bar (e.g. ``step``, ``loss`` and a last metric)."""
        if self.bar.disable:
            return
        self.bar.set_postfix(
            {k: f"{v:.4g}" if isinstance(v, float) else v for k, v in values.items()},
            refresh=False,
        )

    def update(self, n: int = 1) -> None:
        """Advance the bar by ``n``."""
        self.bar.update(n)

    def close(self) -> None:
        """Close the bar (a context manager does it on exit)."""
        self.bar.close()
