"""Use ``torch.nn.RNN``/``GRU``/``LSTM`` (and their ``*Cell`` variants) as sntkit cells.

``torch.vmap`` has no batching rule for the fused recurrent kernels, so the adapter re-expresses
the module's step with torch primitives, reading the module's own parameters under their own
names (``weight_ih_l0``, ``bias_hh_l1``, ...). The adapter shares those ``nn.Parameter``
objects — it never copies or modifies them — and its step reproduces the module's forward.

State layout: layers are stacked on the unit axis, ``s = cat(h^1, ..., h^L)``, and for the LSTM
``s = cat(h^1, ..., h^L, c^1, ..., c^L)`` (the order of ``h_n`` then ``c_n``). Inputs are always
``(B, T, n_in)``, whatever the module's ``batch_first``. Dropout between layers is not applied
(analysis uses the deterministic forward). Bidirectional modules (not causal) and LSTM
projections are rejected.

Weight sites: layer ``l``'s input site is ``x`` for ``l = 0`` and the new hidden state of layer
``l − 1`` (a nested site) otherwise; groups are as in :mod:`sntkit.models.gru` /
:mod:`sntkit.models.lstm`, one ``"a{l}"`` group for RNN layers.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from sntkit.models.activations import derivative
from sntkit.models.cell import Cell, StepJacobian
from sntkit.models.gates import gru_update, lstm_update
from sntkit.models.sites import Params, SiteUse

_SUPPORTED = (nn.RNN, nn.GRU, nn.LSTM, nn.RNNCell, nn.GRUCell, nn.LSTMCell)


class TorchRecurrent(Cell):
    """A cell view of a ``torch.nn`` recurrent module (see module docstring)."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        if not isinstance(module, _SUPPORTED):
            raise TypeError(unsupported_message(module))
        if isinstance(module, nn.RNNBase):
            if module.bidirectional:
                raise ValueError(
                    "bidirectional recurrent modules are not causal maps h_t = f(h_{t-1}, x_t); "
                    "analyse each direction as its own unidirectional module"
                )
            if getattr(module, "proj_size", 0):
                raise ValueError("LSTM with proj_size > 0 is not supported; use proj_size=0")
            self.kind = module.mode  # RNN_TANH, RNN_RELU, GRU, LSTM
            self.num_layers = module.num_layers
            suffix = "_l{}"
        else:
            if isinstance(module, nn.RNNCell):
                self.kind = "RNN_TANH" if module.nonlinearity == "tanh" else "RNN_RELU"
            else:
                self.kind = "GRU" if isinstance(module, nn.GRUCell) else "LSTM"
            self.num_layers = 1
            suffix = ""
        self.module_name = type(module).__name__
        self.n_hidden = module.hidden_size
        self.n_input = module.input_size
        self.n_state = self.num_layers * self.n_hidden * (2 if self.kind == "LSTM" else 1)
        for name, p in module.named_parameters():
            self.register_parameter(name, p)
        self._names = [
            {k: k + suffix.format(layer) for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}
            for layer in range(self.num_layers)
        ]
        self.bias = hasattr(module, "bias_hh" + suffix.format(0))
        self.site_uses = tuple(u for layer in range(self.num_layers) for u in self._uses(layer))

    def _uses(self, layer: int) -> list[SiteUse]:
        n = self._names[layer]
        inp = "x" if layer == 0 else f"u{layer}"
        hid = f"h{layer}"
        H = self.n_hidden
        if self.kind == "GRU":
            rz, nn_ = slice(0, 2 * H), slice(2 * H, 3 * H)
            parts = [
                (n["weight_ih"], inp, "rz", rz),
                (n["weight_ih"], inp, "nx", nn_),
                (n["weight_hh"], hid, "rz", rz),
                (n["weight_hh"], hid, "nh", nn_),
            ]
            if self.bias:
                parts += [
                    (n["bias_ih"], "one", "rz", rz),
                    (n["bias_ih"], "one", "nx", nn_),
                    (n["bias_hh"], "one", "rz", rz),
                    (n["bias_hh"], "one", "nh", nn_),
                ]
        else:
            g = "gates" if self.kind == "LSTM" else "a"
            parts = [(n["weight_ih"], inp, g, slice(None)), (n["weight_hh"], hid, g, slice(None))]
            if self.bias:
                parts += [
                    (n["bias_ih"], "one", g, slice(None)),
                    (n["bias_hh"], "one", g, slice(None)),
                ]
        return [SiteUse(p, s, f"{g}{layer}", r) for p, s, g, r in parts]

    def group_sizes(self) -> dict[str, int]:
        """Return the pre-activation groups of every layer and their sizes."""
        H = self.n_hidden
        sizes = {"GRU": {"rz": 2 * H, "nx": H, "nh": H}, "LSTM": {"gates": 4 * H}}
        per_layer = sizes.get(self.kind, {"a": H})
        return {f"{g}{layer}": n for layer in range(self.num_layers) for g, n in per_layer.items()}

    def step_lifted(
        self,
        params: Params,
        s: torch.Tensor,
        x: torch.Tensor | None,
        offsets: Mapping[str, torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Return the stacked layers' step with offsets and the weight sites."""
        L, H = self.num_layers, self.n_hidden
        hs = s[..., : L * H].split(H, dim=-1)
        cs = s[..., L * H :].split(H, dim=-1) if self.kind == "LSTM" else None
        sites = self.base_sites(s, x)
        new_h, new_c = [], []
        inp = sites["x"]
        for layer in range(L):
            sites[f"h{layer}"] = hs[layer]
            if layer:
                sites[f"u{layer}"] = inp

            def pre(g: str, layer: int = layer) -> torch.Tensor:
                return self.preactivation(params, sites, f"{g}{layer}", offsets)

            if self.kind == "GRU":
                h = gru_update(pre("rz"), pre("nh"), pre("nx"), hs[layer])
            elif self.kind == "LSTM":
                assert cs is not None
                h, c = lstm_update(pre("gates"), cs[layer])
                new_c.append(c)
            else:
                a = pre("a")
                h = torch.tanh(a) if self.kind == "RNN_TANH" else torch.relu(a)
            new_h.append(h)
            inp = h
        return torch.cat(new_h + new_c, dim=-1), sites

    def step_jacobian(
        self, params: Params, s: torch.Tensor, x: torch.Tensor | None
    ) -> StepJacobian | None:
        """Single-layer ``RNN``/``RNNCell``: ``A = diag(φ'(a)) W_hh``, ``∂f/∂δ = diag(φ'(a))``.

        ``None`` (autograd) for GRU, LSTM and stacked layers, whose Jacobians are not of the
        diagonal-matrix-diagonal form.
        """
        if self.kind not in ("RNN_TANH", "RNN_RELU") or self.num_layers != 1:
            return None
        a = self.preactivation(params, {**self.base_sites(s, x), "h0": s}, "a0", None)
        left = derivative(torch.tanh if self.kind == "RNN_TANH" else torch.relu, a)
        return StepJacobian(params[self._names[0]["weight_hh"]], left, None, 0.0, left)

    def extra_repr(self) -> str:
        """Return the wrapped module's kind and sizes shown by ``repr``."""
        return f"{self.module_name}, kind={self.kind}, layers={self.num_layers}"


def unsupported_message(module: object) -> str:
    """Return the error text for a module sntkit cannot analyse directly."""
    return (
        f"{type(module).__name__} is not a supported recurrent module (supported: torch.nn "
        "RNN, GRU, LSTM and their *Cell variants, and sntkit cells). Wrap your model as a step "
        "function: sntkit.models.FunctionalCell(lambda params, h, x: ..., params=dict(...), "
        "n_state=N, n_input=n_in)"
    )


def as_cell(model: object) -> Cell:
    """Return ``model`` if it is an sntkit :class:`Cell`, or adapt a torch.nn recurrent module."""
    if isinstance(model, Cell):
        return model
    if isinstance(model, _SUPPORTED):
        return TorchRecurrent(model)
    raise TypeError(unsupported_message(model))
