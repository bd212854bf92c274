"""The command line: listing, a tiny student-teacher run, resume equivalence, bad input."""

import json

import pandas as pd
import pytest

from sntkit.cli.main import main
from sntkit.experiments.run import Run

TINY = [
    "--set", "n=8", "--set", "batch=16", "--set", "iterations=40", "--set", "check_every=10",
    "--set", "fine_every=5", "--set", "fine_window=10", "--set", "rank_matvecs=12",
    "--set", "checkpoint_every=10", "--set", "student_gain=1.3",
]  # fmt: skip

OUTPUTS = [
    "config.json",
    "metrics.parquet",
    "events.json",
    "summary.json",
    "teacher.pt",
    "fig1_training.png",
    "fig1_training.pdf",
    "fig1_phase_portraits.png",
    "fig1_phase_portraits.pdf",
]


def test_list(capsys):
    assert main(["reproduce", "--list"]) == 0
    out = capsys.readouterr().out
    assert "student-teacher" in out and "normal-forms" in out


def test_student_teacher_tiny_run_writes_every_output(tmp_path):
    out = tmp_path / "st"
    assert main(["reproduce", "student-teacher", "--out", str(out), *TINY]) == 0
    for name in OUTPUTS:
        assert (out / name).exists(), name
    assert list((out / "checkpoints").glob("step_*.pt"))
    summary = json.loads((out / "summary.json").read_text())
    for key in (
        "events",
        "first_bifurcation_step",
        "first_bifurcation_kind",
        "final_loss",
        "student_stable_fixed_points",
        "teacher_stable_fixed_points",
        "wall_time_s",
    ):
        assert key in summary
    assert summary["teacher_stable_fixed_points"] == 4
    metrics = pd.read_parquet(out / "metrics.parquet")
    assert {"step", "loss", "stable_rank", "stable_rank_err", "num_stable"} <= set(metrics.columns)
    config = json.loads((out / "config.json").read_text())
    assert config["n"] == 8 and config["experiment"] == "student-teacher"


def test_resume_gives_the_same_results(tmp_path, monkeypatch):
    full = tmp_path / "full"
    assert main(["reproduce", "student-teacher", "--out", str(full), *TINY]) == 0
    part = tmp_path / "part"
    real = Run.checkpoint
    calls = {"n": 0}

    def interrupted(self, step, state):
        real(self, step, state)
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(Run, "checkpoint", interrupted)
    assert main(["reproduce", "student-teacher", "--out", str(part), *TINY]) == 130
    assert not (part / "summary.json").exists()
    monkeypatch.setattr(Run, "checkpoint", real)
    assert main(["reproduce", "student-teacher", "--out", str(part), "--resume", *TINY]) == 0
    a = pd.read_parquet(full / "metrics.parquet")
    b = pd.read_parquet(part / "metrics.parquet")
    pd.testing.assert_frame_equal(a, b)
    sa = json.loads((full / "summary.json").read_text())
    sb = json.loads((part / "summary.json").read_text())
    sa.pop("wall_time_s"), sb.pop("wall_time_s")
    assert sa == sb
    assert json.loads((full / "events.json").read_text()) == json.loads(
        (part / "events.json").read_text()
    )


@pytest.mark.parametrize(
    "args, message",
    [
        (["reproduce", "no-such-experiment"], "unknown experiment"),
        (["reproduce", "student-teacher", "--set", "n=-4"], "must be positive"),
        (["reproduce", "student-teacher", "--set", "bogus=1"], "unknown setting"),
        (["reproduce", "student-teacher", "--set", "n=abc"], "must be int"),
        (["reproduce", "student-teacher", "--scale", "huge"], "no scale"),
        (["reproduce", "student-teacher", "--device", "cuda"], "cuda"),
        (["reproduce", "student-teacher", "--set", "n"], "KEY=VALUE"),
        (["reproduce"], "name an experiment"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_bad_input_gives_one_line_and_exit_2(args, message, capsys, tmp_path):
    import torch

    if "cuda" in args and torch.cuda.is_available():
        pytest.skip("a GPU is present")
    code = main(
        [*args, "--out", str(tmp_path / "x")] if args[0] == "reproduce" and len(args) > 1 else args
    )
    err = capsys.readouterr().err
    assert code == 2
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("sntkit: error:") and message in lines[0]
    assert "Traceback" not in err


def test_unwritable_out_and_corrupt_checkpoint(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert main(["reproduce", "student-teacher", "--out", str(blocker / "sub"), *TINY]) == 2
    assert "not writable" in capsys.readouterr().err
    out = tmp_path / "st"
    assert main(["reproduce", "student-teacher", "--out", str(out), *TINY]) == 0
    assert main(["reproduce", "student-teacher", "--out", str(out), *TINY]) == 2
    assert "--resume" in capsys.readouterr().err
    for ck in (out / "checkpoints").glob("step_*.pt"):
        ck.write_bytes(b"garbage")
    assert main(["reproduce", "student-teacher", "--out", str(out), "--resume", *TINY]) == 2
    err = capsys.readouterr().err
    assert "cannot be read" in err and "Traceback" not in err
    changed = [*TINY[:-2], "--set", "student_gain=1.2"]
    assert main(["reproduce", "student-teacher", "--out", str(out), "--resume", *changed]) == 2
    assert "differs" in capsys.readouterr().err


def test_config_files(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("[1, 2")
    assert (
        main(["reproduce", "normal-forms", "--config", str(bad), "--out", str(tmp_path / "o")]) == 2
    )
    assert "not valid" in capsys.readouterr().err
    toml = tmp_path / "c.toml"
    toml.write_text("num_g = 5\nbatch = 4\n")
    assert (
        main(["reproduce", "normal-forms", "--config", str(toml), "--out", str(tmp_path / "nf")])
        == 0
    )
    assert json.loads((tmp_path / "nf" / "config.json").read_text())["num_g"] == 5
