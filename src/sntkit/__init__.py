"""sntkit — the state-space NTK toolkit.

Layers (imports flow downward only): ``operators`` → ``linalg`` → ``models`` → ``ntk`` →
``dynamics`` → ``optim`` → ``tracking`` → ``tasks`` → ``experiments`` → ``cli``.

``sntkit.Tracker`` (:class:`sntkit.tracking.Tracker`) is imported on first use, so
``import sntkit`` stays cheap.
"""

from typing import Any

__version__ = "0.1.0"
__all__ = ["Tracker"]


def __getattr__(name: str) -> Any:
    if name == "Tracker":
        from sntkit.tracking import Tracker

        return Tracker
    raise AttributeError(f"module 'sntkit' has no attribute {name!r}")
