"""A real distributed seed sweep: a ``dask scheduler`` and two ``dask worker`` processes on the
loopback address, one worker killed mid-sweep; every point finishes with the results of a local
run. All processes are bounded in time and always cleaned up."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import sntkit_test_dummies as dummies
from distributed import Client

from sntkit.experiments.sweep import run_seeds

pytestmark = pytest.mark.slow

SETTINGS = {"steps": 300, "checkpoint_every": 20, "rng": "tracked"}
SEEDS = 6
TIMEOUT = 90.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(condition, what: str, deadline: float) -> None:
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.1)


@pytest.fixture
def processes():
    """``start(args) -> Popen`` (own process group, output to a log); all killed at the end."""
    started: list[subprocess.Popen] = []
    env = os.environ | {"OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(
        [str(Path(dummies.__file__).parent), *sys.path])}  # fmt: skip

    def start(args: list[str], log: Path) -> subprocess.Popen:
        with open(log, "wb") as out:
            proc = subprocess.Popen([sys.executable, *args], env=env, stdout=out,
                                    stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def test_seed_sweep_on_a_scheduler_survives_a_killed_worker(tmp_path, processes):
    deadline = time.monotonic() + TIMEOUT
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    marks = tmp_path / "marks"
    marks.mkdir()
    processes(["-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port",
               str(port), "--dashboard-address", ":0"], tmp_path / "scheduler.log")  # fmt: skip
    worker = ["-m", "distributed.cli.dask_worker", address, "--nthreads", "1", "--no-nanny",
              "--host", "127.0.0.1", "--dashboard-address", ":0"]  # fmt: skip
    workers = [processes(worker, tmp_path / f"worker{i}.log") for i in range(2)]
    out = tmp_path / "sweep"
    settings = [f"--set={k}={v}" for k, v in (SETTINGS | {"marks": marks}).items()]
    args = ["reproduce", "counter", "--seeds", str(SEEDS), "--scheduler", address, "--out",
            str(out), "--no-progress", *settings]  # fmt: skip
    # the CLI in its own process; the dummy experiments register when their module is imported
    code = f"import sntkit_test_dummies; from sntkit.cli.main import main; exit(main({args!r}))"
    cli = processes(["-c", code], tmp_path / "cli.log")
    # kill worker 0 while it runs a point: both workers have started points and it has a task
    with Client(address, timeout="20s") as client:
        _wait(lambda: len(client.scheduler_info()["workers"]) == 2, "two workers", deadline)
        first = next(a for a, pid in client.run(os.getpid).items() if pid == workers[0].pid)

        def busy() -> bool:
            return cli.poll() is not None or (
                len(list(marks.iterdir())) >= 2 and bool(client.processing().get(first))
            )

        _wait(busy, "worker 0 running a point", deadline)
    workers[0].kill()
    workers[0].wait(timeout=10)
    _wait(lambda: cli.poll() is not None, "the sweep", deadline)
    log = (tmp_path / "cli.log").read_text()
    assert cli.returncode == 0, log
    distributed = pd.read_parquet(out / "claims.parquet")
    assert (distributed.status == "ok").all() and distributed.seed.tolist() == list(range(SEEDS))
    assert workers[1].poll() is None  # the other worker did the rest
    starts = [dummies.starts(marks, f"seed={s}") for s in range(SEEDS)]
    assert sum(starts) == SEEDS + 1, starts  # the killed worker's point ran again (resumed)

    local, stats = run_seeds("counter", SEEDS, out=tmp_path / "local", base=SETTINGS,
                             processes=False, workers=2)  # fmt: skip
    columns = ["seed", "final_loss", "w", "b", "loss_sum", "steps"]
    pd.testing.assert_frame_equal(distributed[columns], local[columns])
    assert json.loads((out / "claims.json").read_text())["statistics"] == stats
