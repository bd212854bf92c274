"""The transformer reproduction's point on nn.TransformerEncoderLayer (block="torch_encoder")."""

import json

from sntkit.cli.main import main

SMALL = ["--set", "n_attn=4", "--set", "n_mlp=6", "--set", "steps_T=3", "--set", "n_x=2",
         "--set", "overall_matvecs=6", "--set", "view_samples=4", "--set", "heads=2"]  # fmt: skip


def test_point_runs_on_the_torch_encoder_layer(tmp_path):
    out = tmp_path / "enc"
    assert main(["reproduce", "transformer-point", "--out", str(out), *SMALL,
                 "--set", "block=torch_encoder"]) == 0  # fmt: skip
    summary = json.loads((out / "summary.json").read_text())
    # d_model 4, FFN 6: P = (48 + 12) in_proj + (16 + 4) out_proj + (24 + 6) linear1
    # + (24 + 4) linear2 + 2·(4 + 4) layer norms = 154; state cat(A, Z, H, Y) = 4 + 4 + 6 + 4
    assert summary["num_params"] == 154 and summary["state_units"] == 18
    assert summary["temporal_rank"] > 0 and summary["spatial_rank"] > 0
    mlp = tmp_path / "mlp"
    assert main(["reproduce", "transformer-point", "--out", str(mlp), *SMALL]) == 0
    assert json.loads((mlp / "summary.json").read_text())["num_params"] != 154


def test_unknown_block_is_named(tmp_path, capsys):
    code = main(["reproduce", "transformer-point", "--out", str(tmp_path), *SMALL,
                 "--set", "block=gpt"])  # fmt: skip
    assert code != 0 and "block must be one of" in capsys.readouterr().err


def test_without_bias_sites_the_biases_leave_the_ntk(tmp_path):
    out = tmp_path / "nobias"
    assert main(["reproduce", "transformer-point", "--out", str(out), *SMALL,
                 "--set", "block=torch_encoder", "--set", "bias_sites=false"]) == 0  # fmt: skip
    # the 154 parameters above less the biases: in_proj 12, out_proj 4, linear1 6, linear2 4,
    # two layer norms 4 + 4
    assert json.loads((out / "summary.json").read_text())["num_params"] == 154 - 34


def test_saved_temporal_modes_report_their_variance_fractions(tmp_path):
    import torch

    from sntkit.models.transformer import AttentionMLP
    from sntkit.ntk import feedforward_ntk

    out = tmp_path / "modes"
    settings = [*SMALL, "--set", "n_in=1", "--set", "save_modes=true", "--set", "steps_T=5"]
    assert main(["reproduce", "transformer-point", "--out", str(out), *settings]) == 0
    summary = json.loads((out / "summary.json").read_text())
    # the same block and inputs, built densely: fractions of the temporal view's eigenvalues
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 5, 1, generator=g, dtype=torch.float64)
    model = AttentionMLP(1, n_attn=4, n_mlp=6, heads=2, generator=g, dtype=torch.float64)
    M = feedforward_ntk(model, x).view_matrix(("batch", "time")).double()
    lam = torch.linalg.eigvalsh(M).flip(0)
    expected = (lam[:3] / lam.sum()).tolist()
    assert summary["temporal_mode_fractions"] == [round(v, 12) for v in expected] or all(
        abs(a - b) < 1e-10
        for a, b in zip(summary["temporal_mode_fractions"], expected, strict=True)
    )
    assert all(0 <= c <= 1 + 1e-12 for c in summary["temporal_mode_time_constancy"])
