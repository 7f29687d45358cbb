"""Forecaster: the LightningModule around RegLSTM (loss, optimiser, steps, predict)."""

from __future__ import annotations

import math

import pytorch_lightning as pl
import torch
from torch import nn

from forecast.nets import RegLSTM


class Forecaster(pl.LightningModule):
    """Trains RegLSTM with MSE on scaled targets.

    Batches are x (B, L, F_in), y (B, H, n_targets), series ids (B,).
    """

    def __init__(self, net: dict, lr: float = 3e-3, weight_decay: float = 0.0):
        super().__init__()
        self.save_hyperparameters()
        self.net = RegLSTM(**net)
        self.loss = nn.MSELoss()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)  # (B, H, n_targets)

    def _step(self, batch, split: str) -> torch.Tensor:
        x, y, _ = batch
        loss = self.loss(self(x), y)
        if split == "train" and not math.isfinite(loss.item()):
            raise FloatingPointError(
                f"train/loss became {loss.item()} at step {self.global_step}; "
                "lower model.lr or check the data for extreme values"
            )
        on_step = split == "train"
        self.log(f"{split}/loss", loss, on_step=on_step, on_epoch=True,
                 prog_bar=split != "test", batch_size=x.shape[0])
        return loss

    def training_step(self, batch, batch_idx):
        return self._step(batch, "train")

    def validation_step(self, batch, batch_idx):
        return self._step(batch, "val")

    def test_step(self, batch, batch_idx):
        return self._step(batch, "test")

    def predict_step(self, batch, batch_idx, dataloader_idx=0) -> torch.Tensor:
        return self(batch[0])

    def configure_optimizers(self):
        opt = torch.optim.Adam(
            self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay
        )
        plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=2)
        return {"optimizer": opt,
                "lr_scheduler": {"scheduler": plateau, "monitor": "val/loss"}}
