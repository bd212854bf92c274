"""Your own model, in one call: an nn.GRU + nn.Linear trained with Adam, analysed by sntkit.

The model is an ordinary wrapper module. ``state_ntk(net, inputs=x)`` finds its GRU and its
readout, starts from zeros as torch does, and gives the global-state NTK (paper 004 §3) and the
NTK on the outputs ``ntk.output = C NTK_S Cᵀ + (readout-parameter kernel)``. Before and after
training we report the output-NTK spectrum, the temporal and spatial effective ranks (paper 004
§4.2, participation ratios of the views) and the kernel–target alignment, and draw a figure.

Task: from white-noise inputs, output the input delayed by 3 steps and its running mean.

Run: `python examples/your_own_gru.py --out FIGURE.png --steps 300` (both options optional).
"""

from __future__ import annotations

import argparse

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch
from torch import nn

import sntkit.linalg as sla
from sntkit.ntk import state_ntk


class Net(nn.Module):
    def __init__(self, hidden: int = 32) -> None:
        super().__init__()
        self.rnn = nn.GRU(1, hidden, batch_first=True)
        self.readout = nn.Linear(hidden, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.readout(self.rnn(x)[0])


def task(batch: int, steps: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.randn(batch, steps, 1, generator=generator)
    delayed = torch.nn.functional.pad(x, (0, 0, 3, 0))[:, :steps]
    mean = x.cumsum(1) / torch.arange(1, steps + 1)[:, None]
    return x, torch.cat([delayed, mean], dim=-1)


def analyse(net: Net, x: torch.Tensor, y: torch.Tensor) -> dict[str, object]:
    ntk = state_ntk(net, inputs=x)  # finds net.rnn and net.readout; h0 = zeros
    out = ntk.output  # NTK on the outputs (B, T, 2), readout parameters included
    values, _ = sla.eigsh(out.operator, 10, tol=1e-4, seed=0)
    return {
        "spectrum": values,
        "temporal rank": ntk.view_participation(("batch", "time"), seed=0),
        "spatial rank": ntk.view_participation(("unit",), seed=0),
        "target alignment": out.alignment_cosine(y, seed=0),
    }


def main(argv: list[str] | None = None) -> dict[str, object]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="your_own_gru.png", help="figure file")
    ap.add_argument("--steps", type=int, default=300, help="Adam steps")
    args = ap.parse_args(argv)
    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    net = Net()
    x_probe, y_probe = task(16, 30, g)  # the batch the NTK is analysed on
    before = analyse(net, x_probe, y_probe)

    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    losses = []
    for _ in range(args.steps):
        x, y = task(64, 30, g)
        loss = (net(x) - y).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    after = analyse(net, x_probe, y_probe)

    print(f"temporal rank (of B·T = {16 * 30}), spatial rank (of N = 32): participation ratios")
    for key in ("temporal rank", "spatial rank", "target alignment"):
        print(f"{key:>17}: before {before[key]}, after {after[key]}")
    print(f"loss: {losses[0]:.3f} -> {losses[-1]:.4f}")
    fig, (a, b, c) = plt.subplots(1, 3, figsize=(13, 3.6))
    for label, res in (("before", before), ("after", after)):
        a.semilogy(range(1, 11), res["spectrum"].detach(), "o-", label=f"{label} training")
    a.set(xlabel="index", ylabel="eigenvalue", title="output NTK, top 10")
    a.legend()
    b.semilogy(losses)
    b.set(xlabel="Adam step", ylabel="MSE", title="training")
    keys = ("temporal rank", "spatial rank", "target alignment")
    for i, (label, res) in enumerate((("before", before), ("after", after))):
        est = [res[k] for k in keys]  # type: ignore[index]
        c.bar([j + 0.4 * i for j in range(3)], [e.value for e in est], 0.4, label=label,
              yerr=[e.stderr for e in est], log=True)  # fmt: skip
    c.set_xticks([0.2, 1.2, 2.2], ["temporal rank", "spatial rank", "alignment"])
    c.set(title="effective ranks, kernel–target alignment")
    c.legend()
    fig.tight_layout()
    fig.savefig(args.out, dpi=120)
    print(f"figure: {args.out}")
    return {"before": before, "after": after, "losses": losses}


if __name__ == "__main__":
    main()
