"""``nn.MultiheadAttention`` and ``nn.TransformerEncoderLayer`` in the global-state view.

Paper 004 App. A.5 treats a feedforward block like a recurrent model whose global state is the
collection of activations computed by trained weights and fed to the next trained weights. The
adapters below re-express the torch modules' forward with torch primitives (reading the module's
own parameters under their own names, never copying or modifying them; dropout off) and expose
what :func:`sntkit.ntk.feedforward_ntk` needs: ``named_parameters()``, ``site_uses``,
``group_sizes()`` and ``state_lifted(params, x, offsets)``.

Self-attention (``E`` units, ``h`` heads, ``d = E/h``) on ``U ∈ R^{B×T×E}``::

    [Q | K | V] = U W_inᵀ + b_in,   A = softmax(Q Kᵀ/√d) V  (per head),   O = A W_oᵀ + b_o

Encoder layer (``LN`` = layer norm, ``σ`` its activation; dropout off)::

    post-norm (norm_first=False):  U = X,         Z = LN_1(X + O),  Y = LN_2(Z + M)
    pre-norm  (norm_first=True):   U = LN_1(X),   R = X + O,        Z = LN_2(R),  Y = R + M
    with H = σ(Z W_1ᵀ + b_1),  M = H W_2ᵀ + b_2.

Global states (units stacked): attention ``cat(A, O)``; encoder layer ``cat(A, Z, H, Y)``, and
``U`` first for pre-norm (``U`` then depends on the trained ``LN_1``). ``A``, ``Z``, ``H`` (and
``U``) are the weight sites of ``W_o``, ``W_1``, ``W_2`` (and ``W_in``); ``O`` / ``Y`` is the
output. Layer-norm gains and biases are trained elementwise, not through weight sites: they
enter ``J`` and the NTK, but the Kronecker core needs them frozen (``trainable=``).

Inputs are always ``(B, T, E)``, whatever the module's ``batch_first``. Attention masks are not
supported (analysis of unmasked self-attention, as in App. A.5).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping

import torch
from torch import nn
from torch.nn import functional as F

from sntkit.models.sites import Params, SiteUse, preactivation


class _TorchBlock:
    """Shared bookkeeping: the wrapped module's parameters and weight sites."""

    module: nn.Module
    site_uses: tuple[SiteUse, ...]

    def named_parameters(self) -> Iterator[tuple[str, nn.Parameter]]:
        return self.module.named_parameters()

    def params(self) -> dict[str, torch.Tensor]:
        return dict(self.named_parameters())

    def _check(self, x: torch.Tensor, E: int) -> None:
        if x.ndim != 3 or x.shape[-1] != E:
            raise ValueError(
                f"x must have shape (B, T, {E}) (always batch first here), got {tuple(x.shape)}"
            )


def _attention_uses(prefix: str, E: int, bias: bool, site: str) -> list[SiteUse]:
    w, b = prefix + "in_proj_weight", prefix + "in_proj_bias"
    uses = []
    for i, g in enumerate(("q", "k", "v")):
        rows = slice(i * E, (i + 1) * E)
        uses.append(SiteUse(w, site, g, rows))
        if bias:
            uses.append(SiteUse(b, "one", g, rows))
    uses.append(SiteUse(prefix + "out_proj.weight", "A", "o"))
    if bias:
        uses.append(SiteUse(prefix + "out_proj.bias", "one", "o"))
    return uses


def _check_attention(mha: nn.MultiheadAttention) -> None:
    if not mha._qkv_same_embed_dim:
        raise ValueError(
            "nn.MultiheadAttention with kdim/vdim != embed_dim (separate q/k/v projections) is "
            "not supported; use kdim = vdim = embed_dim"
        )
    if mha.bias_k is not None or mha.add_zero_attn:
        raise ValueError("add_bias_kv and add_zero_attn are not supported; leave them off")


def _attend(
    mha: nn.MultiheadAttention,
    pre: Callable[[str], torch.Tensor],
) -> torch.Tensor:
    """Return ``A`` (B, T, E) from the q/k/v pre-activations of ``pre(group)``."""
    q, k, v = (pre(g) for g in ("q", "k", "v"))
    B, T, E = q.shape
    h = mha.num_heads
    d = E // h
    q, k, v = (t.reshape(B, T, h, d).transpose(1, 2) for t in (q, k, v))
    weights = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d), dim=-1)
    return (weights @ v).transpose(1, 2).reshape(B, T, E)


class TorchAttention(_TorchBlock):
    """Self-attention ``nn.MultiheadAttention(x, x, x)``; global state ``cat(A, O)``."""

    module: nn.MultiheadAttention

    def __init__(self, module: nn.MultiheadAttention) -> None:
        _check_attention(module)
        self.module = module
        self.E = module.embed_dim
        self.site_uses = tuple(_attention_uses("", self.E, module.in_proj_bias is not None, "x"))

    def group_sizes(self) -> dict[str, int]:
        """Return the groups ``q``, ``k``, ``v``, ``o`` (E each)."""
        return {g: self.E for g in ("q", "k", "v", "o")}

    def state_blocks(self) -> dict[str, slice]:
        """Return where ``A`` and ``O`` sit in the global state."""
        E = self.E
        return {"A": slice(0, E), "O": slice(E, 2 * E)}

    def state_lifted(
        self, params: Params, x: torch.Tensor, offsets: Mapping[str, torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Return the global state ``cat(A, O)`` with offsets and the weight sites."""
        self._check(x, self.E)
        sites = {"x": x, "one": torch.ones_like(x[..., :1])}

        def pre(g: str) -> torch.Tensor:
            return preactivation(self.site_uses, params, sites, g, offsets)

        sites["A"] = _attend(self.module, pre)
        return torch.cat([sites["A"], pre("o")], dim=-1), sites

    def forward(self, params: Params, x: torch.Tensor) -> torch.Tensor:
        """Return the module's output ``O`` (B, T, E)."""
        return self.state_lifted(params, x)[0][..., self.E :]


class TorchEncoderLayer(_TorchBlock):
    """``nn.TransformerEncoderLayer`` (post- or pre-norm) in the global-state view."""

    module: nn.TransformerEncoderLayer

    def __init__(self, module: nn.TransformerEncoderLayer) -> None:
        _check_attention(module.self_attn)
        self.module = module
        self.E = module.self_attn.embed_dim
        self.F = module.linear1.out_features
        self.norm_first = module.norm_first
        bias = module.self_attn.in_proj_bias is not None
        uses = _attention_uses("self_attn.", self.E, bias, "U")
        uses.append(SiteUse("linear1.weight", "Z", "m1"))
        if module.linear1.bias is not None:
            uses.append(SiteUse("linear1.bias", "one", "m1"))
        uses.append(SiteUse("linear2.weight", "H", "m2"))
        if module.linear2.bias is not None:
            uses.append(SiteUse("linear2.bias", "one", "m2"))
        self.site_uses = tuple(uses)

    def group_sizes(self) -> dict[str, int]:
        """Return the attention and MLP groups and their sizes."""
        return {"q": self.E, "k": self.E, "v": self.E, "o": self.E, "m1": self.F, "m2": self.E}

    def state_blocks(self) -> dict[str, slice]:
        """Return where each block of ``cat([U,] A, Z, H, Y)`` sits in the state."""
        names = (["U"] if self.norm_first else []) + ["A", "Z", "H", "Y"]
        sizes = {"U": self.E, "A": self.E, "Z": self.E, "H": self.F, "Y": self.E}
        out, start = {}, 0
        for n in names:
            out[n] = slice(start, start + sizes[n])
            start += sizes[n]
        return out

    def _norm(self, params: Params, which: str, x: torch.Tensor) -> torch.Tensor:
        norm = getattr(self.module, which)
        return F.layer_norm(
            x,
            norm.normalized_shape,
            params.get(f"{which}.weight"),
            params.get(f"{which}.bias"),
            norm.eps,
        )

    def state_lifted(
        self, params: Params, x: torch.Tensor, offsets: Mapping[str, torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Return the global state of the layer with offsets and the weight sites."""
        self._check(x, self.E)
        sites = {"one": torch.ones_like(x[..., :1])}

        def pre(g: str) -> torch.Tensor:
            return preactivation(self.site_uses, params, sites, g, offsets)

        sites["U"] = self._norm(params, "norm1", x) if self.norm_first else x
        sites["A"] = _attend(self.module.self_attn, pre)
        O = pre("o")
        if self.norm_first:
            R = x + O
            sites["Z"] = self._norm(params, "norm2", R)
        else:
            sites["Z"] = self._norm(params, "norm1", x + O)
        sites["H"] = self.module.activation(pre("m1"))
        M = pre("m2")
        Y = R + M if self.norm_first else self._norm(params, "norm2", sites["Z"] + M)
        parts = [sites["A"], sites["Z"], sites["H"], Y]
        if self.norm_first:
            parts.insert(0, sites["U"])
        return torch.cat(parts, dim=-1), sites

    def forward(self, params: Params, x: torch.Tensor) -> torch.Tensor:
        """Return the layer's output ``Y`` (B, T, E)."""
        return self.state_lifted(params, x)[0][..., -self.E :]


def as_feedforward(model: object) -> object:
    """Adapt ``nn.MultiheadAttention`` / ``nn.TransformerEncoderLayer``; others unchanged."""
    if isinstance(model, nn.TransformerEncoderLayer):
        return TorchEncoderLayer(model)
    if isinstance(model, nn.MultiheadAttention):
        return TorchAttention(model)
    return model
