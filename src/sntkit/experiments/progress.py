"""Progress bars for long runs (tqdm on stderr; off when not a terminal or SNTKIT_PROGRESS=0)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

from tqdm import tqdm

T = TypeVar("T")


def enabled() -> bool:
    flag = os.environ.get("SNTKIT_PROGRESS")
    if flag is not None:
        return flag not in ("0", "false", "no")
    return sys.stderr.isatty()


class Progress:
    """A tqdm bar over ``iterable`` whose postfix shows the latest values given to :meth:`show`."""

    def __init__(self, iterable: Iterable[T], *, total: int | None = None, desc: str = "") -> None:
        self.bar = tqdm(iterable, total=total, desc=desc, disable=not enabled(), dynamic_ncols=True)

    def __iter__(self) -> Iterator[Any]:
        return iter(self.bar)

    def show(self, **values: float | int | str) -> None:
        self.bar.set_postfix(
            {k: f"{v:.4g}" if isinstance(v, float) else v for k, v in values.items()}, refresh=False
        )

    def close(self) -> None:
        self.bar.close()
