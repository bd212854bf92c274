"""The ``sntkit`` command: help, listing, runs, resume, sweeps, and one-line errors (exit 2)."""

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

# the dummy experiments live beside the experiment-infrastructure tests
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments"))
import sntkit_test_dummies as dummies

from sntkit import __version__
from sntkit.cli.main import main

TINY = ["--set", "steps=12", "--set", "checkpoint_every=4"]


def _one_error_line(err: str, message: str) -> None:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("sntkit: error:") and message in lines[0], lines[0]
    assert "Traceback" not in err


def test_version_and_help(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"sntkit {__version__}"
    for args in (["--help"], ["reproduce", "--help"], ["sweep", "--help"]):
        assert main(args) == 0
        out = capsys.readouterr().out
        assert "usage: sntkit" in out
    assert main([]) == 2 and "reproduce" in capsys.readouterr().err


def test_console_script_in_a_real_process(tmp_path):
    script = Path(sys.executable).with_name("sntkit")  # installed by pip from pyproject.toml
    done = subprocess.run([script, "--version"], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.strip() == f"sntkit {__version__}"
    bad = [script, "reproduce", "student-teacher", "--set", "n=-4", "--out", tmp_path / "x"]
    done = subprocess.run(bad, capture_output=True, text=True)
    assert done.returncode == 2 and done.stdout == ""
    _one_error_line(done.stderr, "'n' must be positive")


def test_list(capsys):
    assert main(["reproduce", "--list"]) == 0
    out = capsys.readouterr().out
    lines = {ln.split()[0]: ln for ln in out.splitlines()}
    assert "student-teacher" in lines and "normal-forms" in lines
    assert "SGD on a 2-parameter model" in lines["counter"]
    assert "[scales: quick, paper]" in lines["counter"]
    assert "(point function)" in lines["quadratic-point"]


def test_reproduce_writes_the_run_folder(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["reproduce", "counter", "--seed", "3", "--no-progress", *TINY]) == 0
    out = tmp_path / "runs" / "counter-quick-seed3"  # the default folder
    for name in ("config.json", "metrics.parquet", "events.json", "summary.json"):
        assert (out / name).exists(), name
    printed = capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    assert f"results in {Path('runs') / 'counter-quick-seed3'}" in printed
    assert json.loads(printed[: printed.rindex("}") + 1]) == summary
    config = json.loads((out / "config.json").read_text())
    assert config["seed"] == 3 and config["steps"] == 12 and config["scale"] == "quick"


def test_interrupted_run_resumes_to_identical_results(tmp_path, capsys, monkeypatch):
    full, part = tmp_path / "full", tmp_path / "part"
    assert main(["reproduce", "counter", "--out", str(full), *TINY]) == 0
    monkeypatch.setitem(dummies.CRASH, "at", 6)
    monkeypatch.setitem(dummies.CRASH, "exc", KeyboardInterrupt())
    assert main(["reproduce", "counter", "--out", str(part), *TINY]) == 130
    assert "continue with --resume" in capsys.readouterr().err
    monkeypatch.setitem(dummies.CRASH, "at", None)
    assert main(["reproduce", "counter", "--out", str(part), *TINY]) == 2
    assert "pass --resume" in capsys.readouterr().err
    assert main(["reproduce", "counter", "--out", str(part), "--resume", *TINY]) == 0
    pd.testing.assert_frame_equal(
        pd.read_parquet(full / "metrics.parquet"), pd.read_parquet(part / "metrics.parquet")
    )
    for name in ("summary.json", "events.json"):
        assert (full / name).read_text() == (part / name).read_text()
    assert main(["reproduce", "counter", "--out", str(part), "--resume", *TINY]) == 0
    assert "already finished" in capsys.readouterr().err


def test_config_files_yaml_toml_and_a_saved_config(tmp_path, capsys):
    yml = tmp_path / "c.yaml"
    yml.write_text("steps: 6\nlr: 0.1\ncheckpoint_every: 3\n")
    assert main(["reproduce", "counter", "--config", str(yml), "--set", "lr=0.2",
                 "--out", str(tmp_path / "y")]) == 0  # fmt: skip
    saved = json.loads((tmp_path / "y" / "config.json").read_text())
    assert saved["steps"] == 6 and saved["lr"] == 0.2  # --set wins over the file
    toml = tmp_path / "c.toml"
    toml.write_text('steps = 5\nscale = "paper"\n')
    assert main(["reproduce", "counter", "--config", str(toml), "--out", str(tmp_path / "t")]) == 0
    saved = json.loads((tmp_path / "t" / "config.json").read_text())
    assert saved["steps"] == 5 and saved["scale"] == "paper" and saved["checkpoint_every"] == 50
    again = tmp_path / "again"  # a run's config.json repeats it, experiment name included
    assert main(["reproduce", "--config", str(tmp_path / "y" / "config.json"), "--out",
                 str(again)]) == 0  # fmt: skip
    assert (again / "summary.json").read_text() == (tmp_path / "y" / "summary.json").read_text()
    capsys.readouterr()


def _bad_inputs(tmp: Path) -> list[tuple[list[str], str]]:
    run = ["reproduce", "counter", "--out", str(tmp / "x")]
    (tmp / "blocker").write_text("a file")
    (tmp / "bad.yaml").write_text("[1, 2")
    (tmp / "list.yaml").write_text("- 1\n- 2\n")
    (tmp / "bad.toml").write_text("steps = = 1")
    (tmp / "c.ini").write_text("")
    (tmp / "other.yaml").write_text("experiment: normal-forms\n")
    return [
        (["reproduce", "no-such-experiment"], "unknown experiment 'no-such-experiment'"),
        ([*run, "--set", "steps=-4"], "'steps' must be positive"),
        ([*run, "--set", "lr=0"], "'lr' must be positive"),
        ([*run, "--set", "bogus=1"], "unknown setting 'bogus'"),
        ([*run, "--set", "steps=abc"], "'steps' must be int"),
        ([*run, "--set", "steps"], "--set expects KEY=VALUE"),
        ([*run, "--set", "fail_mode=never"], "must be one of"),
        ([*run, "--scale", "huge"], "no scale 'huge'"),
        ([*run, "--seed", "-1"], "'seed' must be >= 0"),
        ([*run, "--seed", "x"], "invalid int value"),
        ([*run, "--device", "tpu"], "device must be 'cpu', 'cuda' or 'cuda:N'"),
        ([*run, "--device", "cuda"], "no CUDA device is available"),
        ([*run, "--config", str(tmp / "bad.yaml")], "is not valid"),
        ([*run, "--config", str(tmp / "bad.toml")], "is not valid"),
        ([*run, "--config", str(tmp / "list.yaml")], "must hold a mapping"),
        ([*run, "--config", str(tmp / "c.ini")], "must end in .yaml"),
        ([*run, "--config", str(tmp / "missing.yaml")], "cannot read config file"),
        ([*run, "--config", str(tmp / "other.yaml")], "names experiment 'counter' but"),
        ([*run, "--keep-checkpoints", "0"], "--keep-checkpoints must be >= 1"),
        (["reproduce", "counter", "--out", str(tmp / "blocker" / "sub")], "not writable"),
        (["reproduce"], "name an experiment"),
        (["frobnicate"], "invalid choice"),
        (["reproduce", "counter", "--bogus"], "unrecognized arguments"),
        (["sweep", "counter", "--grid", "lr"], "--grid expects KEY=V1,V2"),
        (["sweep", "counter", "--grid", "lr=0.1,-1", "--out", str(tmp / "s")], "must be positive"),
        (["sweep", "counter", "--out", str(tmp / "s")], "a sweep needs a grid"),
        (["sweep", "counter", "--grid", "lr=1", "--workers", "0"], "workers must be >= 1"),
        (["sweep", "--grid", "lr=1"], "name an experiment"),
    ]


def test_bad_input_gives_one_line_and_exit_2(tmp_path, capsys):
    for args, message in _bad_inputs(tmp_path):
        if "cuda" in args and torch.cuda.is_available():
            continue
        code = main(args)
        err = capsys.readouterr().err
        assert code == 2, (args, err)
        _one_error_line(err, message)
    assert not (tmp_path / "x").exists()  # nothing was started


def test_damaged_checkpoint_and_changed_settings_on_resume(tmp_path, capsys, monkeypatch):
    out = tmp_path / "r"
    monkeypatch.setitem(dummies.CRASH, "at", 9)
    assert main(["reproduce", "counter", "--out", str(out), *TINY]) == 1
    _one_error_line(capsys.readouterr().err, "RuntimeError: injected crash")
    monkeypatch.setitem(dummies.CRASH, "at", None)
    assert main(["reproduce", "counter", "--out", str(out), "--resume", *TINY,
                 "--set", "lr=0.5"]) == 2  # fmt: skip
    _one_error_line(capsys.readouterr().err, "config differs in lr (saved 0.05, now 0.5)")
    for ckpt in (out / "checkpoints").glob("step_*.pt"):
        ckpt.write_bytes(ckpt.read_bytes()[:50])
    assert main(["reproduce", "counter", "--out", str(out), "--resume", *TINY]) == 2
    _one_error_line(capsys.readouterr().err, "cannot be read")


def test_sweep_from_a_file_and_flags(tmp_path, capsys):
    spec = tmp_path / "sweep.yaml"
    spec.write_text(
        "experiment: counter\ngrid:\n  lr: [0.05, 0.1]\nsteps: 6\nrng: tracked\n"
        f"marks: {tmp_path}\nfail_point: lr=0.1\n"
    )
    (tmp_path / "BLOCK-lr=0.1").touch()
    args = ["sweep", "--config", str(spec), "--out", str(tmp_path / "s"), "--threads",
            "--workers", "2", "--retries", "0"]  # fmt: skip
    assert main(args) == 1  # a failed point is reported
    out, err = capsys.readouterr()
    assert "2 points: 1 ok (0 finished before), 1 failed" in out
    assert "failed: points/lr=0.1: RuntimeError: injected failure" in err
    (tmp_path / "BLOCK-lr=0.1").unlink()
    assert main(args) == 0
    assert "2 points: 2 ok (1 finished before), 0 failed" in capsys.readouterr().out
    table = pd.read_parquet(tmp_path / "s" / "results.parquet")
    assert table.status.tolist() == ["ok", "ok"] and table.steps.tolist() == [6, 6]


def test_unexpected_failure_is_one_line_with_exit_1(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(dummies.CRASH, "at", 0)
    monkeypatch.setitem(dummies.CRASH, "exc", ZeroDivisionError("boom\nsecond line"))
    assert main(["reproduce", "counter", "--out", str(tmp_path / "r"), *TINY]) == 1
    _one_error_line(capsys.readouterr().err, "ZeroDivisionError: boom second line")
    monkeypatch.setenv("SNTKIT_DEBUG", "1")
    with pytest.raises(ZeroDivisionError):
        main(["reproduce", "counter", "--out", str(tmp_path / "d"), *TINY])


def test_show_config_prints_settings_and_defaults(capsys, tmp_path):
    args = ["reproduce", "counter", "--set", "lr=0.5", "--seed", "3", "--show-config"]
    assert main([*args, "--out", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    assert not (tmp_path / "run").exists()  # nothing is run
    lines = dict(ln.split(": ", 1) for ln in out.splitlines() if not ln.startswith("#"))
    assert lines["lr"] == "0.5  # default 0.05" and lines["seed"] == "3  # default 0"
    assert lines["steps"] == "20" and lines["experiment"] == '"counter"'
    assert set(dummies.COUNTER) | {"seed", "device", "scale"} <= set(lines)
    # the printed settings are a valid --config file that reproduces them
    config = tmp_path / "c.yaml"
    config.write_text(out)
    assert main(["reproduce", "--config", str(config), "--show-config"]) == 0
    assert capsys.readouterr().out == out
