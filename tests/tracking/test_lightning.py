"""The Lightning callback in a tiny Trainer run (skipped without the extra)."""

import pytest
import torch
from torch import nn

L = pytest.importorskip("lightning")

from sntkit.tracking import Tracker  # noqa: E402
from sntkit.tracking.lightning import TrackerCallback  # noqa: E402


class Module(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.rnn = nn.GRU(2, 4, batch_first=True)
        self.readout = nn.Linear(4, 1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        out, _ = self.rnn(x)
        return (self.readout(out) - y).square().mean()

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-2)


def test_tiny_trainer_run_tracks_every_two_steps(tmp_path):
    torch.manual_seed(0)
    x, y = torch.randn(16, 5, 2), torch.randn(16, 5, 1)
    data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=4)
    module = Module()
    tracker = Tracker(
        module.rnn,
        h0=torch.zeros(4, 4),
        inputs=x[:4],
        every=2,
        metrics=("ranks", "spectral_radius"),
    )
    trainer = L.Trainer(
        max_epochs=1,
        callbacks=[TrackerCallback(tracker)],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    trainer.fit(module, data)
    assert [r["step"] for r in tracker.rows] == [2, 4]  # global_step after steps 2 and 4
    assert all(r["stable_rank"] > 1 and r["loss"] > 0 for r in tracker.rows)
    assert "sntk/stable_rank" in trainer.callback_metrics


def test_callback_needs_a_tracker():
    with pytest.raises(TypeError, match="tracker"):
        TrackerCallback("tracker")
