"""The global-state NTK of a GRU in a dozen lines (paper 004 §3–4).

Run: python examples/quickstart.py
"""

import torch

import sntkit.linalg as sla
from sntkit.ntk import state_ntk

torch.manual_seed(0)
gru = torch.nn.GRU(input_size=3, hidden_size=32, batch_first=True)  # your own module
h0 = torch.zeros(8, 32)
x = torch.randn(8, 20, 3)

ntk = state_ntk(gru, h0, x)  # NTK_S = P K P* on states (B, T, N) = (8, 20, 32)
print(ntk)

# matrix-free: apply NTK_S to an error signal, or its Kronecker-core factorization (Theorem 1)
err = torch.randn(ntk.state_shape)
delta_h = ntk.operator @ err
print("<NTK e, e> =", float(ntk.alignment(err)), "=", float(ntk.alignment(err, method="core")))

# spectrum and effective ranks, estimated with error bars
values, modes = sla.eigsh(ntk.spectral_operator, k=5)
print("top eigenvalues:", values.tolist())
print("stable rank:", sla.effective_rank(ntk.spectral_operator, kind="stable", seed=0))

# reduced views (Prop. 2): temporal (batch x time) and spatial (units)
temporal, spatial = ntk.view_matrix(("batch", "time")), ntk.view_matrix(("unit",))
print("temporal view", tuple(temporal.shape), "spatial view", tuple(spatial.shape))
