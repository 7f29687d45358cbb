"""Forecaster: the LightningModule around RegLSTM (loss, optimiser, steps, predict)."""

from __future__ import annotations

import math

import pytorch_lightning as pl
import torch

from forecast.config import ModelConfig
from forecast.nets import RegLSTM


def pinball(y: torch.Tensor, y_hat: torch.Tensor, quantiles: list[float]) -> torch.Tensor:
    """Mean quantile (pinball) loss; y (B, H, n_targets), y_hat (B, H, n_targets, Q)."""
    q = torch.as_tensor(quantiles, dtype=y_hat.dtype, device=y_hat.device)  # (Q,)
    error = y[..., None] - y_hat  # (B, H, n_targets, Q)
    return torch.maximum(q * error, (q - 1) * error).mean()


# point losses on scaled targets; "mae" trains for the median, the score the runs report first
LOSSES = {
    "mse": torch.nn.functional.mse_loss,
    "mae": torch.nn.functional.l1_loss,
    "huber": torch.nn.functional.huber_loss,  # quadratic within one standard deviation
}


def check_loss(loss: str) -> None:
    if loss not in LOSSES:
        raise ValueError(f"model.loss='{loss}' is unknown; choose one of {list(LOSSES)}")


class Forecaster(pl.LightningModule):
    """Trains RegLSTM on scaled targets with `loss` (mse | mae | huber), or the pinball loss when
    the net has quantiles.

    Batches are x (B, L, F_in), y (B, H, n_targets), series ids (B,).
    """

    def __init__(self, net: dict, lr: float = ModelConfig.lr,
                 weight_decay: float = ModelConfig.weight_decay, loss: str = ModelConfig.loss):
        super().__init__()
        check_loss(loss)
        self.save_hyperparameters()
        self.net = RegLSTM(**net)

    @classmethod
    def from_options(cls, net: dict, model: dict) -> Forecaster:
        """From RegLSTM's kwargs and the `model` config (its lr, weight_decay and loss)."""
        return cls(net, lr=model["lr"], weight_decay=model["weight_decay"], loss=model["loss"])

    def forward(self, x: torch.Tensor, series: torch.Tensor | None = None) -> torch.Tensor:
        return self.net(x, series)  # (B, H, n_targets[, Q])

    def loss(self, y_hat: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.net.quantiles:
            return pinball(y, y_hat, self.net.quantiles)
        return LOSSES[self.hparams.loss](y_hat, y)

    def _step(self, batch, split: str) -> torch.Tensor:
        x, y, series = batch
        loss = self.loss(self(x, series), y)
        # sync_dist: under DDP every rank must see the same val/loss for checkpoints and stopping
        self.log(f"{split}/loss", loss, on_step=split == "train", on_epoch=True,
                 prog_bar=split != "test", batch_size=x.shape[0], sync_dist=split != "train")
        if split == "train" and self.net.aux_loss is not None:
            # the autoregressive decoder also learns the next step of every input on the lookback
            self.log("train/next_step_loss", self.net.aux_loss, batch_size=x.shape[0])
            loss = loss + self.net.aux_loss
        if split == "train" and not math.isfinite(loss.item()):
            raise FloatingPointError(
                f"train/loss became {loss.item()} at step {self.global_step}; "
                "lower model.lr or check the data for extreme values"
            )
        return loss

    def training_step(self, batch, batch_idx):
        return self._step(batch, "train")

    def validation_step(self, batch, batch_idx):
        return self._step(batch, "val")

    def test_step(self, batch, batch_idx):
        return self._step(batch, "test")

    def predict_step(self, batch, batch_idx, dataloader_idx=0) -> torch.Tensor:
        return self(batch[0], batch[2])

    def configure_optimizers(self):
        opt = torch.optim.Adam(
            self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay
        )
        plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=2)
        return {"optimizer": opt,
                "lr_scheduler": {"scheduler": plateau, "monitor": "val/loss"}}
