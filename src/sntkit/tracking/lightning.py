"""A Lightning ``Callback`` that runs a :class:`~sntkit.tracking.Tracker` during ``fit``.

Needs the optional extra ``pip install sntkit[lightning]``::

    trainer = lightning.Trainer(callbacks=[TrackerCallback(tracker)])

After every training batch it calls ``tracker.step(trainer.global_step, loss=...)`` with the
batch loss from the ``training_step`` output (a tensor or a dict with ``"loss"``) and logs the
row's numbers through ``pl_module.log`` under ``sntk/<key>`` (so every Lightning logger gets
them). NaN losses reach the tracker and produce its warning row.
"""

from __future__ import annotations

import math
from typing import Any

try:
    from lightning.pytorch.callbacks import Callback
except ImportError as err:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "sntkit.tracking.lightning needs Lightning: pip install 'sntkit[lightning]'"
    ) from err

import torch

from sntkit.tracking.tracker import Tracker


class TrackerCallback(Callback):
    """Runs ``tracker`` after each training batch (see module docstring)."""

    def __init__(self, tracker: Tracker, *, log: bool = True) -> None:
        if not isinstance(tracker, Tracker):
            raise TypeError(f"tracker must be an sntkit Tracker, got {type(tracker).__name__}")
        super().__init__()
        self.tracker = tracker
        self.log = log

    def on_train_batch_end(
        self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        """Feed the batch's loss to the tracker; log its row to Lightning when ``log``."""
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        value = float(loss.detach()) if isinstance(loss, torch.Tensor) else None
        row = self.tracker.step(int(trainer.global_step), loss=value)
        if row is None or not self.log:
            return
        for k, v in row.items():
            numeric = isinstance(v, int | float) and not isinstance(v, bool)
            if k != "step" and numeric and math.isfinite(v):
                pl_module.log(f"sntk/{k}", float(v), on_step=True, on_epoch=False)

    def state_dict(self) -> dict[str, Any]:
        """Return the tracker's state for Lightning's checkpoint."""
        return self.tracker.state_dict()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore the tracker from Lightning's checkpoint."""
        self.tracker.load_state_dict(state_dict)
