"""Shared check of resume tests: an interrupted-and-resumed run equals an uninterrupted one."""

import json

import pandas as pd


def assert_same_results(a, b):
    """Same ``metrics.parquet`` and ``summary.json`` (wall time aside) in run folders a, b."""
    pd.testing.assert_frame_equal(
        pd.read_parquet(a / "metrics.parquet"), pd.read_parquet(b / "metrics.parquet")
    )
    sa = json.loads((a / "summary.json").read_text())
    sb = json.loads((b / "summary.json").read_text())
    sa.pop("wall_time_s", None), sb.pop("wall_time_s", None)
    assert sa == sb
