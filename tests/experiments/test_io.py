"""Atomic files: JSON sanitizing, parquet tables, figures and checkpoints."""

import json
import math
import os
import stat
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from matplotlib.figure import Figure

from sntkit.experiments import io
from sntkit.experiments.errors import CheckpointError


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_interrupted_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "out.json"
    io.write_json(target, {"a": 1})

    def explode(tmp: Path) -> None:
        tmp.write_text('{"half": ')
        raise KeyboardInterrupt  # killed mid-write

    with pytest.raises(KeyboardInterrupt):
        io.atomic_write(target, explode)
    assert json.loads(target.read_text()) == {"a": 1}
    assert _names(tmp_path) == ["out.json"]
    with pytest.raises(RuntimeError):
        io.atomic_write(tmp_path / "new.bin", lambda tmp: (_ for _ in ()).throw(RuntimeError()))
    assert _names(tmp_path) == ["out.json"]


def test_every_writer_is_atomic(tmp_path, monkeypatch):
    io.write_parquet(tmp_path / "t.parquet", [{"a": 1}])
    real_fsync = os.fsync

    def crash(fd):  # the content is complete but never made it to its final name
        raise OSError("disk gone")

    monkeypatch.setattr(os, "fsync", crash)
    with pytest.raises(OSError, match="disk gone"):
        io.write_parquet(tmp_path / "t.parquet", [{"a": 2}])
    with pytest.raises(OSError):
        io.save_checkpoint(tmp_path / "c.pt", {"w": torch.ones(1)})
    with pytest.raises(OSError):
        io.save_figure(Figure(), tmp_path / "fig")
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert _names(tmp_path) == ["t.parquet"]
    assert pd.read_parquet(tmp_path / "t.parquet").a.tolist() == [1]
    with pytest.raises(TypeError, match="object"):  # unserializable: fails before writing
        io.write_json(tmp_path / "t.json", {"x": object()})
    assert _names(tmp_path) == ["t.parquet"]


def test_written_files_get_normal_permissions(tmp_path):
    path = io.write_json(tmp_path / "x.json", {})
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask


def test_json_sanitizes_numbers_tensors_and_nan(tmp_path):
    obj = {
        "nan": math.nan,
        "inf": -math.inf,
        "np32": np.float32(1.5),
        "np_nan": np.float64("nan"),
        "i": np.int64(3),
        "b": np.bool_(True),
        "t": torch.tensor([1.0, float("nan")]),
        "t0": torch.tensor(2),
        "arr": np.arange(3),
        "path": Path("a/b"),
        "set": {2, 1},
        "nested": [{"k": (1, np.float16(0.5))}],
        3: "int key",
    }
    io.write_json(tmp_path / "x.json", obj)
    assert json.loads((tmp_path / "x.json").read_text()) == {
        "nan": None,
        "inf": None,
        "np32": 1.5,
        "np_nan": None,
        "i": 3,
        "b": True,
        "t": [1.0, None],
        "t0": 2,
        "arr": [0, 1, 2],
        "path": "a/b",
        "set": [1, 2],
        "nested": [{"k": [1, 0.5]}],
        "3": "int key",
    }
    assert io.read_json(tmp_path / "x.json")["np32"] == 1.5
    with pytest.raises(TypeError, match="complex"):
        io.to_jsonable({"z": 1j})


def test_parquet_keeps_nan_and_inf_and_converts_tensors(tmp_path):
    rows = [
        {"step": 0, "loss": torch.tensor(0.5), "r": np.float64("nan")},
        {"step": 1, "loss": float("inf"), "extra": "x"},
    ]
    df = pd.read_parquet(io.write_parquet(tmp_path / "m.parquet", rows))
    assert df.step.tolist() == [0, 1] and df.loss.iloc[0] == 0.5 and math.isinf(df.loss.iloc[1])
    assert df.r.isna().all() and df.extra.isna().tolist() == [True, False]
    mixed = pd.DataFrame({"v": [1, "auto", None], "n": [1, 2.5, 3]})
    back = pd.read_parquet(io.write_parquet(tmp_path / "mixed.parquet", mixed))
    assert back.v.tolist()[:2] == ["1", "auto"] and back.v.isna().tolist() == [False, False, True]
    assert back.n.tolist() == [1.0, 2.5, 3.0]
    empty = pd.read_parquet(io.write_parquet(tmp_path / "e.parquet", []))
    assert len(empty) == 0


def test_save_figure_writes_png_and_pdf(tmp_path):
    fig = Figure()
    fig.subplots().plot([0, 1], [1, 0])
    paths = io.save_figure(fig, tmp_path / "fig1.v2")
    assert [p.name for p in paths] == ["fig1.v2.png", "fig1.v2.pdf"]
    assert paths[0].read_bytes()[:4] == b"\x89PNG" and paths[1].read_bytes()[:4] == b"%PDF"
    assert [p.name for p in io.save_figure(fig, tmp_path / "g.png")] == ["g.png", "g.pdf"]


def test_checkpoint_roundtrip_converts_numpy(tmp_path):
    path = tmp_path / "c.pt"
    io.save_checkpoint(
        path, {"w": torch.ones(2), "step": 3, "arr": np.arange(3.0), "s": np.float32(2.5)}
    )
    state = io.load_checkpoint(path)
    assert state["step"] == 3 and torch.equal(state["w"], torch.ones(2))
    assert torch.equal(state["arr"], torch.arange(3.0, dtype=torch.float64))
    assert state["s"] == 2.5 and type(state["s"]) is float


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda b: b[:20], "cannot be read"),
        (lambda b: b[: len(b) // 2], "cannot be read"),
        (lambda b: b"garbage", "cannot be read"),
        (lambda b: b"", "cannot be read"),
    ],
)
def test_damaged_checkpoint_gives_one_clear_line(tmp_path, damage, message):
    path = tmp_path / "c.pt"
    io.save_checkpoint(path, {"w": torch.randn(100), "step": 3})
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(CheckpointError, match=message) as info:
        io.load_checkpoint(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_checkpoint_refused_by_weights_only_and_missing(tmp_path):
    path = tmp_path / "unsafe.pt"
    torch.save({"x": np.float64(1.0)}, path)  # written without save_checkpoint's conversion
    with pytest.raises(CheckpointError, match="refuses") as info:
        io.load_checkpoint(path)
    assert "\n" not in str(info.value)
    with pytest.raises(CheckpointError, match="does not exist"):
        io.load_checkpoint(tmp_path / "missing.pt")
    torch.save([1, 2], tmp_path / "list.pt")
    with pytest.raises(CheckpointError, match="not a dict"):
        io.load_checkpoint(tmp_path / "list.pt")
