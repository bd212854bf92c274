"""Reproductions of the papers' experiments, run folders, checkpoints, figures and sweeps.

The infrastructure every reproduction uses:

* :mod:`~sntkit.experiments.io` — atomic JSON/parquet/figure/checkpoint files;
* :mod:`~sntkit.experiments.run` — :class:`Run`, the run folder with checkpoint/resume;
* :mod:`~sntkit.experiments.registry` — :func:`register` experiments by name and scale;
* :mod:`~sntkit.experiments.sweep` — grids of runs on Dask (:func:`run_sweep`);
* :mod:`~sntkit.experiments.progress` and :mod:`~sntkit.experiments.plotting`.

The reproductions register themselves when imported; the registry finds their modules through
the ``sntkit.experiments`` entry points (loaded lazily by :func:`get_experiment`).
"""

from sntkit.experiments.errors import CheckpointError, ConfigError
from sntkit.experiments.registry import Experiment, get_experiment, register, register_point
from sntkit.experiments.run import Run

__all__ = [
    "CheckpointError",
    "ConfigError",
    "Experiment",
    "Run",
    "get_experiment",
    "register",
    "register_point",
]
