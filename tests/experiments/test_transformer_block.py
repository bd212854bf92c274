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
