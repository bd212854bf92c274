"""Your own GRU + readout, trained by Adam with the state-space natural-gradient preconditioner
and tracked by ``sntkit.Tracker`` (sNTK ranks with error bars, eigenvalues, spectral radius, fixed
points and bifurcations) into TensorBoard, a CSV file and a figure.

Run: `python examples/track_your_training.py --steps 600 --out runs/track_your_training`
(both options optional), then `tensorboard --logdir runs/track_your_training/tb`.

The task: recall the sign of the first input pulse at the end of the sequence (a memory task
whose solution needs a pair of attracting fixed points, i.e. a learned pitchfork bifurcation).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from torch import nn
from torch.utils.tensorboard import SummaryWriter

import sntkit
from sntkit.optim import StateSpaceNaturalGradient
from sntkit.tracking import CSVSink


class Model(nn.Module):
    """The user's model: a torch GRU and a linear readout."""

    def __init__(self, n_in: int = 2, hidden: int = 16) -> None:
        super().__init__()
        self.rnn = nn.GRU(n_in, hidden, batch_first=True)
        self.readout = nn.Linear(hidden, 1)

    def forward(self, x: torch.Tensor, h0: torch.Tensor) -> torch.Tensor:
        states, _ = self.rnn(x, h0[None])
        return self.readout(states)


def batch(B: int, T: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """A pulse of sign s at t = 0 on channel 0, noise on channel 1; target s at the end."""
    s = torch.randint(0, 2, (B,), generator=g).float() * 2 - 1
    x = torch.zeros(B, T, 2)
    x[:, 0, 0] = s
    x[:, :, 1] = 0.1 * torch.randn(B, T, generator=g)
    y = torch.zeros(B, T, 1)
    y[:, T // 2 :, 0] = s[:, None]
    return x, y


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--every", type=int, default=25, help="steps between tracker checks")
    ap.add_argument("--out", default="runs/track_your_training")
    args = ap.parse_args()
    out = Path(args.out)
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    B, T, hidden = 32, 20, 16
    model = Model(hidden=hidden)
    h0 = torch.zeros(B, hidden)
    probe_x, _ = batch(16, T, g)  # a fixed probe batch for the sNTK

    # the optimizer trains everything; the preconditioner finds the GRU inside the model, acts
    # on its parameters (the readout is passed through) and rewrites .grad before Adam sees it;
    # like the tracker it starts the probe batch from zeros, as torch does
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    precond = StateSpaceNaturalGradient(
        model,
        inputs=probe_x,
        rank=1,
        damping=1.0,
        update_every=10,
    )
    writer = SummaryWriter(str(out / "tb"))
    tracker = sntkit.Tracker(
        model,
        inputs=probe_x,
        every=args.every,
        metrics=("ranks", "eigenvalues", "spectral_radius", "fixed_points"),
        top_k=3,
        rank_matvecs=16,
        sinks=[writer, CSVSink(out / "sntk.csv")],
        monitor_kwargs={"num_inits": 32, "init_scale": 1.0},
    )
    losses = []
    for step in range(args.steps):
        x, y = batch(B, T, g)
        loss = (model(x, h0) - y).square().mean()
        opt.zero_grad()
        loss.backward()
        precond.step()
        opt.step()
        losses.append(float(loss.detach()))
        writer.add_scalar("train/loss", losses[-1], step)
        row = tracker.step(step, loss=losses[-1])
        if row is not None:
            print(
                f"step {step:4d}  loss {losses[-1]:.4f}  stable rank "
                f"{row['stable_rank']:.2f} ± {row['stable_rank_err']:.2f}  "
                f"fixed points {row['num_fixed_points']}  events {row['num_events']}"
            )
    tracker.close()
    writer.close()
    for e in tracker.events:
        print(f"bifurcation near step {e['step']}: {e['kind']}")
    figure(out / "training.png", losses, tracker)
    print(f"TensorBoard logs, sntk.csv and training.png in {out}")


def figure(path: Path, losses: list[float], tracker: sntkit.Tracker) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in tracker.rows if "stable_rank" in r]
    steps = [r["step"] for r in rows]
    fig, ax = plt.subplots(1, 4, figsize=(14, 3), layout="constrained")
    ax[0].semilogy(losses, linewidth=0.8)
    ax[0].set(xlabel="step", ylabel="loss")
    for kind in ("stable", "participation"):
        values = [r[f"{kind}_rank"] for r in rows]
        errors = [r[f"{kind}_rank_err"] for r in rows]
        ax[1].errorbar(steps, values, yerr=errors, label=kind, capsize=2)
    ax[1].set(xlabel="step", ylabel="sNTK effective rank")
    ax[1].legend()
    ax[2].plot(steps, [r["spectral_radius"] for r in rows])
    ax[2].set(xlabel="step", ylabel="largest gate-block radius of W_hh")
    # many points along a slow manifold (the memory) show up as a growing count
    ax[3].semilogy(steps, [max(1, r.get("num_fixed_points", 0)) for r in rows])
    ax[3].set(xlabel="step", ylabel="fixed points found")
    for a in ax:
        for e in tracker.events:
            a.axvline(e["step"], color="gray", linestyle=":", linewidth=0.8)
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
