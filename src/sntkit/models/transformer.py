"""A single self-attention block followed by an MLP (paper 004 §5.4, App. A.2.3, A.5.3).

For inputs ``X ∈ R^{B×T×n_in}``::

    Q = X W_Q^T,  K = X W_K^T,  Z = X W_V^T                      (heads split the n_attn axis)
    A = softmax(Q K^T / √d) Z                                      (d = n_attn / heads)
    H_1 = Y_attn = A W_O^T
    H_{l+1} = σ(H_l W_l^T + b_l),  l = 1..L-1;     Y = H_L W_L^T + b_L

with ``L = n_layers`` MLP weight matrices (``n_layers = 3``: two hidden layers of ``n_mlp``
units and the readout). Weight sites (App. A.5.3): ``X`` (three times: query, key, value),
``A``, ``H_1..H_L`` and the constant 1 for biases, one pre-activation group per weight matrix.

The *global state* is the collection of activations computed by trained weights, stacked on the
unit axis: ``cat(A, H_1, …, H_L, Y)`` of shape ``(B, T, n_attn + n_attn + (L−1)·n_mlp + n_out)``.
``A`` and the ``H`` feed the next trained weights (the sites of App. A.5.3) and ``Y`` is the
readout; ``Q, K, Z`` are internal to the attention map (sntkit's choice, documented in
REPRODUCTION.md).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from sntkit.models.activations import Activation, get_activation
from sntkit.models.init import init_parameters_
from sntkit.models.sites import Params, SiteUse, preactivation


class AttentionMLP(nn.Module):
    """Self-attention block + MLP with weight-site bookkeeping (see module docstring)."""

    def __init__(
        self,
        n_in: int,
        *,
        n_attn: int = 64,
        n_mlp: int = 128,
        n_layers: int = 3,
        n_out: int = 1,
        heads: int = 1,
        activation: str | Activation = "relu",
        causal: bool = False,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str = "cpu",
    ) -> None:
        super().__init__()
        for name, v in (("n_in", n_in), ("n_attn", n_attn), ("n_mlp", n_mlp), ("n_out", n_out)):
            if v < 1:
                raise ValueError(f"{name} must be >= 1, got {v}")
        if n_layers < 1:
            raise ValueError(f"n_layers must be >= 1, got {n_layers}")
        if heads < 1 or n_attn % heads:
            raise ValueError(f"heads={heads} must divide n_attn={n_attn}")
        self.n_in, self.n_attn, self.n_mlp, self.n_out = n_in, n_attn, n_mlp, n_out
        self.n_layers, self.heads, self.causal = n_layers, heads, causal
        self.phi = get_activation(activation)
        kw: dict[str, Any] = {"dtype": dtype, "device": device}
        uses = []
        for g in ("q", "k", "v"):
            setattr(self, f"W_{g.upper()}", nn.Parameter(torch.empty(n_attn, n_in, **kw)))
            uses.append(SiteUse(f"W_{g.upper()}", "x", g))
        self.W_O = nn.Parameter(torch.empty(n_attn, n_attn, **kw))
        uses.append(SiteUse("W_O", "A", "o"))
        widths = [n_attn] + [n_mlp] * (n_layers - 1) + [n_out]
        for layer in range(1, n_layers + 1):
            w = nn.Parameter(torch.empty(widths[layer], widths[layer - 1], **kw))
            b = nn.Parameter(torch.empty(widths[layer], **kw))
            self.register_parameter(f"W_{layer}", w)
            self.register_parameter(f"b_{layer}", b)
            uses += [
                SiteUse(f"W_{layer}", f"H_{layer}", f"m{layer}"),
                SiteUse(f"b_{layer}", "one", f"m{layer}"),
            ]
        self.site_uses = tuple(uses)
        self.widths = widths
        for p in self.parameters():  # Xavier-normal per matrix, zero biases
            init_parameters_(p, p.shape[0], generator=generator)

    # ------------------------------------------------------------------ structure
    def group_sizes(self) -> dict[str, int]:
        """Return the attention and MLP pre-activation groups and their sizes."""
        sizes = {"q": self.n_attn, "k": self.n_attn, "v": self.n_attn, "o": self.n_attn}
        sizes |= {f"m{layer}": self.widths[layer] for layer in range(1, self.n_layers + 1)}
        return sizes

    @property
    def state_size(self) -> int:
        """Units of the global state ``cat(A, H_1, …, H_L, Y)``."""
        return self.n_attn + sum(self.widths)

    def state_blocks(self) -> dict[str, slice]:
        """Where each activation sits on the state's unit axis."""
        names = ["A"] + [f"H_{layer}" for layer in range(1, self.n_layers + 1)] + ["Y"]
        sizes = [self.n_attn, *self.widths]
        out, start = {}, 0
        for n, s in zip(names, sizes, strict=True):
            out[n] = slice(start, start + s)
            start += s
        return out

    def params(self) -> dict[str, torch.Tensor]:
        """Return the parameters by name (the module's own tensors)."""
        return dict(self.named_parameters())

    # ------------------------------------------------------------------ evaluation
    def state_lifted(
        self,
        params: Params,
        x: torch.Tensor,
        offsets: Mapping[str, torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Global state ``(B, T, state_size)`` with ``pre[g] += offsets[g]``, and the sites."""
        if x.ndim != 3 or x.shape[-1] != self.n_in:
            raise ValueError(f"x must have shape (B, T, {self.n_in}), got {tuple(x.shape)}")
        sites = {"x": x, "one": torch.ones_like(x[..., :1])}

        def pre(g: str) -> torch.Tensor:
            return preactivation(self.site_uses, params, sites, g, offsets)

        B, T, _ = x.shape
        h, d = self.heads, self.n_attn // self.heads
        q, k, v = (pre(g).reshape(B, T, h, d).transpose(1, 2) for g in ("q", "k", "v"))
        scores = q @ k.transpose(-1, -2) / math.sqrt(d)
        if self.causal:
            mask = torch.ones(T, T, dtype=torch.bool, device=x.device).triu(1)
            scores = scores.masked_fill(mask, float("-inf"))
        A = (torch.softmax(scores, dim=-1) @ v).transpose(1, 2).reshape(B, T, self.n_attn)
        sites["A"] = A
        outs = [A]
        H = pre("o")
        for layer in range(1, self.n_layers + 1):
            sites[f"H_{layer}"] = H
            outs.append(H)
            z = pre(f"m{layer}")
            H = z if layer == self.n_layers else self.phi(z)
        outs.append(H)  # Y
        return torch.cat(outs, dim=-1), sites

    def global_state(self, params: Params, x: torch.Tensor) -> torch.Tensor:
        """Return the global state ``(B, T, state_size)`` at ``params``."""
        return self.state_lifted(params, x)[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the readout ``Y`` of shape ``(B, T, n_out)``."""
        return self.global_state(self.params(), x)[..., -self.n_out :]
