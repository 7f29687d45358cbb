"""Forecaster: the LightningModule around RegLSTM (loss, optimiser, steps, predict)."""

from __future__ import annotations

import math

import pytorch_lightning as pl
import torch

from forecast.config import TrainingOptions
from forecast.models.checkpoints import DIGEST as DATA_DIGEST
from forecast.models.network import RegLSTM
from forecast.models.options import to_hparams


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


def warmup_cosine(warmup: int, total: int | None):
    """Learning-rate factor of optimiser step s: linear from 1/warmup to 1 over `warmup` steps,
    then a cosine from 1 to 0 at step `total` (None: constant after the warm-up)."""
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        if total is None:
            return 1.0
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    return factor


class Forecaster(pl.LightningModule):
    """Trains RegLSTM on scaled targets with `loss` (mse | mae | huber), or the pinball loss when
    the net has quantiles.

    Batches are x (B, L, F_in), y (B, H, n_targets), series ids (B,).
    """

    def __init__(self, net: RegLSTM, training: TrainingOptions | None = None):
        super().__init__()
        training = training or TrainingOptions()
        # plain values, as checkpoints are read weights-only: {"net": shapes and options,
        # "loss", "lr", "weight_decay", "schedule", "warmup_steps"}
        self.save_hyperparameters({"net": net.hparams(), **to_hparams(training)})
        self.net = net
        self.data_digest: str | None = None  # sha256 of the run's data.json, set by the run
        self._epoch_sums: dict[str, tuple] = {}  # name -> (sum of value x windows, windows)

    @property
    def loss_name(self) -> str:
        """The loss it trains on: "pinball" for a quantile net, else the training option's."""
        return "pinball" if self.net.quantiles else self.hparams.loss

    def forward(self, x: torch.Tensor, series: torch.Tensor | None = None,
                known: torch.Tensor | None = None,
                static: torch.Tensor | None = None) -> torch.Tensor:
        """A batch's x (B, L, F_in), series (B,) [, known (B, H, F_known), static (B, S)]."""
        return self.net(x, series, known, static)  # (B, H, n_targets[, Q])

    def point_loss(self, y_hat: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The training loss of point forecasts (B, H, n_targets); a quantile model's median is
        trained on MAE."""
        return LOSSES["mae" if self.net.quantiles else self.hparams.loss](y_hat, y)

    def loss(self, y_hat: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.net.quantiles:
            return pinball(y, y_hat, self.net.quantiles)
        return LOSSES[self.hparams.loss](y_hat, y)

    def _step(self, batch, split: str) -> torch.Tensor:
        x, y, series, *covariates = batch  # known and static, when the data has them
        y_hat = self(x, series, *covariates)
        loss = self.loss(y_hat, y)
        if split == "val":  # both scores of the tables, whatever the loss: recipes compare on them
            point = y_hat[..., self.net.quantiles.index(0.5)] if self.net.quantiles else y_hat
            self.log_dict({"val/mse": torch.nn.functional.mse_loss(point, y),
                           "val/mae": torch.nn.functional.l1_loss(point, y)},
                          batch_size=x.shape[0], sync_dist=True)
        # sync_dist: under DDP every rank must see the same val/loss for checkpoints and stopping
        self.log(f"{split}/loss", loss, on_epoch=True, prog_bar=split != "test",
                 batch_size=x.shape[0], sync_dist=True)
        return loss

    def training_step(self, batch, batch_idx):
        x, y, series, *covariates = batch
        members = 1 if self.net.members is None else len(self.net.members)
        if members == 1:
            loss = self.loss(self(x, series, *covariates), y)
        else:  # the sum of the members' losses: each learns on its own, with its own gradient
            # (so weight decay and clipping act on it as on a network alone); logged as the mean
            loss = torch.stack([self.loss(y_hat, y) for y_hat in
                                self.net.member_forecasts(x, series, *covariates)]).sum()
        if self._logged_step():
            self.log("train/loss_step", loss / members, on_step=True, on_epoch=False,
                     prog_bar=True)
        self._add_to_epoch("train/loss_epoch", loss / members, x.shape[0])
        if self.net.aux_loss is not None:
            # the autoregressive decoder also learns the next step of every input on the lookback
            self._add_to_epoch("train/next_step_loss", self.net.aux_loss, x.shape[0])
            loss = loss + self.net.aux_loss * members  # the members' mean, summed like theirs
        if not math.isfinite(loss.item()):
            raise FloatingPointError(
                f"train/loss became {loss.item() / members} at step {self.global_step}; "
                "lower model.lr or check the data for extreme values"
            )
        return loss

    def configure_gradient_clipping(self, optimizer, gradient_clip_val=None,
                                    gradient_clip_algorithm=None) -> None:
        """trainer.gradient_clip_val clips each member of an ensemble on its own, as if it trained
        alone: clipping the whole would let one member's large gradient shrink the others'
        steps."""
        members = self.net.members
        if members is None or not gradient_clip_val:
            return super().configure_gradient_clipping(optimizer, gradient_clip_val,
                                                       gradient_clip_algorithm)
        for member in members:
            if gradient_clip_algorithm == "value":
                torch.nn.utils.clip_grad_value_(member.parameters(), gradient_clip_val)
            else:
                torch.nn.utils.clip_grad_norm_(member.parameters(), gradient_clip_val)

    def _logged_step(self) -> bool:
        """Whether the logger writes this step's values: Lightning's collection of a logged value
        costs as much as a short step's batch gather (benchmarks/README.md), so the train loss
        goes through self.log only on the steps it is written (trainer.log_every_n_steps) and
        its epoch mean is summed here. False for a step called outside a Trainer."""
        try:
            every = self.trainer.log_every_n_steps
        except RuntimeError:  # not attached to a Trainer
            return False
        return bool(every) and (self.global_step + 1) % every == 0

    def _add_to_epoch(self, name: str, value: torch.Tensor, windows: int) -> None:
        total, count = self._epoch_sums.get(name, (0.0, 0))
        self._epoch_sums[name] = (total + value.detach() * windows, count + windows)

    def on_train_epoch_start(self) -> None:
        self._epoch_sums = {}

    def on_train_epoch_end(self) -> None:
        for name, (total, count) in self._epoch_sums.items():  # window-weighted epoch means
            self.log(name, total / count, on_epoch=True, prog_bar=name == "train/loss_epoch")

    def validation_step(self, batch, batch_idx):
        return self._step(batch, "val")

    def test_step(self, batch, batch_idx):
        return self._step(batch, "test")

    def predict_step(self, batch, batch_idx, dataloader_idx=0) -> torch.Tensor:
        return self(batch[0], *batch[2:])

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        if self.data_digest is not None:
            checkpoint[DATA_DIGEST] = self.data_digest

    def configure_optimizers(self):
        opt = torch.optim.Adam(
            self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay
        )
        if self.hparams.schedule == "plateau":
            plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=2)
            return {"optimizer": opt,
                    "lr_scheduler": {"scheduler": plateau, "monitor": "val/loss"}}
        total = None
        if self.hparams.schedule == "cosine":
            total = self.trainer.estimated_stepping_batches
            if not math.isfinite(total):
                raise ValueError("model.schedule=cosine needs a finite trainer.max_epochs or "
                                 "trainer.max_steps (the length of the cosine)")
        factor = warmup_cosine(self.hparams.warmup_steps, total)
        by_step = torch.optim.lr_scheduler.LambdaLR(opt, factor)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": by_step, "interval": "step"}}
