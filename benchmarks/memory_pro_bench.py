"""Cost of one Memory-Pro training step and of the NTK analyses at the paper-004 scale (Fig. 4).

At N = 256 units, B = 500 trials, T = 90 steps (``--quick``: 64, 64, 45), float32 unless stated,
one thread by default. Unit: the minimal plain-torch SGD step of the paper's GRU (``torch.nn.GRU``
+ ``nn.Linear`` readout, MSE, ``torch.optim.SGD``; no sntkit code). Measured in one run, medians
of repeats:

* the GRU's forward + backward through the fused ``torch.nn.GRU`` kernel vs sntkit's
  :class:`~sntkit.models.GRU` cell (same equations), in float32 and float64;
* the leaky tanh RNN of the authors' code (:class:`~sntkit.models.RNN`, ``form="post"``,
  leak 0.7) in float32 and float64;
* one Shampoo step (``variant="torch_optimizer"``, preconditioners every step) of each model;
* one NTK analysis of the run (``memory_pro.analyse``: Fig. 3B cosine + Fig. 4F alignment on
  the 20-trial analysis batch) and, where the scale computes them (``init_spectra``: quick
  only), the spectra at initialization (``analyse_init``, Fig. 3C–D: thousands of NTK products,
  unfinished after 6 minutes per network in a paper-scale probe on these CPUs, which is why
  that scale skips them).

It ends with the projected wall time of ``sntkit reproduce memory-pro --scale paper`` for each
model as a function of the number of training steps and of the number of NTK analyses.

    python benchmarks/memory_pro_bench.py [--quick] [--threads K] [--json PATH]
"""

from __future__ import annotations

import json
import os
import sys
import time

import torch
from torch import nn

sys.path.insert(0, os.path.dirname(__file__))
from common import bench_parser, machine, parse, table, timeit
from sntkit.experiments import memory_pro as mp
from sntkit.models import GRU
from sntkit.optim import Shampoo


def fwd_bwd(model: nn.Module, x: torch.Tensor, y: torch.Tensor):
    def step() -> None:
        model.zero_grad()
        (model(x)[0] - y).square().mean().backward()

    return step


def opt_step(model: nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor):
    def step() -> None:
        opt.zero_grad()
        (model(x)[0] - y).square().mean().backward()
        opt.step()

    return step


class PlainGRU(nn.Module):
    """The unit's network: ``torch.nn.GRU`` + linear readout, torch defaults."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.rnn = nn.GRU(3, n, batch_first=True)
        self.readout = nn.Linear(n, 3)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.rnn(x)[0]
        return self.readout(h), h


class CellReadout(nn.Module):
    """sntkit GRU cell + readout: the same network as the fused one, stepped in Python."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.cell = GRU(n, 3, generator=torch.Generator().manual_seed(0))
        self.readout = nn.Linear(n, 3)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.cell(x.new_zeros(x.shape[0], self.cell.n_state), x)
        return self.readout(h), h


def once(fn):
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main() -> None:
    args = parse(bench_parser("N=64, B=64, T=45 smoke run"))
    scale = "quick" if args.quick else "paper"
    cfg = dict(mp.SCALES[scale], seed=0, scale=scale)
    n, B, P = cfg["n"], cfg["batch"], cfg["period"]
    task = mp.MemoryPro(P, P, P, 0.02)
    batch = task.batch(task.fixed_angles(B), train=True, generator=torch.Generator().manual_seed(1))
    x, y = batch.inputs, batch.targets
    reps = 3 if not args.quick else 5
    rows, out = [], {}

    def bench(label: str, key: str, fn, unit: float | None = None) -> float:
        t = timeit(fn, repeats=reps)
        out[key] = t
        rows.append((label, f"{t:.3f}", "" if unit is None else f"{t / unit:.2f}"))
        print(*rows[-1], sep=" | ", flush=True)  # progress: the paper-scale run takes minutes
        return t

    ref = PlainGRU(n)
    sgd = torch.optim.SGD(ref.parameters(), lr=0.01)
    unit = bench("SGD step, plain torch nn.GRU (unit)", "unit_sgd", opt_step(ref, sgd, x, y))
    nets = {m: mp.resolve(cfg | {"model": m}) for m in ("gru", "leaky_rnn")}
    gru = mp.build_network("network1", nets["gru"])
    bench("GRU fwd+bwd, fused nn.GRU, float32", "gru_fused_f32", fwd_bwd(gru, x, y), unit)
    cell = CellReadout(n)
    bench("GRU fwd+bwd, sntkit GRU cell, float32", "gru_cell_f32", fwd_bwd(cell, x, y), unit)
    rnn = mp.build_network("network1", nets["leaky_rnn"])
    bench("leaky RNN fwd+bwd, sntkit RNN cell, float32", "rnn_f32", fwd_bwd(rnn, x, y), unit)
    for label, key, model in (("GRU", "gru_fused", "gru"), ("leaky RNN", "rnn", "leaky_rnn")):
        net64 = mp.build_network("network1", nets[model]).double()
        kind = "fused nn.GRU" if model == "gru" else "sntkit RNN cell"
        bench(f"{label} fwd+bwd, {kind}, float64", f"{key}_f64",
              fwd_bwd(net64, x.double(), y.double()), unit)  # fmt: skip
    models = (("GRU", "gru", gru), ("leaky RNN", "leaky_rnn", rnn))
    for name, key, model in models:
        sh = Shampoo(model.parameters(), lr=1e-3, variant="torch_optimizer")
        label = f"{name} Shampoo step (torch_optimizer variant, every step)"
        bench(label, f"{key}_shampoo_step", opt_step(model, sh, x, y), unit)
    an = task.batch(task.fixed_angles(cfg["analysis_batch"]), train=False)
    an_modes, _ = mp.target_modes(an.targets)
    for name, key, model in models:
        t = once(lambda m=model, c=nets[key]: mp.analyse(m, an.inputs, an_modes, c))
        out[f"{key}_analysis"] = t
        rows.append((f"{name}: one NTK analysis (Fig. 3B + 4F)", f"{t:.1f}", f"{t / unit:.0f}"))
        print(*rows[-1], sep=" | ", flush=True)
        if not nets[key]["init_spectra"]:  # skipped by the paper-scale run as well
            out[f"{key}_analysis_init"] = 0.0
            continue
        t = once(lambda m=model, c=nets[key]: mp.analyse_init(m, an.inputs, c))
        out[f"{key}_analysis_init"] = t
        rows.append((f"{name}: analyses at init (Fig. 3C-D)", f"{t:.1f}", f"{t / unit:.0f}"))
    print(f"machine: {machine()}; N={n}, B={B}, T={3 * P}, float32 unless stated")
    print(table(rows, ("quantity", "seconds", "× SGD step")))
    print("\nprojected paper-scale run (3 runs: SGD, Shampoo, SGD on network 2):")
    for key, fwd in (("gru", "gru_fused_f32"), ("leaky_rnn", "rnn_f32")):
        for steps, analyses in ((1200, 5), (2000, 3)):
            total = steps * (2 * out[fwd] + out[f"{key}_shampoo_step"])
            total += 3 * analyses * out[f"{key}_analysis"] + 2 * out[f"{key}_analysis_init"]
            print(f"  {key}: {steps} steps, {analyses} analyses per run: {total / 60:.0f} min")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"N": n, "B": B, "T": 3 * P, "seconds": out}, f, indent=2)


if __name__ == "__main__":
    main()
